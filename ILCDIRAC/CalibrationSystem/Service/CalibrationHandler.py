"""CalibrationService (Calibration/Calibration): the DISET front of the CalibrationSystem.

Each method checks its arguments and the caller, then makes one call into the pure procedure
code and the CalibrationDB. The handler keeps no state of its own: everything is in the DB,
so a restart of the service loses nothing.
"""
import socket

from DIRAC import S_ERROR, S_OK, gLogger
from DIRAC.Core.DISET.RequestHandler import RequestHandler
from DIRAC.Core.DISET.private.TransportPool import getGlobalTransportPool
from DIRAC.Core.Security import Properties

from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import FINISHED, RUNNING, CalibrationDB
from ILCDIRAC.CalibrationSystem.Procedure.advance import (
    ARTIFACT_FILES,
    FAILED,
    StepOutcome,
    StepState,
    advance,
    results_needed,
)
from ILCDIRAC.CalibrationSystem.Procedure.creation import plan_calibration
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.plots import convergence_plot
from ILCDIRAC.CalibrationSystem.Procedure.steering import render_steering
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary

_INT = (int,)


def _refuse(message):
    """An error that retrying cannot cure: workers stop at once instead of retrying it."""
    result = S_ERROR(message)
    result["Refused"] = True
    return result


def _isInt(*values):
    """DISET's type check lets booleans through as ints; identifiers must be real integers."""
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


