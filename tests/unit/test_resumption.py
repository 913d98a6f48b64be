"""plan_resumption: which calibration, from which step and with which changes a resume may start."""
import datetime

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import SettingsError, StateError
from ILCDIRAC.CalibrationSystem.Procedure.procedure import Position, required_constants
from ILCDIRAC.CalibrationSystem.Procedure.resumption import completed_steps, plan_resumption
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings

SETTINGS = validate_settings({"stopStage": 1, "stopPhase": 1})
FILES = {"gamma": [f"/data/gamma/g_{i}.slcio" for i in range(3)], "kaon": ["/data/kaon0L/k_0.slcio"]}
COUNTS = {"gamma": 100, "kaon": 100}
ENDED = datetime.datetime(2026, 1, 1)


def _parameters(scale):
    return {name: scale for name in required_constants(SETTINGS)}


def _step(step, phase, iteration, ended=True):
    return {"Step": step, "Stage": 1, "Phase": phase, "PhaseIteration": iteration,
            "Parameters": _parameters(float(step + 1)), "EndTime": ENDED if ended else None}


#: A calibration killed during step 3: phase 0 took steps 0 and 1, phase 1 steps 2 and 3.
STEPS = [_step(0, 0, 1), _step(1, 0, 2), _step(2, 1, 1), _step(3, 1, 2, ended=False)]


def origin(**changes):
    calibration = {"CalibrationID": 12, "Status": "Killed", "Step": 3, "Settings": SETTINGS, "NumberOfJobs": 4,
                   "OutputPath": "", "OutputSE": ""}
    calibration.update(changes)
    return calibration


def plan(from_step=None, changes=None, steps=STEPS, training=False, **originChanges):
    return plan_resumption(origin(**originChanges), steps, FILES, COUNTS, training, from_step, changes or {})


def test_by_default_the_last_completed_step_runs_again_with_its_constants_and_iteration():
    result = plan()
    assert (result.from_step, result.position, result.iteration) == (2, Position(1, 1), 1)
    assert result.parameters == STEPS[2]["Parameters"]
    assert result.settings == SETTINGS
    assert (result.number_of_jobs, result.output_path, result.output_se) == (4, "", "")
    assert len(result.worker_input_data) == 4
    assert result.note == "Resumed from step 2 (stage 1, phase 1) of calibration 12"


def test_a_chosen_completed_step_and_allowed_changes_are_taken():
    result = plan(1, {"digitisationAccuracy": 0.02, "nMaxIterationsPerPhase": 5, "numberOfJobs": 3,
                      "outputPath": "/results/12"}, Status="Failed")
    assert (result.from_step, result.position, result.iteration) == (1, Position(1, 0), 2)
    assert result.settings["digitisationAccuracy"] == 0.02
    assert result.settings["nMaxIterationsPerPhase"] == 5
    assert result.settings["detectorModel"] == SETTINGS["detectorModel"]
    assert result.number_of_jobs == 3 and result.output_path == "/results/12"
    gamma = [data["gamma"] for data in result.worker_input_data]
    assert sum(n for _, _, n in gamma) == 300 and len(gamma) == 3
    assert "digitisationAccuracy=0.02" in result.note and "numberOfJobs=3" in result.note


def test_completed_steps_are_those_with_an_end_time():
    assert completed_steps(STEPS) == [0, 1, 2]


@pytest.mark.parametrize("status, words", [
    ("Running", ["still running (step 3)", "dirac-calibration-kill 12", "then resume"]),
    ("Finished", ["has finished", "nothing to resume", "new calibration"]),
])
def test_only_failed_or_killed_calibrations_resume(status, words):
    with pytest.raises(StateError) as error:
        plan(Status=status)
    assert all(word in str(error.value) for word in words), str(error.value)


@pytest.mark.parametrize("from_step, words", [
    (3, ["Step 3 of calibration 12 is not a completed step", "one of 0-2 (default: the last, 2)"]),
    (7, ["Step 7 of calibration 12 is not a completed step"]),
    ("2", ["must be an integer step number, not '2'"]),
    (True, ["must be an integer step number"]),
])
def test_the_step_must_be_a_completed_one(from_step, words):
    with pytest.raises(SettingsError) as error:
        plan(from_step)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_a_calibration_without_a_completed_step_cannot_resume():
    with pytest.raises(SettingsError, match="no completed step to resume from: create the calibration anew"):
        plan(steps=[_step(0, 0, 1, ended=False)])


@pytest.mark.parametrize("changes, words", [
    ({"detectorModel": "FCCee_o1_v04"}, ["detectorModel cannot change", "calibrated with it", "nMaxIterationsPerPhase"]),
    ({"nHcalLayers": 44, "startPhase": 1}, ["nHcalLayers, startPhase cannot change", "with them"]),
    ({"steeringFile": "/x.xml"}, ["steeringFile cannot change", "create a new calibration"]),
    ({"softwareVersion": "v2"}, ["softwareVersion cannot change"]),
    ({"nMaxIterationPerPhase": 5}, ["unknown setting 'nMaxIterationPerPhase'", "did you mean 'nMaxIterationsPerPhase'"]),
    ({"digitisationAccuracy": 2}, ["'digitisationAccuracy' = 2 is not allowed"]),
    ({"numberOfJobs": 0}, ["numberOfJobs must be between 1"]),
    ({"numberOfJobs": 500}, ["500 jobs requested but the 3 file(s) hold only 300 events"]),
    ({"outputPath": "relative/dir"}, ["outputPath 'relative/dir' must be an absolute path"]),
    ({"stopPhase": 0}, ["step 2 runs stage 1, phase 1, after the stop", "resume from an earlier step"]),
    ({"stopPhase": 2}, ["phases up to stage 1, phase 2 need the samples ['muon']", "stop earlier"]),
    ({"stopStage": 2, "stopPhase": 5}, ["need the samples ['muon', 'zuds']"]),
])
def test_changes_that_would_invalidate_the_constants_or_cannot_run_are_refused(changes, words):
    with pytest.raises(SettingsError) as error:
        plan(changes=changes)
    assert all(word in str(error.value) for word in words), str(error.value)


def test_a_fixed_setting_given_with_its_value_is_no_change():
    result = plan(changes={"detectorModel": SETTINGS["detectorModel"], "nHcalLayers": SETTINGS["nHcalLayers"]})
    assert result.settings == SETTINGS


def test_a_later_stop_needs_the_constants_the_calibration_read():
    files, counts = dict(FILES, muon=["/data/mu-/m_0.slcio"]), dict(COUNTS, muon=100)
    with pytest.raises(SettingsError) as error:
        plan_resumption(origin(), STEPS, files, counts, False, None, {"stopPhase": 3})
    assert "set ['CalibrHCALOther', 'ECalToEMGeVCalibration'" in str(error.value)
    assert "did not read from its steering file" in str(error.value)


def test_a_later_stop_through_the_photon_training_needs_its_settings():
    files = dict(FILES, muon=["/data/mu-/m.slcio"], zuds=["/data/z/z.slcio"])
    counts = dict(COUNTS, muon=100, zuds=100)
    everything = validate_settings({"stopStage": 3, "stopPhase": 4})
    steps = [dict(step, Parameters={name: 1.0 for name in required_constants(everything)}) for step in STEPS]
    changes = {"stopStage": 2, "stopPhase": 5}
    with pytest.raises(SettingsError, match="photon training .* created without"):
        plan_resumption(origin(), steps, files, counts, False, None, changes)
    assert plan_resumption(origin(), steps, files, counts, True, None, changes).settings["stopStage"] == 2
