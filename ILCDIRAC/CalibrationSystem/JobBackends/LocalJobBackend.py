"""Worker jobs as processes on this host: the backend of the local deployment.

Each job gets a directory ``<LocalJobDirectory>/<jobID>/`` with its description, the pid and
start time of its wrapper, its output and, once it ends, its exit code. Everything the backend
knows is in those files, so an agent that restarts finds its jobs again; a job runs in its own
session, so a kill reaches the worker and anything it started.
"""
import json
import os
import signal
import subprocess
import sys

import psutil

from DIRAC import S_ERROR, S_OK, gLogger

from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription

WAITING, RUNNING, DONE, FAILED, KILLED = "Waiting", "Running", "Done", "Failed", "Killed"

_DESCRIPTION, _PID, _EXIT_CODE, _KILLED, _OUTPUT = "job.json", "pid.json", "exit_code", "killed", "output.log"


class LocalJobBackend:
    """Submit, follow and kill worker jobs as local process groups."""

    name = "Local"

    def __init__(self, directory, environment=None):
        """
        :param str directory: where the job directories live
        :param dict environment: the jobs' environment (default: this process's)
        """
        self.directory = directory
        self.environment = dict(os.environ if environment is None else environment)
        self.log = gLogger.getSubLogger("LocalJobBackend")
        self._children = {}

    def _jobDir(self, jobID):
        if not jobID or os.sep in jobID or jobID.startswith("."):
            raise ValueError(f"Invalid local job ID {jobID!r}")
        return os.path.join(self.directory, jobID)

    def submit(self, job: JobDescription):
        """Start a job; S_OK(jobID)."""
        jobID = job.name
        try:
            jobDir = self._jobDir(jobID)
            os.makedirs(jobDir)
            with open(os.path.join(jobDir, _DESCRIPTION), "w") as stream:
                json.dump(job.asDict(), stream)
            command = [sys.executable, "-m", "ILCDIRAC.CalibrationSystem.JobBackends.LocalJobWrapper", jobDir, "--"]
            with open(os.path.join(jobDir, _OUTPUT), "ab") as output:
                process = subprocess.Popen(
                    command + job.command,
                    cwd=jobDir,
                    env=dict(self.environment, **job.environment),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            with open(os.path.join(jobDir, _PID), "w") as stream:
                json.dump({"pid": process.pid, "created": psutil.Process(process.pid).create_time()}, stream)
        except (OSError, ValueError, psutil.Error) as error:
            return S_ERROR(f"Cannot start local job {jobID}: {error}")
        self._children[jobID] = process
        return S_OK(jobID)

    def getStatus(self, jobIDs):
        """S_OK({jobID: (status, message)}) for the given jobs."""
        self._reapChildren()
        statuses = {}
        for jobID in jobIDs:
            try:
                statuses[jobID] = self._status(self._jobDir(jobID))
            except (OSError, ValueError) as error:
                statuses[jobID] = (FAILED, f"Job unknown to the local backend: {error}")
        return S_OK(statuses)

    def _status(self, jobDir):
        exitCode = _readText(os.path.join(jobDir, _EXIT_CODE))
        if exitCode is not None:
            code = int(exitCode)
            if code == 0:
                return DONE, "exit code 0"
            if os.path.exists(os.path.join(jobDir, _KILLED)):
                return KILLED, f"killed (exit code {code})"
            return FAILED, f"exit code {code}" if code > 0 else f"ended by signal {-code}"
        if self._process(jobDir) is not None:
            return RUNNING, "running"
        if os.path.exists(os.path.join(jobDir, _KILLED)):
            return KILLED, "killed"
        return FAILED, "the job's process ended without an exit code"

    @staticmethod
    def _process(jobDir):
        """The job's live wrapper process, or None (a recycled pid is not mistaken for it)."""
        text = _readText(os.path.join(jobDir, _PID))
        if text is None:
            return None
        recorded = json.loads(text)
        try:
            process = psutil.Process(recorded["pid"])
            if abs(process.create_time() - recorded["created"]) > 0.01 or process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return process

    def kill(self, jobIDs):
        """Kill jobs (their whole process group); S_OK(list of job IDs that were running)."""
        killed = []
        for jobID in jobIDs:
            try:
                jobDir = self._jobDir(jobID)
                process = self._process(jobDir)
                with open(os.path.join(jobDir, _KILLED), "w"):
                    pass
            except (OSError, ValueError) as error:
                return S_ERROR(f"Cannot kill local job {jobID}: {error}")
            if process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                    killed.append(jobID)
                except ProcessLookupError:
                    pass
        self._reapChildren()
        return S_OK(killed)

    def _reapChildren(self):
        """Collect the exit of jobs this process started, so they do not linger as zombies."""
        for jobID, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[jobID]


def _readText(path):
    try:
        with open(path) as stream:
            return stream.read().strip()
    except FileNotFoundError:
        return None
