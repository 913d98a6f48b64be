"""The DIRAC WMS job backend at the DIRAC client boundary: the exact calls it makes to the Job
and Dirac APIs, JobMonitoringClient, WMSClient and the proxy helper, and how it handles each
DIRAC error. Only those DIRAC names are replaced; the real DIRAC Job class is used once to check
that the calls make the JDL we mean."""
import io
import os
import stat
from unittest import mock

import pytest

from DIRAC import S_ERROR, S_OK
from DIRAC.Interfaces.API.Job import Job as RealDiracJob

from fake_user_proxy import FakeProxy
from ILCDIRAC.CalibrationSystem.JobBackends import DIRACJobBackend as module
from ILCDIRAC.CalibrationSystem.JobBackends.DIRACJobBackend import DIRACJobBackend
from ILCDIRAC.CalibrationSystem.JobBackends.JobDescription import JobDescription
from ILCDIRAC.CalibrationSystem.Utilities.WorkerCredential import CREDENTIAL_FILE, ENVIRONMENT_VARIABLE

def _job(command=None, owner="alice", group="ilc_user", environment=None):
    """A job as the agent describes it: the local worker path first."""
    if command is None:
        command = ["/opt/venv/bin/dirac-calibration-worker", "--calibration-id", "7", "--worker-id", "3",
                   "--polling-time", "2", "--max-polling-time", "10"]
    return JobDescription(7, 3, 11, owner, group, "/CN=alice", command, environment or {})


@pytest.fixture
def dirac(monkeypatch):
    """The DIRAC names the backend imports, replaced by mocks whose calls can be checked."""
    fakes = mock.Mock()
    fakes.proxy = FakeProxy()
    fakes.diracJob = mock.Mock(name="Job()")
    for setter in ("setName", "setJobGroup", "setCPUTime", "setExecutable", "setOutputSandbox", "setExecutionEnv",
                   "setInputData", "setInputSandbox", "setPlatform", "setDestination", "setBannedSites"):
        getattr(fakes.diracJob, setter).return_value = S_OK()
    fakes.insideProxy = {}

    def newJob():
        fakes.insideProxy["Job"] = fakes.proxy.active
        return fakes.diracJob

    def submitJob(job):
        fakes.insideProxy["submitJob"] = fakes.proxy.active
        return S_OK(1234)

    fakes.Job = mock.Mock(side_effect=newJob)
    fakes.Dirac = mock.Mock(name="Dirac")
    fakes.Dirac.return_value.submitJob.side_effect = submitJob
    fakes.JobMonitoringClient = mock.Mock(name="JobMonitoringClient")
    fakes.WMSClient = mock.Mock(name="WMSClient")
    for name in ("Job", "Dirac", "JobMonitoringClient", "WMSClient"):
        monkeypatch.setattr(module, name, getattr(fakes, name))
    monkeypatch.setattr(module, "executeWithUserProxy", fakes.proxy)
    return fakes


@pytest.fixture
def backend(dirac):
    return DIRACJobBackend()


# ---------------------------------------------------------------------- construction


def test_the_constructor_makes_no_dirac_call(dirac):
    options = {"JobCPUTime": "3600", "JobSite": "LCG.CERN.ch, LCG.DESY-HH.de", "Platform": "x86_64-el9"}
    backend = DIRACJobBackend(options)
    assert backend.name == "DIRAC"
    assert (backend.cpuTime, backend.sites, backend.platform) == (3600, ["LCG.CERN.ch", "LCG.DESY-HH.de"], "x86_64-el9")
    assert backend.outputSandbox == ["*.log", "*.xml", "*.txt"]
    assert backend.workerExecutable == "dirac-calibration-worker"
    for fake in (dirac.Job, dirac.Dirac, dirac.JobMonitoringClient, dirac.WMSClient):
        fake.assert_not_called()
    assert dirac.proxy.calls == []


