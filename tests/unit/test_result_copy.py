"""Copying a finished calibration's results: into a directory of the agent's host (real files) or
onto a storage element as the owner (DIRAC's DataManager and proxy helper replaced at that
boundary, their calls checked)."""
import os
from unittest import mock

import pytest

from DIRAC import S_ERROR, S_OK

from fake_user_proxy import FakeProxy
from ILCDIRAC.CalibrationSystem.Utilities import ResultCopy as module
from ILCDIRAC.CalibrationSystem.Utilities.ResultCopy import copyResults


def _calibration(**changes):
    calibration = {"CalibrationID": 7, "OutputPath": "/ilc/user/a/alice/calib/", "OutputSE": "CERN-DST-EOS",
                   "Owner": "alice", "OwnerGroup": "ilc_user"}
    return dict(calibration, **changes)


# ---------------------------------------------------------------------- local directory


def test_local_copy_writes_every_file_into_calib_id(tmp_path):
    files = {"steeringFile.xml": b"<marlin/>", "calibration.json": b"{}"}
    result = copyResults(_calibration(OutputPath=str(tmp_path), OutputSE=""), files, "Local")
    assert result == S_OK(str(tmp_path / "calib7"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "calib7").iterdir()} == files


def test_a_repeated_local_copy_replaces_the_files(tmp_path):
    calibration = _calibration(OutputPath=str(tmp_path))
    copyResults(calibration, {"a.xml": b"old"}, "Local")
    assert copyResults(calibration, {"a.xml": b"new"}, "Local")["OK"]
    assert (tmp_path / "calib7" / "a.xml").read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "calib7").iterdir()) == ["a.xml"]


def test_a_local_directory_that_cannot_be_written_is_an_error(tmp_path):
    (tmp_path / "calib7").write_text("a file where the directory should be")
    result = copyResults(_calibration(OutputPath=str(tmp_path)), {"a.xml": b"1"}, "Local")
    assert not result["OK"]
    assert result["Message"].startswith(f"Cannot write the results into {tmp_path / 'calib7'}")


@pytest.mark.parametrize("storage", ["Local", "StorageElement"])
def test_file_names_leaving_the_directory_are_refused_before_anything_is_written(tmp_path, storage):
    result = copyResults(_calibration(OutputPath=str(tmp_path)), {"a.xml": b"1", "../b.xml": b"2"}, storage)
    assert result["Message"] == "Cannot copy the results of calibration 7: ['../b.xml'] are not plain file names"
    assert not list(tmp_path.iterdir())


def test_an_unknown_result_storage_is_refused():
    result = copyResults(_calibration(), {"a.xml": b"1"}, "Tape")
    assert result["Message"] == "Unknown ResultStorage 'Tape': use one of StorageElement, Local"


# ---------------------------------------------------------------------- storage element


@pytest.fixture
def proxy(monkeypatch):
    fake = FakeProxy()
    monkeypatch.setattr(module, "executeWithUserProxy", fake)
    return fake


@pytest.fixture
def dataManager(proxy, monkeypatch):
    """DataManager() replaced; putAndRegister records what the local file held when called."""
    fake = mock.Mock(name="DataManager")
    fake.uploaded = {}
    fake.paths = []
    fake.insideProxy = []

    def putAndRegister(lfn, fileName, diracSE, overwrite=False):
        with open(fileName, "rb") as stream:
            fake.uploaded[lfn] = stream.read()
        fake.paths.append(fileName)
        fake.insideProxy.append(proxy.active)
        return S_OK({"Successful": {lfn: {"put": 0.1, "register": 0.1}}, "Failed": {}})

    fake.return_value.putAndRegister.side_effect = putAndRegister
    monkeypatch.setattr(module, "DataManager", fake)
    return fake


def test_results_are_stored_and_registered_as_the_owner(proxy, dataManager):
    files = {"calibration.json": b"{}", "steeringFile.xml": b"<marlin/>", "plot.png": b"\x89PNG"}
    result = copyResults(_calibration(), files, "StorageElement")
    assert result["OK"], result["Message"]
    assert result["Value"] == "/ilc/user/a/alice/calib/calib7"
    calls = dataManager.return_value.putAndRegister.call_args_list
    assert [(c.args[0], c.args[2], c.kwargs) for c in calls] == [
        (f"/ilc/user/a/alice/calib/calib7/{name}", "CERN-DST-EOS", {"overwrite": True}) for name in sorted(files)
    ]
    assert dataManager.uploaded == {f"/ilc/user/a/alice/calib/calib7/{n}": c for n, c in files.items()}
    assert proxy.calls == [{"proxyUserName": "alice", "proxyUserGroup": "ilc_user", "executionLock": True}]
    assert dataManager.insideProxy == [True, True, True]
    dataManager.assert_called_once_with()
    assert not any(os.path.exists(path) for path in dataManager.paths)


def test_a_failed_upload_names_the_file_and_dirac_message(proxy, dataManager):
    dataManager.return_value.putAndRegister.side_effect = [
        S_OK({"Successful": {}, "Failed": {"x": {"register": {}}}}),
        S_ERROR("Failed to put file to Storage Element. SE is banned"),
    ]
    result = copyResults(_calibration(), {"a.xml": b"1", "b.xml": b"2"}, "StorageElement")
    assert result["Message"] == (
        "Cannot copy the results of calibration 7 to /ilc/user/a/alice/calib/calib7 on CERN-DST-EOS as alice/ilc_user: "
        "a.xml: stored but not registered in the file catalogue; "
        "b.xml: Failed to put file to Storage Element. SE is banned"
    )


def test_an_exception_while_copying_is_an_error(proxy, dataManager):
    dataManager.side_effect = RuntimeError("no file catalogue configured")
    result = copyResults(_calibration(), {"a.xml": b"1"}, "StorageElement")
    assert not result["OK"]
    assert "RuntimeError: no file catalogue configured" in result["Message"]


@pytest.mark.parametrize(
    "changes, complaint",
    [
        ({"OutputPath": "relative/path"}, "must be an absolute LFN"),
        ({"OutputSE": ""}, "the SE must be named"),
        ({"Owner": ""}, "owner and owner group must both be known"),
    ],
)
def test_results_that_cannot_be_copied_safely_are_refused(proxy, dataManager, changes, complaint):
    result = copyResults(_calibration(**changes), {"a.xml": b"1"}, "StorageElement")
    assert not result["OK"]
    assert complaint in result["Message"]
    assert proxy.calls == []
    dataManager.assert_not_called()


def test_no_owner_proxy_no_copy(proxy, dataManager):
    proxy.error = "Can't download proxy"
    result = copyResults(_calibration(), {"a.xml": b"1"}, "StorageElement")
    assert result["Message"].endswith("as alice/ilc_user: Can't download proxy")
    dataManager.assert_not_called()
