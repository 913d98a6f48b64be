"""Step advancement: the one place where a calibration moves from a step to the next.

The service (at once, when a result completes a step) and the agent (every cycle, as the
backstop that also catches a step whose trigger was lost, e.g. by a restart) both call
``advanceStep`` with their own CalibrationDB: it reads a snapshot of the step, hands it to the
pure ``Procedure.advance.advance`` and commits the outcome with an optimistic check (the step
must still be the one analysed), so two agents, a service thread and a retried call can never
advance a step twice. Nothing is locked while the step is analysed: results that arrive meanwhile
are stored and simply not used.

Only physics ends a calibration as Failed: a phase that cannot get its constants from the data or
does not converge within the iteration cap (``advance`` decides that). A stored result that cannot
be read, a database error or any fault of the process leaves the step as it is: it is analysed
again at the next trigger or agent cycle, and the caller logs the error.

The plots of a step are kept with it undrawn and drawn afterwards (``drawPendingPlots``, by the
agent): the next constants do not need them, and drawing takes longer than the analysis.
"""
import threading
from contextlib import nullcontext

from DIRAC import S_ERROR, S_OK, gConfig
from DIRAC.ConfigurationSystem.Client.PathFinder import getServiceSection
from DIRAC.Core.Utilities.DErrno import cmpError

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import RUNNING
from ILCDIRAC.CalibrationSystem.Procedure.advance import StepRecord, StepState, advance, results_needed
from ILCDIRAC.CalibrationSystem.Procedure.outcome import decode_plots, encode_plots
from ILCDIRAC.CalibrationSystem.Procedure.plots import render_plots
from ILCDIRAC.Core.Utilities.DErrno import ECALANALYSIS, ECALSTEPMOVED

SERVICE = "Calibration/Calibration"
#: Default of the service option MaxResultSize, in bytes.
DEFAULT_MAX_RESULT_SIZE = 8 * 1024 * 1024


def maxResultSize():
    """The service's MaxResultSize: the one size limit of a worker's result, applied when it is
    uploaded and whenever it is decoded.

    :return: int, bytes
    """
    return int(gConfig.getValue(f"{getServiceSection(SERVICE)}/MaxResultSize", DEFAULT_MAX_RESULT_SIZE))


def _state(calibration, previous):
    return StepState(
        calibration["Stage"],
        calibration["Phase"],
        calibration["Step"],
        calibration["PhaseIteration"],
        calibration["Parameters"],
        None if previous is None else StepRecord(previous["Stage"], previous["Phase"], previous["Step"],
                                                 previous["Metrics"]),
    )


def advanceStep(calibrationDB, calibrationID, limit, source, clock=None):
    """Analyse the calibration's current step if it has enough results, and commit what it decides.

    :param calibrationDB: the caller's CalibrationDB
    :param int calibrationID: the calibration
    :param int limit: the size limit of a result (``maxResultSize()``)
    :param str source: who analyses, for the event log ('service' or 'agent')
    :param clock: the service's ``Service.AnalysisClock.AnalysisClock``, which times the analysis
        (reading the results, the analysis and its commit) for the workers waiting for it; None
        for the agent
    :return: S_OK(message saying what the analysis decided); S_OK(None) if the calibration is not
        running, its step lacks results, or another caller committed that step first; S_ERROR for
        a fault that is not physics (DErrno.EMYSQL from the DB, ECALANALYSIS for a result that
        could not be read or a fault of the process), which leaves the step to be analysed again
    """
    result = calibrationDB.getCalibration(calibrationID)
    if not result["OK"]:
        return result
    calibration = result["Value"]
    step = calibration["Step"]
    if calibration["Status"] != RUNNING:
        return S_OK(None)
    needed = results_needed(calibration["NumberOfJobs"], calibration["Settings"])
    counted = calibrationDB.countResults(calibrationID, step)
    if not counted["OK"]:
        return counted
    if counted["Value"] < needed:
        return S_OK(None)
    with clock.timing(calibrationID, step, calibration["Phase"]) if clock else nullcontext():
        return _analyse(calibrationDB, calibration, limit, source)


