"""What dirac-calibration-result writes and prints, without a service: the marking of a result
that is not final and its advice, the output directory that never mixes two results, and the
comparison table."""
import json

import pytest

from ILCDIRAC.CalibrationSystem.Client.ResultComparison import comparisonRows, comparisonTable
from ILCDIRAC.CalibrationSystem.Client.ResultDirectory import OutputDirectoryError, writeResultDirectory
from ILCDIRAC.CalibrationSystem.Procedure.failure_advice import failure_advice
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import resultFiles

SETTINGS = {"digitisationAccuracy": 0.02, "pandoraPFAAccuracy": 0.025, "nMaxIterationsPerPhase": 3}


def step(number, stage, phase, deviation=None, iteration=1):
    metrics = None if deviation is None else {"maxRelativeDeviation": deviation, "accuracy": 0.02}
    return {"Step": number, "Stage": stage, "Phase": phase, "PhaseIteration": iteration,
            "Parameters": {"CalibrECAL": [40.0 + number, 80.0]}, "Metrics": metrics}


CAPPED = [step(1, 1, 0, 0.20), step(2, 1, 0, 0.052, 2), step(3, 1, 0, 0.031, 3)]
CAP_MESSAGE = ("ECalDigi did not converge within nMaxIterationsPerPhase=3 iterations (stage 1, phase 0 (ECalDigi), "
               "step 3); the constants reached so far are kept")


def result(status="Finished", message="Finished after stage 1, phase 0 (ECalDigi), step 3", history=CAPPED, **extra):
    return {"calibrationID": 7, "status": status, "statusMessage": message, "parameters": {"CalibrECAL": [43.0, 80.0]},
            "steeringFile": "<marlin/>", "steeringFileInput": "<marlin>in</marlin>", "settings": SETTINGS,
            "history": history, "events": [], "files": {"step001_ecal.png": "png"},
            "uncertainties": {"CalibrECAL": [0.2, 0.4]}, "statisticsLimited": [], **extra}


# ---------------------------------------------------------------- advice


def test_iteration_cap_advice_names_the_deviations_and_the_setting_to_relax():
    advice = failure_advice(7, "Failed", CAP_MESSAGE, CAPPED, SETTINGS, "steeringFile_NOT_FINAL.xml")
    assert "phase 0 (ECalDigi) reached a deviation of 3.10%" in advice[0]
    assert "every step: 20.00%, 5.20%, 3.10%" in advice[0] and "digitisationAccuracy=0.02" in advice[0]
    assert "Relax digitisationAccuracy to 0.038 or more" in advice[1]   # 1.2 x the lowest deviation, rounded up
    assert "raise nMaxIterationsPerPhase (now 3)" in advice[1]
    assert advice[2].startswith("To go on from where it stopped, resume it from its last completed step: "
                                "dirac-calibration-resume 7 (--set NAME=VALUE")
    assert "create a calibration from steeringFile_NOT_FINAL.xml" in advice[2]
    assert "startStage=1 and startPhase=0" in advice[2]


def test_hadronic_phase_advice_names_the_pandora_accuracy():
    history = [step(1, 3, 4, 0.04), step(2, 3, 4, 0.033, 2)]
    advice = failure_advice(7, "Failed", CAP_MESSAGE, history, SETTINGS, "f.xml")
    assert "against pandoraPFAAccuracy=0.025" in advice[0] and "Relax pandoraPFAAccuracy to 0.04 " in advice[1]


@pytest.mark.parametrize("status, message, expected", [
    ("Failed", "Analysis of stage 1, phase 0 (ECalDigi), step 1 failed: no peak", "look at the plots of its last step"),
    ("Failed", "5 job attempts failed (limit 4); see the job outputs", "read the outputs of the failed jobs"),
    ("Killed", "Killed by alice: wrong steering file", "To go on from where it was killed"),
])
def test_other_endings_get_their_own_advice(status, message, expected):
    advice = failure_advice(7, status, message, [step(1, 1, 0)], SETTINGS, "f.xml")
    assert expected in " ".join(advice)


def test_a_finished_calibration_needs_no_advice():
    assert failure_advice(7, "Finished", "Finished after ...", CAPPED, SETTINGS, "f.xml") == []


# ---------------------------------------------------------------- marking


def test_a_finished_result_is_final_and_lists_its_files():
    files = resultFiles(result())
    assert "steeringFile.xml" in files and "NOT_FINAL.txt" not in files
    summary = json.loads(files["calibration.json"])
    assert summary["final"] is True and summary["advice"] == []
    assert summary["files"] == sorted(files)


