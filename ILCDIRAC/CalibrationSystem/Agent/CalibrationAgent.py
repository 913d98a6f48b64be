"""CalibrationAgent: keeps the workers of every running calibration going and its steps moving.

Each cycle, for every running calibration: read the state of its jobs from the job backend,
submit the workers that never had a job, resubmit failed workers in batches (the seed's rule:
wait until enough have failed, then resubmit them all at once), and fail a calibration whose
jobs fail too often. Then it asks the service to analyse every step that has enough results,
and kills the jobs left over by calibrations that have ended.

A cycle is idempotent: an attempt is recorded before its job is submitted, so a crash between
the two leaves an attempt that the next cycle declares lost and resubmits, never a double.
"""
import math
import os
import sys

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.AgentModule import AgentModule

from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import (
    FAILED,
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
from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription
from ILCDIRAC.CalibrationSystem.JobBackends.LocalJobBackend import LocalJobBackend
from ILCDIRAC.CalibrationSystem.Procedure.advance import results_needed

AGENT_NAME = "Calibration/CalibrationAgent"


class CalibrationAgent(AgentModule):
    """Submits, follows and resubmits worker jobs; triggers step advancement."""

    def initialize(self):
        self.calibrationDB = CalibrationDB(parentLogger=self.log)
        backendName = self.am_getOption("JobBackend", "Local")
        if backendName != "Local":
            return S_ERROR(f"Unknown JobBackend {backendName!r}: this installation provides 'Local'")
        directory = self.am_getOption("LocalJobDirectory", os.path.join(self.am_getWorkDirectory(), "jobs"))
        os.makedirs(directory, exist_ok=True)
        self.backend = LocalJobBackend(directory)
        self.resubmissionFraction = float(self.am_getOption("ResubmissionFraction", 0.1))
        self.maxFailedAttemptsPerJob = float(self.am_getOption("MaxFailedAttemptsPerJob", 1.0))
        self.workerOptions = [
            "--polling-time",
            str(self.am_getOption("WorkerPollingTime", 2)),
            "--max-polling-time",
            str(self.am_getOption("WorkerMaxPollingTime", 10)),
        ]
        self.serviceClient = CalibrationClient()
        return S_OK()

    def execute(self):
        result = self.calibrationDB.getCalibrations(statuses=[RUNNING])
        if not result["OK"]:
            return result
        for calibration in result["Value"]:
            managed = self._manageJobs(calibration)
            if not managed["OK"]:
                self.log.error("Cannot manage the jobs of calibration", f"{calibration['CalibrationID']}: {managed['Message']}")
        advanced = self.serviceClient.checkForStepIncrement()
        if not advanced["OK"]:
            self.log.error("Step advancement failed", advanced["Message"])
        else:
            for calibrationID, message in advanced["Value"].items():
                self.log.info("Calibration", f"{calibrationID}: {message}")
        return self._killLeftoverJobs()

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

        neverSubmitted = [wid for wid, attempt in attempts.items() if attempt is None]
        ended = [wid for wid, attempt in attempts.items() if attempt and attempt["Status"] in FINAL_JOB_STATUSES]
        toSubmit = neverSubmitted
        if ended and self._shouldResubmit(calibration, attempts, len(ended)):
            self.log.info("Resubmitting workers", f"calibration {calibrationID}: {sorted(ended)}")
            toSubmit = neverSubmitted + ended
        for workerID in sorted(toSubmit):
            result = self._submit(calibration, workerID)
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

    def _submit(self, calibration, workerID):
        calibrationID = calibration["CalibrationID"]
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
                "-o",
                "/DIRAC/Security/UseServerCertificate=yes",
            ],
        )
        submitted = self.backend.submit(job)
        if not submitted["OK"]:
            self.log.error("Job submission failed", f"calibration {calibrationID} worker {workerID}: {submitted['Message']}")
            return self.calibrationDB.setAttemptStatus(attemptID, JOB_FAILED, submitted["Message"])
        return self.calibrationDB.setAttemptStatus(attemptID, JOB_WAITING, "submitted", backendJobID=submitted["Value"])

    # ------------------------------------------------------------------ ended calibrations

    def _killLeftoverJobs(self):
        """Kill the jobs still alive in calibrations that were killed or failed."""
        result = self.calibrationDB.getEndedCalibrationsWithLiveJobs([FAILED, KILLED])
        if not result["OK"]:
            return result
        for calibrationID in result["Value"]:
            synced = self._syncAttempts(calibrationID)
            if not synced["OK"]:
                return synced
            alive = [a for a in synced["Value"].values() if a and a["Status"] not in FINAL_JOB_STATUSES]
            if not alive:
                continue
            killed = self.backend.kill([a["BackendJobID"] for a in alive])
            if not killed["OK"]:
                return killed
            for attempt in alive:
                self.calibrationDB.setAttemptStatus(attempt["AttemptID"], JOB_KILLED, "calibration ended")
        return S_OK()