def _analyse(calibrationDB, calibration, limit, source):
    """Analyse the calibration's current step, which has enough results, and commit the outcome."""
    calibrationID, step = calibration["CalibrationID"], calibration["Step"]
    inputs = calibrationDB.getStepInputs(calibrationID, step)
    if not inputs["OK"]:
        return inputs
    contents = inputs["Value"]["Contents"]
    try:
        outcome = advance(_state(calibration, inputs["Value"]["Previous"]), contents, calibration["Settings"], limit)
        plots = encode_plots(outcome.plots) if outcome.plots else None
    except Exception as error:  # noqa: BLE001 - an unreadable stored result or a fault of the process, not physics
        return S_ERROR(ECALANALYSIS, f"Step {step} of calibration {calibrationID} was not analysed and stays as it"
                                     f" is: {type(error).__name__}: {error}")
    record = {
        "Status": outcome.status,
        "Message": outcome.message,
        "Parameters": outcome.parameters,
        "Converged": outcome.converged,
        "Metrics": outcome.metrics,
        "NumberOfResults": len(contents),
        "Next": None if outcome.next_position is None else (*outcome.next_position, outcome.next_iteration),
        "Files": outcome.artifacts,
        "PendingPlots": plots,
    }
    committed = calibrationDB.commitStep(calibrationID, step, record, source)
    if cmpError(committed, ECALSTEPMOVED):
        return S_OK(None)
    return S_OK(outcome.message) if committed["OK"] else committed


def drawPendingPlots(calibrationDB, source):
    """Draw and store the plots of every analysed step whose plots are not drawn yet. A plot whose
    data cannot be drawn is noted in the calibration's event log; any other failure leaves the
    step's plots pending, to be drawn at the next call.

    :param calibrationDB: the caller's CalibrationDB
    :param str source: who draws, for the event log
    :return: S_OK(number of steps whose plots were stored), or S_ERROR saying what failed
    """
    pending = calibrationDB.getPendingPlots()
    if not pending["OK"]:
        return pending
    drawn, errors = 0, []
    for calibrationID, step, data in pending["Value"]:
        try:
            files, failures = render_plots(decode_plots(data))
        except Exception as error:  # noqa: BLE001 - a fault of the process: left pending
            errors.append(f"calibration {calibrationID} step {step}: {type(error).__name__}: {error}")
            continue
        notes = [f"Plot {name} of step {step} could not be drawn: {why}" for name, why in failures.items()]
        stored = calibrationDB.storePlots(calibrationID, step, files, notes, source)
        if stored["OK"]:
            drawn += 1
        else:
            errors.append(f"calibration {calibrationID} step {step}: {stored['Message']}")
    if errors:
        return S_ERROR(f"The plots of {len(errors)} steps were not drawn, and stay pending: {'; '.join(errors)}")
    return S_OK(drawn)


class StepAdvancer:
    """The service's background step analysis: one thread that advances the calibrations whose
    step has just been completed, so that no request waits for an analysis."""

    def __init__(self, calibrationDB, limit, log, clock=None):
        """Start the thread.

        :param calibrationDB: the service's CalibrationDB
        :param int limit: the size limit of a result
        :param log: the service's logger
        :param clock: the service's AnalysisClock, which times the analyses (see ``advanceStep``)
        """
        self.calibrationDB = calibrationDB
        self.limit = limit
        self.log = log
        self.clock = clock
        self._pending = []
        self._condition = threading.Condition()
        threading.Thread(target=self._run, name="StepAdvancer", daemon=True).start()

    def trigger(self, calibrationID):
        """Have the calibration's current step analysed soon (once, however often it is asked).

        :param int calibrationID: the calibration
        """
        with self._condition:
            if calibrationID not in self._pending:
                self._pending.append(calibrationID)
                self._condition.notify()

    def _run(self):
        while True:
            with self._condition:
                while not self._pending:
                    self._condition.wait()
                calibrationID = self._pending.pop(0)
            try:
                result = advanceStep(self.calibrationDB, calibrationID, self.limit, "service", self.clock)
            except Exception as error:  # noqa: BLE001 - the thread must outlive any fault; the agent retries
                result = S_ERROR(ECALANALYSIS, f"{type(error).__name__}: {error}")
            if not result["OK"]:
                self.log.error("Step analysis failed; the agent's cycle will analyse the step again",
                               f"calibration {calibrationID}: {result['Message']}")
            elif result["Value"]:
                self.log.info("Step analysed", f"calibration {calibrationID}: {result['Value']}")
