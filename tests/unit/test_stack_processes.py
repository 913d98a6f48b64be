"""Stopping a stack reaches every process it started: those that left its process groups
(found by their working directory), and the rest of the stack when one step of the stop fails."""
import subprocess
import sys

import psutil
import pytest

from ILCDIRAC.CalibrationSystem.LocalStack.processes import ProcessStack, StackError, kill_processes_in

#: A process that starts a grandchild in a session of its own (as DIRAC's pool CE detaches a job
#: wrapper and the wrapper its payload), prints the grandchild's pid and keeps running
DETACHING = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def _detaching_process(cwd):
    """The detaching process working in ``cwd``, and its detached child."""
    parent = subprocess.Popen([sys.executable, "-c", DETACHING], cwd=cwd, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    return parent, psutil.Process(int(parent.stdout.readline()))


def _gone(process):
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_every_process_working_in_the_directory_is_killed_detached_or_not(tmp_path):
    jobs = tmp_path / "workernode"
    (jobs / "1234").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    parent, detached = _detaching_process(jobs / "1234")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path / "elsewhere")
    try:
        started = psutil.Process(parent.pid)
        kill_processes_in(jobs)
        assert _gone(started) and _gone(detached)
        assert bystander.poll() is None, "a process working elsewhere was killed"
    finally:
        for process in (parent, bystander):
            process.kill()
            process.wait()
        if not _gone(detached):
            detached.kill()


def test_the_caller_and_its_parents_are_spared(tmp_path, monkeypatch):
    """The test process works in the directory: were it not spared, it would not get past the call."""
    monkeypatch.chdir(tmp_path)
    kill_processes_in(tmp_path, timeout=1)
    assert psutil.Process().cwd() == str(tmp_path)


class _Stack(ProcessStack):
    """A stack whose stop has a failing step between two that must run."""

    def __init__(self, workdir, done):
        super().__init__(workdir)
        self.done = done

    def stop(self):
        def fail():
            raise StackError("the jobs could not be stopped")

        self._stop_all([lambda: self.done.append("agent"), fail, lambda: self.done.append("mariadb")])


def test_a_failing_stop_step_stops_the_rest_and_says_what_failed(tmp_path):
    done = []
    with pytest.raises(StackError, match="the jobs could not be stopped"):
        _Stack(tmp_path, done).stop()
    assert done == ["agent", "mariadb"]
