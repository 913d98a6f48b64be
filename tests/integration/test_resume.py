"""Resuming failed and killed calibrations for real: the resumed calibration goes on from the chosen
step through the ordinary step advancement and ends where the built-in detector model says, while
the calibration it resumes keeps its history; a refused resume stores nothing."""
import json
import subprocess

import pytest
from DIRAC.Core.Utilities.DErrno import cmpError

from conftest import ECAL_ONLY, SOFTWARE_VERSION, result_when_finished, wait_for

from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import createCalibrationSettings
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run
from ILCDIRAC.CalibrationSystem.Simulation.tolerances import statistical_tolerances
from ILCDIRAC.Core.Utilities.DErrno import ECALNOTFOUND, ECALREQUEST, ECALSTATE

pytestmark = pytest.mark.integration

ECAL_AND_HCAL = {"stopStage": 1, "stopPhase": 1}


def _create(clients, samples, jobs, settings, used=("gamma",)):
    full = createCalibrationSettings()
    full.update(settings, numberOfJobs=jobs, steeringFile=samples["steeringFile"], softwareVersion=SOFTWARE_VERSION)
    created = clients["alice"]().createCalibration(
        {sample: samples["inputFiles"][sample] for sample in used},
        {sample: samples["numberOfEventsPerFile"][sample] for sample in used},
        full,
    )
    assert created["OK"], created["Message"]
    return created["Value"]


def _status(client, calibrationID):
    statuses = client.getUserCalibrationStatuses()
    assert statuses["OK"], statuses["Message"]
    return next(status for status in statuses["Value"] if status["calibrationID"] == calibrationID)


def _ended_result(client, calibrationID, status, timeout=240):
    """The result a calibration had reached once it has ended with ``status``."""
    def ended():
        answer = client.getResult(calibrationID)
        assert not answer["OK"], f"calibration {calibrationID} finished instead of ending as {status}"
        return answer["Result"] if f"it is {status}" in answer["Message"] else None

    return wait_for(ended, timeout, interval=1, what=f"calibration {calibrationID} to end as {status}")


def _count_calibrations(db):
    cursor = db.cursor()
    cursor.execute("SELECT COUNT(*) FROM Calibrations")
    return cursor.fetchone()[0]


def _assert_ends_where_the_model_says(result, samples, constants):
    with open(samples["truthFile"]) as stream:
        truth = json.load(stream)
    detector, start = DetectorTruth.from_dict(truth["truth"]), truth["initialConstants"]
    events = truth["eventsPerFile"] * truth["filesPerSample"]
    run = expected_run(detector, result["settings"], start, events)
    tolerances = statistical_tolerances(detector, result["settings"], start, events, run=run)
    assert result["status"] == "Finished", result["statusMessage"]
    for name in constants:
        value, expected = result["parameters"][name], run.final_constants[name]
        value, expected = (value[0], expected[0]) if isinstance(value, list) else (value, expected)
        assert abs(value / expected - 1) < tolerances[name].total, (name, value, expected, tolerances[name])


@pytest.fixture(scope="module")
def failed(stack, samples, clients):
    """A calibration failed at its iteration cap, for the refusals."""
    calibrationID = _create(clients, samples, 2, dict(ECAL_ONLY, nMaxIterationsPerPhase=1))
    _ended_result(clients["alice"](), calibrationID, "Failed")
    return calibrationID


def test_a_calibration_failed_at_its_iteration_cap_resumes_with_a_larger_one(stack, samples, clients, db):
    alice = clients["alice"]()
    origin = _create(clients, samples, 2, dict(ECAL_ONLY, nMaxIterationsPerPhase=1))
    failed = _ended_result(alice, origin, "Failed")
    assert "nMaxIterationsPerPhase=1" in failed["statusMessage"]

    resumed = alice.resumeCalibration(origin, None, {"nMaxIterationsPerPhase": 5})
    assert resumed["OK"], resumed["Message"]
    calibrationID = resumed["Value"]
    assert resumed["Notes"] == [f"Resumed from step 0 (stage 1, phase 0) of calibration {origin}"
                                " with nMaxIterationsPerPhase=5"]
    result = result_when_finished(alice, calibrationID)
    _assert_ends_where_the_model_says(result, samples, ("CalibrECAL", "ECALEndcapCorrectionFactor"))
    assert result["settings"]["nMaxIterationsPerPhase"] == 5
    assert result["history"][0]["Parameters"] == failed["history"][0]["Parameters"]
    assert _status(alice, calibrationID)["resumedFrom"] == origin
    assert _status(alice, origin)["status"] == "Failed"
    assert any(f"Resumed as calibration {calibrationID}" in event["message"]
               for event in alice.getResult(origin)["Result"]["events"])


