"""A production-like DIRAC installation: the administrator guide runs as written against a real
Configuration Server, then calibrations run through DIRAC's WMS (``JobBackend = DIRAC``).

One installation for the module (LocalStack/production.py): a central server (Configuration
Server, Framework, WMS, ResourceStatus, file catalogue, storage element; no OpenSearch), a worker
node whose pilots (JobAgents, each with a one-slot pool CE) run the jobs, and a fresh host, on
which the guide's console blocks install the CalibrationSystem with DIRAC's own tools. The users act from their client
installation with the proxies dirac-proxy-init made, in a long-lived Python session each.
Everything started is stopped at the end, also when a test fails.
"""
import json
import stat
import time
from pathlib import Path

import MySQLdb
import pytest
from diraccfg import CFG

from conftest import wait_for
from guide import NOT_RUN, PythonSession, ShellSession, code_blocks, console_commands
from ILCDIRAC.CalibrationSystem.LocalStack import production_config as prod
from ILCDIRAC.CalibrationSystem.LocalStack.processes import tail
from ILCDIRAC.CalibrationSystem.LocalStack.production import DB_USER, ProductionStack

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "admin_guide.rst"
#: A console block with this class runs as the user alice, the others as the administrator
USER_BLOCK = "user"
OUTPUT_PATH = "/ilc/user/a/alice/calibrations"
SAMPLES_LFN = "/ilc/user/a/alice/samples"
#: Seconds: a calibration through the WMS (job matching, the JobWrapper's own waits, agent cycles)
CALIBRATION_TIMEOUT = 300
RESULT = "@@result "

pytestmark = pytest.mark.integration

#: What alice's Python session knows: DIRAC initialised from her client installation, and report()
PRELUDE = """
import json, os
from DIRAC import initialize
initialize()
from DIRAC.Core.Utilities.ReturnValues import returnValueOrRaise
from DIRAC.DataManagementSystem.Client.DataManager import DataManager
from DIRAC.Interfaces.API.Dirac import Dirac
from DIRAC.Resources.Catalog.FileCatalog import FileCatalog
from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient
from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient, createCalibrationSettings

def report(value):
    print("@@result " + json.dumps(value, default=str), flush=True)

def create(lfns, **settings):
    full = createCalibrationSettings("CLIC")
    full.update(numberOfJobs=2, steeringFile="samples/steering_file.xml", softwareVersion="ILCSoft-2019-04-01_gcc62",
                outputPath=OUTPUT_PATH, outputSE="CalibrationSE")
    full.update(settings)
    return returnValueOrRaise(CalibrationClient().createCalibration(lfns, {s: 100 for s in lfns}, full))

def states(jobIDs):
    return returnValueOrRaise(JobMonitoringClient().getJobsStates([int(j) for j in jobIDs]))
"""


