"""An agent the service does not authorise fails its cycle, instead of logging 'Cycle was
successful' while no calibration moves. The agent needs the service for the worker credential of
the jobs it submits (it analyses steps with its own CalibrationDB). The DB and the service client
are replaced by fakes answering as the real ones do; the agent's own code runs."""
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

    def getEndedCalibrationsWithLiveJobs(self, statuses):
        return S_OK([])

    def getPendingPlots(self):
        return S_OK([])


class FakeService:
    def __init__(self, credential):
        self.credential = credential
        self.asked = 0

    def getWorkerCredential(self, calibrationID):
        self.asked += 1
        return self.credential


def _agent(running, credential):
    agent = CalibrationAgent.__new__(CalibrationAgent)  # no DIRAC agent machinery: execute() only
    agent.log = gLogger.getSubLogger("test_agent_authorisation")
    agent.calibrationDB = FakeDB(running)
    agent.serviceClient = FakeService(credential)
    agent.resultStorage = "Local"
    agent.maxFailedAttemptsPerJob = agent.resubmissionFraction = 1.0
    return agent


def test_a_refused_worker_credential_fails_the_cycle_and_says_what_to_do():
    agent = _agent(running=True, credential=REFUSED)
    result = agent.execute()
    assert agent.serviceClient.asked == 1
    assert not result["OK"]
    assert result["Message"].startswith("The Calibration service refuses this agent (Unauthorized query")
    assert "TrustedHost" in result["Message"]


def test_other_service_errors_skip_the_calibration_and_the_cycle_goes_on():
    agent = _agent(running=True, credential=S_ERROR("Cannot connect to the service"))
    assert agent.execute() == S_OK()
    assert agent.serviceClient.asked == 1


def test_a_cycle_that_needs_nothing_from_the_service_succeeds():
    agent = _agent(running=False, credential=REFUSED)
    assert agent.execute() == S_OK()
    assert agent.serviceClient.asked == 0
