"""Step advancement on the real stack under what broke it: many results submitted at once, a
database that fails under the agent, results larger than 8 MiB.

The stack's agent process is stopped for the module: the service's background analysis moves the
steps (no worker job runs), and the agent test runs a CalibrationAgent of its own in this process.
"""
import threading

import numpy as np
import pytest

from conftest import ECAL_ONLY, SOFTWARE_VERSION, wait_for

pytestmark = pytest.mark.integration

#: Phase 0 only, never converging (the summaries peak 10 % low), as many steps as the test makes.
REPEATING = {**ECAL_ONLY, "nMaxIterationsPerPhase": 1000}
MAX_RESULT_SIZE = "/Systems/Calibration/Services/Calibration/MaxResultSize"


def _create(clients, samples, jobs, settings):
    """A gamma-only calibration of alice: its ID and its workers' credential."""
    with open(samples["steeringFile"]) as stream:
        steering = stream.read()
    job = {"steeringFile": steering, "softwareVersion": SOFTWARE_VERSION, "numberOfJobs": jobs}
    created = clients["alice"]().executeRPC({"gamma": samples["inputFiles"]["gamma"]},
                                            {"gamma": samples["numberOfEventsPerFile"]["gamma"]}, settings, job,
                                            call="createCalibration")
    assert created["OK"], created
    credential = clients["host"]().getWorkerCredential(created["Value"])
    assert credential["OK"], credential
    return created["Value"], credential["Value"]


def _summary(workerID, step, size=50, peak=9.0):
    from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary

    rng = np.random.default_rng([workerID, step])
    return encode_summary(0, {region: rng.normal(peak, 0.3, size).astype(np.float32)
                              for region in ("barrel", "endcap")})


def _rows(db, sql, args):
    cursor = db.cursor()
    cursor.execute(sql, args)
    rows = cursor.fetchall()
    cursor.close()
    return rows


def _position(client, calibrationID, credential):
    parameters = client.getNewParameters(calibrationID, -1, credential)
    assert parameters["OK"], parameters
    return parameters["Value"]


