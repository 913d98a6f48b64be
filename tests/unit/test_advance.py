"""advance(): what the end of a step decides, on phase-0 summaries of known answer; what it hands a
phase that reads an earlier step."""
import dataclasses

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import FAILED, FINISHED, RUNNING
from ILCDIRAC.CalibrationSystem.Procedure import phases
from ILCDIRAC.CalibrationSystem.Procedure.advance import (
    StepRecord,
    StepState,
    advance,
    plot_file_name,
    results_needed,
)
from ILCDIRAC.CalibrationSystem.Procedure.errors import SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.outcome import Distribution, PhaseOutcome, decode_plots, encode_plots
from ILCDIRAC.CalibrationSystem.Procedure.plots import render_plots
from ILCDIRAC.CalibrationSystem.Procedure.procedure import Position
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary

TRUE_CONSTANT = 37.52
SETTINGS = validate_settings({})
LIMIT = 8 * 1024 * 1024


def _contents(constant, workers=4, events=2000, seed=3):
    """Phase-0 summaries of photons digitised with ``constant`` on a detector whose truth is 37.52."""
    rng = np.random.default_rng(seed)
    contents = []
    for _ in range(workers):
        energies = (10.0 * constant / TRUE_CONSTANT * (1 + 0.05 * rng.standard_normal(events))).astype(np.float32)
        contents.append(encode_summary(0, {"barrel": energies, "endcap": energies.copy()}))
    return contents


def _state(constant, iteration=1, step=4, stage=1, phase=0):
    return StepState(stage, phase, step, iteration, {"CalibrECAL": [constant, constant],
                                                     "ECALEndcapCorrectionFactor": 1.0})


def test_a_step_far_from_the_truth_repeats_the_phase_with_corrected_constants():
    outcome = advance(_state(1.15 * TRUE_CONSTANT), _contents(1.15 * TRUE_CONSTANT), SETTINGS, LIMIT)
    assert outcome.status == RUNNING and not outcome.converged
    assert outcome.next_position == Position(1, 0) and outcome.next_iteration == 2
    assert outcome.parameters["CalibrECAL"][0] == pytest.approx(TRUE_CONSTANT, rel=0.005)
    assert "repeating phase 0 (ECalDigi)" in outcome.message
    assert set(outcome.plots) == {plot_file_name(_state(0), "ecal_barrel"), plot_file_name(_state(0), "ecal_endcap")}
    assert not outcome.artifacts


def test_the_plots_are_kept_undrawn_and_drawn_later_as_they_were():
    """advance() leaves the drawing for after the next step has started: the plots survive being
    kept with their step, and draw to the same PNGs."""
    plots = advance(_state(1.15 * TRUE_CONSTANT), _contents(1.15 * TRUE_CONSTANT), SETTINGS, LIMIT).plots
    kept = decode_plots(encode_plots(plots))
    assert set(kept) == set(plots)
    drawn, failures = render_plots(kept)
    assert not failures and drawn == render_plots(plots)[0]
    assert all(content.startswith(b"\x89PNG") for content in drawn.values())


