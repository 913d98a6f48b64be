"""CalibrationDB: every fact the CalibrationSystem knows, in MySQL/MariaDB.

Calibrations, their workers and job attempts, the workers' step results and the history of
constants live here, so that the service and the agent keep no state of their own and a restart
of either loses nothing. It only stores: what a step's analysis means is decided by
``Procedure.advance`` (called by ``private/StepAdvancement``), and a status changes only along
the transitions of ``Client/CalibrationStatus``. Methods return S_OK/S_ERROR as DIRAC DB classes
do; a failed statement keeps DIRAC's MySQL error code (``DErrno.EMYSQL``).
"""
import datetime
import functools
import json
import re
from contextlib import contextmanager
from importlib import resources

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Base.DB import DB

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import (
    ATTEMPT_SUBMITTING,
    ATTEMPT_TRANSITIONS,
    CALIBRATION_TRANSITIONS,
    ENDED_STATUSES,
    FINAL_ATTEMPT_STATUSES,
    FAILED_ATTEMPT_STATUSES,
    RUNNING,
    sourcesOf,
)
from ILCDIRAC.Core.Utilities.DErrno import ECALNOTFOUND, ECALREQUEST, ECALSTEPMOVED

_CALIBRATION_COLUMNS = (
    "CalibrationID, Owner, OwnerGroup, OwnerDN, Status, StatusMessage, SoftwareVersion, NumberOfJobs, "
    "Settings, Stage, Phase, Step, PhaseIteration, Parameters, "
    "OutputPath, OutputSE, ResultsCopied, WorkerCredentialHash, CreationTime, LastUpdate, EndTime"
)
_JSON_COLUMNS = ("Settings", "Parameters")


def _now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def _marks(values):
    """'%s, %s, ...': one placeholder per value of an IN (...) list."""
    return ", ".join(["%s"] * len(values))


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
    ("Steps", "PendingPlots", "MEDIUMBLOB NULL AFTER Metrics"),
)


class _DBError(Exception):
    """A failed statement (its S_ERROR in ``result``), raised out of a method's statements and
    turned back into that S_ERROR by ``_stored`` at the method's boundary."""

    def __init__(self, result):
        super().__init__(result["Message"])
        self.result = result


