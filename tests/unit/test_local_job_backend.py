"""The local job backend with real processes: statuses, kills, restarts and hostile job IDs."""
import contextlib
import json
import os
import subprocess
import signal
import stat
import sys
import time

import psutil
import pytest

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import (
    ATTEMPT_DONE,
    ATTEMPT_FAILED,
    ATTEMPT_KILLED,
    ATTEMPT_RUNNING,
)
from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription
from ILCDIRAC.CalibrationSystem.JobBackends.LocalJobBackend import LocalJobBackend

TIMEOUT = 1.5


def _job(command, attempt=0, environment=None, calibrationID=4):
    return JobDescription(calibrationID, 2, attempt, "alice", "ilc_user", "/CN=alice", command, environment or {})


def _python(code):
    return [sys.executable, "-c", code]


def _wait(predicate, timeout=TIMEOUT):
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _status(backend, jobID):
    result = backend.getStatus([jobID])
    assert result["OK"], result
    return result["Value"][jobID]


def _finalStatus(backend, jobID):
    _wait(lambda: _status(backend, jobID)[0] != ATTEMPT_RUNNING)
    return _status(backend, jobID)


def _wrapper(directory, jobID):
    with open(os.path.join(directory, jobID, "pid.json")) as stream:
        return psutil.Process(json.load(stream)["pid"])


