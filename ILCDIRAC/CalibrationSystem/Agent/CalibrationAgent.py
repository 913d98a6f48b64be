"""CalibrationAgent: keeps the workers of every running calibration going and its steps moving.

Each cycle, for every running calibration: read the state of its jobs from the job backend,
submit the workers that never had a job, resubmit failed workers in batches (the seed's rule:
wait until enough have failed, then resubmit them all at once), fail a calibration whose jobs fail
too often, and analyse its step if it has enough results (``private/StepAdvancement``, with the
agent's own CalibrationDB: the backstop of the service's analysis, which also catches a step
whose trigger was lost). Then it draws the plots of analysed steps, kills the jobs left over by
calibrations that have ended, copies the results of finished calibrations to their output
location once, and removes those kept longer than the retention.

A cycle is idempotent: an attempt is recorded before its job is submitted, so a crash between
the two leaves an attempt that the next cycle declares lost and resubmits, never a double. A
database or backend error never stands for "nothing there": it skips that calibration for the
cycle, logged as an error, and the next cycle tries again.
"""
import datetime
import math
import os
import sys

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule
from DIRAC.Core.Utilities import DErrno

from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import (
    ATTEMPT_FAILED,
    ATTEMPT_KILLED,
    ATTEMPT_LOST,
    ATTEMPT_SUBMITTING,
    ATTEMPT_WAITING,
    FAILED,
    FINAL_ATTEMPT_STATUSES,
    FINISHED,
    KILLED,
    RUNNING,
)
from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import CalibrationDB
from ILCDIRAC.CalibrationSystem.JobBackends.JobBackend import loadJobBackend
from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription
from ILCDIRAC.CalibrationSystem.Procedure.advance import results_needed
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import (
    DEFAULT_RETENTION_MINUTES,
    collectResult,
    resultFiles,
)
from ILCDIRAC.CalibrationSystem.Utilities.ResultCopy import RESULT_STORAGES, STORAGE_ELEMENT, copyResults
from ILCDIRAC.CalibrationSystem.Utilities.WorkerCredential import ENVIRONMENT_VARIABLE
from ILCDIRAC.CalibrationSystem.private.StepAdvancement import advanceStep, drawPendingPlots, maxResultSize