def _stored(what):
    """Make a DB method return the S_ERROR of its first failed statement, saying ``what`` it was
    doing, instead of raising; the error keeps its code (DErrno.EMYSQL for the database's own)."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except _DBError as error:
                return dict(error.result, Message=f"{what}: {error.result['Message']}")

        return wrapper

    return decorate


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

    # ------------------------------------------------------------------ statements

    @contextmanager
    def _transaction(self):
        """A connection inside a transaction: committed on success, rolled back on any error."""
        result = self._getConnection()
        if not result["OK"]:
            raise _DBError(result)
        conn = result["Value"]
        self._run("START TRANSACTION", conn=conn)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def _run(self, sql, args=None, conn=None):
        """Execute a statement (on ``conn``, or a pooled connection): its S_OK, _DBError on failure."""
        result = self._update(sql, args=args, conn=conn)
        if not result["OK"]:
            raise _DBError(result)
        return result

    def _fetch(self, sql, args=None, conn=None):
        """The rows of a query, _DBError on failure."""
        result = self._query(sql, args=args, conn=conn)
        if not result["OK"]:
            raise _DBError(result)
        return result["Value"]

    def _logEvent(self, conn, calibrationID, source, message):
        self._run(
            "INSERT INTO CalibrationEvents (CalibrationID, EventTime, Source, Message) VALUES (%s, %s, %s, %s)",
            (calibrationID, datetime.datetime.utcnow(), source, message[:2048]),
            conn,
        )

    def _insertStep(self, conn, calibrationID, step, stage, phase, iteration, parameters, now):
        self._run(
            "INSERT INTO Steps (CalibrationID, Step, Stage, Phase, PhaseIteration, Parameters, StartTime) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (calibrationID, step, stage, phase, iteration, json.dumps(parameters), now),
            conn,
        )

    def _replaceFiles(self, conn, calibrationID, step, files):
        if files:
            cursor = conn.cursor()
            cursor.executemany(
                "REPLACE INTO CalibrationFiles (CalibrationID, Name, Step, Content) VALUES (%s, %s, %s, %s)",
                [(calibrationID, name, step, content) for name, content in files.items()],
            )
            cursor.close()

    # ------------------------------------------------------------------ creation

    @_stored("Could not store the calibration")
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
        with self._transaction() as conn:
            result = self._run(
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
                conn,
            )
            calibrationID = result["lastRowId"]
            self._run(
                "UPDATE Calibrations SET WorkerCredentialHash = %s WHERE CalibrationID = %s",
                (credentialHash(calibrationID, now), calibrationID),
                conn,
            )
            rows = [(calibrationID, wid, json.dumps(data)) for wid, data in enumerate(workerInputData)]
            cursor = conn.cursor()
            cursor.executemany("INSERT INTO Workers (CalibrationID, WorkerID, InputData) VALUES (%s, %s, %s)", rows)
            cursor.close()
            self._insertStep(conn, calibrationID, 0, stage, phase, 1, parameters, now)
            self._replaceFiles(conn, calibrationID, 0, calibration.get("Files", {}))
            self._logEvent(conn, calibrationID, "service", f"Created by {owner['Owner']} ({owner['OwnerGroup']})")
            for note in calibration.get("Notes", ()):
                self._logEvent(conn, calibrationID, "service", note)
        return S_OK(calibrationID)

    # ------------------------------------------------------------------ reading

    @_stored("Could not read the calibration")
    def getCalibration(self, calibrationID):
        """S_OK(dict of the calibration's columns, JSON decoded), or S_ERROR(ECALNOTFOUND) if unknown."""
        rows = self._fetch(f"SELECT {_CALIBRATION_COLUMNS} FROM Calibrations WHERE CalibrationID = %s",
                           (calibrationID,))
        if not rows:
            return S_ERROR(ECALNOTFOUND, f"Calibration {calibrationID} does not exist")
        return S_OK(self._calibrationDict(rows[0]))

    @staticmethod
    def _calibrationDict(row):
        names = [name.strip() for name in _CALIBRATION_COLUMNS.split(",")]
        record = dict(zip(names, row))
        for name in _JSON_COLUMNS:
            record[name] = json.loads(record[name])
        return record

    @_stored("Could not read the calibrations")
    def getCalibrations(self, owner=None, ownerGroup=None, statuses=None):
        """S_OK(list of calibration dicts), optionally those of one owner or in given statuses."""
        conditions, args = [], []
        if owner is not None:
            conditions.append("Owner = %s AND OwnerGroup = %s")
            args += [owner, ownerGroup]
        if statuses:
            conditions.append(f"Status IN ({_marks(statuses)})")
            args += list(statuses)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._fetch(f"SELECT {_CALIBRATION_COLUMNS} FROM Calibrations{where} ORDER BY CalibrationID", args)
        return S_OK([self._calibrationDict(row) for row in rows])

    def getSteeringFile(self, calibrationID):
        """S_OK(bytes of the steering file the calibration was created with)."""
        return self._createdWith(calibrationID, "SteeringFile")

    def getPhotonTrainingSettings(self, calibrationID):
        """S_OK(bytes of the photon-training PandoraSettings the calibration was created with, or None)."""
        return self._createdWith(calibrationID, "PhotonTrainingSettings")

    @_stored("Could not read a file the calibration was created with")
    def _createdWith(self, calibrationID, column):
        """S_OK(bytes, or None, of a file column of the calibration's row)."""
        rows = self._fetch(f"SELECT {column} FROM Calibrations WHERE CalibrationID = %s", (calibrationID,))
        if not rows:
            return S_ERROR(ECALNOTFOUND, f"Calibration {calibrationID} does not exist")
        return S_OK(None if rows[0][0] is None else bytes(rows[0][0]))

    @_stored("Could not read the worker's events")
    def getWorkerInputData(self, calibrationID, workerID):
        """S_OK(input data dict of one worker) or S_ERROR(ECALREQUEST) if there is no such worker."""
        rows = self._fetch(
            "SELECT InputData FROM Workers WHERE CalibrationID = %s AND WorkerID = %s", (calibrationID, workerID)
        )
        if not rows:
            return S_ERROR(ECALREQUEST, f"Calibration {calibrationID} has no worker {workerID}")
        return S_OK(json.loads(rows[0][0]))

    @_stored("Could not read the steps")
    def getSteps(self, calibrationID):
        """S_OK(list of step dicts, oldest first): the constants and metrics of every step."""
        rows = self._fetch(
            "SELECT Step, Stage, Phase, PhaseIteration, Parameters, StartTime, EndTime, NumberOfResults, "
            "Converged, Metrics FROM Steps WHERE CalibrationID = %s ORDER BY Step",
            (calibrationID,),
        )
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

    @_stored("Could not read the files")
    def getFiles(self, calibrationID, names=None):
        """S_OK({name: bytes}) of the files a calibration produced (all, or those in ``names``)."""
        sql, args = "SELECT Name, Content FROM CalibrationFiles WHERE CalibrationID = %s", [calibrationID]
        if names is not None:
            if not names:
                return S_OK({})
            sql += f" AND Name IN ({_marks(names)})"
            args += list(names)
        rows = self._fetch(sql + " ORDER BY Name", args)
        return S_OK({name: bytes(content) for name, content in rows})

    @_stored("Could not read the event log")
    def getEvents(self, calibrationID):
        """S_OK(list of (time, source, message)) of a calibration, oldest first."""
        rows = self._fetch(
            "SELECT EventTime, Source, Message FROM CalibrationEvents WHERE CalibrationID = %s ORDER BY EventID",
            (calibrationID,),
        )
        return S_OK([tuple(row) for row in rows])

    # ------------------------------------------------------------------ results

    @_stored("Could not store the result")
    def addResult(self, calibrationID, stage, phase, step, workerID, content):
        """Store a worker's result if it is for the calibration's current step.

        The check and the insert are one statement, so a result can never land in a step that
        has just been closed; a second upload for the same step is ignored.
        :return: S_OK(True) if stored, S_OK(False) if it was a duplicate or for another step
        """
        result = self._run(
            "INSERT IGNORE INTO StepResults (CalibrationID, Step, WorkerID, Stage, Phase, Content, ReceivedTime) "
            "SELECT CalibrationID, Step, %s, Stage, Phase, %s, %s FROM Calibrations "
            "WHERE CalibrationID = %s AND Status = %s AND Step = %s AND Stage = %s AND Phase = %s "
            "AND %s < NumberOfJobs",
            (workerID, content, _now(), calibrationID, RUNNING, step, stage, phase, workerID),
        )
        return S_OK(result["Value"] == 1)

    @_stored("Could not count the results")
    def countResults(self, calibrationID, step):
        """S_OK(number of results stored for a step)."""
        rows = self._fetch(
            "SELECT COUNT(*) FROM StepResults WHERE CalibrationID = %s AND Step = %s", (calibrationID, step)
        )
        return S_OK(int(rows[0][0]))

    # ------------------------------------------------------------------ steps

    @_stored("Could not read the step's results")
    def getStepInputs(self, calibrationID, step):
        """What the analysis of a step reads besides the calibration's row: the results stored for it
        so far, and the step before it.

        :return: S_OK({'Contents': [bytes, by worker], 'Previous': {'Step', 'Stage', 'Phase',
            'Metrics'} of step - 1, or None for step 0})
        """
        rows = self._fetch(
            "SELECT Content FROM StepResults WHERE CalibrationID = %s AND Step = %s ORDER BY WorkerID",
            (calibrationID, step),
        )
        before = self._fetch(
            "SELECT Step, Stage, Phase, Metrics FROM Steps WHERE CalibrationID = %s AND Step = %s",
            (calibrationID, step - 1),
        )
        previous = None
        if before:
            previousStep, stage, phase, metrics = before[0]
            previous = {"Step": previousStep, "Stage": stage, "Phase": phase,
                        "Metrics": json.loads(metrics) if metrics else {}}
        return S_OK({"Contents": [bytes(row[0]) for row in rows], "Previous": previous})

    @_stored("Could not commit the step")
    def commitStep(self, calibrationID, step, record, source):
        """Write the outcome of ``step``'s analysis, if the calibration is still running at that step.

        One transaction: the calibration row moves on (the update is conditional on its status and
        step, so of two commits of the same step, by two agents, a retried call or a restart, only
        the first changes anything), the step's history row is closed, the next one opened, the
        step's artifacts stored and the event logged.

        :param int calibrationID: the calibration
        :param int step: the step that was analysed
        :param dict record: 'Status' (Running, or the ended status), 'Message', 'Parameters' (the
            next constants), 'Converged', 'Metrics', 'NumberOfResults' (results analysed), 'Next'
            ((stage, phase, iteration) of the next step, or None when the calibration ends),
            'Files' ({name: bytes} stored with the calibration), 'PendingPlots' (bytes of the plots
            still to draw, or None)
        :param str source: who analysed it, for the event log ('service', 'agent')
        :return: S_OK(), or S_ERROR(ECALSTEPMOVED) if the calibration is no longer running at ``step``
        """
        now = _now()
        status, parameters = record["Status"], json.dumps(record["Parameters"])
        with self._transaction() as conn:
            if record["Next"] is None:
                if status not in CALIBRATION_TRANSITIONS[RUNNING]:
                    raise ValueError(f"A step cannot end a calibration as {status!r}")
                moved = self._run(
                    "UPDATE Calibrations SET Status = %s, StatusMessage = %s, Parameters = %s, LastUpdate = %s, "
                    "EndTime = %s WHERE CalibrationID = %s AND Status = %s AND Step = %s",
                    (status, record["Message"][:2048], parameters, now, now, calibrationID, RUNNING, step),
                    conn,
                )
            else:
                stage, phase, iteration = record["Next"]
                moved = self._run(
                    "UPDATE Calibrations SET Stage = %s, Phase = %s, Step = %s, PhaseIteration = %s, "
                    "Parameters = %s, StatusMessage = %s, LastUpdate = %s "
                    "WHERE CalibrationID = %s AND Status = %s AND Step = %s",
                    (stage, phase, step + 1, iteration, parameters, record["Message"][:2048], now, calibrationID,
                     RUNNING, step),
                    conn,
                )
            if moved["Value"] != 1:
                conn.rollback()
                return S_ERROR(ECALSTEPMOVED, f"Calibration {calibrationID} is no longer running at step {step}")
            self._run(
                "UPDATE Steps SET EndTime = %s, NumberOfResults = %s, Converged = %s, Metrics = %s, "
                "PendingPlots = %s WHERE CalibrationID = %s AND Step = %s",
                (now, record["NumberOfResults"], record["Converged"], json.dumps(record["Metrics"]),
                 record["PendingPlots"], calibrationID, step),
                conn,
            )
            if record["Next"] is not None:
                self._insertStep(conn, calibrationID, step + 1, stage, phase, iteration, record["Parameters"], now)
            self._replaceFiles(conn, calibrationID, step, record["Files"])
            self._logEvent(conn, calibrationID, source, record["Message"])
        return S_OK()

    @_stored("Could not read the plots still to draw")
    def getPendingPlots(self, calibrationID=None):
        """The plots of analysed steps that have not been drawn yet.

        :param int calibrationID: only this calibration's (default: every calibration's)
        :return: S_OK([(calibrationID, step, bytes from Procedure.outcome.encode_plots)], oldest first)
        """
        sql, args = "SELECT CalibrationID, Step, PendingPlots FROM Steps WHERE PendingPlots IS NOT NULL", []
        if calibrationID is not None:
            sql, args = sql + " AND CalibrationID = %s", [calibrationID]
        rows = self._fetch(sql + " ORDER BY CalibrationID, Step", args)
        return S_OK([(int(cid), int(step), bytes(data)) for cid, step, data in rows])

    @_stored("Could not store the plots")
    def storePlots(self, calibrationID, step, files, notes, source):
        """Store the drawn plots of a step (and say which could not be drawn); none is pending any more.

        :return: S_OK()
        """
        with self._transaction() as conn:
            self._replaceFiles(conn, calibrationID, step, files)
            self._run("UPDATE Steps SET PendingPlots = NULL WHERE CalibrationID = %s AND Step = %s",
                      (calibrationID, step), conn)
            for note in notes:
                self._logEvent(conn, calibrationID, source, note)
        return S_OK()

    # ------------------------------------------------------------------ status and output

    @_stored("Could not change the calibration's status")
    def setStatus(self, calibrationID, status, message, source):
        """End a running calibration with ``status`` (Failed, Killed); S_OK(False) if it had ended."""
        now = _now()
        sources = sourcesOf(status, CALIBRATION_TRANSITIONS)
        with self._transaction() as conn:
            result = self._run(
                "UPDATE Calibrations SET Status = %s, StatusMessage = %s, LastUpdate = %s, EndTime = %s "
                f"WHERE CalibrationID = %s AND Status IN ({_marks(sources)})",
                (status, message[:2048], now, now, calibrationID, *sources),
                conn,
            )
            changed = result["Value"] == 1
            if changed:
                self._logEvent(conn, calibrationID, source, f"{status}: {message}")
        return S_OK(changed)

    @_stored("Could not change the output location")
    def setOutput(self, calibrationID, outputPath, outputSE):
        """Change where a calibration's results go; they will be copied (again)."""
        with self._transaction() as conn:
            self._run(
                "UPDATE Calibrations SET OutputPath = %s, OutputSE = %s, ResultsCopied = 0, LastUpdate = %s "
                "WHERE CalibrationID = %s",
                (outputPath, outputSE, _now(), calibrationID),
                conn,
            )
            self._logEvent(conn, calibrationID, "service", f"Results will be copied to {outputPath} on {outputSE}")
        return S_OK()

    @_stored("Could not record the copy of the results")
    def setResultsCopied(self, calibrationID, outputPath):
        """Record that the results went to ``outputPath`` (unless the output changed meanwhile)."""
        with self._transaction() as conn:
            self._run(
                "UPDATE Calibrations SET ResultsCopied = 1 WHERE CalibrationID = %s AND OutputPath = %s",
                (calibrationID, outputPath),
                conn,
            )
            self._logEvent(conn, calibrationID, "agent", f"Results copied to {outputPath}")
        return S_OK()

    @_stored("Could not delete the calibration")
    def deleteCalibration(self, calibrationID):
        """Remove an ended calibration and everything of it; S_OK(False) if it is still running."""
        result = self._run(
            f"DELETE FROM Calibrations WHERE CalibrationID = %s AND Status IN ({_marks(ENDED_STATUSES)})",
            (calibrationID, *ENDED_STATUSES),
        )
        return S_OK(result["Value"] == 1)

    @_stored("Could not write the event log")
    def logEvent(self, calibrationID, source, message):
        """Add a line to a calibration's event log."""
        with self._transaction() as conn:
            self._logEvent(conn, calibrationID, source, message)
        return S_OK()

    # ------------------------------------------------------------------ jobs (agent)

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

    @_stored("Could not read the job attempts")
    def getNewestAttempts(self, calibrationID):
        """S_OK({workerID: attempt dict or None}) with the newest job attempt of every worker."""
        workers = self._fetch("SELECT WorkerID FROM Workers WHERE CalibrationID = %s", (calibrationID,))
        rows = self._fetch(
            "SELECT a.AttemptID, a.WorkerID, a.Backend, a.BackendJobID, a.Status, a.SubmissionTime "
            "FROM JobAttempts a JOIN (SELECT WorkerID, MAX(AttemptID) AS Newest FROM JobAttempts "
            "WHERE CalibrationID = %s GROUP BY WorkerID) n ON a.AttemptID = n.Newest",
            (calibrationID,),
        )
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

    @_stored("Could not read the job attempts")
    def getEndedCalibrationsWithLiveJobs(self, statuses):
        """S_OK(IDs of calibrations in ``statuses`` that still have jobs not known to have ended)."""
        rows = self._fetch(
            "SELECT DISTINCT c.CalibrationID FROM Calibrations c JOIN JobAttempts a USING (CalibrationID) "
            f"WHERE c.Status IN ({_marks(statuses)}) AND a.Status NOT IN ({_marks(FINAL_ATTEMPT_STATUSES)})",
            (*statuses, *FINAL_ATTEMPT_STATUSES),
        )
        return S_OK([int(row[0]) for row in rows])

    @_stored("Could not count the failed job attempts")
    def countFailedAttempts(self, calibrationID):
        """S_OK(number of job attempts of a calibration that ended in failure)."""
        rows = self._fetch(
            f"SELECT COUNT(*) FROM JobAttempts WHERE CalibrationID = %s "
            f"AND Status IN ({_marks(FAILED_ATTEMPT_STATUSES)})",
            (calibrationID, *FAILED_ATTEMPT_STATUSES),
        )
        return S_OK(int(rows[0][0]))

    @_stored("Could not record the job attempt")
    def addAttempt(self, calibrationID, workerID, backend):
        """Record that a job is about to be submitted for a worker: S_OK(attemptID).

        Recorded before the submission, so that a crash in between leaves a 'Submitting'
        attempt that the agent later declares lost, rather than a job nobody knows about.
        """
        now = _now()
        result = self._run(
            "INSERT INTO JobAttempts (CalibrationID, WorkerID, Backend, Status, SubmissionTime, LastUpdate) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (calibrationID, workerID, backend, ATTEMPT_SUBMITTING, now, now),
        )
        return S_OK(result["lastRowId"])

    @_stored("Could not update the job attempt")
    def setAttemptStatus(self, attemptID, status, message="", backendJobID=None):
        """Move a job attempt to ``status`` (and record its backend job ID once known), if its
        current status allows it (``ATTEMPT_TRANSITIONS``).

        :return: S_OK(True) if it changed, S_OK(False) if its status does not lead to ``status``
            (e.g. a job found Done before the agent's kill reached it stays Done)
        """
        sources = sourcesOf(status, ATTEMPT_TRANSITIONS)
        sql = "UPDATE JobAttempts SET Status = %s, StatusMessage = %s, LastUpdate = %s"
        args = [status, message[:1024], _now()]
        if backendJobID is not None:
            sql += ", BackendJobID = %s"
            args.append(backendJobID)
        result = self._run(f"{sql} WHERE AttemptID = %s AND Status IN ({_marks(sources)})",
                           (*args, attemptID, *sources))
        return S_OK(result["Value"] == 1)
