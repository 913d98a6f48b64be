"""The worker loop against an in-memory service: steps, polling back-off, retries, refusals."""
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from DIRAC import S_ERROR, S_OK

from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import global_parameter, read_constants
from ILCDIRAC.CalibrationSystem.Procedure.summary import decode_summary
from ILCDIRAC.CalibrationSystem.Worker import worker as worker_module
from ILCDIRAC.CalibrationSystem.Worker.worker import CalibrationWorker
from ILCDIRAC.Core.Utilities.DErrno import ECALNOTFOUND

TEMPLATE = (Path(__file__).parent / "calibration_steering.xml").read_text()
CALIBRATION_ID, WORKER_ID = 7, 1
CREDENTIAL = "0123abcd" * 8
GAMMA_SLICE = [["/data/gamma_0001.slcio", "/data/gamma_0002.slcio"], 7, 5]
# Known phase-0 selection: 3 barrel and 2 endcap photons pass, the other events are cut.
BARREL = [9.5, 10.0, 10.5]
ENDCAP = [9.75, 10.25]


def _constants(barrel):
    return {"CalibrECAL": [barrel, barrel], "ECALEndcapCorrectionFactor": 1.03}


def _parameterSet(step, constants=None, finished=False, status="Running"):
    return {
        "currentStage": 1,
        "currentPhase": 0,
        "currentStep": step,
        "parameters": constants if constants is not None else _constants(40.0 + step),
        "calibrationIsFinished": finished,
        "calibrationStatus": status,
        "statusMessage": "",
    }


class FakeService:
    """In-memory CalibrationService with the service's step semantics.

    ``steps`` are the parameter sets of the successive steps. Once a step has been reported,
    submitResult answers that ``missing[0]`` results are still missing and that the analysis
    takes ``analysisSeconds``, and getNewParameters answers that the worker must wait once for
    each of the following numbers of missing results (0: the step is being analysed; with the
    seconds of ``nextStepIn`` at the same place) before it serves the next step (``pollsPerStep``
    waits for an analysis alone is the same as ``missing=[0] * (pollsPerStep + 1)``); after the
    last step it says that the calibration is finished. ``clock`` gets the time of every call.
    """

    def __init__(self, steps, pollsPerStep=0, inputData=None, missing=None, clock=None, numberOfJobs=2,
                 nextStepIn=None, analysisSeconds=None):
        self.steps = steps
        self.missing = [0] * (pollsPerStep + 1) if missing is None else missing
        self.nextStepIn = nextStepIn or [None] * len(self.missing)
        self.analysisSeconds = analysisSeconds
        self.inputData = {"gamma": GAMMA_SLICE} if inputData is None else inputData
        self.clock = clock
        self.numberOfJobs = numberOfJobs
        self.current = 0
        self.reported = set()
        self.pollsSinceReport = 0
        self.calls = []
        self.callTimes = []
        self.results = []
        self.failures = {}  # method -> list of results returned (in order) before the real answer

    def _record(self, call):
        self.calls.append(call)
        self.callTimes.append((call[0], self.clock.now if self.clock else None))

    def _failure(self, method):
        queue = self.failures.get(method)
        return queue.pop(0) if queue else None

    def getCalibrationSetup(self, calibrationID, credential):
        assert credential == CREDENTIAL
        self._record(("getCalibrationSetup", calibrationID))
        failure = self._failure("getCalibrationSetup")
        if failure:
            return failure
        settings = validate_settings({})
        return S_OK({"settings": settings, "steeringFile": TEMPLATE, "softwareVersion": "v1",
                     "numberOfJobs": self.numberOfJobs})

    def getInputDataDict(self, calibrationID, workerID, credential):
        assert credential == CREDENTIAL
        self._record(("getInputDataDict", calibrationID, workerID))
        return self._failure("getInputDataDict") or S_OK(self.inputData)

    def getNewParameters(self, calibrationID, stepOnWorker, credential):
        assert credential == CREDENTIAL
        self._record(("getNewParameters", calibrationID, stepOnWorker))
        failure = self._failure("getNewParameters")
        if failure:
            return failure
        while True:
            if self.current >= len(self.steps):
                return S_OK(_parameterSet(self.current, finished=True, status="Finished"))
            parameterSet = self.steps[self.current]
            if parameterSet["currentStep"] > stepOnWorker:
                return S_OK(parameterSet)
            self.pollsSinceReport += 1
            if self.pollsSinceReport < len(self.missing):
                return S_OK({"currentStep": parameterSet["currentStep"], "calibrationIsFinished": False,
                             "resultsMissing": self.missing[self.pollsSinceReport],
                             "nextStepIn": self.nextStepIn[self.pollsSinceReport]})
            self.current += 1
            self.pollsSinceReport = 0

    def submitResult(self, calibrationID, stageID, phaseID, stepID, workerID, content, credential):
        assert credential == CREDENTIAL
        self._record(("submitResult", calibrationID, stageID, phaseID, stepID, workerID))
        failure = self._failure("submitResult")
        if failure:
            return failure
        self.results.append((stepID, content))
        stored = (stepID, workerID) not in self.reported
        self.reported.add((stepID, workerID))
        self.pollsSinceReport = 0
        return S_OK({"Stored": stored, "Message": f"step {stepID} stored={stored}", "ResultsMissing": self.missing[0],
                     "AnalysisSeconds": self.analysisSeconds})