class CalibrationAgent(AgentModule):
    """Submits, follows and resubmits worker jobs; triggers step advancement."""

    def initialize(self):
        """Once, when the agent starts: the CalibrationDB, the job backend named by ``JobBackend``
        (DIRAC, Local, or one another extension provides) and the options of the agent's CS section.

        :return: S_OK, or S_ERROR for an unknown JobBackend or ResultStorage or unusable backend options
        """
        self.calibrationDB = CalibrationDB(parentLogger=self.log)
        loaded = loadJobBackend(self.am_getOption("JobBackend", "DIRAC"), self.am_getOption, self.am_getWorkDirectory())
        if not loaded["OK"]:
            return loaded
        self.backend = loaded["Value"]
        self.resultStorage = self.am_getOption("ResultStorage", STORAGE_ELEMENT)
        if self.resultStorage not in RESULT_STORAGES:
            return S_ERROR(f"Unknown ResultStorage {self.resultStorage!r}: use one of {', '.join(RESULT_STORAGES)}")
        self.resubmissionFraction = float(self.am_getOption("ResubmissionFraction", 0.1))
        self.maxFailedAttemptsPerJob = float(self.am_getOption("MaxFailedAttemptsPerJob", 1.0))
        self.workerOptions = [
            "--polling-time",
            str(self.am_getOption("WorkerPollingTime", 0.1)),
            "--max-polling-time",
            str(self.am_getOption("WorkerMaxPollingTime", 10)),
        ]
        retention = float(self.am_getOption("TimeToKeepCalibrationResultsInMinutes", DEFAULT_RETENTION_MINUTES))
        self.retention = datetime.timedelta(minutes=retention)
        grace = float(self.am_getOption("FinishedJobsGraceTimeInMinutes", 10))
        self.finishedJobsGrace = datetime.timedelta(minutes=grace)
        self.maxResultSize = maxResultSize()
        self.serviceClient = CalibrationClient()
        return S_OK()

    def execute(self):
        """One cycle (every PollingTime seconds): for every running calibration, sync its jobs with the
        backend, submit and resubmit workers, fail it if too many job attempts failed, and analyse its
        step if it has enough results; then draw the plots of analysed steps, kill the jobs of killed
        and failed calibrations (and of finished ones after FinishedJobsGraceTimeInMinutes), copy
        finished results and remove those past the retention time. An error skips the calibration it
        concerns for this cycle and is logged; none is raised.

        :return: S_OK, or S_ERROR if the running calibrations cannot be read or the service refuses
            the agent (its host is not a TrustedHost)
        """
        result = self.calibrationDB.getCalibrations(statuses=[RUNNING])
        if not result["OK"]:
            return result
        refusals = self._forEachCalibration(result["Value"], self._runCalibration)["Value"]
        for task in (self._drawPlots, self._killLeftoverJobs, self._copyResults, self._removeExpired):
            result = task()
            if not result["OK"]:
                self.log.error("Agent task failed", f"{task.__name__}: {result['Message']}")
        if refusals:
            # Nothing moves while the service refuses the agent: the cycle must not look successful
            return S_ERROR(
                f"The Calibration service refuses this agent ({refusals[0]}): its host needs the TrustedHost "
                "property in the Registry (dirac-admin-add-host), which the service sees at its next "
                "configuration refresh or when it is restarted"
            )
        return S_OK()

    # ------------------------------------------------------------------ running calibrations

    def _runCalibration(self, calibration):
        """Its jobs, then its step if it still runs."""
        handled = self._manageJobs(calibration)
        if not handled["OK"] or calibration["Status"] != RUNNING:
            return handled
        advanced = advanceStep(self.calibrationDB, calibration["CalibrationID"], self.maxResultSize, "agent")
        if advanced["OK"] and advanced["Value"]:
            self.log.info("Step analysed", f"calibration {calibration['CalibrationID']}: {advanced['Value']}")
        return advanced

    def _manageJobs(self, calibration):
        """Sync, submit and resubmit the jobs of a running calibration, or fail it when too many
        of its job attempts failed (then its status in ``calibration`` says so)."""
        calibrationID = calibration["CalibrationID"]
        result = self._syncAttempts(calibrationID)
        if not result["OK"]:
            return result
        attempts = result["Value"]
        failed = self.calibrationDB.countFailedAttempts(calibrationID)
        if not failed["OK"]:
            return failed
        limit = math.ceil(self.maxFailedAttemptsPerJob * calibration["NumberOfJobs"])
        if failed["Value"] >= limit:
            message = f"{failed['Value']} job attempts failed (limit {limit}); see the job outputs"
            self.log.warn("Calibration failed", f"{calibrationID}: {message}")
            ended = self.calibrationDB.setStatus(calibrationID, FAILED, message, "agent")
            if ended["OK"] and ended["Value"]:
                calibration["Status"] = FAILED
            return ended

        neverSubmitted = {wid for wid, attempt in attempts.items() if attempt is None}
        ended = [wid for wid, attempt in attempts.items() if attempt and attempt["Status"] in FINAL_ATTEMPT_STATUSES]
        resubmit = self._shouldResubmit(calibration, attempts, len(ended)) if ended else S_OK(False)
        if not resubmit["OK"]:
            return resubmit
        toSubmit = neverSubmitted | (set(ended) if resubmit["Value"] else set())
        if resubmit["Value"]:
            self.log.info("Resubmitting workers", f"calibration {calibrationID}: {sorted(ended)}")
        if not toSubmit:
            return S_OK()
        credential = self.serviceClient.getWorkerCredential(calibrationID)
        if not credential["OK"]:
            return credential
        for workerID in sorted(toSubmit):
            result = self._submit(calibration, workerID, credential["Value"])
            if not result["OK"]:
                return result
        return S_OK()

    def _setAttemptStatus(self, attempt, status, message):
        """Record a new status of an attempt (in ``attempt`` too); S_ERROR if the DB fails."""
        update = self.calibrationDB.setAttemptStatus(attempt["AttemptID"], status, message)
        if update["OK"]:
            attempt["Status"] = status if update["Value"] else attempt["Status"]
        return update

    def _syncAttempts(self, calibrationID):
        """Bring the newest attempt of every worker up to date with the backend."""
        result = self.calibrationDB.getNewestAttempts(calibrationID)
        if not result["OK"]:
            return result
        attempts = result["Value"]
        for attempt in [a for a in attempts.values() if a and a["Status"] == ATTEMPT_SUBMITTING]:
            # Only a crashed earlier cycle leaves an attempt in Submitting: its job is unknown
            update = self._setAttemptStatus(attempt, ATTEMPT_LOST, "submission was interrupted")
            if not update["OK"]:
                return update
        live = {a["BackendJobID"]: a for a in attempts.values() if a and a["Status"] not in FINAL_ATTEMPT_STATUSES}
        if not live:
            return S_OK(attempts)
        result = self.backend.getStatus(list(live))
        if not result["OK"]:
            return result
        for jobID, (status, message) in result["Value"].items():
            if status != live[jobID]["Status"]:
                update = self._setAttemptStatus(live[jobID], status, message)
                if not update["OK"]:
                    return update
        return S_OK(attempts)

    def _shouldResubmit(self, calibration, attempts, nEnded):
        """The seed's rule: resubmit in one batch once enough workers have ended, or at once
        when the workers still alive can no longer complete the current step.

        :return: S_OK(bool), or S_ERROR if the step's results cannot be counted
        """
        if nEnded >= max(1, math.ceil(self.resubmissionFraction * calibration["NumberOfJobs"])):
            return S_OK(True)
        counted = self.calibrationDB.countResults(calibration["CalibrationID"], calibration["Step"])
        if not counted["OK"]:
            return counted
        missing = results_needed(calibration["NumberOfJobs"], calibration["Settings"]) - counted["Value"]
        alive = sum(1 for a in attempts.values() if a and a["Status"] not in FINAL_ATTEMPT_STATUSES)
        return S_OK(alive < missing)

    def _submit(self, calibration, workerID, credential):
        calibrationID = calibration["CalibrationID"]
        workerInput = self.calibrationDB.getWorkerInputData(calibrationID, workerID)
        if not workerInput["OK"]:
            return workerInput
        inputData = [name for files, _, _ in workerInput["Value"].values() for name in files]
        result = self.calibrationDB.addAttempt(calibrationID, workerID, self.backend.name)
        if not result["OK"]:
            return result
        attemptID = result["Value"]
        job = JobDescription(
            calibrationID=calibrationID,
            workerID=workerID,
            attemptID=attemptID,
            owner=calibration["Owner"],
            ownerGroup=calibration["OwnerGroup"],
            ownerDN=calibration["OwnerDN"],
            command=[
                os.path.join(os.path.dirname(sys.executable), "dirac-calibration-worker"),
                "--calibration-id",
                str(calibrationID),
                "--worker-id",
                str(workerID),
                *self.workerOptions,
            ],
            environment={ENVIRONMENT_VARIABLE: credential},
            inputData=tuple(inputData),
        )
        submitted = self.backend.submit(job)
        if not submitted["OK"]:
            self.log.error("Job submission failed",
                           f"calibration {calibrationID} worker {workerID}: {submitted['Message']}")
            return self.calibrationDB.setAttemptStatus(attemptID, ATTEMPT_FAILED, submitted["Message"])
        return self.calibrationDB.setAttemptStatus(attemptID, ATTEMPT_WAITING, "submitted",
                                                   backendJobID=submitted["Value"])

    # ------------------------------------------------------------------ analysed steps and ended calibrations

    def _drawPlots(self):
        """Draw the plots of the steps analysed since (they are kept undrawn with their step)."""
        drawn = drawPendingPlots(self.calibrationDB, "agent")
        if drawn["OK"] and drawn["Value"]:
            self.log.verbose("Plots drawn", f"of {drawn['Value']} steps")
        return drawn

    def _forEachCalibration(self, calibrations, action):
        """Apply ``action(calibration) -> S_OK/S_ERROR`` to each: an error skips that calibration only,
        and is logged.

        :return: S_OK(the messages of the errors that are the service refusing the agent)
        """
        refusals = []
        for calibration in calibrations:
            result = action(calibration)
            if not result["OK"]:
                self.log.error("Calibration skipped for this cycle", f"{calibration['CalibrationID']}: "
                                                                      f"{result['Message']}")
                refusals += _refusal(result)
        return S_OK(refusals)

    def _killLeftoverJobs(self):
        """Follow the jobs of ended calibrations: those of killed or failed ones are killed; the
        workers of a finished one leave by themselves, and are killed only if they are still
        there after the grace time."""
        result = self.calibrationDB.getEndedCalibrationsWithLiveJobs([FINISHED, FAILED, KILLED])
        if not result["OK"]:
            return result
        calibrations = []
        for calibrationID in result["Value"]:
            calibration = self.calibrationDB.getCalibration(calibrationID)
            if not calibration["OK"]:
                self.log.error("Calibration skipped for this cycle", f"{calibrationID}: {calibration['Message']}")
                continue
            calibrations.append(calibration["Value"])
        return self._forEachCalibration(calibrations, self._killJobsOf)

    def _killJobsOf(self, calibration):
        synced = self._syncAttempts(calibration["CalibrationID"])
        if not synced["OK"]:
            return synced
        alive = [a for a in synced["Value"].values() if a and a["Status"] not in FINAL_ATTEMPT_STATUSES]
        grace = calibration["Status"] == FINISHED and datetime.datetime.utcnow() - calibration["EndTime"] < \
            self.finishedJobsGrace
        if not alive or grace:
            return S_OK()
        killed = self.backend.kill([a["BackendJobID"] for a in alive])
        if not killed["OK"]:
            return killed
        for attempt in alive:
            update = self._setAttemptStatus(attempt, ATTEMPT_KILLED, "calibration ended")
            if not update["OK"]:
                return update
        return S_OK()

    def _copyResults(self):
        """Copy the results of finished calibrations to their output location, once each."""
        result = self.calibrationDB.getCalibrations(statuses=[FINISHED])
        if not result["OK"]:
            return result
        return self._forEachCalibration(
            [c for c in result["Value"] if c["OutputPath"] and not c["ResultsCopied"]], self._copyResultsOf)

    def _copyResultsOf(self, calibration):
        collected = collectResult(self.calibrationDB, calibration)
        if not collected["OK"]:
            return collected
        copied = copyResults(calibration, resultFiles(collected["Value"]), self.resultStorage)
        if not copied["OK"]:
            return S_ERROR(f"Cannot copy results: {copied['Message']}")
        return self.calibrationDB.setResultsCopied(calibration["CalibrationID"], calibration["OutputPath"])

    def _removeExpired(self):
        """Remove ended calibrations whose results were copied longer than the retention time ago."""
        result = self.calibrationDB.getCalibrations(statuses=[FINISHED])
        if not result["OK"]:
            return result
        now = datetime.datetime.utcnow()
        return self._forEachCalibration(
            [c for c in result["Value"] if c["ResultsCopied"] and c["EndTime"] + self.retention < now],
            self._remove)

    def _remove(self, calibration):
        removed = self.calibrationDB.deleteCalibration(calibration["CalibrationID"])
        if removed["OK"]:
            self.log.notice("Removed calibration after the retention time", str(calibration["CalibrationID"]))
        return removed


def _refusal(result):
    """[the message] if the service refused the call as not authorised, else []."""
    return [result["Message"]] if DErrno.cmpError(result, DErrno.ENOAUTH) else []
