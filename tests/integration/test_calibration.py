"""The walking skeleton for real: the seed's calibration over TLS, with the real service,
agent, MariaDB and local worker processes, on the built-in detector model."""
import json
import re
import time

import pytest
from DIRAC.Core.Utilities.DErrno import cmpError

from conftest import ECAL_ONLY, SOFTWARE_VERSION, result_when_finished, run_seed_snippet, wait_for

from ILCDIRAC.CalibrationSystem.LocalStack import demo
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run
from ILCDIRAC.CalibrationSystem.Simulation.tolerances import statistical_tolerances
from ILCDIRAC.Core.Utilities.DErrno import ECALREQUEST

pytestmark = pytest.mark.integration

WORKERS = 4


def _truth(samples):
    with open(samples["truthFile"]) as stream:
        return json.load(stream)


@pytest.fixture(scope="module")
def reference_run(stack, samples, clients):
    """An uninterrupted run of the seed's calibration: its ID and result."""
    calibrationID = run_seed_snippet(stack, samples, WORKERS, ECAL_ONLY)
    return calibrationID, result_when_finished(clients["alice"](), calibrationID)


def test_seed_calibration_ends_where_the_detector_model_says(reference_run, samples):
    """Within the statistical tolerance of the procedure replayed on the model's expected
    distributions from the same start values (the response is non-linear: not the fixed point)."""
    calibrationID, result = reference_run
    truth = _truth(samples)
    detector, start = DetectorTruth.from_dict(truth["truth"]), truth["initialConstants"]
    events = truth["eventsPerFile"] * truth["filesPerSample"]
    run = expected_run(detector, result["settings"], start, events)
    tolerances = statistical_tolerances(detector, result["settings"], start, events, run=run)
    assert result["status"] == "Finished"
    barrel, thick = result["parameters"]["CalibrECAL"]
    assert abs(barrel / run.final_constants["CalibrECAL"][0] - 1) < tolerances["CalibrECAL"].total
    assert thick == pytest.approx(barrel * result["settings"]["ecalResponseCorrectionForThickLayers"])
    endcap = result["parameters"]["ECALEndcapCorrectionFactor"]
    factor = tolerances["ECALEndcapCorrectionFactor"].total
    assert abs(endcap / run.final_constants["ECALEndcapCorrectionFactor"] - 1) < factor
    assert run.iterations == {(1, 0): 2}
    history = result["history"]
    assert [(s["Stage"], s["Phase"], s["Step"]) for s in history] == [(1, 0, 0), (1, 0, 1)]
    assert [s["Converged"] for s in history] == [False, True]
    assert all(s["NumberOfResults"] == WORKERS for s in history)
    assert f"{barrel!r}"[:6] in result["steeringFile"]


def test_result_is_refused_to_another_user(reference_run, clients):
    calibrationID, _ = reference_run
    result = clients["bob"]().getResult(calibrationID)
    assert not result["OK"] and "does not exist" in result["Message"]


def test_service_and_agent_killed_mid_calibration_lose_nothing(stack, samples, clients, reference_run, db):
    _, reference = reference_run
    calibrationID = run_seed_snippet(stack, samples, WORKERS, ECAL_ONLY)

    def results_of_step0():
        cursor = db.cursor()
        cursor.execute("SELECT COUNT(*) FROM StepResults WHERE CalibrationID = %s AND Step = 0", (calibrationID,))
        return cursor.fetchone()[0] >= 1

    wait_for(results_of_step0, 120, interval=0.2, what="a first result")
    stack.stop_service(kill=True)
    stack.stop_agent(kill=True)
    time.sleep(3)
    stack.start_service()
    stack.start_agent()
    result = result_when_finished(clients["alice"](), calibrationID)
    assert result["parameters"] == reference["parameters"]
    assert [s["NumberOfResults"] for s in result["history"]] == [WORKERS, WORKERS]


def test_calibration_status_shows_progress(reference_run, clients):
    calibrationID, _ = reference_run
    statuses = clients["alice"]().getUserCalibrationStatuses()
    assert statuses["OK"], statuses
    mine = {s["calibrationID"]: s for s in statuses["Value"]}
    assert mine[calibrationID]["status"] == "Finished"
    assert mine[calibrationID]["numberOfJobs"] == WORKERS
    others = clients["bob"]().getUserCalibrationStatuses()
    assert calibrationID not in {s["calibrationID"] for s in others["Value"]}