def _gone(process):
    """Dead or a zombie waiting for a parent that does not reap (as PID 1 of a container may not)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def backend(tmp_path):
    directory = tmp_path / "jobs"
    directory.mkdir()
    backend = LocalJobBackend({"LocalJobDirectory": str(directory)})
    yield backend
    # Leave no process behind, whatever the test did: the process group of every submitted job
    # (a job runs in its own session, so its group id is its wrapper's pid).
    for jobID in os.listdir(directory):
        if not (directory / jobID / "job.json").exists():
            continue  # made by hand by a test, may point at this very process
        try:
            with open(directory / jobID / "pid.json") as stream:
                group = json.load(stream)["pid"]
            if group != os.getpgrp():
                os.killpg(group, signal.SIGKILL)
        except (OSError, ValueError):
            pass
    backend.getStatus([])


def test_submit_returns_the_job_name(backend):
    job = _job(_python("pass"))

    result = backend.submit(job)

    assert result["OK"], result
    assert result["Value"] == job.name == "PandoraCaloCalibration_calid_4_workerid_2_attempt_0"
    with open(os.path.join(backend.directory, job.name, "job.json")) as stream:
        assert json.load(stream)["command"] == job.command
    assert _finalStatus(backend, job.name) == (ATTEMPT_DONE, "exit code 0")


def test_same_job_cannot_be_submitted_twice(backend):
    job = _job(_python("pass"))
    assert backend.submit(job)["OK"]

    result = backend.submit(job)

    assert not result["OK"]
    assert job.name in result["Message"]


def test_running_then_done(backend):
    jobID = backend.submit(_job(_python("import time; time.sleep(0.3)")))["Value"]

    assert _status(backend, jobID) == (ATTEMPT_RUNNING, "running")
    assert _finalStatus(backend, jobID) == (ATTEMPT_DONE, "exit code 0")


def test_nonzero_exit_code_is_failed(backend):
    jobID = backend.submit(_job(_python("import sys; sys.exit(3)")))["Value"]

    assert _finalStatus(backend, jobID) == (ATTEMPT_FAILED, "exit code 3")


def test_job_ended_by_a_signal_is_failed(backend):
    jobID = backend.submit(_job(_python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")))["Value"]

    assert _finalStatus(backend, jobID) == (ATTEMPT_FAILED, "ended by signal 15")


def test_missing_program_is_failed_with_its_error(backend):
    jobID = backend.submit(_job(["/nonexistent/dirac-calibration-worker"]))["Value"]

    assert _finalStatus(backend, jobID) == (ATTEMPT_FAILED, "exit code 127")
    with open(os.path.join(backend.directory, jobID, "output.log")) as stream:
        assert "Cannot run /nonexistent/dirac-calibration-worker" in stream.read()


def test_output_is_kept_in_the_job_directory(backend):
    jobID = backend.submit(_job(_python("import sys; print('to out'); print('to err', file=sys.stderr)")))["Value"]

    _finalStatus(backend, jobID)

    with open(os.path.join(backend.directory, jobID, "output.log")) as stream:
        output = stream.read()
    assert "to out" in output and "to err" in output


def test_kill_stops_the_whole_process_group(backend):
    jobID = backend.submit(_job(["sh", "-c", "sleep 60; echo not killed"]))["Value"]
    wrapper = _wrapper(backend.directory, jobID)
    _wait(lambda: any(p.name() == "sleep" for p in wrapper.children(recursive=True)))
    processes = wrapper.children(recursive=True)
    assert {p.name() for p in processes} >= {"sh", "sleep"}

    result = backend.kill([jobID])

    assert result["OK"] and result["Value"] == [jobID]
    for process in processes + [wrapper]:
        _wait(lambda: _gone(process))
    assert _status(backend, jobID) == (ATTEMPT_KILLED, "killed")


def test_killing_a_finished_job_keeps_it_done(backend):
    jobID = backend.submit(_job(_python("pass")))["Value"]
    wrapper = _wrapper(backend.directory, jobID)
    _finalStatus(backend, jobID)
    _wait(lambda: backend.getStatus([]) and _gone(wrapper))

    result = backend.kill([jobID])

    assert result["OK"] and result["Value"] == []
    assert _status(backend, jobID) == (ATTEMPT_DONE, "exit code 0")


def test_killed_wrapper_is_failed_with_a_clear_message_once_its_worker_ends(backend):
    jobID = backend.submit(_job(_python("import time; time.sleep(60)")))["Value"]
    wrapper = _wrapper(backend.directory, jobID)
    worker = _waitForChild(wrapper)

    wrapper.kill()
    _wait(lambda: _gone(wrapper))
    assert _status(backend, jobID)[0] == ATTEMPT_RUNNING  # the worker still runs and may still report
    worker.kill()

    status, message = _finalStatus(backend, jobID)
    assert status == ATTEMPT_FAILED
    assert "without an exit code" in message


def _waitForChild(wrapper):
    _wait(lambda: bool(wrapper.children()))
    return wrapper.children()[0]


def test_kill_reaches_a_worker_whose_wrapper_died(backend):
    jobID = backend.submit(_job(_python("import time; time.sleep(60)")))["Value"]
    wrapper = _wrapper(backend.directory, jobID)
    worker = _waitForChild(wrapper)
    wrapper.kill()
    _wait(lambda: _gone(wrapper))

    try:
        assert backend.kill([jobID])["Value"] == [jobID]
        _wait(lambda: _gone(worker), timeout=0.5)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def test_restarted_backend_reports_the_same_statuses(backend):
    jobs = {
        "done": _job(_python("pass"), attempt=0),
        "failed": _job(_python("import sys; sys.exit(3)"), attempt=1),
        "running": _job(_python("import time; time.sleep(60)"), attempt=2),
        "killed": _job(_python("import time; time.sleep(60)"), attempt=3),
    }
    ids = {key: backend.submit(job)["Value"] for key, job in jobs.items()}
    _finalStatus(backend, ids["done"])
    _finalStatus(backend, ids["failed"])
    assert backend.kill([ids["killed"]])["Value"] == [ids["killed"]]
    _wait(lambda: _status(backend, ids["killed"])[0] == ATTEMPT_KILLED)

    restarted = LocalJobBackend({"LocalJobDirectory": backend.directory})
    statuses = restarted.getStatus(list(ids.values()))["Value"]

    assert {key: statuses[jobID][0] for key, jobID in ids.items()} == {
        "done": ATTEMPT_DONE,
        "failed": ATTEMPT_FAILED,
        "running": ATTEMPT_RUNNING,
        "killed": ATTEMPT_KILLED,
    }
    assert restarted.kill([ids["running"]])["Value"] == [ids["running"]]
    _wait(lambda: _status(restarted, ids["running"])[0] == ATTEMPT_KILLED)


def _fakeJob(backend, jobID, pid, created):
    jobDir = os.path.join(backend.directory, jobID)
    os.makedirs(jobDir)
    with open(os.path.join(jobDir, "pid.json"), "w") as stream:
        json.dump({"pid": pid, "created": created}, stream)


def test_pid_file_of_an_unrelated_process_is_not_running(backend):
    leader = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        created = psutil.Process(leader.pid).create_time()
        _fakeJob(backend, "recycled", leader.pid, created - 1000.0)
        _fakeJob(backend, "same", leader.pid, created)

        statuses = backend.getStatus(["recycled", "same"])["Value"]

        assert statuses["recycled"][0] == ATTEMPT_FAILED
        assert statuses["same"][0] == ATTEMPT_RUNNING  # the check above can tell them apart
        assert backend.kill(["recycled"])["Value"] == []
        assert leader.poll() is None
    finally:
        leader.kill()
        leader.wait()


def test_unknown_job_is_failed(backend):
    assert _status(backend, "PandoraCaloCalibration_calid_9_workerid_0_attempt_0")[0] == ATTEMPT_FAILED


@pytest.mark.parametrize("jobID", ["../outside", "", ".", "..", "a/../../outside", "/abs/outside", ".hidden"])
def test_invalid_job_ids_never_touch_other_files(backend, tmp_path, jobID):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "exit_code").write_text("0")
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(outside))

    status, message = _status(backend, jobID)
    killResult = backend.kill([jobID])

    assert status == ATTEMPT_FAILED
    assert "Invalid local job ID" in message
    assert not killResult["OK"]
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(outside))) == before


def test_job_with_a_path_in_its_name_is_refused(backend, tmp_path):
    result = backend.submit(_job(_python("pass"), calibrationID="../../escaped"))

    assert not result["OK"]
    assert "Invalid local job ID" in result["Message"]
    assert sorted(os.listdir(tmp_path)) == ["jobs"]
    assert os.listdir(backend.directory) == []


def test_environment_is_passed_to_the_job(tmp_path):
    directory = tmp_path / "jobs"
    directory.mkdir()
    backend = LocalJobBackend({"LocalJobDirectory": str(directory)},
                              environment={"BASE_ONLY": "base", "SHARED": "from backend"})
    code = (
        "import json, os; json.dump({k: os.environ.get(k) for k in ('BASE_ONLY', 'SHARED', 'JOB_ONLY', 'HOME')},"
        " open('env.json', 'w'))"
    )
    job = _job(_python(code), environment={"SHARED": "from job", "JOB_ONLY": "job"})

    jobID = backend.submit(job)["Value"]

    assert _finalStatus(backend, jobID)[0] == ATTEMPT_DONE
    with open(directory / jobID / "env.json") as stream:
        assert json.load(stream) == {"BASE_ONLY": "base", "SHARED": "from job", "JOB_ONLY": "job", "HOME": None}


def test_the_worker_credential_is_readable_by_its_owner_only(backend):
    jobID = backend.submit(_job(_python("pass"), environment={"CALIBRATION_WORKER_CREDENTIAL": "s3cret"}))["Value"]
    jobDir = os.path.join(backend.directory, jobID)
    assert _finalStatus(backend, jobID)[0] == ATTEMPT_DONE
    with open(os.path.join(jobDir, "job.json")) as stream:
        assert json.load(stream)["environment"] == {"CALIBRATION_WORKER_CREDENTIAL": "s3cret"}
    for path in (jobDir, os.path.join(jobDir, "job.json"), os.path.join(jobDir, "pid.json")):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, f"{path} is readable by others"


def test_the_agent_puts_the_jobs_into_its_work_directory_by_default(tmp_path):
    backend = LocalJobBackend.fromOptions({"LocalJobDirectory": ""}, str(tmp_path))
    assert backend.directory == str(tmp_path / "jobs")
    assert stat.S_IMODE(os.stat(backend.directory).st_mode) == 0o700
    chosen = LocalJobBackend.fromOptions({"LocalJobDirectory": str(tmp_path / "elsewhere")}, str(tmp_path))
    assert chosen.directory == str(tmp_path / "elsewhere")


def test_a_backend_without_a_directory_is_refused():
    with pytest.raises(ValueError, match="LocalJobDirectory must name the directory of the local jobs"):
        LocalJobBackend()
