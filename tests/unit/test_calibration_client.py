"""The client's local side: which photon-training PandoraSettings file a request carries."""
import os

import pytest

from ILCDIRAC.CalibrationSystem.Client import CalibrationClient as client


@pytest.fixture
def config(monkeypatch):
    fresh = {"settings": {}, "numberOfEventsPerFile": {}, "photonTrainingSettingsFile": None}
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