def _count_calibrations(db):
    cursor = db.cursor()
    cursor.execute("SELECT (SELECT COUNT(*) FROM Calibrations) + (SELECT COUNT(*) FROM Workers)")
    return cursor.fetchone()[0]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (lambda s: ({"gamma": s["inputFiles"]["gamma"]}, {"gamma": 100}, ECAL_ONLY, "steering", 4), "steering"),
        (lambda s: ({"muon": s["inputFiles"]["muon"]}, {"muon": 100}, ECAL_ONLY, None, 4), "Missing input samples"),
        (lambda s: ({"gamma": s["inputFiles"]["gamma"]}, {"gamma": 100}, ECAL_ONLY, None, 401), "events"),
        (lambda s: ({"gamma": s["inputFiles"]["gamma"]}, {"gamma": 100}, ECAL_ONLY, None, "4"), "numberOfJobs"),
        (lambda s: ({"gamma": s["inputFiles"]["gamma"]}, {"gamma": -1}, ECAL_ONLY, None, 4), "positive integer"),
        (lambda s: ({"gamma": "x"}, {"gamma": 100}, ECAL_ONLY, None, 4), "non-empty list"),
        (lambda s: ([], {"gamma": 100}, ECAL_ONLY, None, 4), "inputFiles must be"),
        (lambda s: ({"gamma": s["inputFiles"]["gamma"]}, {"gamma": 100}, {**ECAL_ONLY, "digitisationAccuracy": 2.0}, None, 4),
         "digitisationAccuracy"),
        (lambda s: ({"gamma": s["inputFiles"]["gamma"]}, {"gamma": 100}, "settings", None, 4), "settings"),
    ],
)
def test_bad_create_requests_are_refused_and_store_nothing(stack, samples, clients, db, arguments, message):
    files, counts, settings, steering, jobs = arguments(samples)
    if steering is None:
        with open(samples["steeringFile"]) as stream:
            steering = stream.read()
    before = _count_calibrations(db)
    # The raw RPC: the service must defend itself whatever a client sends
    job = {"steeringFile": steering, "softwareVersion": SOFTWARE_VERSION, "numberOfJobs": jobs}
    result = clients["alice"]().executeRPC(files, counts, settings, job, call="createCalibration")
    assert not result["OK"]
    assert message in result["Message"]
    assert _count_calibrations(db) == before


def _training_with_twelve_edges(samples):
    """The samples' photon-training settings with 12 EnergyBinLowerEdges, NEnergyBins left at 9."""
    with open(samples["photonTrainingSettingsFile"]) as stream:
        content = stream.read()
    assert "<NEnergyBins>9</NEnergyBins>" in content
    return re.sub(r"<EnergyBinLowerEdges>[^<]*<", "<EnergyBinLowerEdges>0 0.2 0.5 1 1.5 2.5 5 10 20 35 50 75<", content)


@pytest.mark.parametrize("training, message", [
    (None, "the calibration runs the photon training (stage 2), which needs its PandoraSettings file"),
    (_training_with_twelve_edges, "NEnergyBins is 9 but EnergyBinLowerEdges '0 0.2 0.5 1 1.5 2.5 5 10 20 35 50 75'"
                                  " gives 12 energy bins; Pandora refuses the mismatch: set NEnergyBins to 12"),
])
def test_a_calibration_with_the_photon_training_is_refused_without_usable_training_settings(
        stack, samples, clients, db, tmp_path, training, message):
    """Through the client, with a steering file that has no CalibrationPandoraSettings/ beside it:
    no training settings, or a file named by photonTrainingSettingsFile that Pandora would refuse."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import createCalibrationSettings

    steering = tmp_path / "steering_file.xml"
    with open(samples["steeringFile"], "rb") as stream:
        steering.write_bytes(stream.read())
    settings = dict(createCalibrationSettings("CLIC"), numberOfJobs=2, steeringFile=str(steering),
                    softwareVersion=SOFTWARE_VERSION)
    if training is not None:
        (tmp_path / "training.xml").write_text(training(samples))
        settings["photonTrainingSettingsFile"] = str(tmp_path / "training.xml")
    before = _count_calibrations(db)
    result = clients["alice"]().createCalibration(samples["inputFiles"], samples["numberOfEventsPerFile"], settings)
    assert not result["OK"]
    assert message in result["Message"]
    assert _count_calibrations(db) == before


def test_seed_function_refuses_bad_arguments(stack, samples, tmp_path):
    """The seed's own function: unreadable steering file, unknown particle directory, wrong types."""
    import subprocess
    import sys

    code = (
        "from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import createCalibration\n"
        f"print(createCalibration('{tmp_path}/missing.xml', 'v1', ['{samples['directories']['gamma']}'], 4)['Message'])\n"
        f"print(createCalibration('{samples['steeringFile']}', 'v1', ['{tmp_path}'], 4)['Message'])\n"
        f"print(createCalibration('{samples['steeringFile']}', 'v1', '{samples['directories']['gamma']}', 4)['Message'])\n"
        f"print(createCalibration('{samples['steeringFile']}', 'v1', ['{samples['directories']['gamma']}'], 4.5)['Message'])\n"
    )
    process = subprocess.run([sys.executable, "-c", code], env=stack.user_env("alice"), capture_output=True,
                             text=True, timeout=60)
    lines = process.stdout.strip().splitlines()
    assert process.returncode == 0, process.stderr
    assert "Cannot read the steering file" in lines[0]
    assert "Cannot tell the particle" in lines[1]
    assert "non-empty list of sample directories" in lines[2]
    assert "numberOfJobs must be an integer" in lines[3]


