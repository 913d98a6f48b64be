"""plan_calibration: what a calibration request must look like before anything is stored."""
import pathlib

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.creation import plan_calibration
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError

STEERING = (pathlib.Path(__file__).parent / "calibration_steering.xml").read_bytes()
FILES = {"gamma": [f"/data/gamma/10/g_{i}.slcio" for i in range(3)], "muon": ["/data/mu-/10/m_0.slcio"]}
COUNTS = {"gamma": 100, "muon": 100}


ECAL_ONLY = {"stopStage": 1, "stopPhase": 0}


def plan(**changes):
    arguments = dict(input_files=FILES, events_per_file=COUNTS, settings=ECAL_ONLY)
    job = dict(steeringFile=STEERING, softwareVersion="ILCSoft-2019-04-01_gcc62", numberOfJobs=7)
    for key, value in changes.items():
        if key in arguments:
            arguments[key] = value
        else:
            job[key] = value
    return plan_calibration(job=job, **arguments)


def test_a_good_request_is_planned_without_losing_events():
    result = plan()
    assert result.position == (1, 0)
    assert result.parameters["CalibrECAL"] == [37.5, 37.5]
    assert len(result.worker_input_data) == 7
    gamma = [data["gamma"] for data in result.worker_input_data]
    assert sum(n for _, _, n in gamma) == 300
    assert {n for _, _, n in gamma} == {42, 43}
    assert gamma[0] == [["/data/gamma/10/g_0.slcio"], 0, 43]
    assert result.settings["digitisationAccuracy"] == 0.05