class CalibrationHandler(RequestHandler):
    """Creates calibrations, serves constants and event slices to workers, collects results."""

    @classmethod
    def initializeHandler(cls, serviceInfoDict):
        cls.log = gLogger.getSubLogger("CalibrationHandler")
        try:
            cls.calibrationDB = CalibrationDB(parentLogger=cls.log)
        except RuntimeError as error:
            return S_ERROR(f"Cannot use the CalibrationDB: {error}")
        cls.maxResultSize = int(cls.srv_getCSOption("MaxResultSize", 8 * 1024 * 1024))
        cls.tcpNoDelay = cls.srv_getCSOption("TCPNoDelay", True)
        cls.advanceOnLastResult = cls.srv_getCSOption("AdvanceOnLastResult", True)
        return S_OK()

    def initialize(self):
        """Per request: send replies at once instead of letting Nagle hold them ~40 ms."""
        if self.tcpNoDelay:
            transport = getGlobalTransportPool().get(self.srv_getTransportID())
            if transport is not None:
                try:
                    transport.getSocket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError as error:
                    self.log.debug("Cannot set TCP_NODELAY", str(error))

    # ------------------------------------------------------------------ helpers

    def _caller(self):
        credentials = self.getRemoteCredentials()
        return {
            "Owner": credentials.get("username", ""),
            "OwnerGroup": credentials.get("group", ""),
            "OwnerDN": credentials.get("DN", ""),
            "Properties": credentials.get("properties", []),
        }

    def _ownCalibration(self, calibrationID):
        """The calibration, if the caller owns it (same user and group) or is a trusted host."""
        if not _isInt(calibrationID):
            return _refuse(f"A calibration ID is an integer, not {calibrationID!r}")
        result = self.calibrationDB.getCalibration(calibrationID)
        if not result["OK"]:
            return _refuse(result["Message"]) if result.get("Missing") else result
        calibration = result["Value"]
        caller = self._caller()
        if Properties.TRUSTED_HOST in caller["Properties"]:
            return result
        if (caller["Owner"], caller["OwnerGroup"]) != (calibration["Owner"], calibration["OwnerGroup"]):
            return _refuse(f"Calibration {calibrationID} does not exist")
        return result

    @staticmethod
    def _parameterSet(calibration):
        return {
            "currentStage": calibration["Stage"],
            "currentPhase": calibration["Phase"],
            "currentStep": calibration["Step"],
            "parameters": calibration["Parameters"],
            "calibrationIsFinished": calibration["Status"] != RUNNING,
            "calibrationStatus": calibration["Status"],
            "statusMessage": calibration["StatusMessage"],
        }

    # ------------------------------------------------------------------ users

    # Checked by plan_calibration, whose messages say more than DISET's type mismatch
    types_createCalibration = [None, None, None, str, None, None]

    def export_createCalibration(self, inputFiles, numberOfEventsPerFile, settings, steeringFile, softwareVersion,
                                 numberOfJobs):
        """Create a calibration; its jobs are submitted by the CalibrationAgent.

        :param dict inputFiles: {sample type: [file, ...]} for 'gamma', 'muon', 'kaon', 'zuds'
        :param dict numberOfEventsPerFile: {sample type: events in each file of that sample}
        :param dict settings: calibration settings (missing ones take their defaults)
        :param str steeringFile: the Marlin steering file (XML text) with the initial constants
        :param str softwareVersion: the iLCSoft release the workers run
        :param int numberOfJobs: how many worker jobs share the events
        :return: S_OK(calibrationID)
        """
        try:
            plan = plan_calibration(
                inputFiles,
                numberOfEventsPerFile,
                settings,
                steeringFile.encode(errors="surrogateescape"),
                softwareVersion,
                numberOfJobs,
            )
        except ProcedureError as error:
            return S_ERROR(f"Calibration not created: {error}")
        caller = self._caller()
        result = self.calibrationDB.createCalibration(
            caller,
            {
                "Settings": plan.settings,
                "InputFiles": plan.input_files,
                "EventsPerFile": plan.events_per_file,
                "SteeringFile": steeringFile.encode(errors="surrogateescape"),
                "SoftwareVersion": softwareVersion,
                "NumberOfJobs": numberOfJobs,
            },
            plan.worker_input_data,
            plan.parameters,
            plan.position,
        )
        if result["OK"]:
            self.log.info("Calibration created", f"{result['Value']} by {caller['Owner']} ({numberOfJobs} jobs)")
        return result

    types_getUserCalibrationStatuses = []

    def export_getUserCalibrationStatuses(self):
        """The caller's calibrations: status, position and progress of the current step.

        :return: S_OK(list of dicts, one per calibration, oldest first)
        """
        caller = self._caller()
        result = self.calibrationDB.getCalibrations(owner=caller["Owner"], ownerGroup=caller["OwnerGroup"])
        if not result["OK"]:
            return result
        statuses = []
        for calibration in result["Value"]:
            counted = self.calibrationDB.countResults(calibration["CalibrationID"], calibration["Step"])
            if not counted["OK"]:
                return counted
            statuses.append(
                {
                    "calibrationID": calibration["CalibrationID"],
                    "status": calibration["Status"],
                    "statusMessage": calibration["StatusMessage"],
                    "currentStage": calibration["Stage"],
                    "currentPhase": calibration["Phase"],
                    "currentStep": calibration["Step"],
                    "numberOfJobs": calibration["NumberOfJobs"],
                    "resultsInCurrentStep": counted["Value"],
                    "resultsNeeded": results_needed(calibration["NumberOfJobs"], calibration["Settings"]),
                    "creationTime": calibration["CreationTime"],
                    "endTime": calibration["EndTime"],
                }
            )
        return S_OK(statuses)

    types_getResult = [_INT]

    def export_getResult(self, calibrationID):
        """The outcome of a finished calibration.

        :param int calibrationID: the calibration
        :return: S_OK({'calibrationID', 'status', 'parameters' (final constants),
            'steeringFile' (the user's steering file with the final constants), 'settings',
            'steeringFileInput' (as given), 'history' (constants and metrics of every step),
            'files' ({name: content}: the plots of every step, convergence.png and, after the
            photon training, newPandoraLikelihoodData.xml)}); S_ERROR while it is not finished
        """
        result = self._ownCalibration(calibrationID)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        if calibration["Status"] != FINISHED:
            where = (
                f"stage {calibration['Stage']}, phase {calibration['Phase']}, step {calibration['Step']}"
            )
            return S_ERROR(
                f"Calibration {calibrationID} has no result: it is {calibration['Status']} ({where})"
                + (f": {calibration['StatusMessage']}" if calibration["StatusMessage"] else "")
            )
        steering = self.calibrationDB.getSteeringFile(calibrationID)
        history = self.calibrationDB.getSteps(calibrationID)
        files = self.calibrationDB.getFiles(calibrationID)
        for answer in (steering, history, files):
            if not answer["OK"]:
                return answer
        try:
            finalSteering = render_steering(steering["Value"], calibration["Parameters"], calibration["Settings"])
            files["Value"]["convergence.png"] = convergence_plot(history["Value"])
        except (ProcedureError, ValueError) as error:
            return S_ERROR(f"Cannot write the results of calibration {calibrationID}: {error}")
        return S_OK(
            {
                "calibrationID": calibrationID,
                "status": calibration["Status"],
                "statusMessage": calibration["StatusMessage"],
                "parameters": calibration["Parameters"],
                "steeringFile": finalSteering.decode(),
                "steeringFileInput": steering["Value"].decode(errors="surrogateescape"),
                "settings": calibration["Settings"],
                "history": history["Value"],
                "files": files["Value"],
            }
        )

    # ------------------------------------------------------------------ workers

    types_getNewParameters = [_INT, _INT]

    def export_getNewParameters(self, calibrationID, stepOnWorker):
        """The constants of the current step, if the worker has not processed it yet.

        :param int calibrationID: the calibration
        :param int stepOnWorker: the last step the worker processed (-1 at its start)
        :return: S_OK(parameter set dict) when there is a newer step or the calibration has
            ended (``calibrationIsFinished`` True), S_OK(None) while the worker must wait
        """
        result = self._ownCalibration(calibrationID)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        if calibration["Status"] == RUNNING and calibration["Step"] <= stepOnWorker:
            return S_OK(None)
        return S_OK(self._parameterSet(calibration))

    types_getInputDataDict = [_INT, _INT]

    def export_getInputDataDict(self, calibrationID, workerID):
        """The events a worker reprocesses at every step.

        :return: S_OK({sample type: [[file, ...], events to skip, number of events]})
        """
        result = self._ownCalibration(calibrationID)
        if not result["OK"]:
            return result
        if not _isInt(workerID) or not 0 <= workerID < result["Value"]["NumberOfJobs"]:
            return _refuse(f"Calibration {calibrationID} has no worker {workerID!r}")
        return self.calibrationDB.getWorkerInputData(calibrationID, workerID)

    types_getCalibrationSetup = [_INT]

    def export_getCalibrationSetup(self, calibrationID):
        """What a worker needs once: the settings, the template steering file, the release.

        :return: S_OK({'settings': dict, 'steeringFile': str, 'softwareVersion': str,
            'numberOfJobs': int})
        """
        result = self._ownCalibration(calibrationID)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        steering = self.calibrationDB.getSteeringFile(calibrationID)
        if not steering["OK"]:
            return steering
        return S_OK(
            {
                "settings": calibration["Settings"],
                "steeringFile": steering["Value"].decode(errors="surrogateescape"),
                "softwareVersion": calibration["SoftwareVersion"],
                "numberOfJobs": calibration["NumberOfJobs"],
            }
        )

    types_getNewPhotonLikelihood = [_INT]

    def export_getNewPhotonLikelihood(self, calibrationID):
        """The photon likelihood merged at the end of the training (stage 2), for stage 3.

        :return: S_OK(bytes of the merged likelihood XML), or S_ERROR while it does not exist yet
        """
        result = self._ownCalibration(calibrationID)
        if not result["OK"]:
            return result
        name = ARTIFACT_FILES["photonLikelihood"]
        files = self.calibrationDB.getFiles(calibrationID, [name])
        if not files["OK"]:
            return files
        if name not in files["Value"]:
            return S_ERROR(f"Calibration {calibrationID} has no merged photon likelihood yet")
        return S_OK(files["Value"][name])

    types_submitResult = [_INT, _INT, _INT, _INT, _INT, (str, bytes)]

    def export_submitResult(self, calibrationID, stageID, phaseID, stepID, workerID, content):
        """Store a worker's result (summary) for a step.

        :return: S_OK({'Stored': bool, 'Message': str}): not stored when the step is over or
            the worker already reported it; S_ERROR for a malformed or oversized result
        """
        result = self._ownCalibration(calibrationID)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        if not _isInt(stageID, phaseID, stepID, workerID):
            return _refuse("stageID, phaseID, stepID and workerID must be integers")
        if not 0 <= workerID < calibration["NumberOfJobs"]:
            return _refuse(f"Calibration {calibrationID} has no worker {workerID}")
        if isinstance(content, str):
            content = content.encode(errors="surrogateescape")
        if len(content) > self.maxResultSize:
            return _refuse(f"Result of {len(content)} bytes refused: the limit is {self.maxResultSize} bytes")
        if stepID == calibration["Step"] and (stageID, phaseID) != (calibration["Stage"], calibration["Phase"]):
            return _refuse(
                f"Step {stepID} is stage {calibration['Stage']} phase {calibration['Phase']}, "
                f"not stage {stageID} phase {phaseID}"
            )
        try:
            decode_summary(content, phaseID)
        except ProcedureError as error:
            return _refuse(f"Result refused: {error}")
        result = self.calibrationDB.addResult(calibrationID, stageID, phaseID, stepID, workerID, content)
        if not result["OK"]:
            return result
        if result["Value"]:
            if self.advanceOnLastResult:
                self._advanceIfComplete(calibration)
            return S_OK({"Stored": True, "Message": f"Result of worker {workerID} for step {stepID} stored"})
        if stepID != calibration["Step"] or calibration["Status"] != RUNNING:
            message = f"Step {stepID} is over (calibration at step {calibration['Step']}, {calibration['Status']})"
        else:
            message = f"Worker {workerID} had already reported step {stepID}"
        return S_OK({"Stored": False, "Message": message})

    # ------------------------------------------------------------------ agent

    types_checkForStepIncrement = []

    def export_checkForStepIncrement(self):
        """Analyse every running calibration whose current step has enough results.

        :return: S_OK({calibrationID: what happened}) for the calibrations that moved
        """
        result = self.calibrationDB.getCalibrations(statuses=[RUNNING])
        if not result["OK"]:
            return result
        report = {}
        for calibration in result["Value"]:
            message = self._advanceIfComplete(calibration)
            if message:
                report[calibration["CalibrationID"]] = message
        return S_OK(report)

    def _advanceIfComplete(self, calibration):
        """Analyse the calibration's current step if it has enough results: what happened, or None.

        Called by the agent's cycle and, at once, when the result completing a step arrives;
        the DB transaction makes sure a step is analysed only once whoever calls first.
        """
        calibrationID = calibration["CalibrationID"]
        counted = self.calibrationDB.countResults(calibrationID, calibration["Step"])
        if not counted["OK"]:
            return f"Error: {counted['Message']}"
        if counted["Value"] < results_needed(calibration["NumberOfJobs"], calibration["Settings"]):
            return None
        advanced = self.calibrationDB.advanceStep(calibrationID, calibration["Step"], _decideStep)
        if not advanced["OK"]:
            self.log.error("Step advancement failed", advanced["Message"])
            return f"Error: {advanced['Message']}"
        if advanced["Value"] is None:
            return None
        self.log.info("Step analysed", f"calibration {calibrationID}: {advanced['Value'].message}")
        return advanced["Value"].message


def _decideStep(calibration, contents):
    """Run the procedure on a step's results; a procedure error ends the calibration as failed."""
    state = StepState(
        calibration["Stage"],
        calibration["Phase"],
        calibration["Step"],
        calibration["PhaseIteration"],
        calibration["Parameters"],
    )
    try:
        return advance(state, contents, calibration["Settings"])
    except ProcedureError as error:
        return StepOutcome(FAILED, calibration["Parameters"], False, None, f"Step {state.step} failed: {error}")