def test_killed_worker_is_resubmitted_and_the_calibration_converges(stack, samples, clients, reference_run, db):
    """A worker killed -9 between two steps: the survivors cannot make the next step alone, so
    the agent resubmits it at once and the calibration ends with the reference constants."""
    import psutil

    _, reference = reference_run
    calibrationID = run_seed_snippet(stack, samples, WORKERS, ECAL_ONLY)

    def step0_complete():
        cursor = db.cursor()
        cursor.execute("SELECT COUNT(*) FROM StepResults WHERE CalibrationID = %s AND Step = 0", (calibrationID,))
        return cursor.fetchone()[0] == WORKERS

    wait_for(step0_complete, 120, interval=0.2, what="all results of step 0")
    jobDir = stack.workdir / "jobs" / f"PandoraCaloCalibration_calid_{calibrationID}_workerid_0_attempt_"
    victim = next(p for p in stack.workdir.joinpath("jobs").iterdir() if str(p).startswith(str(jobDir)))
    pid = json.loads((victim / "pid.json").read_text())["pid"]
    for process in psutil.Process(pid).children(recursive=True):
        process.kill()

    result = result_when_finished(clients["alice"](), calibrationID)
    assert result["parameters"] == reference["parameters"]
    cursor = db.cursor()
    cursor.execute(
        "SELECT WorkerID, Status FROM JobAttempts WHERE CalibrationID = %s ORDER BY AttemptID", (calibrationID,)
    )
    attempts = cursor.fetchall()
    assert [w for w, _ in attempts].count(0) == 2, attempts
    assert dict(attempts[:WORKERS])[0] == "Failed"


def test_stale_oversized_and_malformed_results_change_nothing(reference_run, clients, db):
    from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary
    import numpy as np

    calibrationID, _ = reference_run
    alice = clients["alice"]()
    credential = clients["host"]().getWorkerCredential(calibrationID)["Value"]
    good = encode_summary(0, {"barrel": np.full(10, 10.0, np.float32), "endcap": np.full(10, 10.0, np.float32)})

    def stored():
        cursor = db.cursor()
        cursor.execute("SELECT COUNT(*), SUM(LENGTH(Content)) FROM StepResults WHERE CalibrationID = %s",
                       (calibrationID,))
        return cursor.fetchone()

    before = stored()
    stale = alice.submitResult(calibrationID, 1, 0, 0, 0, good, credential)
    assert stale["OK"] and not stale["Value"]["Stored"] and "over" in stale["Value"]["Message"]
    garbage = alice.submitResult(calibrationID, 1, 0, 1, 0, b"\x00not a summary", credential)
    assert not garbage["OK"] and cmpError(garbage, ECALREQUEST) and "Result refused" in garbage["Message"]
    wrongWorker = alice.submitResult(calibrationID, 1, 0, 1, WORKERS, good, credential)
    assert not wrongWorker["OK"] and "has no worker" in wrongWorker["Message"]
    wrongPhase = alice.submitResult(calibrationID, 1, 3, 1, 0, good, credential)
    assert not wrongPhase["OK"] and "stage 1 phase 0" in wrongPhase["Message"]
    notMine = clients["bob"]().submitResult(calibrationID, 1, 0, 1, 0, good, credential)
    assert not notMine["OK"] and "does not exist" in notMine["Message"]
    noCredential = alice.submitResult(calibrationID, 1, 0, 1, 0, good, "guess")
    assert not noCredential["OK"] and "worker credential" in noCredential["Message"]
    oversized = alice.submitResult(calibrationID, 1, 0, 1, 0, b"\x00" * (8 * 1024 * 1024 + 1), credential)
    assert not oversized["OK"] and "limit is 8388608 bytes" in oversized["Message"]
    assert stored() == before