def test_results_submitted_at_once_by_many_threads_never_fail_the_calibration(agent_stopped, stack, samples,
                                                                              clients, db):
    """Every step, all workers submit in the same instant from 32 threads (the service decodes
    them in as many request threads while it analyses the step before); each step must be stored
    whole, analysed once and moved on, and the calibration never fail."""
    workers, threads, steps = 96, 32, 6
    calibrationID, credential = _create(clients, samples, workers,
                                        {**REPEATING, "fractionOfFinishedJobsNeededToStartNextStep": 1.0})
    ready = threading.Barrier(threads)
    failures = []

    def submit(first):
        client = clients["alice"]()
        for step in range(steps):
            ready.wait()
            for workerID in range(first, workers, threads):
                result = client.submitResult(calibrationID, 1, 0, step, workerID, _summary(workerID, step),
                                             credential)
                if not result["OK"] or not result["Value"]["Stored"]:
                    failures.append(f"step {step} worker {workerID}: {result}")
            ready.wait()
            if first == 0:
                wait_for(lambda: _position(client, calibrationID, credential)["currentStep"] == step + 1, 60,
                         interval=0.05, what=f"step {step} to be analysed")
            ready.wait()

    pool = [threading.Thread(target=submit, args=(first,)) for first in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not failures, failures[:3]
    status = _rows(db, "SELECT Status, StatusMessage, Step FROM Calibrations WHERE CalibrationID = %s",
                   (calibrationID,))
    assert status == ((("Running", status[0][1], steps),)), status
    analysed = _rows(db, "SELECT Step, NumberOfResults FROM Steps WHERE CalibrationID = %s AND EndTime IS NOT NULL "
                         "ORDER BY Step", (calibrationID,))
    assert analysed == tuple((step, workers) for step in range(steps))
    assert clients["alice"]().killCalibration(calibrationID, "end of the stress test")["OK"]


def _submitJob(agent, calibrationID, workerID, command):
    """A real local job for a worker, recorded as the agent records its own (``_submit``); the backend adds
    DIRAC options to the command, which ``sh -c`` leaves aside."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import ATTEMPT_WAITING
    from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription

    attempt = agent.calibrationDB.addAttempt(calibrationID, workerID, agent.backend.name)
    assert attempt["OK"], attempt
    job = JobDescription(calibrationID, workerID, attempt["Value"], "alice", "calice_user", "", command)
    submitted = agent.backend.submit(job)
    assert submitted["OK"], submitted
    assert agent.calibrationDB.setAttemptStatus(attempt["Value"], ATTEMPT_WAITING, "submitted",
                                                backendJobID=submitted["Value"])["OK"]
    return submitted["Value"]


def _attempts(db, calibrationID):
    return _rows(db, "SELECT WorkerID, Status FROM JobAttempts WHERE CalibrationID = %s ORDER BY AttemptID",
                 (calibrationID,))


def test_a_db_error_in_the_agent_skips_the_calibration_and_resubmits_nothing(agent_stopped, stack, samples,
                                                                            clients, db, caplog):
    """10 workers, 9 results needed, 5 stored: of the 10 jobs 7 run and 3 have failed, fewer than
    the batch of ResubmissionFraction 0.5 waits for, and the 7 alive can still bring the 4 missing
    results: nothing is to be resubmitted. With the StepResults table renamed under it, the agent
    cannot count the results; it must skip the calibration (and say so), not take the count for
    zero and resubmit the 3 failed workers."""
    from ILCDIRAC.CalibrationSystem.Agent.CalibrationAgent import CalibrationAgent

    calibrationID, credential = _create(clients, samples, 10, REPEATING)
    agent = CalibrationAgent("Calibration/CalibrationAgent", "Calibration/CalibrationAgent")
    assert agent.initialize()["OK"]
    agent.serviceClient = clients["host"]()  # the identity the agent runs with
    agent.resubmissionFraction = 0.5
    running = [_submitJob(agent, calibrationID, workerID, ["sh", "-c", "sleep 600"]) for workerID in range(7)]
    try:
        failing = [_submitJob(agent, calibrationID, workerID, ["sh", "-c", "exit 3"]) for workerID in range(7, 10)]
        wait_for(lambda: all(status == "Failed" for status, _ in agent.backend.getStatus(failing)["Value"].values()),
                 30, interval=0.2, what="the failing jobs to end")
        alice = clients["alice"]()
        for workerID in range(5):
            assert alice.submitResult(calibrationID, 1, 0, 0, workerID, _summary(workerID, 0), credential)["OK"]
        before = _attempts(db, calibrationID)

        db.cursor().execute("RENAME TABLE StepResults TO StepResults_away")
        try:
            caplog.clear()
            assert agent.execute()["OK"]
        finally:
            db.cursor().execute("RENAME TABLE StepResults_away TO StepResults")
        assert _attempts(db, calibrationID) == tuple((w, "Failed" if w >= 7 else "Running") for w, _ in before)
        logged = [record.varmessage for record in caplog.records
                  if record.levelname == "ERROR" and record.getMessage() == "Calibration skipped for this cycle"]
        assert any(f"{calibrationID}: Could not count the results" in line and "StepResults" in line
                   for line in logged), logged  # the database's own message says what failed

        assert agent.execute()["OK"]  # the table is back: the right count, and still nothing to resubmit
        assert [w for w, _ in _attempts(db, calibrationID)] == list(range(10))
        assert _rows(db, "SELECT Status FROM Calibrations WHERE CalibrationID = %s", (calibrationID,)) == \
            (("Running",),)
    finally:
        agent.backend.kill(running)
        clients["alice"]().killCalibration(calibrationID, "end of the agent test")


def test_max_result_size_above_8_mib_is_the_limit(agent_stopped, stack, samples, clients, db):
    """One limit, from the configuration: with MaxResultSize 16 MiB a 9 MiB result is stored and
    analysed; above it, refused."""
    from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary

    rng = np.random.default_rng(5)
    values = rng.uniform(5.0, 13.0, 11 * 1024 * 1024 // 8).astype(np.float32)  # 11 MiB, hardly compressible
    large = encode_summary(0, {"barrel": values, "endcap": values[::-1].copy()})
    assert 9 * 1024 * 1024 < len(large) < 16 * 1024 * 1024
    stack.stop_service()
    stack.set_overrides({MAX_RESULT_SIZE: str(16 * 1024 * 1024)})
    try:
        stack.start_service()
        calibrationID, credential = _create(clients, samples, 1, ECAL_ONLY)
        alice = clients["alice"]()
        stored = alice.submitResult(calibrationID, 1, 0, 0, 0, large, credential)
        assert stored["OK"] and stored["Value"]["Stored"], stored
        # analysed (in the background, decoded with the same limit): the calibration moves or ends, never stays
        wait_for(lambda: _rows(db, "SELECT EndTime FROM Steps WHERE CalibrationID = %s AND Step = 0",
                               (calibrationID,))[0][0] is not None, 60, interval=0.2, what="the step's analysis")
        events = [message for _, _, message in
                  _rows(db, "SELECT EventTime, Source, Message FROM CalibrationEvents WHERE CalibrationID = %s",
                        (calibrationID,))]
        assert any("stage 1, phase 0 (ECalDigi), step 0" in message for message in events), events
        too_large = alice.submitResult(calibrationID, 1, 0, 1, 0, b"\0" * (16 * 1024 * 1024 + 1), credential)
        assert not too_large["OK"] and "the limit is 16777216 bytes" in too_large["Message"]
    finally:
        stack.stop_service()
        stack.set_overrides({MAX_RESULT_SIZE: None})
        stack.start_service()


def _storeDirectly(db, calibrationID, results):
    """Results stored as the service stores them, without the service (which would analyse the step)."""
    cursor = db.cursor()
    cursor.executemany("INSERT INTO StepResults (CalibrationID, Step, WorkerID, Stage, Phase, Content, ReceivedTime) "
                       "VALUES (%s, 0, %s, 1, 0, %s, UTC_TIMESTAMP())",
                       [(calibrationID, workerID, content) for workerID, content in results.items()])


def test_a_step_is_advanced_once_whoever_advances_it_at_the_same_time(agent_stopped, stack, samples, clients, db):
    """Four advancers, each with its own CalibrationDB (as two agents, the service's thread and a
    restarted service would have), analyse the same complete step at the same instant: one
    commits, the others find the step moved on and change nothing."""
    from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import CalibrationDB
    from ILCDIRAC.CalibrationSystem.private.StepAdvancement import advanceStep, maxResultSize

    calibrationID, _ = _create(clients, samples, 4, REPEATING)
    _storeDirectly(db, calibrationID, {workerID: _summary(workerID, 0) for workerID in range(4)})
    databases = [CalibrationDB() for _ in range(4)]
    ready, outcomes = threading.Barrier(4), []

    def advance(database):
        ready.wait()
        outcomes.append(advanceStep(database, calibrationID, maxResultSize(), "test"))

    pool = [threading.Thread(target=advance, args=(database,)) for database in databases]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert all(outcome["OK"] for outcome in outcomes), outcomes
    assert sorted(outcome["Value"] is None for outcome in outcomes) == [False, True, True, True], outcomes
    assert _rows(db, "SELECT Step, PhaseIteration FROM Calibrations WHERE CalibrationID = %s",
                 (calibrationID,)) == ((1, 2),)
    assert _rows(db, "SELECT Step, NumberOfResults FROM Steps WHERE CalibrationID = %s ORDER BY Step",
                 (calibrationID,)) == ((0, 4), (1, None))
    events = _rows(db, "SELECT COUNT(*) FROM CalibrationEvents WHERE CalibrationID = %s AND Message LIKE %s",
                   (calibrationID, "%step 0 analysed%"))
    assert events == ((1,),)
    assert clients["alice"]().killCalibration(calibrationID, "end of the test")["OK"]


def test_a_stored_result_that_cannot_be_read_leaves_the_step_to_be_analysed_again(agent_stopped, stack, samples,
                                                                                 clients, db):
    """Not physics: the calibration keeps running at its step, with a coded error saying why;
    once the result reads, the same call analyses the step."""
    from DIRAC.Core.Utilities.DErrno import cmpError

    from ILCDIRAC.CalibrationSystem.DB.CalibrationDB import CalibrationDB
    from ILCDIRAC.CalibrationSystem.private.StepAdvancement import advanceStep, maxResultSize
    from ILCDIRAC.Core.Utilities.DErrno import ECALANALYSIS

    calibrationID, _ = _create(clients, samples, 2, REPEATING)
    _storeDirectly(db, calibrationID, {0: _summary(0, 0), 1: b"PK\x03\x04 damaged on its way into the database"})
    database = CalibrationDB()
    failed = advanceStep(database, calibrationID, maxResultSize(), "test")
    assert cmpError(failed, ECALANALYSIS), failed
    assert "Step 0 of calibration" in failed["Message"] and "not a readable numpy archive" in failed["Message"]
    assert _rows(db, "SELECT Status, Step FROM Calibrations WHERE CalibrationID = %s", (calibrationID,)) == \
        (("Running", 0),)
    db.cursor().execute("UPDATE StepResults SET Content = %s WHERE CalibrationID = %s AND WorkerID = 1",
                        (_summary(1, 0), calibrationID))
    analysed = advanceStep(database, calibrationID, maxResultSize(), "test")
    assert analysed["OK"] and "step 0 analysed: repeating" in analysed["Value"], analysed
    assert clients["alice"]().killCalibration(calibrationID, "end of the test")["OK"]
