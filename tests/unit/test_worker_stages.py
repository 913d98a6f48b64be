"""The worker's stage handling: PandoraSettings of the training (stage 2) and of the merged
likelihood (stage 3), the likelihood fetched once, and the choice of the reconstruction."""
import os
from pathlib import Path

import pytest
from DIRAC import S_ERROR, S_OK

from pandora_photon_reader import read_photon_settings
from test_worker import FakeReconstruction, FakeService, _parameterSet, _worker, clock  # noqa: F401

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError
from ILCDIRAC.CalibrationSystem.Procedure.steering import processor_parameter
from ILCDIRAC.CalibrationSystem.Worker import reconstruction
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct as builtin
from ILCDIRAC.CalibrationSystem.Worker.marlin import MarlinReconstruction


HERE = Path(__file__).parent
TRAINING = (HERE / "pandora_settings_training_12ebin.xml").read_bytes()
DEFAULT = (HERE / "pandora_settings_default_cld.xml").read_bytes()


class LikelihoodService(FakeService):
    """Serves the photon-training settings with the setup, and the merged likelihood after
    ``unavailable`` refusals."""

    def __init__(self, steps, unavailable=0, training=TRAINING):
        super().__init__(steps)
        self.unavailable = unavailable
        self.training = training

    def getCalibrationSetup(self, calibrationID, credential):
        setup = super().getCalibrationSetup(calibrationID, credential)
        training = None if self.training is None else self.training.decode()
        return S_OK(dict(setup["Value"], photonTrainingSettings=training))

    def getNewPhotonLikelihood(self, calibrationID, credential):
        self.calls.append(("getNewPhotonLikelihood", calibrationID))
        if self.unavailable:
            self.unavailable -= 1
            return S_ERROR("no merged photon likelihood yet")
        return S_OK("<NSignalEvents>1 2</NSignalEvents>")


def _stage(step, stage):
    return dict(_parameterSet(step), currentStage=stage)


def _pandora_settings(steering):
    return processor_parameter(steering, "MyDDMarlinPandora", "PandoraSettingsXmlFile")


def test_stage_2_uses_training_settings_and_stage_3_the_merged_likelihood(clock, tmp_path):
    """Stage 2: the calibration's training settings, stage 3: the settings the steering file names
    (PandoraSettingsDefault.xml, found in the work directory as Marlin finds it); in both only
    HistogramFile differs from the original."""
    (tmp_path / "PandoraSettingsDefault.xml").write_bytes(DEFAULT)
    service = LikelihoodService([_stage(0, 2), _stage(1, 3), _stage(2, 3)], unavailable=2)
    reconstruction = FakeReconstruction()

    assert _worker(service, clock, tmp_path, reconstruction).run()["OK"]

    training, stage3, again = (_pandora_settings(s) for s in reconstruction.steerings)
    assert training == str(tmp_path / "PandoraSettingsPhotonTraining.xml")
    likelihood = str(tmp_path / "PandoraLikelihoodDataPhotonTraining.xml")
    assert Path(training).read_bytes() == TRAINING.replace(b"PandoraLikelihoodData12EBin.xml", likelihood.encode())
    algorithm, = read_photon_settings(Path(training).read_bytes())
    assert (algorithm["make_pdf_histograms"], algorithm["n_energy_bins"]) == (True, 12)
    assert stage3 == again == str(tmp_path / "PandoraSettingsCalibration.xml")
    merged = str(tmp_path / "newPhotonLikelihood.xml")
    assert Path(stage3).read_bytes() == DEFAULT.replace(b"PandoraSettingsCLD/PandoraLikelihoodData9EBin.xml",
                                                        merged.encode())
    assert read_photon_settings(Path(stage3).read_bytes()) == [{"histogram_file": merged,
                                                                "make_pdf_histograms": False}]
    assert open(merged).read() == "<NSignalEvents>1 2</NSignalEvents>"
    assert len([c for c in service.calls if c[0] == "getNewPhotonLikelihood"]) == 3  # 2 waits, then once
    root_file = processor_parameter(reconstruction.steerings[0], "MyPfoAnalysis", "RootFile")
    assert root_file == os.path.join(str(tmp_path), "pfoAnalysis.root")


def test_steps_collect_the_calibration_details_whatever_the_users_processor_says(clock, tmp_path, monkeypatch):
    import test_worker

    details = '"CollectCalibrationDetails" type="int">'
    monkeypatch.setattr(test_worker, "TEMPLATE", test_worker.TEMPLATE.replace(details + "1<", details + "0<"))
    reconstruction = FakeReconstruction()
    assert _worker(FakeService([_parameterSet(0)]), clock, tmp_path, reconstruction).run()["OK"]
    assert processor_parameter(reconstruction.steerings[0], "MyPfoAnalysis", "CollectCalibrationDetails") == "1"
@pytest.mark.parametrize("stage, training, message", [
    (2, None, "holds no photon-training PandoraSettings"),
    (3, TRAINING, "'PandoraSettingsDefault.xml' that the steering file names is not readable on this node"),
])
def test_a_stage_without_its_pandora_settings_fails_the_worker_clearly(clock, tmp_path, stage, training, message):
    service = LikelihoodService([_stage(0, stage)], training=training)
    result = _worker(service, clock, tmp_path, FakeReconstruction()).run()
    assert not result["OK"] and message in result["Message"]
    assert not [call for call in service.calls if call[0] == "submitResult"]


def test_stage_1_keeps_the_configured_pandora_settings(clock, tmp_path):
    reconstruction = FakeReconstruction()
    assert _worker(FakeService([_parameterSet(0)]), clock, tmp_path, reconstruction).run()["OK"]
    assert _pandora_settings(reconstruction.steerings[0]) == "PandoraSettingsDefault.xml"


def test_reconstruction_is_chosen_by_the_input_files(tmp_path):
    setup = {"softwareVersion": "ILCSoft-2019-04-01_gcc62"}
    synthetic = {"gamma": [["/d/gamma_10GeV_000.synthetic.json"], 0, 10]}
    lcio = {"gamma": [["/d/gamma_10GeV_000.slcio"], 0, 10]}
    assert reconstruction.choose_reconstruction("auto", setup, synthetic, str(tmp_path)) is builtin
    assert isinstance(reconstruction.choose_reconstruction("auto", setup, lcio, str(tmp_path)), MarlinReconstruction)
    assert reconstruction.choose_reconstruction("builtin", setup, lcio, str(tmp_path)) is builtin
    with pytest.raises(SettingsError, match="Unknown reconstruction 'geant4'"):
        reconstruction.choose_reconstruction("geant4", setup, synthetic, str(tmp_path))
