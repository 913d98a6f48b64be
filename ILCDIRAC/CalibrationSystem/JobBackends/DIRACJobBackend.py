"""Worker jobs on the grid through the DIRAC WMS: the backend of a grid installation.

As in iLCDirac, a worker job is submitted, and killed, under the calibration owner's proxy
(downloaded from the ProxyManager), so that it runs, is accounted and may be killed as the
owner's own job. Reading job states needs no particular right, so it uses the agent's own
credentials. Kills cannot use the host certificate: DIRAC 9's JobPolicy takes the caller's rights
from the properties of its *group*, and a host's group ('hosts') has none, so a host gets no Kill
right even with JobAdministrator among its host properties.

The calibration's worker credential reaches the job in its input sandbox (readable by the owner
only), not in its environment: the JDL can be read by anyone who may monitor jobs.

Every DIRAC error and every exception raised by DIRAC becomes an S_ERROR: a grid hiccup must
not take the agent down.
"""
import os
import shlex
import tempfile
from functools import partial

from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Utilities.Proxy import executeWithUserProxy
from DIRAC.Interfaces.API.Dirac import Dirac
from DIRAC.Interfaces.API.Job import Job
from DIRAC.WorkloadManagementSystem.Client import JobStatus
from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient
from DIRAC.WorkloadManagementSystem.Client.WMSClient import WMSClient

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import (
    ATTEMPT_DONE,
    ATTEMPT_FAILED,
    ATTEMPT_KILLED,
    ATTEMPT_RUNNING,
    ATTEMPT_WAITING,
)
from ILCDIRAC.CalibrationSystem.JobBackends.JobBackend import JobBackend
from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription
from ILCDIRAC.CalibrationSystem.Utilities.WorkerCredential import CREDENTIAL_FILE, ENVIRONMENT_VARIABLE

OPTIONS = {
    "JobCPUTime": 86400,
    "JobSite": [],
    "BannedSites": [],
    "OutputSandbox": ["*.log", "*.xml", "*.txt"],
    "Platform": "",
    "WorkerExecutable": "dirac-calibration-worker",
}

#: The job IDs sent to the WMS in one call
CHUNK_SIZE = 500

#: The file the worker's output goes to on the worker node (it matches the ``*.log`` pattern)
WORKER_LOG = "calibration_worker.log"

#: DIRAC job status -> the agent's job status. Stalled counts as failed, as in iLCDirac: a job
#: whose pilot stopped sending heartbeats will not report its results in time. Completed (the
#: payload ended, the outcome is not settled yet) is still running for the agent.
STATUS_MAP = {
    JobStatus.SUBMITTING: ATTEMPT_WAITING,
    JobStatus.RECEIVED: ATTEMPT_WAITING,
    JobStatus.CHECKING: ATTEMPT_WAITING,
    JobStatus.SCOUTING: ATTEMPT_WAITING,
    JobStatus.STAGING: ATTEMPT_WAITING,
    JobStatus.WAITING: ATTEMPT_WAITING,
    JobStatus.MATCHED: ATTEMPT_WAITING,
    JobStatus.RESCHEDULED: ATTEMPT_WAITING,
    JobStatus.RUNNING: ATTEMPT_RUNNING,
    JobStatus.COMPLETING: ATTEMPT_RUNNING,
    JobStatus.COMPLETED: ATTEMPT_RUNNING,
    JobStatus.DONE: ATTEMPT_DONE,
    JobStatus.FAILED: ATTEMPT_FAILED,
    JobStatus.STALLED: ATTEMPT_FAILED,
    JobStatus.DELETED: ATTEMPT_FAILED,
    JobStatus.KILLED: ATTEMPT_KILLED,
}


