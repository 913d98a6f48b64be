"""The client's local side: which photon-training PandoraSettings file a request carries."""
import os

import pytest

from ILCDIRAC.CalibrationSystem.Client import CalibrationClient as client


@pytest.fixture
def config(monkeypatch):
    fresh = {"settings": {}, "output": {}, "numberOfEventsPerFile": {}, "photonTrainingSettingsFile": None}
    monkeypatch.setattr(client, "_config", fresh)
    return fresh


def test_training_settings_come_from_beside_the_steering_file_or_the_named_file(tmp_path):
    steering = tmp_path / "clicConfig" / "clicReconstruction.xml"
    steering.parent.mkdir()
    steering.write_text("<marlin/>")
    assert client._readTrainingSettings(None, str(steering)) == {"OK": True, "Value": None}
    beside = steering.parent / "CalibrationPandoraSettings" / "PandoraSettingsPhotonTraining.xml"
    beside.parent.mkdir()
    beside.write_text("<!-- beside -->\n<pandora/>\n")
    assert client._readTrainingSettings(None, str(steering))["Value"] == "<!-- beside -->\n<pandora/>\n"
    named = tmp_path / "mine.xml"
    named.write_bytes(b"<pandora>\xff</pandora>")
    assert client._readTrainingSettings(str(named), str(steering))["Value"].encode(errors="surrogateescape") == \
        b"<pandora>\xff</pandora>"
    missing = client._readTrainingSettings(str(tmp_path / "absent.xml"), str(steering))
    assert not missing["OK"]
    assert "Cannot read the photon-training PandoraSettings file" in missing["Message"]


def test_set_config_keeps_the_training_settings_file_out_of_the_settings(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = client.setConfig(photonTrainingSettingsFile="pst/training.xml", stopStage=2, stopPhase=5)
    assert result["OK"] and "photonTrainingSettingsFile" not in result["Value"]
    assert config["photonTrainingSettingsFile"] == os.path.join(str(tmp_path), "pst", "training.xml")
    assert config["settings"] == {"stopStage": 2, "stopPhase": 5}
    refused = client.setConfig(photonTrainingSettingsFile=3)
    assert not refused["OK"] and "photonTrainingSettingsFile must be the path" in refused["Message"]
    assert config["photonTrainingSettingsFile"] == os.path.join(str(tmp_path), "pst", "training.xml")


@pytest.mark.parametrize("key, message", [
    ("numberOfJob", "unknown setting 'numberOfJob': did you mean 'numberOfJobs'?"),
    ("outputPth", "unknown setting 'outputPth': did you mean 'outputPath'?"),
    ("marlinVersion", "unknown setting 'marlinVersion': it is called 'softwareVersion' here, rename it"),
    ("xyzzy", "; job keys: numberOfJobs, steeringFile, softwareVersion, outputPath, outputSE, "
              "photonTrainingSettingsFile"),
])
def test_a_misspelt_job_key_is_named_with_its_correction(key, message, tmp_path):
    settings = client.createCalibrationSettings()
    settings.update({key: 1, "steeringFile": str(tmp_path / "absent.xml"), "softwareVersion": "v1"})
    refused = client.CalibrationClient().createCalibration({}, {}, settings)
    assert not refused["OK"]
    assert refused["Message"].startswith(f"Calibration not created: unknown setting {key!r}: ")
    assert message in refused["Message"]


def test_set_config_takes_the_output_location_for_the_seed_call(config, monkeypatch):
    assert client.setConfig(outputPath="/data/calib", digitisationAccuracy=0.02)["OK"]
    assert client.setConfig(outputSE="CERN-DST-EOS")["OK"]
    assert config["output"] == {"outputPath": "/data/calib", "outputSE": "CERN-DST-EOS"}
    relative = client.setConfig(outputPath="calib")
    assert not relative["OK"] and "must be an absolute path" in relative["Message"]
    assert config["output"]["outputPath"] == "/data/calib"   # a refused call changes nothing
    sent = {}
    monkeypatch.setattr(client, "initializeDIRAC", lambda: None)
    monkeypatch.setattr(client, "serviceConfigured", lambda: True)
    monkeypatch.setattr(client.CalibrationClient, "createCalibration",
                        lambda self, files, counts, settings: sent.update(settings) or {"OK": True, "Value": 1})
    monkeypatch.setattr(client, "discover_input_files", lambda directories, counts: ({"gamma": ["g"]}, {"gamma": 1}))
    assert client.createCalibration("steering.xml", "v1", ["gamma/10"], 3)["Value"] == 1
    assert (sent["outputPath"], sent["outputSE"], sent["digitisationAccuracy"]) == ("/data/calib", "CERN-DST-EOS", 0.02)


@pytest.mark.parametrize("keywords, message", [
    ({"outputPth": "/x"}, "did you mean 'outputPath'?"),
    ({"marlinVersion": "v1"}, "it is called 'softwareVersion' here"),
    ({"numberOfJobs": 3}, "numberOfJobs is an argument of createCalibration, not a setting of setConfig"),
])
def test_set_config_refuses_misplaced_keys_with_a_hint(config, keywords, message):
    refused = client.setConfig(**keywords)
    assert not refused["OK"] and message in refused["Message"]


@pytest.mark.parametrize("path", ["LFN:/ilc/user/a/alice/clicReconstruction.xml", "lfn:/ilc/x.xml"])
def test_an_lfn_steering_file_is_refused_saying_how_to_fetch_it(path):
    refused = client._readLocalFile(path, "steeringFile", "the steering file", 100)
    assert not refused["OK"]
    assert f"steeringFile {path!r} is a grid file" in refused["Message"]
    assert f"dirac-dms-get-file {path[4:]}" in refused["Message"]


def test_without_a_configured_service_the_seed_call_says_what_to_do(config, monkeypatch):
    monkeypatch.setattr(client, "initializeDIRAC", lambda: None)
    monkeypatch.setattr(client, "serviceConfigured", lambda: False)
    refused = client.createCalibration("steering.xml", "v1", ["gamma/10"], 3)
    assert not refused["OK"] and refused["Message"] == client.NO_SERVICE_MESSAGE
    assert "source <workdir>/env.sh" in refused["Message"] and "dirac-proxy-init" in refused["Message"]
