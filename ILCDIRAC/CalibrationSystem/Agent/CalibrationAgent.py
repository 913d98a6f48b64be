"""CalibrationAgent: keeps the workers of every running calibration going and its steps moving.

Each cycle, for every running calibration: read the state of its jobs from the job backend,
submit the workers that never had a job, resubmit failed workers in batches (the seed's rule:
wait until enough have failed, then resubmit them all at once), and fail a calibration whose
jobs fail too often. Then it asks the service to analyse every step that has enough results,
kills the jobs left over by calibrations that have ended, copies the results of finished
calibrations to their output location once, and removes those kept longer than the retention.

A cycle is idempotent: an attempt is recorded before its job is submitted, so a crash between
the two leaves an attempt that the next cycle declares lost and resubmits, never a double.
"""
import datetime
import math
import os
import sys

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule
from DIRAC.Core.Utilities import DErrno

from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import (
    FAILED,
    FINISHED,
    FINAL_JOB_STATUSES,
    JOB_FAILED,
    JOB_KILLED,
    JOB_LOST,
    JOB_SUBMITTING,
    JOB_WAITING,
    KILLED,
    RUNNING,
    CalibrationDB,
)
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
            str(self.am_getOption("WorkerPollingTime", 2)),
            "--max-polling-time",
            str(self.am_getOption("WorkerMaxPollingTime", 10)),
        ]
        retention = float(self.am_getOption("TimeToKeepCalibrationResultsInMinutes", DEFAULT_RETENTION_MINUTES))
        self.retention = datetime.timedelta(minutes=retention)
        grace = float(self.am_getOption("FinishedJobsGraceTimeInMinutes", 10))
        self.finishedJobsGrace = datetime.timedelta(minutes=grace)
        self.serviceClient = CalibrationClient()
        return S_OK()

    def execute(self):
        """One cycle (every PollingTime seconds): for every running calibration, sync its jobs with the
        backend, submit and resubmit workers, fail it if too many job attempts failed; then ask the
        service to analyse the complete steps, kill the jobs of killed and failed calibrations (and of
        finished ones after FinishedJobsGraceTimeInMinutes), copy finished results and remove those past
        the retention time. Errors are logged, never raised.

        :return: S_OK, or S_ERROR if the running calibrations cannot be read or the service refuses
            the agent (its host is not a TrustedHost)
        """
        result = self.calibrationDB.getCalibrations(statuses=[RUNNING])
        if not result["OK"]:
            return result
        refusals = []
        for calibration in result["Value"]:
            managed = self._manageJobs(calibration)
            if not managed["OK"]:
                self.log.error(
                    "Cannot manage the jobs of calibration", f"{calibration['CalibrationID']}: {managed['Message']}"
                )
                refusals += _refusal(managed)
        advanced = self.serviceClient.checkForStepIncrement()
        if not advanced["OK"]:
            self.log.error("Step advancement failed", advanced["Message"])
            refusals += _refusal(advanced)
        else:
            for calibrationID, message in advanced["Value"].items():
                self.log.info("Calibration", f"{calibrationID}: {message}")
        for task in (self._killLeftoverJobs, self._copyResults, self._removeExpired):
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

    def _manageJobs(self, calibration):
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
            return self.calibrationDB.setStatus(calibrationID, FAILED, message, "agent")

        requested = self.calibrationDB.getResubmissionRequests(calibrationID)
        if not requested["OK"]:
            return requested
        neverSubmitted = [wid for wid, attempt in attempts.items() if attempt is None]
        ended = [wid for wid, attempt in attempts.items() if attempt and attempt["Status"] in FINAL_JOB_STATUSES]
        toSubmit = set(neverSubmitted) | (set(ended) & requested["Value"])
        if ended and self._shouldResubmit(calibration, attempts, len(ended)):
            self.log.info("Resubmitting workers", f"calibration {calibrationID}: {sorted(ended)}")
            toSubmit |= set(ended)
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

    def _syncAttempts(self, calibrationID):
        """Bring the newest attempt of every worker up to date with the backend."""
        result = self.calibrationDB.getNewestAttempts(calibrationID)
        if not result["OK"]:
            return result
        attempts = result["Value"]
        for attempt in [a for a in attempts.values() if a and a["Status"] == JOB_SUBMITTING]:
            # Only a crashed earlier cycle leaves an attempt in Submitting: its job is unknown
            update = self.calibrationDB.setAttemptStatus(attempt["AttemptID"], JOB_LOST, "submission was interrupted")
            if not update["OK"]:
                return update
            attempt["Status"] = JOB_LOST
        live = {a["BackendJobID"]: a for a in attempts.values() if a and a["Status"] not in FINAL_JOB_STATUSES}
        if not live:
            return S_OK(attempts)
        result = self.backend.getStatus(list(live))
        if not result["OK"]:
            return result
        for jobID, (status, message) in result["Value"].items():
            attempt = live[jobID]
            if status != attempt["Status"]:
                update = self.calibrationDB.setAttemptStatus(attempt["AttemptID"], status, message)
                if not update["OK"]:
                    return update
                attempt["Status"] = status
        return S_OK(attempts)

    def _shouldResubmit(self, calibration, attempts, nEnded):
        """The seed's rule: resubmit in one batch once enough workers have ended, or at once
        when the workers still alive can no longer complete the current step."""
        if nEnded >= max(1, math.ceil(self.resubmissionFraction * calibration["NumberOfJobs"])):
            return True
        counted = self.calibrationDB.countResults(calibration["CalibrationID"], calibration["Step"])
        missing = results_needed(calibration["NumberOfJobs"], calibration["Settings"]) - counted.get("Value", 0)
        alive = sum(1 for a in attempts.values() if a and a["Status"] not in FINAL_JOB_STATUSES)
        return alive < missing

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
            self.log.error("Job submission failed", f"calibration {calibrationID} worker {workerID}: {submitted['Message']}")
            return self.calibrationDB.setAttemptStatus(attemptID, JOB_FAILED, submitted["Message"])
        return self.calibrationDB.setAttemptStatus(attemptID, JOB_WAITING, "submitted", backendJobID=submitted["Value"])

    # ------------------------------------------------------------------ ended calibrations

    def _killLeftoverJobs(self):
        """Follow the jobs of ended calibrations: those of killed or failed ones are killed; the
        workers of a finished one leave by themselves, and are killed only if they are still
        there after the grace time."""
        result = self.calibrationDB.getEndedCalibrationsWithLiveJobs([FINISHED, FAILED, KILLED])
        if not result["OK"]:
            return result
        now = datetime.datetime.utcnow()
        for calibrationID in result["Value"]:
            calibration = self.calibrationDB.getCalibration(calibrationID)
            synced = self._syncAttempts(calibrationID)
            for answer in (calibration, synced):
                if not answer["OK"]:
                    return answer
            alive = [a for a in synced["Value"].values() if a and a["Status"] not in FINAL_JOB_STATUSES]
            finished = calibration["Value"]["Status"] == FINISHED
            if not alive or (finished and now - calibration["Value"]["EndTime"] < self.finishedJobsGrace):
                continue
            killed = self.backend.kill([a["BackendJobID"] for a in alive])
            if not killed["OK"]:
                return killed
            for attempt in alive:
                self.calibrationDB.setAttemptStatus(attempt["AttemptID"], JOB_KILLED, "calibration ended")
        return S_OK()

    def _copyResults(self):
        """Copy the results of finished calibrations to their output location, once each."""
        result = self.calibrationDB.getCalibrations(statuses=[FINISHED])
        if not result["OK"]:
            return result
        for calibration in result["Value"]:
            if not calibration["OutputPath"] or calibration["ResultsCopied"]:
                continue
            collected = collectResult(self.calibrationDB, calibration)
            if not collected["OK"]:
                return collected
            copied = copyResults(calibration, resultFiles(collected["Value"]), self.resultStorage)
            if not copied["OK"]:
                self.log.error("Cannot copy results", f"calibration {calibration['CalibrationID']}: {copied['Message']}")
                continue
            marked = self.calibrationDB.setResultsCopied(calibration["CalibrationID"], calibration["OutputPath"])
            if not marked["OK"]:
                return marked
        return S_OK()

    def _removeExpired(self):
        """Remove ended calibrations whose results were copied longer than the retention time ago."""
        result = self.calibrationDB.getCalibrations(statuses=[FINISHED])
        if not result["OK"]:
            return result
        now = datetime.datetime.utcnow()
        for calibration in result["Value"]:
            if calibration["ResultsCopied"] and calibration["EndTime"] + self.retention < now:
                removed = self.calibrationDB.deleteCalibration(calibration["CalibrationID"])
                if not removed["OK"]:
                    return removed
                self.log.notice("Removed calibration after the retention time", str(calibration["CalibrationID"]))
        return S_OK()


def _refusal(result):
    """[the message] if the service refused the call as not authorised, else []."""
    return [result["Message"]] if DErrno.cmpError(result, DErrno.ENOAUTH) else []