class DIRACJobBackend(JobBackend):
    """Submit, follow and kill worker jobs through the DIRAC WMS."""

    name = "DIRAC"
    OPTIONS = OPTIONS

    def __init__(self, options=None):
        """
        :param dict options: from the agent's CS section; keys of ``OPTIONS`` only.
            JobCPUTime (seconds), JobSite and BannedSites (site names, list or comma-separated),
            OutputSandbox (file patterns), Platform (a DIRAC platform, '' for any),
            WorkerExecutable (the worker program's name on the worker node)
        :raises ValueError: on an unknown option or an unusable value
        """
        super().__init__(options)
        options = self.options
        try:
            self.cpuTime = int(options["JobCPUTime"])
        except (TypeError, ValueError):
            self.cpuTime = 0
        if self.cpuTime <= 0:
            raise ValueError(f"JobCPUTime must be a positive number of seconds, not {options['JobCPUTime']!r}")
        self.sites = _asList("JobSite", options["JobSite"])
        self.bannedSites = _asList("BannedSites", options["BannedSites"])
        self.outputSandbox = _asList("OutputSandbox", options["OutputSandbox"])
        self.platform = str(options["Platform"]).strip()
        self.workerExecutable = str(options["WorkerExecutable"]).strip()
        if not self.workerExecutable:
            raise ValueError("WorkerExecutable must name the worker program")

    # ------------------------------------------------------------------ submission

    def submit(self, job: JobDescription):
        """Submit the worker job to the WMS under its owner's proxy.

        :param JobDescription job: what to run, and whose job it is
        :return: S_OK(DIRAC job ID as a string) or S_ERROR
        """
        label = f"calibration {job.calibrationID} worker {job.workerID} (attempt {job.attemptID})"
        if not job.owner or not job.ownerGroup:
            # Without both, executeWithUserProxy would silently submit with the host certificate
            return S_ERROR(f"Cannot submit the DIRAC job of {label}: its owner and owner group must both be known")
        try:
            result = executeWithUserProxy(self._submitAsOwner)(
                job, proxyUserName=job.owner, proxyUserGroup=job.ownerGroup, executionLock=True
            )
        except Exception as error:  # pylint: disable=broad-except
            result = S_ERROR(f"{type(error).__name__}: {error}")
        if not result["OK"]:
            owner = f"{job.owner}/{job.ownerGroup}"
            return S_ERROR(f"Cannot submit the DIRAC job of {label} as {owner}: {result['Message']}")
        jobID = result["Value"]
        if isinstance(jobID, bool) or not str(jobID).isdigit():
            return S_ERROR(f"Cannot submit the DIRAC job of {label}: the WMS answered {jobID!r} instead of a job ID")
        return S_OK(str(jobID))

    def _submitAsOwner(self, job):
        """Describe and submit the job; runs with the owner's proxy in place (Job() reads it).

        The worker credential travels in the input sandbox, which only the owner and job
        administrators can download, never in the job's environment: the JDL (and so its
        ExecutionEnvironment) can be read by anyone allowed to monitor jobs.
        """
        environment = dict(job.environment)
        credential = environment.pop(ENVIRONMENT_VARIABLE, None)
        diracJob = Job()
        arguments = shlex.join(job.command[1:])
        calls = [
            partial(diracJob.setName, job.name),
            partial(diracJob.setJobGroup, job.group),
            partial(diracJob.setCPUTime, self.cpuTime),
            partial(diracJob.setExecutable, self.workerExecutable, arguments=arguments, logFile=WORKER_LOG,
                    includeInSandbox=False),
            partial(diracJob.setOutputSandbox, list(self.outputSandbox)),
        ]
        if environment:
            calls.append(partial(diracJob.setExecutionEnv, environment))
        inputData = list(job.inputData)
        if inputData:
            calls.append(partial(diracJob.setInputData, inputData))
        if self.platform:
            calls.append(partial(diracJob.setPlatform, self.platform))
        if self.sites:
            calls.append(partial(diracJob.setDestination, list(self.sites)))
        if self.bannedSites:
            calls.append(partial(diracJob.setBannedSites, list(self.bannedSites)))
        # The sandbox is uploaded by submitJob: the file must live until it returns
        with tempfile.TemporaryDirectory(prefix="calibration_job_") as directory:
            if credential:
                calls.append(partial(diracJob.setInputSandbox, [_writeSecret(directory, CREDENTIAL_FILE, credential)]))
            for call in calls:
                result = call()
                if not result["OK"]:
                    return result
            return Dirac().submitJob(diracJob)

    # ------------------------------------------------------------------ monitoring

    def getStatus(self, jobIDs):
        """The state of jobs, in the agent's vocabulary (Stalled counts as Failed).

        :param list jobIDs: DIRAC job IDs returned by ``submit``
        :return: S_OK({jobID: (status, message)}), status one of Waiting, Running, Done, Failed, Killed
        """
        statuses, numeric = {}, {}
        for jobID in jobIDs:
            number = _jobNumber(jobID)
            if number is None:
                statuses[jobID] = (ATTEMPT_FAILED, f"{jobID!r} is not a DIRAC job ID (a positive integer)")
            else:
                numeric[number] = jobID
        numbers = sorted(numeric)
        for start in range(0, len(numbers), CHUNK_SIZE):
            chunk = numbers[start : start + CHUNK_SIZE]
            result = _call(JobMonitoringClient, "getJobsStates", chunk)
            if not result["OK"]:
                return S_ERROR(f"Cannot get the states of DIRAC jobs {_span(chunk)}: {result['Message']}")
            states = _intKeys(result["Value"])
            for number in chunk:
                statuses[numeric[number]] = _translate(number, states.get(number))
        return S_OK(statuses)

    # ------------------------------------------------------------------ kills

    def kill(self, jobIDs):
        """Kill jobs, each as its owner.

        Jobs unknown to the WMS or already ended are not killed and not listed.

        :param list jobIDs: DIRAC job IDs returned by ``submit``
        :return: S_OK(list of the job IDs that DIRAC killed), or S_ERROR naming the jobs DIRAC refused
            (NonauthorizedJobIDs) or failed to kill (FailedJobIDs)
        """
        numeric = {}
        for jobID in jobIDs:
            number = _jobNumber(jobID)
            if number is None:
                return S_ERROR(f"Cannot kill DIRAC job {jobID!r}: not a DIRAC job ID (a positive integer)")
            numeric[number] = jobID
        result = self._owners(sorted(numeric))
        if not result["OK"]:
            return result
        killed, errors, refused, failed = [], [], [], []
        for (owner, group), numbers in result["Value"].items():
            outcome = self._killAsOwner(numbers, owner, group)
            killed += [numeric[n] for n in outcome.get("Value") or [] if n in numeric]
            if not outcome["OK"]:
                errors.append(outcome["Message"])
                refused += [numeric[n] for n in outcome.get("NonauthorizedJobIDs", []) if n in numeric]
                failed += [numeric[n] for n in outcome.get("FailedJobIDs", []) if n in numeric]
        if errors:
            error = S_ERROR("; ".join(errors))
            error.update(KilledJobIDs=killed, NonauthorizedJobIDs=refused, FailedJobIDs=failed)
            return error
        return S_OK(killed)

    @staticmethod
    def _owners(numbers):
        """S_OK({(owner, group): [job numbers]}) of the jobs the WMS knows."""
        owners = {}
        for start in range(0, len(numbers), CHUNK_SIZE):
            chunk = numbers[start : start + CHUNK_SIZE]
            result = _call(JobMonitoringClient, "getJobsSummary", chunk)
            if not result["OK"]:
                return S_ERROR(f"Cannot find the owners of DIRAC jobs {_span(chunk)} to kill them: {result['Message']}")
            wanted = set(chunk)
            for number, attributes in sorted(_intKeys(result["Value"]).items()):
                if number in wanted:
                    owners.setdefault((attributes.get("Owner"), attributes.get("OwnerGroup")), []).append(number)
        return S_OK(owners)

    @staticmethod
    def _killAsOwner(numbers, owner, group):
        """WMSClient().killJob under the owner's proxy. S_OK(killed numbers), or S_ERROR that
        names the jobs DIRAC refused (NonauthorizedJobIDs) or failed to kill (FailedJobIDs)."""
        label = f"DIRAC jobs {_span(numbers)} of {owner}/{group}"
        if not owner or not group:
            # Without both, executeWithUserProxy would silently use the host certificate
            return S_ERROR(f"Cannot kill {label}: the WMS gave no owner and owner group for them")
        try:
            result = executeWithUserProxy(_killJobs)(
                numbers, proxyUserName=owner, proxyUserGroup=group, executionLock=True
            )
        except Exception as error:  # pylint: disable=broad-except
            result = S_ERROR(f"{type(error).__name__}: {error}")
        if result["OK"]:
            return S_OK([int(n) for n in result["Value"] or []])
        refused = [int(n) for n in result.get("NonauthorizedJobIDs", [])]
        failed = [int(n) for n in result.get("FailedJobIDs", [])]
        details = []
        if refused:
            details.append(f"not authorised for {_span(refused)}")
        if failed:
            details.append(f"failed for {_span(failed)}")
        message = f"Cannot kill {label}: {result['Message']}" + (f" ({'; '.join(details)})" if details else "")
        error = S_ERROR(message)
        error.update(NonauthorizedJobIDs=refused, FailedJobIDs=failed)
        return error


