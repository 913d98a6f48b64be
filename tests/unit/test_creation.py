"""plan_calibration: what a calibration request must look like before anything is stored."""
import pathlib

import pytest

from ILCDIRAC.CalibrationSystem.Procedure.creation import plan_calibration
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError

STEERING = (pathlib.Path(__file__).parent / "calibration_steering.xml").read_bytes()
FILES = {"gamma": [f"/data/gamma/10/g_{i}.slcio" for i in range(3)], "muon": ["/data/mu-/10/m_0.slcio"]}
COUNTS = {"gamma": 100, "muon": 100}


def plan(**changes):
    arguments = dict(
        input_files=FILES, events_per_file=COUNTS, settings={}, steering_file=STEERING,
        software_version="ILCSoft-2019-04-01_gcc62", number_of_jobs=7,
    )
    arguments.update(changes)
    return plan_calibration(**arguments)


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
        ({"number_of_jobs": "7"}, "numberOfJobs must be an integer"),
        ({"number_of_jobs": True}, "numberOfJobs must be an integer"),
        ({"number_of_jobs": 0}, "numberOfJobs must be between 1"),
        ({"number_of_jobs": 301}, "events"),
        ({"software_version": ""}, "softwareVersion must be a non-empty string"),
        ({"software_version": "v 1"}, "no spaces"),
        ({"software_version": 3}, "softwareVersion must be a non-empty string"),
        ({"input_files": []}, "inputFiles must be a non-empty dict"),
        ({"input_files": {"muon": FILES["muon"]}, "events_per_file": {"muon": 100}}, "Missing input samples ['gamma']"),
        ({"input_files": {"gamma": FILES["gamma"], "photon": ["x"]}}, "unknown sample type 'photon'"),
        ({"input_files": {"gamma": []}, "events_per_file": {"gamma": 1}}, "must be a non-empty list"),
        ({"input_files": {"gamma": ["a", "a"]}, "events_per_file": {"gamma": 1}}, "more than once"),
        ({"input_files": {"gamma": ["a", 3]}, "events_per_file": {"gamma": 1}}, "only non-empty file names"),
        ({"events_per_file": {"gamma": 100}}, "give the number of events per file"),
        ({"events_per_file": {"gamma": 0, "muon": 1}}, "must be a positive integer"),
        ({"events_per_file": {"gamma": 2.5, "muon": 1}}, "must be a positive integer"),
        ({"settings": {"digitisationAccuracy": "0.05"}}, "digitisationAccuracy"),
        ({"settings": {"noSuchSetting": 1}}, "noSuchSetting"),
        ({"settings": {"stopPhase": 4}}, "not implemented"),
        ({"steering_file": b"<marlin>"}, "steering"),
        ({"steering_file": b"<marlin/>"}, "MyDDCaloDigi"),
        ({"steering_file": STEERING.replace(b"CalibrECAL", b"CalibrXXXX")}, "CalibrECAL"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(changes, message):
    with pytest.raises(ProcedureError, match=".*") as error:
        plan(**changes)
    assert message in str(error.value)