def test_calibration_whose_workers_always_fail_ends_as_failed(stack, samples, clients, tmp_path):
    """Input files that vanish after the creation make every job fail: the agent resubmits,
    then gives up once the failed attempts reach the limit, with a message."""
    import shutil

    gamma = tmp_path / "vanishing" / "gamma" / "10"
    shutil.copytree(samples["directories"]["gamma"], gamma)
    calibrationID = demo.run_seed_snippet(stack, samples["steeringFile"], [str(gamma)], 2, ECAL_ONLY)
    shutil.rmtree(gamma)

    def failed():
        statuses = clients["alice"]().getUserCalibrationStatuses()["Value"]
        status = next(s for s in statuses if s["calibrationID"] == calibrationID)
        return status if status["status"] != "Running" else None

    status = wait_for(failed, 180, interval=2, what="the calibration to fail")
    assert status["status"] == "Failed"
    assert "job attempts failed" in status["statusMessage"]
    result = clients["alice"]().getResult(calibrationID)
    assert not result["OK"] and "Failed" in result["Message"]
    assert result["Result"]["status"] == "Failed"
    start = _truth(samples)["initialConstants"]["CalibrECAL"]
    assert result["Result"]["parameters"]["CalibrECAL"] == pytest.approx(start, rel=1e-12)  # the constants it had reached


AGENT_RETENTION = "/Systems/Calibration/Agents/CalibrationAgent/TimeToKeepCalibrationResultsInMinutes"


