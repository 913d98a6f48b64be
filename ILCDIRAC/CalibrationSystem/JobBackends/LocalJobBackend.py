"""Worker jobs as processes on this host: the backend of the local deployment.

Each job gets a directory ``<LocalJobDirectory>/<jobID>/`` with its description, the pid and
start time of its wrapper, its output and, once it ends, its exit code. Everything the backend
knows is in those files, so an agent that restarts finds its jobs again; a job runs in its own
session, so a kill reaches the worker and anything it started. The description holds the worker
credential: the job directory and its files are readable by their owner only.
"""
import json
import os
import subprocess
import sys

import psutil

from DIRAC import S_ERROR, S_OK

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import (
    ATTEMPT_DONE,
    ATTEMPT_FAILED,
    ATTEMPT_KILLED,
    ATTEMPT_RUNNING,
)
from ILCDIRAC.CalibrationSystem.JobBackends.JobBackend import JobBackend
from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription

_DESCRIPTION, _PID, _EXIT_CODE, _KILLED, _OUTPUT = "job.json", "pid.json", "exit_code", "killed", "output.log"
#: Local jobs run on the service's host, with its certificate (there is no owner proxy here)
HOST_CERTIFICATE_SWITCH = ["-o", "/DIRAC/Security/UseServerCertificate=yes"]