def test_sample_keys_are_case_insensitive():
    result = plan(input_files={"Gamma": FILES["gamma"]}, events_per_file={"GAMMA": 100})
    assert set(result.input_files) == {"gamma"}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"numberOfJobs": "7"}, "numberOfJobs must be an integer"),
        ({"numberOfJobs": True}, "numberOfJobs must be an integer"),
        ({"numberOfJobs": 0}, "numberOfJobs must be between 1"),
        ({"numberOfJobs": 301}, "events"),
        ({"softwareVersion": ""}, "softwareVersion must be a non-empty string"),
        ({"softwareVersion": "v 1"}, "no spaces"),
        ({"softwareVersion": 3}, "softwareVersion must be a non-empty string"),
        ({"input_files": []}, "inputFiles must be a non-empty dict"),
        ({"input_files": {"muon": FILES["muon"]}, "events_per_file": {"muon": 100}}, "Missing input samples ['gamma']"),
        ({"input_files": {"gamma": FILES["gamma"], "photon": ["x"]}}, "unknown sample type 'photon'"),
        ({"input_files": {"gamma": []}, "events_per_file": {"gamma": 1}}, "must be a non-empty list"),
        ({"input_files": {"gamma": ["/a", "/a"]}, "events_per_file": {"gamma": 1}}, "more than once"),
        ({"input_files": {"gamma": ["/a", 3]}, "events_per_file": {"gamma": 1}}, "only non-empty file names"),
        ({"input_files": {"gamma": ["/a", "b.slcio"]}, "events_per_file": {"gamma": 1}}, "relative file names"),
        ({"events_per_file": {"gamma": 100}}, "give the number of events per file"),
        ({"events_per_file": {"gamma": 0, "muon": 1}}, "must be a positive integer"),
        ({"events_per_file": {"gamma": 2.5, "muon": 1}}, "must be a positive integer"),
        ({"settings": {"digitisationAccuracy": "0.05"}}, "digitisationAccuracy"),
        ({"settings": {"noSuchSetting": 1}}, "noSuchSetting"),
        ({"settings": {}}, "Missing input samples ['kaon', 'zuds']"),
        ({"settings": {"startStage": 2, "startPhase": 0}}, "is not a phase"),
        ({"steeringFile": b"<marlin>"}, "steering"),
        ({"steeringFile": b"<marlin/>"}, "no <execute> section"),
        ({"steeringFile": STEERING.replace(b'<processor name="MyDDCaloDigi"/>', b"")}, "does not run it"),
        ({"steeringFile": STEERING.replace(b"CalibrECAL", b"CalibrXXXX")}, "CalibrECAL"),
        ({"steeringFile": "<marlin/>"}, "steering file's content"),
        ({"outputPath": "relative/dir"}, "must be an absolute path"),
        ({"outputPath": "/ilc/user/a/../b"}, "without '..'"),
        ({"outputSE": "CERN SRM"}, "not a storage element"),
        ({"outputSE": 3}, "must be strings"),
        ({"priority": 3}, "unknown job options ['priority']"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(changes, message):
    with pytest.raises(ProcedureError, match=".*") as error:
        plan(**changes)
    assert message in str(error.value)


def test_a_steering_file_without_pfoanalysis_gets_one_and_the_users_bytes_are_kept():
    clic_like = (pathlib.Path(__file__).parent / "fixtures" / "clic_like_steering.xml").read_bytes()
    result = plan(steeringFile=clic_like)
    assert result.input_steering_file == clic_like
    assert b'<processor name="MyPfoAnalysis" type="PfoAnalysis">' in result.steering_file
    assert result.notes[0].startswith("added PfoAnalysis processor 'MyPfoAnalysis' after 'MyDDMarlinPandora'")
    assert result.parameters["CalibrECAL"] == [35.8411424188, 35.8411424188]


def test_a_steering_file_with_pfoanalysis_is_stored_as_given():
    result = plan()
    assert result.steering_file == result.input_steering_file == STEERING
    assert result.notes == ("checked PfoAnalysis processor 'MyPfoAnalysis': it runs after 'MyDDMarlinPandora' and "
                            "reads its PFOs 'PandoraPFOs'; every step sets its CollectCalibrationDetails to 1 and its "
                            "RootFile",)
# ---------------------------------------------------------------- photon-training PandoraSettings

TRAINING = (pathlib.Path(__file__).parent / "pandora_settings_training_12ebin.xml").read_bytes()
ALL_SAMPLES = dict(FILES, kaon=["/data/kaon0L/50/k_0.slcio"], zuds=["/data/zuds/91/z_0.slcio"])
ALL_COUNTS = dict(COUNTS, kaon=100, zuds=100)


def _with_training(**changes):
    return plan(input_files=ALL_SAMPLES, events_per_file=ALL_COUNTS, **changes)


@pytest.mark.parametrize("settings", [{}, {"startStage": 2, "startPhase": 5, "stopStage": 2, "stopPhase": 5},
                                      {"startStage": 1, "startPhase": 4, "stopStage": 3, "stopPhase": 0}])
def test_a_calibration_with_the_photon_training_keeps_its_settings(settings):
    assert _with_training(settings=settings, photonTrainingSettings=TRAINING).photon_training_settings == TRAINING


@pytest.mark.parametrize("settings", [ECAL_ONLY, {"startStage": 3, "startPhase": 0}])
def test_a_calibration_without_the_photon_training_needs_no_training_settings(settings):
    assert _with_training(settings=settings).photon_training_settings is None
    assert _with_training(settings=settings, photonTrainingSettings=b"<unused").photon_training_settings is None


@pytest.mark.parametrize("changes, message", [
    ({}, "the calibration runs the photon training (stage 2), which needs its PandoraSettings file: put"
         " PandoraSettingsPhotonTraining.xml into CalibrationPandoraSettings/ beside the steering file"),
    ({"photonTrainingSettings": TRAINING.replace(b"<NEnergyBins>12", b"<NEnergyBins>9")},
     "NEnergyBins is 9 but EnergyBinLowerEdges '0 0.2 0.5 1 1.5 2.5 5 10 20 35 50 75' gives 12 energy bins;"
     " Pandora refuses the mismatch: set NEnergyBins to 12"),
    ({"photonTrainingSettings": TRAINING.replace(b"<ShouldMakePdfHistograms>true", b"<ShouldMakePdfHistograms>0")},
     "ShouldMakePdfHistograms is 0; it must be true"),
    ({"photonTrainingSettings": TRAINING.decode()}, "must be the content of the photon-training PandoraSettings"),
])
def test_a_calibration_with_the_photon_training_is_refused_without_usable_training_settings(changes, message):
    with pytest.raises(ProcedureError) as error:
        _with_training(settings={}, **changes)
    assert message in str(error.value)