def test_a_killed_calibration_resumes_from_its_last_completed_step_with_more_jobs(stack, samples, clients, db):
    """Killed in its second phase: the resumed calibration keeps the history before the step it
    runs again (phase 2 of a full run would read it), shares the events over three jobs and ends
    where an uninterrupted run would."""
    alice = clients["alice"]()
    for _ in range(3):  # the two steps of phase 1 take about a second: a calibration may end before the kill
        origin = _create(clients, samples, 2, ECAL_AND_HCAL, used=("gamma", "kaon"))
        running = alice.resumeCalibration(origin, None, {})
        assert cmpError(running, ECALSTATE) and f"dirac-calibration-kill {origin}" in running["Message"]
        wait_for(lambda: _status(alice, origin)["currentStep"] >= 2, 240, interval=0.05,
                 what=f"calibration {origin} to reach its second phase")
        killed = alice.killCalibration(origin, "testing resume")
        if killed["OK"]:
            break
        assert cmpError(killed, ECALSTATE) and "has already ended (Finished)" in killed["Message"], killed
    assert killed["OK"], f"three calibrations ended before they could be killed: {killed['Message']}"
    before = _ended_result(alice, origin, "Killed")
    completed = [step["Step"] for step in before["history"] if step["EndTime"]]
    assert completed[-1] >= 1

    resumed = alice.resumeCalibration(origin, None, {"numberOfJobs": 3})
    assert resumed["OK"], resumed["Message"]
    calibrationID, fromStep = resumed["Value"], completed[-1]
    assert f"Resumed from step {fromStep} " in resumed["Notes"][0]
    result = result_when_finished(alice, calibrationID)
    _assert_ends_where_the_model_says(
        result, samples, ("CalibrECAL", "ECALEndcapCorrectionFactor", "CalibrHCALBarrel", "CalibrHCALEndcap"))

    old, new = before["history"], result["history"]
    keys = ("Step", "Stage", "Phase", "PhaseIteration", "Parameters", "Converged", "Metrics", "NumberOfResults")
    assert [{k: s[k] for k in keys} for s in new[:fromStep]] == [{k: s[k] for k in keys} for s in old[:fromStep]]
    assert new[fromStep]["Parameters"] == old[fromStep]["Parameters"]
    assert new[fromStep]["PhaseIteration"] == old[fromStep]["PhaseIteration"]
    assert all(step["NumberOfResults"] == 3 for step in new[fromStep:])
    assert any(name.startswith("step000_") for name in result["files"])
    after = alice.getResult(origin)
    assert "it is Killed" in after["Message"]
    assert [s["Step"] for s in after["Result"]["history"]] == [s["Step"] for s in old]


@pytest.mark.parametrize("fromStep, changes, code, words", [
    (None, {"detectorModel": "FCCee_o1_v04"}, ECALREQUEST, ["detectorModel cannot change"]),
    (None, {"nMaxIterationPerPhase": 5}, ECALREQUEST, ["did you mean 'nMaxIterationsPerPhase'"]),
    (None, {"softwareVersion": "v2"}, ECALREQUEST, ["softwareVersion cannot change"]),
    (None, {"stopPhase": 2}, ECALREQUEST, ["need the samples ['kaon', 'muon']"]),
    (3, {}, ECALREQUEST, ["Step 3 of calibration", "not a completed step", "one of 0"]),
    ("0", {}, ECALREQUEST, ["must be an integer step number"]),
])
def test_a_refused_resume_says_why_and_stores_nothing(failed, clients, db, fromStep, changes, code, words):
    alice = clients["alice"]()
    count = _count_calibrations(db)
    answer = alice.resumeCalibration(failed, fromStep, changes)
    assert cmpError(answer, code), answer
    assert all(word in answer["Message"] for word in words), answer["Message"]
    assert _count_calibrations(db) == count


def test_only_the_owner_resumes_and_a_finished_calibration_has_nothing_to_resume(failed, samples, clients, db):
    origin = failed
    count = _count_calibrations(db)
    other = clients["bob"]().resumeCalibration(origin, None, {})
    assert cmpError(other, ECALNOTFOUND) and f"Calibration {origin} does not exist" in other["Message"]
    host = clients["host"]().resumeCalibration(origin, None, {})
    assert not host["OK"] and "belongs to a user" in host["Message"]
    finished = _create(clients, samples, 2, ECAL_ONLY)
    result_when_finished(clients["alice"](), finished)
    answer = clients["alice"]().resumeCalibration(finished, None, {})
    assert cmpError(answer, ECALSTATE) and "nothing to resume" in answer["Message"]
    assert _count_calibrations(db) == count + 1


def test_the_command_resumes_and_refuses_with_a_message_and_an_exit_code(stack, failed, clients, db):
    count = _count_calibrations(db)
    commands = [
        ["dirac-calibration-resume", str(failed), "--from-step", "x"],
        ["dirac-calibration-resume", str(failed), "--set", "nHcalLayers"],
        ["dirac-calibration-resume", str(failed), "--set", "nHcalLayers=44"],
        ["dirac-calibration-resume", "abc"],
        ["dirac-calibration-resume", str(failed), "--from-step", "0", "--set", "nMaxIterationsPerPhase=4",
         "--set", "numberOfJobs=3"],
    ]
    step, assignment, frozen, notAnID, resumed = [
        subprocess.run(command, env=stack.user_env("alice"), capture_output=True, text=True, timeout=120)
        for command in commands
    ]
    assert step.returncode == 2 and "--from-step x: a step is a number" in step.stderr
    assert assignment.returncode == 2 and "--set expects" in assignment.stderr
    assert frozen.returncode == 1 and "nHcalLayers cannot change" in frozen.stderr
    assert notAnID.returncode == 2 and "'abc' is not a calibration ID" in notAnID.stderr
    assert resumed.returncode == 0, resumed.stderr
    calibrationID = int(resumed.stdout.strip().splitlines()[-1])
    assert _count_calibrations(db) == count + 1
    status = _status(clients["alice"](), calibrationID)
    assert (status["resumedFrom"], status["numberOfJobs"]) == (failed, 3)


def test_a_database_of_an_earlier_version_gets_the_resumed_from_column(stack, clients, db):
    cursor = db.cursor()
    stack.stop_service()
    stack.stop_agent()
    cursor.execute("ALTER TABLE Calibrations DROP COLUMN ResumedFrom")
    stack.start_service()
    stack.start_agent()
    cursor.execute("SHOW COLUMNS FROM Calibrations LIKE 'ResumedFrom'")
    assert cursor.fetchall(), "the service did not add the column resumes need"
    assert clients["alice"]().getUserCalibrationStatuses()["OK"]
