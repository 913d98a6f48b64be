"""One real local stack per test session: private MariaDB, test PKI, CalibrationService over
TLS and the CalibrationAgent running local worker processes. Stopped at the end of the session,
also when tests fail."""
import os
import time

import MySQLdb
import pytest

from ILCDIRAC.CalibrationSystem.LocalStack import demo
from ILCDIRAC.CalibrationSystem.LocalStack.stack import LocalStack
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

SOFTWARE_VERSION = demo.SOFTWARE_VERSION


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    local = LocalStack(tmp_path_factory.mktemp("stack"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def agent_stopped(stack):
    """No agent process for the module that asks for it: no worker job runs, and calibrations move
    only as the module makes them."""
    stack.stop_agent()
    try:
        yield
    finally:
        stack.start_agent()


@pytest.fixture(scope="session")
def samples(stack):
    """Synthetic samples of the built-in detector model: 4 files x 100 events per particle."""
    return write_samples(stack.workdir / "samples", events_per_file=100, files_per_sample=4)


@pytest.fixture(scope="session")
def clients(stack):
    """In-process CalibrationClient factories acting as alice, bob and the host."""
    import DIRAC

    os.environ["X509_CERT_DIR"] = str(stack.pki.ca_dir)
    DIRAC.initialize(require_auth=False, extra_config_files=[str(stack.cfg_file)])
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    return {
        "alice": lambda: CalibrationClient(proxyLocation=str(stack.pki.proxy("alice"))),
        "bob": lambda: CalibrationClient(proxyLocation=str(stack.pki.proxy("bob"))),
        "host": lambda: CalibrationClient(useCertificates=True),
    }


@pytest.fixture(scope="session")
def db(stack):
    """A direct connection to the CalibrationDB, to check what is (not) stored."""
    params = stack.db_params()
    connection = MySQLdb.connect(
        host=params["host"], port=int(params["port"]), user=params["user"], passwd=params["password"],
        db=params["dbname"], autocommit=True,
    )
    yield connection
    connection.close()


#: Settings that run only the ECal digitisation: quick calibrations for the robustness tests.
ECAL_ONLY = {"stopStage": 1, "stopPhase": 0}


def run_seed_snippet(stack, samples, jobs, settings=None, samples_used=("gamma", "muon")):
    """Create a calibration exactly as the user guide does, as alice."""
    directories = [samples["directories"][sample] for sample in samples_used]
    return demo.run_seed_snippet(stack, samples["steeringFile"], directories, jobs, settings)


def result_when_finished(client, calibrationID, timeout=240):
    """The result of a calibration once it has finished (it must not fail)."""
    def finished():
        result = client.getResult(calibrationID)
        if result["OK"]:
            return result
        assert "Running" in result["Message"], result["Message"]
        return None

    return wait_for(finished, timeout, interval=2, what=f"calibration {calibrationID} to finish")["Value"]


def wait_for(condition, timeout, interval=1.0, what="condition"):
    """Poll ``condition()`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