def _component_logs(stack):
    """The tails of the logs of everything the installation runs, for a failure message."""
    logs = sorted(stack.log_dir.glob("*.log")) + sorted(stack.calibration_host.glob("runit/*/*/log/current"))
    return "\n".join(f"---- {path} ----\n{tail(path, 25)}" for path in logs)


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    stack = ProductionStack(tmp_path_factory.mktemp("production"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def guide_run(installation, tmp_path_factory):
    """Run the administrator guide's console blocks; their wall time."""
    work = tmp_path_factory.mktemp("admin")
    admin = ShellSession(work, installation.admin_env())
    user = ShellSession(work, installation.user_env("alice"))
    start = time.monotonic()
    try:
        for block in code_blocks(GUIDE.read_text()):
            if block.language != "console" or NOT_RUN in block.classes:
                continue
            session = user if USER_BLOCK in block.classes else admin
            ok, output = session.run_commands(console_commands(block.code))
            if not ok:
                pytest.fail(f"admin_guide.rst line {block.line}: this console block failed\n{block.code}\n"
                            f"---- output ----\n{output}\n{_component_logs(installation)}")
    finally:
        admin.close()
        user.close()
    return time.monotonic() - start


@pytest.fixture(scope="module")
def alice(installation, guide_run, tmp_path_factory):
    """alice's Python session on her client installation (her proxy is the guide's)."""
    session = PythonSession(tmp_path_factory.mktemp("alice"), installation.user_env("alice"))
    try:
        _ask(session, f"OUTPUT_PATH = {OUTPUT_PATH!r}\n{PRELUDE}\nreport(True)")
        yield session
    finally:
        session.close()


def _ask(session, code, timeout=120):
    """Run code in a user's session; the value it reported."""
    ok, output = session.run_code("test_production", code, timeout)
    assert ok, f"this code failed in the user's session:\n{code}\n---- output ----\n{output}"
    results = [line[len(RESULT):] for line in output.splitlines() if line.startswith(RESULT)]
    return json.loads(results[-1]) if results else None


@pytest.fixture(scope="module")
def samples(alice):
    """Synthetic gamma and kaon samples, stored on the storage element and registered as alice's."""
    code = f"""
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples
written = write_samples("samples", events_per_file=100, files_per_sample=4)
lfns = {{}}
for sample in ("gamma", "kaon"):
    for path in written["inputFiles"][sample]:
        lfn = {SAMPLES_LFN!r} + "/" + os.path.relpath(path, "samples")
        returnValueOrRaise(DataManager().putAndRegister(lfn, path, "CalibrationSE"))
        lfns.setdefault(sample, []).append(lfn)
report(lfns)
"""
    return _ask(alice, code)


@pytest.fixture(scope="module")
def db(installation):
    """The CalibrationDB, to read the job attempts."""
    connection = MySQLdb.connect(host="127.0.0.1", port=installation.mariadb.port, user=DB_USER,
                                 passwd=installation.mariadb.password(DB_USER), db="CalibrationDB", autocommit=True)
    yield connection
    connection.close()


def _attempts(db, calibrationID):
    """{worker: [(attempt status, DIRAC job ID), ...] in submission order}."""
    cursor = db.cursor()
    cursor.execute("SELECT WorkerID, Status, BackendJobID FROM JobAttempts WHERE CalibrationID = %s "
                   "ORDER BY AttemptID", (calibrationID,))
    attempts = {}
    for worker, status, jobID in cursor.fetchall():
        attempts.setdefault(worker, []).append((status, jobID))
    return attempts


def _events(db, calibrationID):
    """The calibration's log in the database: [(source, message), ...] in order."""
    cursor = db.cursor()
    cursor.execute("SELECT Source, Message FROM CalibrationEvents WHERE CalibrationID = %s ORDER BY EventID",
                   (calibrationID,))
    return cursor.fetchall()


def _result_when_finished(alice, calibrationID, wait=wait_for):
    code = f"""
result = CalibrationClient().getResult({calibrationID})
report(result["Value"] if result["OK"] else result["Message"])
"""

    def finished():
        result = _ask(alice, code)
        if isinstance(result, dict):
            return result
        assert "Running" in result, result
        return None

    return wait(finished, CALIBRATION_TIMEOUT, what=f"calibration {calibrationID} to finish")


#: Files every result holds (besides the plots of its steps)
RESULT_FILES = {"steeringFile.xml", "steeringFile.xml_INPUT", "calibration.json", "convergence.png"}


def _copied_results(alice, calibrationID):
    """The files the agent copied to the storage element, as alice lists them in the catalogue,
    once the agent says it has copied them."""
    status = f"""
statuses = returnValueOrRaise(CalibrationClient().getUserCalibrationStatuses())
report([s["resultsCopied"] for s in statuses if s["calibrationID"] == {calibrationID}])
"""
    wait_for(lambda: _ask(alice, status) == [True], 60, interval=3, what=f"the results of calibration {calibrationID}")
    directory = f"{OUTPUT_PATH}/calib{calibrationID}"
    listing = f"""
listing = returnValueOrRaise(FileCatalog().listDirectory("{directory}"))
report(sorted(os.path.basename(f) for f in listing["Successful"]["{directory}"]["Files"]))
"""
    return _ask(alice, listing)


def _job_history(alice, jobIDs):
    """{job ID: the statuses the WMS logged for it, in order}."""
    return _ask(alice, f"report({{j: [r[0] for r in returnValueOrRaise(Dirac().getJobLoggingInfo(j))] "
                       f"for j in {list(jobIDs)!r}}})")


def _kill_commands(db, jobIDs):
    """The jobs among ``jobIDs`` the WMS was told to kill (JobDB's job commands)."""
    cursor = db.cursor()
    cursor.execute(f"SELECT JobID FROM JobDB.JobCommands WHERE Command = 'Kill' AND JobID IN "
                   f"({', '.join(['%s'] * len(jobIDs))})", [int(job) for job in jobIDs])
    return {str(row[0]) for row in cursor.fetchall()}


def test_the_administrator_guide_runs_as_written(installation, guide_run, alice, samples):
    started = time.monotonic()
    cs = CFG().loadFromFile(str(installation.instance / "etc" / f"{prod.CS_NAME}.cfg"))
    host = cs.getAsDict("Registry/Hosts/localhost")
    assert host["DN"] == installation.admin_env()["HOST_DN"]
    assert {p.strip() for p in host["Properties"].split(",")} >= {"TrustedHost", "FullDelegation"}
    calibration = cs.getAsDict("Systems/Calibration")
    assert calibration["URLs"]["Calibration"] == "dips://localhost:9187/Calibration/Calibration"
    assert calibration["Agents"]["CalibrationAgent"]["JobBackend"] == "DIRAC"
    assert set(calibration["Databases"]["CalibrationDB"]) >= {"DBName", "Host", "Port"}
    assert installation.mariadb.password(DB_USER) not in str(cs), "the DB password must stay out of the CS"
    local_cfg = installation.calibration_host / "etc" / "dirac.cfg"
    assert stat.S_IMODE(local_cfg.stat().st_mode) == 0o600

    # The installation works: a user's calibration runs through the WMS and its results reach the SE
    calibrationID = _ask(alice, f"report(create({{'gamma': {samples['gamma']!r}}}, numberOfJobs=1, stopStage=1, "
                                f"stopPhase=0))")
    result = _result_when_finished(alice, calibrationID)
    assert result["status"] == "Finished"
    copied = _copied_results(alice, calibrationID)
    assert RESULT_FILES <= set(copied) and any(name.startswith("step") for name in copied), copied
    print(f"\nadministrator guide: {guide_run:.0f} s; then a calibration through the WMS: "
          f"{time.monotonic() - started:.0f} s")


def test_calibrations_run_through_the_wms(installation, guide_run, alice, samples, db):
    started = time.monotonic()
    lfns = {"gamma": samples["gamma"], "kaon": samples["kaon"]}
    kept = _ask(alice, f"report(create({lfns!r}, stopStage=1, stopPhase=1, nMaxIterationsPerPhase=10))")
    killed = None

    def wait(condition, timeout, what):
        """wait_for, failing with the state of the calibrations' jobs and the logs."""
        try:
            return wait_for(condition, timeout, interval=2, what=what)
        except AssertionError as error:
            attempts = {calibration: _attempts(db, calibration) for calibration in (kept, killed) if calibration}
            jobs = [job for calibration in attempts.values() for tries in calibration.values() for _, job in tries if job]
            events = {calibration: _events(db, calibration) for calibration in (kept, killed) if calibration}
            raise AssertionError(f"{error} ({time.monotonic() - started:.0f} s into the test)\nattempts: {attempts}\n"
                                 f"WMS: {_ask(alice, f'report(states({jobs!r}))') if jobs else {}}\n"
                                 f"calibration events: {events}\n{_component_logs(installation)}") from None

    def submitted_job(calibrationID, worker):
        """The DIRAC job of the worker's newest attempt, once the agent submitted it."""
        attempts = _attempts(db, calibrationID).get(worker)
        return attempts[-1][1] if attempts else None

    # The agent submitted the jobs as alice, through the WMS; alice kills one of the kept
    # calibration's at once: before the calibration can end without it (a worker killed while
    # running may still finish a short calibration before the agent's next cycle sees the kill)
    first = wait(lambda: submitted_job(kept, 0), 120, "the first job to be submitted")
    attributes = _ask(alice, f"report(returnValueOrRaise(Dirac().getJobAttributes({first})))")
    assert (attributes["Owner"], attributes["OwnerGroup"]) == ("alice", "calice_user")
    assert attributes["JobName"].startswith(f"PandoraCaloCalibration_calid_{kept}_workerid_0_attempt_")
    _ask(alice, f"report(returnValueOrRaise(Dirac().killJob({first})))")

    # ... the agent sees it killed and resubmits the worker
    def resubmitted_job():
        attempts = _attempts(db, kept)[0]
        return len(attempts) > 1 and attempts[-1][1]

    second = wait(resubmitted_job, 120, "the killed worker to be resubmitted")
    # Killed, or already Failed when the job's watchdog stopped the payload before the agent looked
    assert _attempts(db, kept)[0][0] in (("Killed", first), ("Failed", first))
    assert _kill_commands(db, [first]) == {first}

    # alice creates another calibration and kills it as soon as its jobs are submitted: the agent
    # kills them in the WMS, as alice (the WMS records a Kill command for each), and they all end
    killed = _ask(alice, f"report(create({lfns!r}, stopStage=1, stopPhase=1, nMaxIterationsPerPhase=10))")

    def submitted():
        attempts = _attempts(db, killed)
        return len(attempts) == 2 and all(tries[-1][1] for tries in attempts.values()) and attempts

    jobs = [tries[-1][1] for tries in wait(submitted, 60, "the other calibration's jobs to be submitted").values()]
    _ask(alice, f"report(returnValueOrRaise(CalibrationClient().killCalibration({killed}, 'test')))")
    wait(lambda: all(tries[-1][0] in ("Killed", "Done", "Failed") for tries in _attempts(db, killed).values()), 60,
         "the killed calibration's jobs to end")
    killedByTheAgent = [tries[-1][1] for tries in _attempts(db, killed).values() if tries[-1][0] == "Killed"]
    assert killedByTheAgent, f"the workers left before the agent killed their jobs: {_attempts(db, killed)}"
    assert _kill_commands(db, killedByTheAgent) == set(killedByTheAgent)
    wait(lambda: all(state["Status"] in ("Killed", "Failed", "Done") for state in
                     _ask(alice, f"report(states({jobs!r}))").values()), 60, "the killed calibration's payloads to stop")

    # The kept calibration ends with its results on the storage element, as alice's files
    result = _result_when_finished(alice, kept, wait)
    assert result["status"] == "Finished"
    assert RESULT_FILES <= set(_copied_results(alice, kept))
    stored = _ask(alice, f"""
os.makedirs("copied", exist_ok=True)
returnValueOrRaise(DataManager().getFile("{OUTPUT_PATH}/calib{kept}/steeringFile.xml", os.path.abspath("copied")))
report(open("copied/steeringFile.xml").read())
""")
    assert stored == result["steeringFile"]

    # The resubmitted worker ran (the WMS did run it; it may have found the calibration ended)
    wait(lambda: "Running" in _job_history(alice, [second])[second], 60, "the resubmitted worker to run")

    # Nothing of it needed OpenSearch, which this installation has not: job parameters are lost
    parameters = _ask(alice, f"result = JobMonitoringClient().getJobParameters({first})\n"
                             "report([result['OK'], result.get('Value') or result.get('Message')])")
    assert not parameters[0] or not parameters[1], parameters
    print(f"\nthrough the WMS: a calibration with a killed and resubmitted job, and a killed calibration: "
          f"{time.monotonic() - started:.0f} s")
