"""An agent the service does not authorise fails its cycle, instead of logging 'Cycle was
successful' while no calibration moves. The DB and the service client are replaced by fakes
answering as the real ones do; the agent's own code runs."""
from DIRAC import S_ERROR, S_OK, gLogger
from DIRAC.Core.Utilities import DErrno

from ILCDIRAC.CalibrationSystem.Agent.CalibrationAgent import CalibrationAgent

REFUSED = S_ERROR(DErrno.ENOAUTH, "Unauthorized query")


class FakeDB:
    """One running calibration whose only worker never had a job."""

    def __init__(self, running):
        self.running = running

    def getCalibrations(self, statuses):
        return S_OK([{"CalibrationID": 3, "NumberOfJobs": 1, "Step": 0, "Settings": {}}] if self.running and
                    statuses == ["Running"] else [])

    def getNewestAttempts(self, calibrationID):
        return S_OK({0: None})

    def countFailedAttempts(self, calibrationID):
        return S_OK(0)

    def getResubmissionRequests(self, calibrationID):
        return S_OK(set())

    def getEndedCalibrationsWithLiveJobs(self, statuses):
        return S_OK([])


class FakeService:
    def __init__(self, advance, credential):
        self.answers = {"checkForStepIncrement": advance, "getWorkerCredential": credential}

    def checkForStepIncrement(self):
        return self.answers["checkForStepIncrement"]

    def getWorkerCredential(self, calibrationID):
        return self.answers["getWorkerCredential"]


def _agent(running, advance, credential=S_OK("credential")):
    agent = CalibrationAgent.__new__(CalibrationAgent)  # no DIRAC agent machinery: execute() only
    agent.log = gLogger.getSubLogger("test_agent_authorisation")
    agent.calibrationDB = FakeDB(running)
    agent.serviceClient = FakeService(advance, credential)
    agent.resultStorage = "Local"
    agent.maxFailedAttemptsPerJob = agent.resubmissionFraction = 1.0
    return agent


def test_a_cycle_the_service_refuses_fails_and_says_what_to_do():
    result = _agent(running=False, advance=REFUSED).execute()
    assert not result["OK"]
    assert result["Message"].startswith("The Calibration service refuses this agent (Unauthorized query")
    assert "TrustedHost" in result["Message"]


def test_a_refused_worker_credential_fails_the_cycle_too():
    result = _agent(running=True, advance=S_OK({}), credential=REFUSED).execute()
    assert not result["OK"]
    assert "TrustedHost" in result["Message"]


def test_other_service_errors_are_logged_and_the_cycle_goes_on():
    assert _agent(running=False, advance=S_ERROR("Cannot connect to the service")).execute() == S_OK()


def test_an_authorised_idle_cycle_succeeds():
    assert _agent(running=False, advance=S_OK({})).execute() == S_OK()