def test_a_failed_result_is_marked_not_final_with_reason_and_advice():
    files = resultFiles(result("Failed", CAP_MESSAGE))
    assert "steeringFile.xml" not in files
    assert files["steeringFile_NOT_FINAL.xml"] == b"<marlin/>"
    marker = files["NOT_FINAL.txt"].decode()
    assert marker.startswith(f"Calibration 7 is Failed: {CAP_MESSAGE}.\nThese are NOT its final constants")
    assert "Relax digitisationAccuracy to 0.038" in marker
    summary = json.loads(files["calibration.json"])
    assert summary["final"] is False and summary["statusMessage"] == CAP_MESSAGE
    assert summary["advice"] == marker.splitlines()[2:]
    assert summary["files"] == sorted(files)


# ---------------------------------------------------------------- output directory


def write(directory, calibrationID, names, replace=False):
    files = resultFiles(dict(result(), calibrationID=calibrationID, files={name: "x" for name in names}))
    return writeResultDirectory(str(directory), files, calibrationID, replace)


def test_writing_into_a_new_directory_creates_it(tmp_path):
    written = write(tmp_path / "a" / "b", 7, ["step001_ecal.png"])
    assert {name for name, _ in written} == {path.name for path in (tmp_path / "a" / "b").iterdir()}


def test_another_calibrations_result_is_refused_and_left_untouched(tmp_path):
    write(tmp_path, 7, ["step001_ecal.png", "step040_hadronic.png", "newPandoraLikelihoodData.xml"])
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(OutputDirectoryError, match=r"holds the result of calibration 7: choose another --output-dir, "
                                                   r"or add --replace"):
        write(tmp_path, 8, ["step001_ecal.png"])
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_replace_removes_the_stale_files_of_the_other_result_only(tmp_path):
    write(tmp_path, 7, ["step001_ecal.png", "step040_hadronic.png", "newPandoraLikelihoodData.xml"])
    (tmp_path / "notes.txt").write_text("mine")
    written = write(tmp_path, 8, ["step001_ecal.png"], replace=True)
    assert {path.name for path in tmp_path.iterdir()} == {name for name, _ in written} | {"notes.txt"}
    assert json.loads((tmp_path / "calibration.json").read_text())["calibrationID"] == 8


def test_the_same_calibration_is_written_again_without_replace(tmp_path):
    write(tmp_path, 7, ["step001_ecal.png", "old.png"])
    write(tmp_path, 7, ["step001_ecal.png"])
    assert not (tmp_path / "old.png").exists()


def test_files_of_no_result_are_not_overwritten_without_replace(tmp_path):
    (tmp_path / "steeringFile.xml").write_text("my own")
    with pytest.raises(OutputDirectoryError, match="already holds steeringFile.xml, which are not part of a"):
        write(tmp_path, 7, [])
    assert (tmp_path / "steeringFile.xml").read_text() == "my own"
    write(tmp_path, 7, [], replace=True)
    assert (tmp_path / "steeringFile.xml").read_text() == "<marlin/>"


@pytest.mark.parametrize("content", ["{", '{"calibrationID": 3}', '{"calibrationID": 3, "files": ["../x"]}'])
def test_an_unknown_calibration_json_is_refused_even_with_replace(tmp_path, content):
    (tmp_path / "calibration.json").write_text(content)
    with pytest.raises(OutputDirectoryError, match="yourself"):
        write(tmp_path, 7, [], replace=True)


def test_a_file_as_output_directory_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputDirectoryError, match="is a file, not a directory"):
        write(tmp_path / "f", 7, [])


# ---------------------------------------------------------------- comparison


def test_comparison_rows_split_vectors_and_show_missing_values():
    rows = comparisonRows({"CalibrECAL": [44.0, 88.0], "HCalToMipCalibration": 35.0},
                          {"CalibrECAL": [40.0, 80.0], "MuonToMipCalibration": 0.0})
    assert rows == [
        ("CalibrECAL[0]", "44", "40", "+10.00%", "-"),
        ("CalibrECAL[1]", "88", "80", "+10.00%", "-"),
        ("HCalToMipCalibration", "35", "-", "-", "-"),
        ("MuonToMipCalibration", "-", "0", "-", "-"),
    ]


def test_comparison_in_units_of_the_combined_uncertainty():
    rows = comparisonRows({"ECalToEMGeVCalibration": 1.03}, {"ECalToEMGeVCalibration": 1.0},
                          {"ECalToEMGeVCalibration": 0.012}, {"ECalToEMGeVCalibration": 0.016})
    assert rows == [("ECalToEMGeVCalibration", "1.03", "1", "+3.00%", "+1.5")]   # 0.03 / hypot(0.012, 0.016)


def test_comparison_table_has_the_uncertainty_column_only_with_uncertainties():
    plain = comparisonTable({"A": 2.0}, {"A": 1.0}).splitlines()
    assert plain[0].split() == ["Constant", "This", "Reference", "Difference"]
    assert plain[2].split() == ["A", "2", "1", "+100.00%"]
    withErrors = comparisonTable({"A": 2.0}, {"A": 1.0}, {"A": 0.5}).splitlines()
    assert withErrors[0].split()[-1] == "Difference/uncertainty" and withErrors[2].split()[-1] == "+2.0"
