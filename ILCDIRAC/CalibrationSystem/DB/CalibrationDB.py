"""CalibrationDB: every fact the CalibrationSystem knows, in MySQL/MariaDB.

Calibrations, their workers and job attempts, the workers' step results and the history of
constants live here, so that the service and the agent keep no state of their own and a restart
of either loses nothing. Methods return S_OK/S_ERROR as DIRAC DB classes do.
"""
import datetime
import json
import re
from contextlib import contextmanager
from importlib import resources

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.DB import DB

from ILCDIRAC.CalibrationSystem.JobBackends import JobDescription as job

RUNNING = "Running"
FINISHED = "Finished"
FAILED = "Failed"
KILLED = "Killed"
ENDED_STATUSES = (FINISHED, FAILED, KILLED)

#: Job attempt statuses: the backends' ones, plus two the agent gives an attempt itself:
#: Submitting (recorded before its job is submitted) and Lost (a submission a crash interrupted).
JOB_DONE, JOB_FAILED, JOB_KILLED, JOB_WAITING, JOB_RUNNING = job.DONE, job.FAILED, job.KILLED, job.WAITING, job.RUNNING
JOB_SUBMITTING, JOB_LOST = "Submitting", "Lost"
FINAL_JOB_STATUSES = (JOB_DONE, JOB_FAILED, JOB_KILLED, JOB_LOST)
FAILED_JOB_STATUSES = (JOB_FAILED, JOB_KILLED, JOB_LOST)

_CALIBRATION_COLUMNS = (
    "CalibrationID, Owner, OwnerGroup, OwnerDN, Status, StatusMessage, SoftwareVersion, NumberOfJobs, "
    "Settings, InputFiles, EventsPerFile, Stage, Phase, Step, PhaseIteration, Parameters, "
    "OutputPath, OutputSE, ResultsCopied, WorkerCredentialHash, CreationTime, LastUpdate, EndTime"
)
_JSON_COLUMNS = ("Settings", "InputFiles", "EventsPerFile", "Parameters")


def _now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def _schema_statements():
    """The CREATE statements of CalibrationDB.sql (comments and USE dropped)."""
    text = resources.files(__package__).joinpath("CalibrationDB.sql").read_text()
    text = re.sub(r"--[^\n]*", "", text)
    statements = [s.strip() for s in text.split(";")]
    return [s for s in statements if s and not s.upper().startswith("USE ")]


#: Columns added to tables after their first release: (table, column, definition as in CalibrationDB.sql).
#: A database created by an earlier version gets them at start-up.
_ADDED_COLUMNS = (
    ("Calibrations", "PhotonTrainingSettings", "MEDIUMBLOB NULL AFTER SteeringFile"),
)