@pytest.mark.parametrize(
    "options, complaint",
    [
        ({"JobCPUTim": 10}, "Unknown DIRAC job backend options ['JobCPUTim']"),
        ({"JobCPUTime": 0}, "JobCPUTime must be a positive"),
        ({"JobCPUTime": "a day"}, "JobCPUTime must be a positive"),
        ({"BannedSites": [3]}, "BannedSites must be a list of strings"),
        ({"WorkerExecutable": " "}, "WorkerExecutable must name"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(dirac, options, complaint):
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        DIRACJobBackend(options)


# ---------------------------------------------------------------------- submission


def test_submit_describes_the_worker_job_exactly(backend, dirac):
    result = backend.submit(_job())
    assert result == S_OK("1234")
    assert dirac.diracJob.method_calls == [
        mock.call.setName("PandoraCaloCalibration_calid_7_workerid_3_attempt_11"),
        mock.call.setJobGroup("PandoraCaloCalibration_calid_7"),
        mock.call.setCPUTime(86400),
        mock.call.setExecutable(
            "dirac-calibration-worker",
            arguments="--calibration-id 7 --worker-id 3 --polling-time 2 --max-polling-time 10",
            logFile="calibration_worker.log",
            includeInSandbox=False,
        ),
        mock.call.setOutputSandbox(["*.log", "*.xml", "*.txt"]),
    ]
    dirac.Dirac.return_value.submitJob.assert_called_once_with(dirac.diracJob)


def test_submit_runs_as_the_owner(backend, dirac):
    backend.submit(_job(owner="bob", group="ilc_prod"))
    assert dirac.proxy.calls == [{"proxyUserName": "bob", "proxyUserGroup": "ilc_prod", "executionLock": True}]
    assert dirac.insideProxy == {"Job": True, "submitJob": True}


def test_submit_applies_every_option_and_the_environment(dirac):
    backend = DIRACJobBackend({
        "JobCPUTime": 7200,
        "JobSite": ["LCG.CERN.ch"],
        "BannedSites": "LCG.Bad.org,LCG.Worse.org",
        "OutputSandbox": ["*.log"],
        "Platform": "x86_64-el9",
        "WorkerExecutable": "my-worker",
    })
    command = ["/local/worker", "--calibration-id", "7", "--worker-id", "3", "--label", "two words"]
    assert backend.submit(_job(command, environment={"CALIB": "1"}))["OK"]
    assert dirac.diracJob.method_calls == [
        mock.call.setName("PandoraCaloCalibration_calid_7_workerid_3_attempt_11"),
        mock.call.setJobGroup("PandoraCaloCalibration_calid_7"),
        mock.call.setCPUTime(7200),
        mock.call.setExecutable(
            "my-worker",
            arguments="--calibration-id 7 --worker-id 3 --label 'two words'",
            logFile="calibration_worker.log",
            includeInSandbox=False,
        ),
        mock.call.setOutputSandbox(["*.log"]),
        mock.call.setExecutionEnv({"CALIB": "1"}),
        mock.call.setPlatform("x86_64-el9"),
        mock.call.setDestination(["LCG.CERN.ch"]),
        mock.call.setBannedSites(["LCG.Bad.org", "LCG.Worse.org"]),
    ]


def test_the_worker_credential_goes_in_the_input_sandbox_never_in_the_jdl(backend, dirac):
    secret = "0123456789abcdef" * 4
    seen = {}

    def submitJob(job):
        (path,) = dirac.diracJob.setInputSandbox.call_args.args[0]
        seen.update(path=path, mode=stat.S_IMODE(os.stat(path).st_mode))
        with open(path) as stream:
            seen["content"] = stream.read()
        return S_OK(77)

    dirac.Dirac.return_value.submitJob.side_effect = submitJob
    assert backend.submit(_job(environment={ENVIRONMENT_VARIABLE: secret, "CALIB": "1"})) == S_OK("77")
    assert os.path.basename(seen["path"]) == CREDENTIAL_FILE
    assert (seen["content"], seen["mode"]) == (secret, 0o600)
    assert not os.path.exists(seen["path"]), "the credential file must not outlive the submission"
    dirac.diracJob.setExecutionEnv.assert_called_once_with({"CALIB": "1"})
    assert secret not in repr(dirac.diracJob.method_calls)


def test_a_credential_alone_sets_no_execution_environment(backend, dirac):
    assert backend.submit(_job(environment={ENVIRONMENT_VARIABLE: "secret"}))["OK"]
    dirac.diracJob.setExecutionEnv.assert_not_called()
    dirac.diracJob.setInputSandbox.assert_called_once()


def test_submit_declares_the_input_data_when_the_description_has_lfns(backend, dirac):
    lfns = ("/ilc/user/a/alice/gamma_1.slcio", "/ilc/user/a/alice/gamma_2.slcio")
    job = JobDescription(7, 3, 11, "alice", "ilc_user", "/CN=alice", ["/w", "--worker-id", "3"], {}, lfns)
    assert backend.submit(job)["OK"]
    dirac.diracJob.setInputData.assert_called_once_with(list(lfns))


def test_a_submission_refused_by_dirac_names_the_worker_and_dirac_message(backend, dirac):
    dirac.Dirac.return_value.submitJob.side_effect = None
    dirac.Dirac.return_value.submitJob.return_value = S_ERROR("Job submission not authorized")
    result = backend.submit(_job())
    assert not result["OK"]
    assert "calibration 7 worker 3 (attempt 11) as alice/ilc_user" in result["Message"]
    assert "Job submission not authorized" in result["Message"]


def test_an_exception_from_dirac_becomes_an_error(backend, dirac):
    dirac.Dirac.return_value.submitJob.side_effect = ConnectionError("WMS unreachable")
    result = backend.submit(_job())
    assert not result["OK"]
    assert "calibration 7 worker 3" in result["Message"]
    assert "ConnectionError: WMS unreachable" in result["Message"]


def test_no_owner_proxy_means_no_submission(backend, dirac):
    dirac.proxy.error = "Can't download proxy"
    result = backend.submit(_job())
    assert not result["OK"]
    assert "as alice/ilc_user: Can't download proxy" in result["Message"]
    dirac.Job.assert_not_called()
    dirac.Dirac.assert_not_called()


@pytest.mark.parametrize("owner, group", [("", "ilc_user"), ("alice", "")])
def test_a_job_without_owner_is_never_submitted_with_the_host_certificate(backend, dirac, owner, group):
    result = backend.submit(_job(owner=owner, group=group))
    assert not result["OK"]
    assert "owner and owner group must both be known" in result["Message"]
    assert dirac.proxy.calls == []
    dirac.Job.assert_not_called()


def test_a_job_attribute_dirac_refuses_stops_the_submission(dirac):
    dirac.diracJob.setDestination.return_value = S_ERROR("Specified site {'LCG.Nowhere.org'} is not in list")
    result = DIRACJobBackend({"JobSite": "LCG.Nowhere.org"}).submit(_job())
    assert not result["OK"]
    assert "LCG.Nowhere.org" in result["Message"]
    dirac.Dirac.assert_not_called()


@pytest.mark.parametrize("answer", [[1234, 1235], None, "abc", True])
def test_an_answer_that_is_not_one_job_id_is_an_error(backend, dirac, answer):
    dirac.Dirac.return_value.submitJob.side_effect = None
    dirac.Dirac.return_value.submitJob.return_value = S_OK(answer)
    result = backend.submit(_job())
    assert not result["OK"]
    assert "instead of a job ID" in result["Message"]


def test_the_real_dirac_job_accepts_the_calls_and_makes_the_jdl(backend, dirac, monkeypatch):
    """Real DIRAC Job class (no proxy, no CS needed to describe a job); only submitJob is faked."""
    monkeypatch.setattr(module, "Job", RealDiracJob)
    captured = {}

    def submitJob(job):
        captured["xml"] = job._toXML()
        captured["jdl"] = job._toJDL(jobDescriptionObject=io.StringIO(captured["xml"]))
        return S_OK(99)

    dirac.Dirac.return_value.submitJob.side_effect = submitJob
    secret = "fedcba9876543210" * 4
    assert backend.submit(_job(environment={"A": "1", ENVIRONMENT_VARIABLE: secret})) == S_OK("99")
    jdl = captured["jdl"]
    assert secret not in jdl and secret not in captured["xml"]
    assert f"{CREDENTIAL_FILE};" in jdl
    assert "JobName = PandoraCaloCalibration_calid_7_workerid_3_attempt_11;" in jdl
    assert "JobGroup = PandoraCaloCalibration_calid_7;" in jdl
    assert "CPUTime = 86400;" in jdl
    assert "ExecutionEnvironment = A=1;" in jdl
    for pattern in ("*.log", "*.xml", "*.txt", "calibration_worker.log"):
        assert f"{pattern}," in jdl or f"{pattern}\n" in jdl
    assert "dirac-calibration-worker" in captured["xml"]
    assert "--calibration-id 7 --worker-id 3 --polling-time 2 --max-polling-time 10" in captured["xml"]
    assert "UseServerCertificate" not in captured["xml"]


# ---------------------------------------------------------------------- monitoring

STATUS_TABLE = {
    "Submitting": "Waiting",
    "Received": "Waiting",
    "Checking": "Waiting",
    "Scouting": "Waiting",
    "Staging": "Waiting",
    "Waiting": "Waiting",
    "Matched": "Waiting",
    "Rescheduled": "Waiting",
    "Running": "Running",
    "Completing": "Running",
    "Completed": "Running",
    "Done": "Done",
    "Failed": "Failed",
    "Stalled": "Failed",
    "Deleted": "Failed",
    "Killed": "Killed",
}


def test_every_dirac_job_status_is_mapped():
    from DIRAC.WorkloadManagementSystem.Client.JobStatus import JOB_STATES

    assert set(STATUS_TABLE) == set(JOB_STATES)


@pytest.mark.parametrize("diracStatus, expected", sorted(STATUS_TABLE.items()))
def test_status_mapping(backend, dirac, diracStatus, expected):
    dirac.JobMonitoringClient.return_value.getJobsStates.return_value = S_OK(
        {12: {"Status": diracStatus, "MinorStatus": "Some minor status", "ApplicationStatus": "Unknown"}}
    )
    result = backend.getStatus(["12"])
    assert result == S_OK({"12": (expected, f"DIRAC status {diracStatus}; Some minor status")})
    dirac.JobMonitoringClient.return_value.getJobsStates.assert_called_once_with([12])


def test_status_message_keeps_the_application_status_and_str_keys_are_understood(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsStates.return_value = S_OK(
        {"40": {"Status": "Failed", "MinorStatus": "Application Finished With Errors", "ApplicationStatus": "exit 1"}}
    )
    status, message = backend.getStatus(["40"])["Value"]["40"]
    assert (status, message) == ("Failed", "DIRAC status Failed; Application Finished With Errors; exit 1")


def test_a_job_unknown_to_the_wms_has_failed(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsStates.return_value = S_OK({5: {"Status": "Running"}})
    statuses = backend.getStatus(["5", "6"])["Value"]
    assert statuses["5"][0] == "Running"
    assert statuses["6"] == ("Failed", "DIRAC job 6 is unknown to the WMS (deleted, or never submitted there)")


def test_an_unrecognised_dirac_status_has_failed_with_a_message(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsStates.return_value = S_OK({5: {"Status": "Teleported"}})
    status, message = backend.getStatus(["5"])["Value"]["5"]
    assert status == "Failed"
    assert "does not know" in message and "Teleported" in message


def test_job_ids_that_cannot_be_dirac_ids_fail_without_asking_dirac(backend, dirac):
    bad = ["abc", "", "-3", "0", "12a", "１２", "PandoraCaloCalibration_calid_7_workerid_3_attempt_11"]
    statuses = backend.getStatus(bad)["Value"]
    assert set(statuses) == set(bad)
    assert all(status == "Failed" and "is not a DIRAC job ID" in message for status, message in statuses.values())
    dirac.JobMonitoringClient.assert_not_called()


def test_statuses_are_asked_in_chunks_of_500(backend, dirac):
    monitoring = dirac.JobMonitoringClient.return_value
    monitoring.getJobsStates.side_effect = lambda ids: S_OK({i: {"Status": "Running"} for i in ids})
    jobIDs = [str(n) for n in range(1, 1202)]
    statuses = backend.getStatus(jobIDs)["Value"]
    assert [len(c.args[0]) for c in monitoring.getJobsStates.call_args_list] == [500, 500, 201]
    assert monitoring.getJobsStates.call_args_list[0].args[0] == list(range(1, 501))
    assert len(statuses) == 1201 and {s for s, _ in statuses.values()} == {"Running"}


def test_a_monitoring_error_is_an_error(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsStates.return_value = S_ERROR("Can't connect to DB")
    result = backend.getStatus(["12", "13"])
    assert not result["OK"]
    assert result["Message"] == "Cannot get the states of DIRAC jobs 12, 13: Can't connect to DB"


def test_a_monitoring_exception_is_an_error(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsStates.side_effect = OSError("no route to host")
    result = backend.getStatus(["12"])
    assert not result["OK"]
    assert "OSError: no route to host" in result["Message"]


def test_no_jobs_no_call(backend, dirac):
    assert backend.getStatus([]) == S_OK({})
    dirac.JobMonitoringClient.assert_not_called()


# ---------------------------------------------------------------------- kills


def _owners(dirac, owners):
    """WMS summary of the jobs: {number: (owner, group)}; str keys, as the JSON transport gives."""
    dirac.JobMonitoringClient.return_value.getJobsSummary.return_value = S_OK(
        {str(n): {"Owner": o, "OwnerGroup": g, "Status": "Running"} for n, (o, g) in owners.items()}
    )


def test_kill_runs_as_each_owner_and_returns_the_killed_ids(backend, dirac):
    _owners(dirac, {12: ("alice", "ilc_user"), 13: ("alice", "ilc_user"), 20: ("bob", "ilc_prod")})
    inside = []

    def killJob(numbers):
        inside.append(dirac.proxy.active)
        return S_OK([n for n in numbers if n != 13])  # 13 had already ended: DIRAC does not list it

    dirac.WMSClient.return_value.killJob.side_effect = killJob
    result = backend.kill(["12", "13", "20", "30"])
    assert result == S_OK(["12", "20"])
    dirac.JobMonitoringClient.return_value.getJobsSummary.assert_called_once_with([12, 13, 20, 30])
    assert dirac.WMSClient.return_value.killJob.call_args_list == [mock.call([12, 13]), mock.call([20])]
    assert dirac.proxy.calls == [
        {"proxyUserName": "alice", "proxyUserGroup": "ilc_user", "executionLock": True},
        {"proxyUserName": "bob", "proxyUserGroup": "ilc_prod", "executionLock": True},
    ]
    assert inside == [True, True]


def test_a_partial_kill_failure_reports_what_dirac_refused(backend, dirac):
    _owners(dirac, {12: ("alice", "ilc_user"), 13: ("alice", "ilc_user"), 14: ("alice", "ilc_user")})
    refusal = S_ERROR("Some jobs failed deletion")
    refusal.update(NonauthorizedJobIDs=[13], FailedJobIDs=[14])
    dirac.WMSClient.return_value.killJob.return_value = refusal
    result = backend.kill(["12", "13", "14"])
    assert not result["OK"]
    assert result["Message"] == (
        "Cannot kill DIRAC jobs 12, 13, 14 of alice/ilc_user: Some jobs failed deletion "
        "(not authorised for 13; failed for 14)"
    )
    assert (result["NonauthorizedJobIDs"], result["FailedJobIDs"], result["KilledJobIDs"]) == (["13"], ["14"], [])


def test_one_owner_failing_does_not_stop_the_kills_of_the_others(backend, dirac):
    _owners(dirac, {12: ("alice", "ilc_user"), 20: ("bob", "ilc_prod")})
    dirac.WMSClient.return_value.killJob.side_effect = [S_OK([12]), S_ERROR("Job 20 is not yours")]
    result = backend.kill(["12", "20"])
    assert not result["OK"]
    assert "of bob/ilc_prod: Job 20 is not yours" in result["Message"]
    assert result["KilledJobIDs"] == ["12"]


def test_kill_without_the_owner_proxy_is_an_error(backend, dirac):
    _owners(dirac, {12: ("alice", "ilc_user")})
    dirac.proxy.error = "Can't download proxy"
    result = backend.kill(["12"])
    assert result["Message"] == "Cannot kill DIRAC jobs 12 of alice/ilc_user: Can't download proxy"
    dirac.WMSClient.assert_not_called()


def test_kill_exception_is_an_error(backend, dirac):
    _owners(dirac, {12: ("alice", "ilc_user")})
    dirac.WMSClient.return_value.killJob.side_effect = TimeoutError("timed out")
    result = backend.kill(["12"])
    assert not result["OK"]
    assert "TimeoutError: timed out" in result["Message"]


def test_kill_when_the_owners_cannot_be_read(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsSummary.return_value = S_ERROR("Can't connect to DB")
    result = backend.kill(["12"])
    assert result["Message"] == "Cannot find the owners of DIRAC jobs 12 to kill them: Can't connect to DB"
    dirac.WMSClient.assert_not_called()


def test_a_job_without_owner_is_not_killed_with_the_host_certificate(backend, dirac):
    dirac.JobMonitoringClient.return_value.getJobsSummary.return_value = S_OK({12: {"Status": "Running"}})
    result = backend.kill(["12"])
    assert not result["OK"]
    assert "no owner and owner group" in result["Message"]
    assert dirac.proxy.calls == []
    dirac.WMSClient.assert_not_called()


def test_kill_refuses_an_id_that_cannot_be_a_dirac_job(backend, dirac):
    result = backend.kill(["12", "x"])
    assert result["Message"] == "Cannot kill DIRAC job 'x': not a DIRAC job ID (a positive integer)"
    dirac.JobMonitoringClient.assert_not_called()


def test_kill_of_nothing_asks_nothing(backend, dirac):
    assert backend.kill([]) == S_OK([])
    dirac.JobMonitoringClient.assert_not_called()
    dirac.WMSClient.assert_not_called()