class LocalJobBackend(JobBackend):
    """Submit, follow and kill worker jobs as local process groups."""

    name = "Local"
    #: LocalJobDirectory: where the job directories live ('' in the agent: its work directory's jobs/)
    OPTIONS = {"LocalJobDirectory": ""}

    def __init__(self, options=None, environment=None):
        """
        :param dict options: LocalJobDirectory, where the job directories live (required)
        :param dict environment: the jobs' environment (default: this process's)
        :raises ValueError: without a LocalJobDirectory
        """
        super().__init__(options)
        self.directory = str(self.options["LocalJobDirectory"]).strip()
        if not self.directory:
            raise ValueError("LocalJobDirectory must name the directory of the local jobs")
        self.environment = dict(os.environ if environment is None else environment)
        self._children = {}

    @classmethod
    def fromOptions(cls, options, workDirectory):
        """The backend of the agent: its jobs in LocalJobDirectory, by default ``<work directory>/jobs``.

        :param dict options: LocalJobDirectory from the agent's CS section ('' for the default)
        :param str workDirectory: the agent's work directory
        :return: the backend, its directory created (owner-only)
        """
        directory = str(options.get("LocalJobDirectory") or "").strip() or os.path.join(workDirectory, "jobs")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return cls({"LocalJobDirectory": directory})

    def _jobDir(self, jobID):
        if not isinstance(jobID, str) or not jobID or os.sep in jobID or jobID.startswith("."):
            raise ValueError(f"Invalid local job ID {jobID!r}")
        return os.path.join(self.directory, jobID)

    def submit(self, job: JobDescription):
        """Start a job as a process group of its own, in ``<directory>/<job name>/``.

        :param JobDescription job: what to run
        :return: S_OK(jobID, the job's name) or S_ERROR if it cannot be started
        """
        jobID = job.name
        environment = dict(self.environment, **job.environment)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items()):
            return S_ERROR(f"Cannot start local job {jobID}: environment names and values must be strings")
        try:
            jobDir = self._jobDir(jobID)
            os.makedirs(jobDir, mode=0o700)
            os.chmod(jobDir, 0o700)  # whatever the umask
            _writeAtomically(os.path.join(jobDir, _DESCRIPTION), json.dumps(job.asDict()))
            command = [sys.executable, "-m", "ILCDIRAC.CalibrationSystem.JobBackends.LocalJobWrapper", jobDir, "--"]
            with open(os.path.join(jobDir, _OUTPUT), "ab") as output:
                process = subprocess.Popen(
                    command + job.command + HOST_CERTIFICATE_SWITCH,
                    cwd=jobDir,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            record = {"pid": process.pid, "created": psutil.Process(process.pid).create_time()}
            _writeAtomically(os.path.join(jobDir, _PID), json.dumps(record))
        except (OSError, ValueError, psutil.Error) as error:
            return S_ERROR(f"Cannot start local job {jobID}: {error}")
        self._children[jobID] = process
        return S_OK(jobID)

    def getStatus(self, jobIDs):
        """The state of jobs, read from their directories and processes.

        :param list jobIDs: job IDs returned by ``submit``
        :return: S_OK({jobID: (status, message)}), status one of Running, Done, Failed, Killed
        """
        self._reapChildren()
        statuses = {}
        for jobID in jobIDs:
            try:
                jobDir = self._jobDir(jobID)
            except ValueError as error:
                statuses[jobID] = (ATTEMPT_FAILED, str(error))
                continue
            if not os.path.isdir(jobDir):
                statuses[jobID] = (ATTEMPT_FAILED, f"Job {jobID} is unknown to the local backend in {self.directory}")
                continue
            statuses[jobID] = self._status(jobDir)
        return S_OK(statuses)

    def _status(self, jobDir):
        exitCode = _readText(os.path.join(jobDir, _EXIT_CODE))
        killed = os.path.exists(os.path.join(jobDir, _KILLED))
        if exitCode is not None:
            code = int(exitCode)
            if code == 0:
                return ATTEMPT_DONE, "exit code 0"
            if killed:
                return ATTEMPT_KILLED, f"killed (exit code {code})"
            return ATTEMPT_FAILED, f"exit code {code}" if code > 0 else f"ended by signal {-code}"
        if self._liveMembers(jobDir):
            return ATTEMPT_RUNNING, "running"
        if killed:
            return ATTEMPT_KILLED, "killed"
        return ATTEMPT_FAILED, "the job's process ended without an exit code"

    @staticmethod
    def _liveMembers(jobDir):
        """The live processes of the job's process group.

        The group is the wrapper's session, so its members are the wrapper and what it started,
        even after the wrapper itself died (Linux does not hand out a pid again while a process
        group still uses it as its id). A live process holding the recorded pid with another
        start time is a recycled pid: then the job has no members.
        """
        text = _readText(os.path.join(jobDir, _PID))
        if text is None:
            return []
        recorded = json.loads(text)
        leader = recorded["pid"]
        try:
            if abs(psutil.Process(leader).create_time() - recorded["created"]) > 0.01:
                return []
        except psutil.NoSuchProcess:
            pass
        members = []
        for process in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(process.info["pid"]) == leader and process.info["status"] != psutil.STATUS_ZOMBIE:
                    members.append(process)
            except (ProcessLookupError, PermissionError):
                continue
        return members

    def kill(self, jobIDs):
        """Kill jobs (their whole process group).

        :param list jobIDs: job IDs returned by ``submit``
        :return: S_OK(list of the job IDs that were running), or S_ERROR for an invalid job ID
        """
        killed, victims = [], []
        for jobID in jobIDs:
            try:
                jobDir = self._jobDir(jobID)
            except ValueError as error:
                return S_ERROR(f"Cannot kill local job {jobID!r}: {error}")
            if not os.path.isdir(jobDir) or os.path.exists(os.path.join(jobDir, _EXIT_CODE)):
                continue
            members = self._liveMembers(jobDir)
            try:
                with open(os.path.join(jobDir, _KILLED), "w"):
                    pass
            except OSError as error:
                return S_ERROR(f"Cannot kill local job {jobID}: {error}")
            for process in members:
                try:
                    process.kill()
                except psutil.Error:
                    continue
            if members:
                killed.append(jobID)
                victims += members
        psutil.wait_procs(victims, timeout=2)
        self._reapChildren()
        return S_OK(killed)

    def _reapChildren(self):
        """Collect the exit of jobs this process started, so they do not linger as zombies."""
        for jobID, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[jobID]

    def killAll(self):
        """Kill every job of this backend that is still running (used when a stack stops).

        :return: S_OK(list of the job IDs that were running)
        """
        if not os.path.isdir(self.directory):
            return S_OK([])
        return self.kill(sorted(name for name in os.listdir(self.directory) if not name.startswith(".")))


def _readText(path):
    try:
        with open(path) as stream:
            return stream.read().strip()
    except FileNotFoundError:
        return None


def _writeAtomically(path, content):
    """Write a file readable by its owner only, all at once."""
    partial = f"{path}.partial"
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as stream:
        stream.write(content)
    os.replace(partial, path)