class CalibrationDB(DB):
    """Access to the calibration tables; creates the missing ones, and adds columns missing
    from those of an earlier version, at start-up."""

    def __init__(self, parentLogger=None):
        super().__init__("CalibrationDB", "Calibration/CalibrationDB", parentLogger=parentLogger)
        for statement in _schema_statements():
            result = self._update(statement)
            if not result["OK"]:
                raise RuntimeError(f"Cannot create the CalibrationDB tables: {result['Message']}")
        for table, column, definition in _ADDED_COLUMNS:
            if not self._hasColumn(table, column):
                added = self._update(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                # The service and the agent start together: the other one may have added it meanwhile.
                if not added["OK"] and not self._hasColumn(table, column):
                    raise RuntimeError(f"Cannot add column {table}.{column} to CalibrationDB: {added['Message']}")

    def _hasColumn(self, table, column):
        found = self._query(f"SHOW COLUMNS FROM {table} LIKE %s", args=(column,))
        if not found["OK"]:
            raise RuntimeError(f"Cannot read the columns of CalibrationDB.{table}: {found['Message']}")
        return bool(found["Value"])

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _transaction_connection(self):
        """A connection inside a transaction: committed on success, rolled back on any error."""
        result = self._getConnection()
        if not result["OK"]:
            raise _DBError(result["Message"])
        conn = result["Value"]
        self._run(conn, "START TRANSACTION")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def _run(self, conn, sql, args=None):
        """Execute a statement on ``conn`` (None: a pooled connection); _DBError on failure."""
        result = self._update(sql, args=args, conn=conn)
        if not result["OK"]:
            raise _DBError(result["Message"])
        return result

    def _fetch(self, sql, args=None, conn=None):
        result = self._query(sql, args=args, conn=conn)
        if not result["OK"]:
            raise _DBError(result["Message"])
        return result["Value"]

    # ------------------------------------------------------------------ creation

    def createCalibration(self, owner, calibration, workerInputData, parameters, position, credentialHash):
        """Store a new calibration, its workers and its first step in one transaction.

        :param dict owner: Owner, OwnerGroup, OwnerDN
        :param dict calibration: Settings, InputFiles, EventsPerFile (JSON-able), SteeringFile
            (bytes), PhotonTrainingSettings (bytes, or None without stage 2), SoftwareVersion,
            NumberOfJobs, OutputPath, OutputSE, and optionally Files ({name: bytes} of its result
            from the start) and Notes (messages for its event log)
        :param list workerInputData: per worker, the JSON-able input data dict
        :param dict parameters: the constants of the first step
        :param position: (stage, phase) of the first step
        :param credentialHash: callable(calibrationID, creationTime) -> hash of the workers' credential
        :return: S_OK(calibrationID)
        """
        now = _now()
        stage, phase = position
        try:
            with self._transaction_connection() as conn:
                result = self._run(
                    conn,
                    "INSERT INTO Calibrations (Owner, OwnerGroup, OwnerDN, Status, SoftwareVersion, NumberOfJobs, "
                    "Settings, InputFiles, EventsPerFile, SteeringFile, PhotonTrainingSettings, Stage, Phase, Step, "
                    "PhaseIteration, Parameters, OutputPath, OutputSE, CreationTime, LastUpdate) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 1, %s, %s, %s, %s, %s)",
                    (
                        owner["Owner"],
                        owner["OwnerGroup"],
                        owner["OwnerDN"],
                        RUNNING,
                        calibration["SoftwareVersion"],
                        calibration["NumberOfJobs"],
                        json.dumps(calibration["Settings"]),
                        json.dumps(calibration["InputFiles"]),
                        json.dumps(calibration["EventsPerFile"]),
                        calibration["SteeringFile"],
                        calibration.get("PhotonTrainingSettings"),
                        stage,
                        phase,
                        json.dumps(parameters),
                        calibration.get("OutputPath", ""),
                        calibration.get("OutputSE", ""),
                        now,
                        now,
                    ),
                )
                calibrationID = result["lastRowId"]
                self._run(
                    conn,
                    "UPDATE Calibrations SET WorkerCredentialHash = %s WHERE CalibrationID = %s",
                    (credentialHash(calibrationID, now), calibrationID),
                )
                rows = [(calibrationID, wid, json.dumps(data)) for wid, data in enumerate(workerInputData)]
                cursor = conn.cursor()
                cursor.executemany(
                    "INSERT INTO Workers (CalibrationID, WorkerID, InputData) VALUES (%s, %s, %s)", rows
                )
                cursor.close()
                self._insertStep(conn, calibrationID, 0, stage, phase, 1, parameters, now)
                for name, content in calibration.get("Files", {}).items():
                    self._run(
                        conn,
                        "INSERT INTO CalibrationFiles (CalibrationID, Name, Step, Content) VALUES (%s, %s, 0, %s)",
                        (calibrationID, name, content),
                    )
                self._logEvent(conn, calibrationID, "service", f"Created by {owner['Owner']} ({owner['OwnerGroup']})")
                for note in calibration.get("Notes", ()):
                    self._logEvent(conn, calibrationID, "service", note)
        except _DBError as error:
            return S_ERROR(f"Could not store the calibration: {error}")
        return S_OK(calibrationID)

    def _insertStep(self, conn, calibrationID, step, stage, phase, iteration, parameters, now):
        self._run(
            conn,
            "INSERT INTO Steps (CalibrationID, Step, Stage, Phase, PhaseIteration, Parameters, StartTime) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (calibrationID, step, stage, phase, iteration, json.dumps(parameters), now),
        )

    def _logEvent(self, conn, calibrationID, source, message):
        self._run(
            conn,
            "INSERT INTO CalibrationEvents (CalibrationID, EventTime, Source, Message) VALUES (%s, %s, %s, %s)",
            (calibrationID, datetime.datetime.utcnow(), source, message[:2048]),
        )

    # ------------------------------------------------------------------ reading

    def getCalibration(self, calibrationID, conn=None, forUpdate=False):
        """S_OK(dict of the calibration's columns, JSON decoded) or S_ERROR if unknown."""
        sql = f"SELECT {_CALIBRATION_COLUMNS} FROM Calibrations WHERE CalibrationID = %s"
        if forUpdate:
            sql += " FOR UPDATE"
        try:
            rows = self._fetch(sql, (calibrationID,), conn=conn)
        except _DBError as error:
            return S_ERROR(str(error))
        if not rows:
            result = S_ERROR(f"Calibration {calibrationID} does not exist")
            result["Missing"] = True
            return result
        return S_OK(self._calibrationDict(rows[0]))

    @staticmethod
    def _calibrationDict(row):
        names = [name.strip() for name in _CALIBRATION_COLUMNS.split(",")]
        record = dict(zip(names, row))
        for name in _JSON_COLUMNS:
            record[name] = json.loads(record[name])
        return record

    def getCalibrations(self, owner=None, ownerGroup=None, statuses=None):
        """S_OK(list of calibration dicts), optionally those of one owner or in given statuses."""
        conditions, args = [], []
        if owner is not None:
            conditions.append("Owner = %s AND OwnerGroup = %s")
            args += [owner, ownerGroup]
        if statuses:
            conditions.append(f"Status IN ({', '.join(['%s'] * len(statuses))})")
            args += list(statuses)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        try:
            rows = self._fetch(f"SELECT {_CALIBRATION_COLUMNS} FROM Calibrations{where} ORDER BY CalibrationID", args)
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK([self._calibrationDict(row) for row in rows])

    def getSteeringFile(self, calibrationID):
        """S_OK(bytes of the steering file the calibration was created with)."""
        return self._createdWith(calibrationID, "SteeringFile")

    def getPhotonTrainingSettings(self, calibrationID):
        """S_OK(bytes of the photon-training PandoraSettings the calibration was created with, or None)."""
        return self._createdWith(calibrationID, "PhotonTrainingSettings")

    def _createdWith(self, calibrationID, column):
        """S_OK(bytes, or None, of a file column of the calibration's row)."""
        try:
            rows = self._fetch(f"SELECT {column} FROM Calibrations WHERE CalibrationID = %s", (calibrationID,))
        except _DBError as error:
            return S_ERROR(str(error))
        if not rows:
            return S_ERROR(f"Calibration {calibrationID} does not exist")
        return S_OK(None if rows[0][0] is None else bytes(rows[0][0]))

    def getWorkerInputData(self, calibrationID, workerID):
        """S_OK(input data dict of one worker) or S_ERROR if there is no such worker."""
        try:
            rows = self._fetch(
                "SELECT InputData FROM Workers WHERE CalibrationID = %s AND WorkerID = %s", (calibrationID, workerID)
            )
        except _DBError as error:
            return S_ERROR(str(error))
        if not rows:
            return S_ERROR(f"Calibration {calibrationID} has no worker {workerID}")
        return S_OK(json.loads(rows[0][0]))

    def getSteps(self, calibrationID):
        """S_OK(list of step dicts, oldest first): the constants and metrics of every step."""
        try:
            rows = self._fetch(
                "SELECT Step, Stage, Phase, PhaseIteration, Parameters, StartTime, EndTime, NumberOfResults, "
                "Converged, Metrics FROM Steps WHERE CalibrationID = %s ORDER BY Step",
                (calibrationID,),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        steps = []
        for step, stage, phase, iteration, parameters, start, end, nResults, converged, metrics in rows:
            steps.append(
                {
                    "Step": step,
                    "Stage": stage,
                    "Phase": phase,
                    "PhaseIteration": iteration,
                    "Parameters": json.loads(parameters),
                    "StartTime": start,
                    "EndTime": end,
                    "NumberOfResults": nResults,
                    "Converged": None if converged is None else bool(converged),
                    "Metrics": json.loads(metrics) if metrics else None,
                }
            )
        return S_OK(steps)

    def getFiles(self, calibrationID, names=None):
        """S_OK({name: bytes}) of the files a calibration produced (all, or those in ``names``)."""
        sql, args = "SELECT Name, Content FROM CalibrationFiles WHERE CalibrationID = %s", [calibrationID]
        if names is not None:
            if not names:
                return S_OK({})
            sql += f" AND Name IN ({', '.join(['%s'] * len(names))})"
            args += list(names)
        try:
            rows = self._fetch(sql + " ORDER BY Name", args)
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK({name: bytes(content) for name, content in rows})

    def getEvents(self, calibrationID):
        """S_OK(list of (time, source, message)) of a calibration, oldest first."""
        try:
            rows = self._fetch(
                "SELECT EventTime, Source, Message FROM CalibrationEvents WHERE CalibrationID = %s ORDER BY EventID",
                (calibrationID,),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK([tuple(row) for row in rows])

    # ------------------------------------------------------------------ results

    def addResult(self, calibrationID, stage, phase, step, workerID, content):
        """Store a worker's result if it is for the calibration's current step.

        The check and the insert are one statement, so a result can never land in a step that
        has just been closed; a second upload for the same step is ignored.
        :return: S_OK(True) if stored, S_OK(False) if it was a duplicate or for another step
        """
        try:
            result = self._update(
                "INSERT IGNORE INTO StepResults (CalibrationID, Step, WorkerID, Stage, Phase, Content, ReceivedTime) "
                "SELECT CalibrationID, Step, %s, Stage, Phase, %s, %s FROM Calibrations "
                "WHERE CalibrationID = %s AND Status = %s AND Step = %s AND Stage = %s AND Phase = %s "
                "AND %s < NumberOfJobs",
                args=(workerID, content, _now(), calibrationID, RUNNING, step, stage, phase, workerID),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        if not result["OK"]:
            return result
        return S_OK(result["Value"] == 1)

    def countResults(self, calibrationID, step):
        """S_OK(number of results stored for a step)."""
        try:
            rows = self._fetch(
                "SELECT COUNT(*) FROM StepResults WHERE CalibrationID = %s AND Step = %s", (calibrationID, step)
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK(int(rows[0][0]))

    # ------------------------------------------------------------------ step advancement

    def advanceStep(self, calibrationID, step, decide):
        """Close ``step`` of a calibration and open the next one, exactly once.

        The step's results and the step before it are read as a snapshot and
        ``decide(calibration, contents, previous)`` (a pure function returning a StepOutcome; previous
        is {"Step", "Stage", "Phase", "Metrics"} of step - 1, or None for step 0) runs without
        holding any lock, so results that arrive meanwhile are stored at once (and not used). Its
        outcome is then written in one transaction that locks the calibration row and checks it is
        still running at ``step``: a concurrent or repeated call finds the step moved on and
        changes nothing.

        :return: S_OK(StepOutcome) or S_OK(None) if the step was no longer current
        """
        result = self.getCalibration(calibrationID)
        if not result["OK"]:
            return result
        calibration = result["Value"]
        if calibration["Status"] != RUNNING or calibration["Step"] != step:
            return S_OK(None)
        try:
            rows = self._fetch(
                "SELECT Content FROM StepResults WHERE CalibrationID = %s AND Step = %s ORDER BY WorkerID",
                (calibrationID, step),
            )
            before = self._fetch(
                "SELECT Step, Stage, Phase, Metrics FROM Steps WHERE CalibrationID = %s AND Step = %s",
                (calibrationID, step - 1),
            )
        except _DBError as error:
            return S_ERROR(f"Could not read the results of calibration {calibrationID}: {error}")
        previous = None
        if before:
            previousStep, stage, phase, metrics = before[0]
            previous = {"Step": previousStep, "Stage": stage, "Phase": phase,
                        "Metrics": json.loads(metrics) if metrics else {}}
        outcome = decide(calibration, [bytes(row[0]) for row in rows], previous)
        now = _now()
        try:
            with self._transaction_connection() as conn:
                locked = self.getCalibration(calibrationID, conn=conn, forUpdate=True)
                if not locked["OK"]:
                    raise _DBError(locked["Message"])
                if locked["Value"]["Status"] != RUNNING or locked["Value"]["Step"] != step:
                    return S_OK(None)
                self._run(
                    conn,
                    "UPDATE Steps SET EndTime = %s, NumberOfResults = %s, Converged = %s, Metrics = %s "
                    "WHERE CalibrationID = %s AND Step = %s",
                    (now, len(rows), outcome.converged, json.dumps(outcome.metrics), calibrationID, step),
                )
                if outcome.next_position is None:
                    self._run(
                        conn,
                        "UPDATE Calibrations SET Status = %s, StatusMessage = %s, Parameters = %s, "
                        "LastUpdate = %s, EndTime = %s WHERE CalibrationID = %s",
                        (outcome.status, outcome.message, json.dumps(outcome.parameters), now, now, calibrationID),
                    )
                else:
                    stage, phase = outcome.next_position
                    samePhase = (stage, phase) == (calibration["Stage"], calibration["Phase"])
                    iteration = calibration["PhaseIteration"] + 1 if samePhase else 1
                    self._run(
                        conn,
                        "UPDATE Calibrations SET Stage = %s, Phase = %s, Step = %s, PhaseIteration = %s, "
                        "Parameters = %s, StatusMessage = %s, LastUpdate = %s WHERE CalibrationID = %s",
                        (stage, phase, step + 1, iteration, json.dumps(outcome.parameters), outcome.message, now,
                         calibrationID),
                    )
                    self._insertStep(conn, calibrationID, step + 1, stage, phase, iteration, outcome.parameters, now)
                if outcome.files:
                    cursor = conn.cursor()
                    cursor.executemany(
                        "REPLACE INTO CalibrationFiles (CalibrationID, Name, Step, Content) VALUES (%s, %s, %s, %s)",
                        [(calibrationID, name, step, content) for name, content in outcome.files.items()],
                    )
                    cursor.close()
                self._logEvent(conn, calibrationID, "service", outcome.message)
        except _DBError as error:
            return S_ERROR(f"Could not advance calibration {calibrationID}: {error}")
        return S_OK(outcome)

    def setStatus(self, calibrationID, status, message, source):
        """End a running calibration with ``status`` (Failed, Killed); S_OK(False) if it had ended."""
        now = _now()
        try:
            with self._transaction_connection() as conn:
                result = self._run(
                    conn,
                    "UPDATE Calibrations SET Status = %s, StatusMessage = %s, LastUpdate = %s, EndTime = %s "
                    "WHERE CalibrationID = %s AND Status = %s",
                    (status, message[:2048], now, now, calibrationID, RUNNING),
                )
                changed = result["Value"] == 1
                if changed:
                    self._logEvent(conn, calibrationID, source, f"{status}: {message}")
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK(changed)

    def setOutput(self, calibrationID, outputPath, outputSE):
        """Change where a calibration's results go; they will be copied (again)."""
        try:
            self._run(
                None,
                "UPDATE Calibrations SET OutputPath = %s, OutputSE = %s, ResultsCopied = 0, LastUpdate = %s "
                "WHERE CalibrationID = %s",
                (outputPath, outputSE, _now(), calibrationID),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return self.logEvent(calibrationID, "service", f"Results will be copied to {outputPath} on {outputSE}")

    def setResultsCopied(self, calibrationID, outputPath):
        """Record that the results went to ``outputPath`` (unless the output changed meanwhile)."""
        try:
            self._run(
                None,
                "UPDATE Calibrations SET ResultsCopied = 1 WHERE CalibrationID = %s AND OutputPath = %s",
                (calibrationID, outputPath),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return self.logEvent(calibrationID, "agent", f"Results copied to {outputPath}")

    def deleteCalibration(self, calibrationID):
        """Remove an ended calibration and everything of it; S_OK(False) if it is still running."""
        try:
            with self._transaction_connection() as conn:
                result = self._run(
                    conn,
                    f"DELETE FROM Calibrations WHERE CalibrationID = %s AND Status IN "
                    f"({', '.join(['%s'] * len(ENDED_STATUSES))})",
                    (calibrationID, *ENDED_STATUSES),
                )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK(result["Value"] == 1)

    def requestResubmission(self, calibrationID, workerIDs):
        """Ask the agent to resubmit these workers at its next cycle (if their job has ended)."""
        if not workerIDs:
            return S_OK(0)
        return self._update(
            f"UPDATE Workers SET ResubmitRequested = 1 WHERE CalibrationID = %s "
            f"AND WorkerID IN ({', '.join(['%s'] * len(workerIDs))})",
            args=(calibrationID, *workerIDs),
        )

    def getResubmissionRequests(self, calibrationID):
        """S_OK(set of worker IDs whose resubmission was requested)."""
        try:
            rows = self._fetch(
                "SELECT WorkerID FROM Workers WHERE CalibrationID = %s AND ResubmitRequested = 1", (calibrationID,)
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK({int(row[0]) for row in rows})

    def countJobStatuses(self, calibrationID):
        """S_OK({status: number of workers whose newest job is in it}), 'Unsubmitted' included."""
        result = self.getNewestAttempts(calibrationID)
        if not result["OK"]:
            return result
        counts = {}
        for attempt in result["Value"].values():
            status = attempt["Status"] if attempt else "Unsubmitted"
            counts[status] = counts.get(status, 0) + 1
        return S_OK(counts)

    # ------------------------------------------------------------------ jobs (agent)

    def getNewestAttempts(self, calibrationID):
        """S_OK({workerID: attempt dict or None}) with the newest job attempt of every worker."""
        try:
            workers = self._fetch("SELECT WorkerID FROM Workers WHERE CalibrationID = %s", (calibrationID,))
            rows = self._fetch(
                "SELECT a.AttemptID, a.WorkerID, a.Backend, a.BackendJobID, a.Status, a.SubmissionTime "
                "FROM JobAttempts a JOIN (SELECT WorkerID, MAX(AttemptID) AS Newest FROM JobAttempts "
                "WHERE CalibrationID = %s GROUP BY WorkerID) n ON a.AttemptID = n.Newest",
                (calibrationID,),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        attempts = {int(row[0]): None for row in workers}
        for attemptID, workerID, backend, jobID, status, submitted in rows:
            attempts[int(workerID)] = {
                "AttemptID": attemptID,
                "WorkerID": int(workerID),
                "Backend": backend,
                "BackendJobID": jobID,
                "Status": status,
                "SubmissionTime": submitted,
            }
        return S_OK(attempts)

    def getEndedCalibrationsWithLiveJobs(self, statuses):
        """S_OK(IDs of calibrations in ``statuses`` that still have jobs not known to have ended)."""
        try:
            rows = self._fetch(
                "SELECT DISTINCT c.CalibrationID FROM Calibrations c JOIN JobAttempts a USING (CalibrationID) "
                f"WHERE c.Status IN ({', '.join(['%s'] * len(statuses))}) "
                f"AND a.Status NOT IN ({', '.join(['%s'] * len(FINAL_JOB_STATUSES))})",
                (*statuses, *FINAL_JOB_STATUSES),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK([int(row[0]) for row in rows])

    def countFailedAttempts(self, calibrationID):
        """S_OK(number of job attempts of a calibration that ended in failure)."""
        try:
            rows = self._fetch(
                f"SELECT COUNT(*) FROM JobAttempts WHERE CalibrationID = %s "
                f"AND Status IN ({', '.join(['%s'] * len(FAILED_JOB_STATUSES))})",
                (calibrationID, *FAILED_JOB_STATUSES),
            )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK(int(rows[0][0]))

    def addAttempt(self, calibrationID, workerID, backend):
        """Record that a job is about to be submitted for a worker: S_OK(attemptID).

        Recorded before the submission, so that a crash in between leaves a 'Submitting'
        attempt that the agent later declares lost, rather than a job nobody knows about.
        """
        now = _now()
        try:
            with self._transaction_connection() as conn:
                result = self._run(
                    conn,
                    "INSERT INTO JobAttempts (CalibrationID, WorkerID, Backend, Status, SubmissionTime, LastUpdate) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (calibrationID, workerID, backend, JOB_SUBMITTING, now, now),
                )
                self._run(
                    conn,
                    "UPDATE Workers SET ResubmitRequested = 0 WHERE CalibrationID = %s AND WorkerID = %s",
                    (calibrationID, workerID),
                )
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK(result["lastRowId"])

    def setAttemptStatus(self, attemptID, status, message="", backendJobID=None):
        """Update a job attempt's status (and its backend job ID once known)."""
        sql = "UPDATE JobAttempts SET Status = %s, StatusMessage = %s, LastUpdate = %s"
        args = [status, message[:1024], _now()]
        if backendJobID is not None:
            sql += ", BackendJobID = %s"
            args.append(backendJobID)
        return self._update(sql + " WHERE AttemptID = %s", args=(*args, attemptID))

    def logEvent(self, calibrationID, source, message):
        """Add a line to a calibration's event log."""
        try:
            with self._transaction_connection() as conn:
                self._logEvent(conn, calibrationID, source, message)
        except _DBError as error:
            return S_ERROR(str(error))
        return S_OK()


class _DBError(Exception):
    """A failed statement inside a transaction (turned into S_ERROR at the method boundary)."""