def _killJobs(numbers):
    """Kill with the credentials in place (the owner's proxy)."""
    return WMSClient().killJob(numbers)


def _writeSecret(directory, name, content):
    """Write a file only its owner can read; return its path."""
    path = os.path.join(directory, name)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as stream:
        stream.write(content)
    return path


def _asList(name, value):
    """A CS value as a list of strings: the CS gives lists, a hand-written dict may give 'a, b'."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} must be a list of strings or a comma-separated string, not {value!r}")
    return [item.strip() for item in value if item.strip()]


def _jobNumber(jobID):
    """The DIRAC job number of a backend job ID ('123' or 123), None if it cannot be one."""
    if isinstance(jobID, bool):
        return None
    if isinstance(jobID, int):
        return jobID if jobID > 0 else None
    if isinstance(jobID, str) and jobID.isascii() and jobID.isdigit() and int(jobID) > 0:
        return int(jobID)
    return None


def _call(clientClass, method, *args):
    """Call a DIRAC client method; an exception becomes an S_ERROR."""
    try:
        return getattr(clientClass(), method)(*args)
    except Exception as error:  # pylint: disable=broad-except
        return S_ERROR(f"{type(error).__name__}: {error}")


def _intKeys(value):
    """DIRAC answers keyed by job number may come with str keys (JSON transport)."""
    return {int(key): item for key, item in (value or {}).items() if _jobNumber(key) is not None}


def _translate(number, state):
    """(agent status, message) of one job from its DIRAC state dict (None: unknown job)."""
    if state is None:
        return ATTEMPT_FAILED, f"DIRAC job {number} is unknown to the WMS (deleted, or never submitted there)"
    status = state.get("Status")
    details = [state.get(key) for key in ("MinorStatus", "ApplicationStatus")]
    message = "; ".join([f"DIRAC status {status}"] + [d for d in details if d and d != "Unknown"])
    if status not in STATUS_MAP:
        return ATTEMPT_FAILED, f"DIRAC job {number} has a status this backend does not know: {message}"
    return STATUS_MAP[status], message


def _span(numbers):
    """A short description of a list of job numbers for a message."""
    numbers = sorted(numbers)
    if len(numbers) <= 5:
        return ", ".join(str(n) for n in numbers)
    return f"{numbers[0]}..{numbers[-1]} ({len(numbers)} jobs)"