def test_results_are_copied_once_then_removed_after_the_retention_time(stack, samples, clients, tmp_path):
    """The richer client call with an output directory: the agent copies the finished
    calibration's files there, and removes the calibration once the retention time is over."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import createCalibrationSettings

    settings = createCalibrationSettings("CLIC")
    settings.update(ECAL_ONLY, numberOfJobs=2, steeringFile=samples["steeringFile"],
                    softwareVersion=SOFTWARE_VERSION, outputPath=str(tmp_path / "results"))
    alice = clients["alice"]()
    created = alice.createCalibration({"gamma": samples["inputFiles"]["gamma"]}, {"gamma": 100}, settings)
    assert created["OK"], created
    calibrationID = created["Value"]
    result = result_when_finished(alice, calibrationID)
    copied = tmp_path / "results" / f"calib{calibrationID}"

    def status():
        return next(s for s in alice.getUserCalibrationStatuses()["Value"] if s["calibrationID"] == calibrationID)

    wait_for(lambda: status()["resultsCopied"], 60, interval=1, what="the results to be copied")
    names = {path.name for path in copied.iterdir()}
    assert {"steeringFile.xml", "steeringFile.xml_INPUT", "calibration.json", "convergence.png"} <= names
    assert json.loads((copied / "calibration.json").read_text())["parameters"] == result["parameters"]
    assert status()["timeLeftBeforeOutputWillBeDeleted"] > 6 * 24 * 3600

    stack.stop_agent()
    try:
        stack.set_overrides({AGENT_RETENTION: "0"})
        stack.start_agent()
        wait_for(lambda: "does not exist" in alice.getResult(calibrationID).get("Message", ""), 60,
                 interval=1, what="the calibration to be removed after the retention time")
    finally:
        stack.stop_agent()
        stack.set_overrides({AGENT_RETENTION: None})
        stack.start_agent()
    assert (copied / "steeringFile.xml").exists()


def test_a_preset_whose_processor_names_do_not_match_the_steering_file_is_refused(samples, clients):
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import createCalibrationSettings

    settings = createCalibrationSettings("CLD")
    settings.update(ECAL_ONLY, numberOfJobs=2, steeringFile=samples["steeringFile"], softwareVersion=SOFTWARE_VERSION)
    result = clients["alice"]().createCalibration({"gamma": samples["inputFiles"]["gamma"]}, {"gamma": 100}, settings)
    assert not result["OK"]
    assert "MyDDCaloDigi_10ns" in result["Message"]


def test_a_database_of_an_earlier_version_gets_the_new_columns_when_the_service_starts(stack, clients, db):
    """CalibrationDB.sql only creates missing tables: a column added later must be added to the
    tables of an existing database, or creating a calibration fails on it."""
    cursor = db.cursor()
    stack.stop_service()
    stack.stop_agent()
    cursor.execute("ALTER TABLE Calibrations DROP COLUMN PhotonTrainingSettings")
    stack.start_service()
    stack.start_agent()
    cursor.execute("SHOW COLUMNS FROM Calibrations LIKE 'PhotonTrainingSettings'")
    assert cursor.fetchall(), "the service did not add the column the new version needs"
    assert clients["alice"]().getUserCalibrationStatuses()["OK"]


def test_workers_are_told_how_many_results_the_step_still_needs(stack, samples, clients):
    """What a waiting worker goes by (Worker/polling.py): every answer to a result, and every
    answer telling it to wait, says how many results the step still needs before its analysis
    (0: complete, the next constants come after the analysis); once the service has analysed a
    phase, how long its analysis takes. Driven by hand over DISET with the agent stopped, so that
    no worker job takes part."""
    import numpy as np

    from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary

    def result(workerID):
        energies = np.full(20, 10.0 + workerID, np.float32)
        return encode_summary(0, {"barrel": energies, "endcap": energies})

    stack.stop_agent()
    try:
        alice = clients["alice"]()
        created = alice.createCalibration(
            {"gamma": samples["inputFiles"]["gamma"]}, {"gamma": samples["numberOfEventsPerFile"]["gamma"]},
            {**ECAL_ONLY, "steeringFile": samples["steeringFile"], "softwareVersion": SOFTWARE_VERSION,
             "numberOfJobs": 3})
        assert created["OK"], created
        calibrationID = created["Value"]
        credential = clients["host"]().getWorkerCredential(calibrationID)["Value"]
        first = alice.getNewParameters(calibrationID, -1, credential)["Value"]
        assert first["currentStep"] == 0 and first["parameters"]

        def submit(workerID, step=0):
            answer = alice.submitResult(calibrationID, 1, 0, step, workerID, result(workerID), credential)
            assert answer["OK"], answer
            submitted.append(answer["Value"])
            return answer["Value"]["Stored"], answer["Value"]["ResultsMissing"]

        def poll():
            answer = alice.getNewParameters(calibrationID, 0, credential)
            assert answer["OK"], answer
            return answer["Value"]

        # 3 jobs, 90 % needed: all three results
        submitted = []
        assert submit(0) == (True, 2)
        assert poll() == {"currentStep": 0, "calibrationIsFinished": False, "resultsMissing": 2, "nextStepIn": None}
        assert submit(0) == (False, 2)
        assert submit(1) == (True, 1)
        assert poll()["resultsMissing"] == 1
        assert submit(2) == (True, 0)
        # the step is complete: answers say 0 missing until its analysis gives the next step
        answers = []

        def nextStep():
            answers.append(poll())
            return answers[-1] if answers[-1]["currentStep"] == 1 else None

        served = wait_for(nextStep, 60, interval=0.2, what="the next step")
        assert served["parameters"] and not served["calibrationIsFinished"]
        assert all(answer["resultsMissing"] == 0 for answer in answers[:-1])
        assert submit(1) == (False, 0)  # a late result: the step is over
        # the service had not analysed phase 0 before the third result; now it says how long it took
        assert [answer["AnalysisSeconds"] for answer in submitted[:3]] == [None] * 3
        assert served["currentPhase"] == 0 and submit(0, step=1) == (True, 2)
        assert submitted[-1]["AnalysisSeconds"] > 0
        assert alice.killCalibration(calibrationID, "protocol test done")["OK"]
        ended = alice.getNewParameters(calibrationID, 1, credential)["Value"]
        assert ended["calibrationIsFinished"] and ended["calibrationStatus"] == "Killed"
    finally:
        stack.start_agent()