def test_a_plot_that_cannot_be_drawn_is_reported_and_the_others_are_drawn():
    good = Distribution("good", "Good", "E [GeV]", np.array([1.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    bad = Distribution("bad", "Bad", "E [GeV]", np.array([1.0, 3.0]), np.array([0.0, 1.0]))
    drawn, failures = render_plots({"good.png": good, "bad.png": bad})
    assert set(drawn) == {"good.png"}
    assert "needs increasing edges, one more than its 2 counts" in failures["bad.png"]


def test_a_converged_step_moves_on_and_the_stop_phase_finishes_the_calibration():
    moving = advance(_state(TRUE_CONSTANT, iteration=3), _contents(TRUE_CONSTANT), SETTINGS, LIMIT)
    assert moving.status == RUNNING and moving.converged and moving.next_position == Position(1, 1)
    assert moving.next_iteration == 1
    settings = dict(SETTINGS, stopStage=1, stopPhase=0)
    finished = advance(_state(TRUE_CONSTANT), _contents(TRUE_CONSTANT), settings, LIMIT)
    assert finished.status == FINISHED and finished.next_position is None and finished.next_iteration is None
    assert finished.message.startswith("Finished after stage 1, phase 0 (ECalDigi), step 4 (deviation 0.")
    assert finished.message.endswith("accuracy 5.00%)")
    uncertainties = finished.metrics["uncertainties"]
    assert set(uncertainties) == {"CalibrECAL", "ECALEndcapCorrectionFactor"}
    # 8000 photons of 5 % resolution: the peak to ~0.05/sqrt(8000), a truncated fit somewhat worse
    assert 0.05 / np.sqrt(8000) < uncertainties["CalibrECAL"][0] / finished.parameters["CalibrECAL"][0] < 0.002
    assert finished.metrics["statisticsLimited"] == {}


def _limited(monkeypatch, note):
    """Phase 0 analysed as within its accuracy, statistics-limited when ``note`` is not ''."""
    def analyse(summaries, constants, settings, **inputs):
        return PhaseOutcome(dict(constants), {}, True, uncertainties={"ECALEndcapCorrectionFactor": 0.1},
                            statistics_note=note)

    monkeypatch.setitem(phases.PHASES, 0, dataclasses.replace(phases.PHASES[0], analyse=analyse))


def test_a_statistics_limited_phase_moves_on_unconverged_and_the_calibration_finishes_flagged(monkeypatch):
    _limited(monkeypatch, "statistics-limited: too few photons")
    moving = advance(_state(TRUE_CONSTANT), _contents(TRUE_CONSTANT), SETTINGS, LIMIT)
    assert moving.status == RUNNING and not moving.converged and moving.next_position == Position(1, 1)
    assert moving.metrics["statisticsLimited"] == {"1/0": "ECalDigi (stage 1): statistics-limited: too few photons"}
    assert moving.metrics["uncertainties"] == {"ECALEndcapCorrectionFactor": 0.1}
    # the note is carried to the last step, which says it when the calibration finishes
    _limited(monkeypatch, "")
    later = StepRecord(1, 0, 4, moving.metrics)
    settings = dict(SETTINGS, stopStage=3, stopPhase=0)
    finished = advance(dataclasses.replace(_state(TRUE_CONSTANT, step=20, stage=3), previous=later),
                       _contents(TRUE_CONSTANT), settings, LIMIT)
    assert finished.status == FINISHED and finished.converged
    assert finished.message.endswith("; statistics-limited: ECalDigi (stage 1): statistics-limited: too few photons")
    # the same phase of the same stage, no longer limited, drops its note
    again = advance(dataclasses.replace(_state(TRUE_CONSTANT, step=5), previous=later), _contents(TRUE_CONSTANT),
                    SETTINGS, LIMIT)
    assert again.metrics["statisticsLimited"] == {}


def test_too_few_photons_for_the_accuracy_make_phase0_statistics_limited():
    settings = dict(SETTINGS, digitisationAccuracy=0.01)
    outcome = advance(_state(TRUE_CONSTANT), _contents(TRUE_CONSTANT, workers=2, events=25, seed=1), settings, LIMIT)
    assert outcome.status == RUNNING and not outcome.converged and outcome.next_position == Position(1, 1)
    assert "statistics-limited: the ECal photon peak is" in outcome.message
    assert outcome.metrics["maxRelativeDeviation"] < 0.01 < 2 * outcome.metrics["maxRelativeDeviationUncertainty"]
    assert "barrelMeanWorkerSpread" in outcome.metrics


def test_a_phase_that_does_not_converge_within_the_cap_fails_and_keeps_its_constants():
    settings = dict(SETTINGS, nMaxIterationsPerPhase=3)
    below = advance(_state(1.15 * TRUE_CONSTANT, iteration=2), _contents(1.15 * TRUE_CONSTANT), settings, LIMIT)
    assert below.status == RUNNING and below.next_iteration == 3
    capped = advance(_state(1.15 * TRUE_CONSTANT, iteration=3), _contents(1.15 * TRUE_CONSTANT), settings, LIMIT)
    assert capped.status == FAILED and capped.next_position is None
    assert "did not converge within nMaxIterationsPerPhase=3" in capped.message
    assert capped.parameters["CalibrECAL"][0] == pytest.approx(TRUE_CONSTANT, rel=0.005)


def test_a_fit_that_fails_ends_the_calibration_with_the_reason_and_unchanged_constants():
    state = _state(TRUE_CONSTANT)
    tiny = [encode_summary(0, {"barrel": np.ones(2, np.float32), "endcap": np.ones(2, np.float32)})]
    outcome = advance(state, tiny, SETTINGS, LIMIT)
    assert outcome.status == FAILED
    assert outcome.parameters == state.parameters
    assert "Analysis of stage 1, phase 0 (ECalDigi), step 4 failed" in outcome.message


def test_a_stored_result_that_cannot_be_read_decides_nothing():
    """Not a verdict on the calibration: the caller leaves the step to be analysed again."""
    with pytest.raises(SummaryError):
        advance(_state(TRUE_CONSTANT), [b"garbage"], SETTINGS, LIMIT)


@pytest.mark.parametrize("jobs, fraction, needed", [(100, 0.9, 90), (4, 0.9, 4), (10, 0.9, 9), (1, 0.5, 1), (3, 1.0, 3)])
def test_results_needed_is_the_seed_fraction_of_the_initial_jobs(jobs, fraction, needed):
    assert results_needed(jobs, dict(SETTINGS, fractionOfFinishedJobsNeededToStartNextStep=fraction)) == needed


def _recording(monkeypatch, phase_id):
    """Replace the analysis of ``phase_id`` by one that records its keyword inputs; valid contents for it."""
    calls = []

    def analyse(summaries, constants, settings, **inputs):
        calls.append(inputs)
        return PhaseOutcome(dict(constants), {}, True)

    monkeypatch.setitem(phases.PHASES, phase_id, dataclasses.replace(phases.PHASES[phase_id], analyse=analyse))
    fields = phases.PHASES[phase_id].summary_fields
    return calls, [encode_summary(phase_id, {name: np.zeros(1, dtype) for name, dtype in fields.items()})]


PHASE1_STEP = StepRecord(3, 1, 8, {"endcapMean": 48.0})


@pytest.mark.parametrize("previous, given", [
    (PHASE1_STEP, PHASE1_STEP),  # the last HCalDigi step of this stage
    (None, None),  # the calibration started at phase 2
    (StepRecord(1, 1, 3, {"endcapMean": 48.0}), None),  # not this stage's
])
def test_phase2_is_given_the_last_phase1_step(monkeypatch, previous, given):
    calls, contents = _recording(monkeypatch, 2)
    outcome = advance(StepState(3, 2, 9, 1, {}, previous), contents, SETTINGS, LIMIT)
    assert outcome.status == RUNNING and outcome.next_position == Position(3, 3)
    assert calls == [{"previous": given}]


def test_an_iterative_phase_is_given_its_own_step_before_for_its_response_slope(monkeypatch):
    calls, contents = _recording(monkeypatch, 3)
    own = StepRecord(3, 3, 9, {"emMean": 11.0})
    advance(StepState(3, 3, 10, 2, {}, own), contents, SETTINGS, LIMIT)
    advance(StepState(3, 3, 10, 1, {}, StepRecord(3, 2, 9, {})), contents, SETTINGS, LIMIT)
    assert calls == [{"previous": own}, {"previous": None}]


def test_phases_without_an_earlier_input_are_not_given_the_step_before(monkeypatch):
    calls, contents = _recording(monkeypatch, 5)
    advance(StepState(2, 5, 10, 1, {}, StepRecord(1, 4, 9, {})), contents, SETTINGS, LIMIT)
    assert calls == [{}]
