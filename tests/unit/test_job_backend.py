"""Job backends are found by name, as DIRAC finds its plug-ins, and configured from the agent's options."""
import pytest

from DIRAC import S_ERROR, S_OK

from ILCDIRAC.CalibrationSystem.JobBackends import JobBackend as module
from ILCDIRAC.CalibrationSystem.JobBackends.DIRACJobBackend import DIRACJobBackend
from ILCDIRAC.CalibrationSystem.JobBackends.JobBackend import JobBackend, loadJobBackend
from ILCDIRAC.CalibrationSystem.JobBackends.LocalJobBackend import LocalJobBackend


def _options(values):
    """An am_getOption: the given values, else the default; records what was asked."""
    asked = []

    def getOption(name, default):
        asked.append(name)
        return values.get(name, default)

    getOption.asked = asked
    return getOption


def test_the_dirac_backend_is_loaded_by_name_with_the_agents_options(tmp_path):
    getOption = _options({"JobCPUTime": "3600", "BannedSites": "LCG.A.org, LCG.B.org"})
    result = loadJobBackend("DIRAC", getOption, str(tmp_path))
    assert result["OK"], result["Message"]
    backend = result["Value"]
    assert type(backend) is DIRACJobBackend and backend.name == "DIRAC"
    assert (backend.cpuTime, backend.bannedSites) == (3600, ["LCG.A.org", "LCG.B.org"])
    assert sorted(getOption.asked) == sorted(DIRACJobBackend.OPTIONS)


def test_the_local_backend_is_loaded_by_name(tmp_path):
    result = loadJobBackend("Local", _options({}), str(tmp_path))
    assert result["OK"], result["Message"]
    assert type(result["Value"]) is LocalJobBackend
    assert result["Value"].directory == str(tmp_path / "jobs")


@pytest.mark.parametrize("name", ["Condor", "Dirac"])
def test_an_unknown_backend_is_refused_with_where_it_was_looked_for(tmp_path, name):
    result = loadJobBackend(name, _options({}), str(tmp_path))
    assert result["Message"].startswith(
        f"Unknown JobBackend {name!r}: no class {name}JobBackend in CalibrationSystem.JobBackends.{name}JobBackend"
    )


@pytest.mark.parametrize("name", ["", "../Local", "Local; rm", None])
def test_a_name_that_cannot_be_a_backend_is_refused(tmp_path, name):
    result = loadJobBackend(name, _options({}), str(tmp_path))
    assert result["Message"] == f"JobBackend {name!r} is not a backend name (e.g. DIRAC or Local)"


def test_a_class_that_is_not_a_job_backend_is_refused(tmp_path, monkeypatch):
    class Loader:
        def loadObject(self, importString, objName):
            return S_OK(dict) if importString == "CalibrationSystem.JobBackends.PlainJobBackend" else S_ERROR("no")

    monkeypatch.setattr(module, "ObjectLoader", Loader)
    result = loadJobBackend("Plain", _options({}), str(tmp_path))
    assert result["Message"] == "JobBackend 'Plain': Plain defines PlainJobBackend, but not as a subclass of JobBackend"


def test_unusable_options_are_refused_with_the_backends_message(tmp_path):
    result = loadJobBackend("DIRAC", _options({"JobCPUTime": "a day"}), str(tmp_path))
    assert result["Message"].startswith("DIRAC job backend options: JobCPUTime must be a positive number")


def test_a_backend_must_implement_the_whole_interface():
    class Incomplete(JobBackend):
        name = "Incomplete"

        def submit(self, job):
            return None

    with pytest.raises(TypeError, match="getStatus"):
        Incomplete()