class FakeReconstruction:
    """Records the steering files it is given; returns known PfoAnalysis columns."""

    def __init__(self):
        self.steerings = []

    def __call__(self, steering, settings):
        self.steerings.append(steering)
        energies = BARREL + ENDCAP + [10.0, 10.0, 10.0, 10.0]
        cosTheta = [0.3, -0.1, 0.5, 0.85, -0.9, 0.3, 0.97, 0.85, 0.7]
        # cut: event 5 has two targets, event 6 |cos theta| > 0.95, event 7 too much energy
        # outside the ECal, event 8 lies between the barrel and endcap ranges
        return ReconstructionOutput({
            "nPfoTargetsTotal": np.array([1, 1, 1, 1, 1, 2, 1, 1, 1], np.int32),
            "nPfoTargetsPhotons": np.array([1, 1, 1, 1, 1, 1, 1, 1, 1], np.int32),
            "TotalCaloHitEnergy": np.array(energies[:7] + [10.5, 10.0], np.float32),
            "ECalTotalCaloHitEnergy": np.array(energies, np.float32),
            "pfoTargetCosTheta0": np.array(cosTheta, np.float32),
        })


class FakeClock:
    """time.monotonic of the worker module, advanced only by the fake sleep."""

    def __init__(self):
        self.now = 1000.0
        self.waits = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(worker_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def _worker(service, clock, tmp_path, reconstruct=None, **timing):
    timing = dict({"pollingTime": 1.0, "maxPollingTime": 5.0, "serviceTimeout": 60.0}, **timing)
    reconstruct = reconstruct or FakeReconstruction()
    return CalibrationWorker(
        service,
        CALIBRATION_ID,
        WORKER_ID,
        CREDENTIAL,
        lambda setup, inputData: reconstruct,
        workDirectory=str(tmp_path),
        sleep=clock.sleep,
        **timing,
    )


def _calls(service, method):
    return [call for call in service.calls if call[0] == method]


def test_processes_steps_until_finished(clock, tmp_path):
    service = FakeService([_parameterSet(0), _parameterSet(1)], pollsPerStep=6)
    reconstruction = FakeReconstruction()

    result = _worker(service, clock, tmp_path, reconstruction).run()

    assert result["OK"], result
    assert result["Value"] == 2
    assert [step for step, _ in service.results] == [0, 1]
    assert len(reconstruction.steerings) == 2
    submits = _calls(service, "submitResult")
    assert submits == [("submitResult", CALIBRATION_ID, 1, 0, step, WORKER_ID) for step in (0, 1)]
    # an analysis of unknown length: 1 s, doubled up to 5
    assert clock.waits == [1, 2, 4, 5, 5, 5] * 2
    # the worker always tells the service the last step it processed
    polls = [call[2] for call in _calls(service, "getNewParameters")]
    assert polls == [-1] + [0] * 7 + [1] * 7


class TimedReconstruction(FakeReconstruction):
    """Reconstructions that take ``seconds`` each on the fake clock."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.clock = clock
        self.seconds = seconds

    def __call__(self, steering, settings):
        self.clock.now += self.seconds
        return super().__call__(steering, settings)


def _pollTimes(service):
    """The times of the getNewParameters calls made after the first report."""
    reported = next(time for method, time in service.callTimes if method == "submitResult")
    return [time for method, time in service.callTimes if method == "getNewParameters" and time >= reported]


def test_a_worker_whose_result_completes_the_step_waits_for_the_analysis_it_starts(clock, tmp_path):
    service = FakeService([_parameterSet(0), _parameterSet(1)], missing=[0], analysisSeconds=2.5, clock=clock)

    assert _worker(service, clock, tmp_path, TimedReconstruction(clock, 3.0)).run()["OK"]

    # the service analyses the step in the background and said the phase's analyses take 2.5 s
    assert clock.waits == [2.5, 2.5]
    submitted = [time for method, time in service.callTimes if method == "submitResult"]
    assert _pollTimes(service)[:2] == [submitted[0] + 2.5, submitted[1] + 2.5]


def test_a_worker_whose_result_completes_the_step_asks_at_once_when_the_analysis_time_is_unknown(clock, tmp_path):
    service = FakeService([_parameterSet(0), _parameterSet(1)], missing=[0], clock=clock)

    assert _worker(service, clock, tmp_path, TimedReconstruction(clock, 3.0)).run()["OK"]

    # the step may be analysed already (e.g. by the agent): asking costs one call
    assert clock.waits == []
    submitted = [time for method, time in service.callTimes if method == "submitResult"]
    assert _pollTimes(service)[:2] == [submitted[0], submitted[1]]


def test_while_results_are_missing_the_worker_waits_a_share_of_its_own_step_time(clock, tmp_path):
    # 4 jobs; this worker's step took 8 s; 3 results were missing when it reported, then 3, then 1
    service = FakeService([_parameterSet(0)], missing=[3, 3, 1, 0, 0], clock=clock, numberOfJobs=4)

    result = _worker(service, clock, tmp_path, TimedReconstruction(clock, 8.0), maxPollingTime=30.0).run()

    assert result["OK"]
    # 8 s x 3/4 missing, doubled while no news; once none is missing, the analysis (of unknown
    # length): 1 s, then doubled
    assert clock.waits == [6, 12, 24, 1, 2]


def test_the_worker_waits_as_long_as_the_service_expects_the_analysis_to_take(clock, tmp_path):
    # the service knows its analyses take 3 s: after the report, the 6 s of the others' results and
    # those 3 s; then, the step being analysed, as long as the service expects it to go on
    service = FakeService([_parameterSet(0)], missing=[3, 0, 0, 0, 0], nextStepIn=[None, 2.5, 0.4, 0.0, 0.0],
                          analysisSeconds=3.0, clock=clock, numberOfJobs=4)

    assert _worker(service, clock, tmp_path, TimedReconstruction(clock, 8.0), maxPollingTime=30.0).run()["OK"]

    # past the time it expected, the analysis should end soon: 1 s, then doubled
    assert clock.waits == [9, 2.5, 1, 1, 2]


def test_the_worker_never_busy_waits(clock, tmp_path):
    service = FakeService([_parameterSet(s) for s in range(4)], missing=[5, 4, 2, 1, 0, 0, 0], clock=clock,
                          numberOfJobs=8)

    assert _worker(service, clock, tmp_path, TimedReconstruction(clock, 0.01)).run()["OK"]

    # between two polls there is always a wait of at least pollingTime
    assert clock.waits and min(clock.waits) >= 1.0
    times = [time for method, time in service.callTimes if method == "getNewParameters"]
    assert len(times) == len(set(times))


def test_summary_is_a_valid_phase_0_summary_of_the_selected_events(clock, tmp_path):
    service = FakeService([_parameterSet(0)])

    assert _worker(service, clock, tmp_path).run()["OK"]

    (step, content), = service.results
    summary = decode_summary(content, 0, len(content))
    np.testing.assert_array_equal(summary["barrel"], np.array(BARREL, np.float32))
    np.testing.assert_array_equal(summary["endcap"], np.array(ENDCAP, np.float32))


def test_steering_file_carries_constants_and_event_slice(clock, tmp_path):
    constants = {"CalibrECAL": [41.25, 42.5], "ECALEndcapCorrectionFactor": 1.125}
    service = FakeService([_parameterSet(0), _parameterSet(1, constants)])
    reconstruction = FakeReconstruction()

    assert _worker(service, clock, tmp_path, reconstruction).run()["OK"]

    settings = validate_settings({})
    written = tmp_path / "marlinSteeringFile_1_0_1_gamma.xml"
    assert written.read_bytes() == reconstruction.steerings[1]
    content = written.read_bytes()
    assert read_constants(content, constants, settings) == constants
    assert global_parameter(content, "LCIOInputFiles").split() == GAMMA_SLICE[0]
    assert global_parameter(content, "SkipNEvents") == "7"
    assert global_parameter(content, "MaxRecordNumber") == "5"
    # the first step's file keeps its own constants
    first = (tmp_path / "marlinSteeringFile_1_0_0_gamma.xml").read_bytes()
    assert read_constants(first, constants, settings)["CalibrECAL"] == [40.0, 40.0]


def test_long_polling_does_not_count_as_service_failure(clock, tmp_path):
    service = FakeService([_parameterSet(0)], pollsPerStep=30)

    result = _worker(service, clock, tmp_path, serviceTimeout=20.0).run()

    assert result["OK"] and result["Value"] == 1
    assert sum(clock.waits) > 20.0
    assert max(clock.waits) == 5


def test_transient_error_is_retried_until_it_succeeds(clock, tmp_path):
    service = FakeService([_parameterSet(0)])
    service.failures["getCalibrationSetup"] = [S_ERROR("connection refused")] * 3
    service.failures["submitResult"] = [S_ERROR("timeout")] * 2

    result = _worker(service, clock, tmp_path).run()

    assert result["OK"] and result["Value"] == 1
    assert len(_calls(service, "getCalibrationSetup")) == 4
    assert len(_calls(service, "submitResult")) == 3
    assert [step for step, _ in service.results] == [0]
    assert clock.waits == [1, 2, 4, 1, 2]


def test_transient_error_is_given_up_after_service_timeout(clock, tmp_path):
    service = FakeService([_parameterSet(0)])
    service.failures["getNewParameters"] = [S_ERROR(f"service down {i}") for i in range(100)]

    result = _worker(service, clock, tmp_path, pollingTime=1.0, maxPollingTime=8.0, serviceTimeout=20.0).run()

    assert not result["OK"]
    # calls at t = 0, 1, 3, 7, 15; waiting 8 more would pass the 20 s timeout
    assert result["Message"] == "service down 4"
    assert clock.waits == [1, 2, 4, 8]
    assert len(_calls(service, "getNewParameters")) == 5
    assert service.results == []


@pytest.mark.parametrize("method", ["getCalibrationSetup", "getInputDataDict", "getNewParameters", "submitResult"])
def test_refused_error_ends_the_worker_at_once(clock, tmp_path, method):
    refusal = S_ERROR(ECALNOTFOUND, f"{method}: Calibration 7 does not exist")
    service = FakeService([_parameterSet(0), _parameterSet(1)])
    service.failures[method] = [refusal]

    result = _worker(service, clock, tmp_path).run()

    assert result is refusal
    assert len(_calls(service, method)) == 1
    assert clock.waits == []
    assert service.results == []


def test_missing_sample_fails_with_clear_message(clock, tmp_path):
    service = FakeService([_parameterSet(0)], inputData={"muon": [["/data/mu.slcio"], 0, 10]})
    reconstruction = FakeReconstruction()

    result = _worker(service, clock, tmp_path, reconstruction).run()

    assert not result["OK"]
    assert "gamma" in result["Message"]
    assert f"worker {WORKER_ID}" in result["Message"]
    assert "Step 0" in result["Message"]
    assert reconstruction.steerings == []
    assert _calls(service, "submitResult") == []


def test_unknown_phase_fails_with_clear_message(clock, tmp_path):
    parameterSet = dict(_parameterSet(0), currentPhase=7)
    service = FakeService([parameterSet])

    result = _worker(service, clock, tmp_path).run()

    assert not result["OK"]
    assert "Unknown calibration phase 7" in result["Message"]
    assert service.results == []


def test_finished_calibration_at_start_processes_nothing(clock, tmp_path):
    service = FakeService([])
    reconstruction = FakeReconstruction()

    result = _worker(service, clock, tmp_path, reconstruction).run()

    assert result["OK"] and result["Value"] == 0
    assert reconstruction.steerings == []
    assert os.listdir(tmp_path) == []


def test_never_reports_a_step_twice(clock, tmp_path):
    service = FakeService([_parameterSet(0), _parameterSet(1), _parameterSet(3)], pollsPerStep=2)

    assert _worker(service, clock, tmp_path).run()["OK"]

    assert [step for step, _ in service.results] == [0, 1, 3]
    assert service.reported == {(0, WORKER_ID), (1, WORKER_ID), (3, WORKER_ID)}


class ReplayingService(FakeService):
    """Answers the step the worker has just reported once more (a stale or replayed answer)."""

    def __init__(self, steps):
        super().__init__(steps)
        self.replayed = False

    def getNewParameters(self, calibrationID, stepOnWorker, credential):
        assert credential == CREDENTIAL
        if stepOnWorker == 0 and not self.replayed:
            self.replayed = True
            self.calls.append(("getNewParameters", calibrationID, stepOnWorker))
            return S_OK(self.steps[0])
        return super().getNewParameters(calibrationID, stepOnWorker, credential)


def test_stale_answer_does_not_make_the_worker_report_again(clock, tmp_path):
    service = ReplayingService([_parameterSet(0), _parameterSet(1)])

    assert _worker(service, clock, tmp_path).run()["OK"]

    assert [step for step, _ in service.results] == [0, 1]


def test_reconstruction_error_is_reported_not_raised(clock, tmp_path):
    def reconstruct(steering, settings):
        raise ValueError("The built-in reconstruction only reads synthetic event files")

    service = FakeService([_parameterSet(0)])

    result = _worker(service, clock, tmp_path, reconstruct).run()

    assert not result["OK"]
    assert "synthetic event files" in result["Message"]
