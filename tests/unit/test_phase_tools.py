"""Checks and bookkeeping shared by the phase modules: what they accept, refuse and say."""
import dataclasses

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import (
    ecal_digitisation,
    em_scale,
    hadronic_scale,
    hcal_digitisation,
    mip_calibration,
    phase_tools,
)
from ILCDIRAC.CalibrationSystem.Procedure.advance import StepRecord
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, ProcedureError, SettingsError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import PeakFit, fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.phases import phase_label

LABEL = "phase 9 (Test)"


def _peak(mean):
    return PeakFit(mean, 0.5, 100, 20, mean - 1.0, mean + 1.0, "gaussian", "", np.zeros(20), np.arange(21.0), 10.0, 0.05, 12.0, 9)


def test_phase_modules_label_their_messages_like_the_registry():
    modules = {0: ecal_digitisation, 1: hcal_digitisation, 2: mip_calibration, 3: em_scale, 4: hadronic_scale}
    for phase_id, module in modules.items():
        assert module.LABEL == phase_label(phase_id)


def test_pfo_columns_returns_arrays_and_refuses_missing_or_ragged_columns():
    data = phase_tools.pfo_columns({"a": [1, 2], "b": np.array([3.0, 4.0]), "unused": [0]}, ("a", "b"), LABEL)
    assert list(data) == ["a", "b"]
    assert isinstance(data["a"], np.ndarray) and data["a"].tolist() == [1, 2]
    with pytest.raises(ProcedureError, match=r"columns \['b'\] are missing; phase 9 \(Test\) needs \['a', 'b'\]"):
        phase_tools.pfo_columns({"a": [1]}, ("a", "b"), LABEL)
    with pytest.raises(ProcedureError, match="equal length"):
        phase_tools.pfo_columns({"a": [1, 2], "b": [1, 2, 3]}, ("a", "b"), LABEL)
    with pytest.raises(ProcedureError, match="1-D"):
        phase_tools.pfo_columns({"a": np.zeros((2, 2)), "b": np.zeros((2, 2))}, ("a", "b"), LABEL)


def test_split_by_angle_compares_in_the_column_precision():
    # 0.65 written as float32 is 0.64999998: it must stay on the excluded upper boundary of [0.2, 0.65].
    cos_theta = phase_tools.abs_cos_theta(np.array([0.3, -0.65, 0.8, -0.85, 0.5], np.float32))
    assert cos_theta.dtype == np.float32
    energy = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    contained = np.array([True, True, True, True, False])
    settings = {"barrel": [0.2, 0.65], "endcap": (0.7, 0.9)}
    regions = phase_tools.split_by_angle(energy, contained, cos_theta, settings, {"b": "barrel", "e": "endcap"})
    assert regions["b"].dtype == np.float32
    assert regions["b"].tolist() == [1.0]
    assert regions["e"].tolist() == [3.0, 4.0]
    assert phase_tools.abs_cos_theta(np.array([-1, 0], np.int32)).dtype == np.float64


@pytest.mark.parametrize("value", [None, [0.2], [0.2, 0.5, 0.7], ["low", 0.5]])
def test_cos_theta_range_refuses_anything_but_two_numbers(value):
    with pytest.raises(SettingsError, match="Setting barrel must be a list"):
        phase_tools.cos_theta_range({"barrel": value}, "barrel")


def test_cos_theta_range_reads_two_numbers():
    assert phase_tools.cos_theta_range({"barrel": ["0.2", 1]}, "barrel") == (0.2, 1.0)


def test_positive_constant():
    assert phase_tools.positive_constant({"C": "46.5"}, "C", "needed") == 46.5
    with pytest.raises(ProcedureError, match="Constant C is missing; phase 9 needs it"):
        phase_tools.positive_constant({}, "C", "phase 9 needs it")
    with pytest.raises(ProcedureError, match=r"C must be a number, got \[1.0, 2.0\]"):
        phase_tools.positive_constant({"C": [1.0, 2.0]}, "C", "needed")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ProcedureError, match="C must be a positive number"):
            phase_tools.positive_constant({"C": bad}, "C", "needed")


def test_gather_concatenates_as_float64_and_names_a_missing_field():
    values = phase_tools.gather([{"x": np.array([1.5], np.float32)}, {"x": np.array([2.5, 3.5])}], "x", LABEL)
    assert values.dtype == np.float64 and values.tolist() == [1.5, 2.5, 3.5]
    with pytest.raises(SummaryError, match=r"phase 9 \(Test\): a worker summary has no field 'x'"):
        phase_tools.gather([{"x": np.ones(1)}, {"y": np.ones(1)}], "x", LABEL)


def test_positive_peak_prefixes_fit_errors_and_refuses_a_non_positive_peak():
    values = np.random.default_rng(1).normal(10.0, 0.5, 2000)
    peak = phase_tools.positive_peak(fit_peak, values, 0.02, 10.0, "here")
    assert peak.mean == fit_peak(values, 0.02, 10.0).mean == pytest.approx(10.0, abs=0.05)
    with pytest.raises(FitError, match="^here: only 2 finite values"):
        phase_tools.positive_peak(fit_peak, [1.0, 2.0], 0.02, 10.0, "here")
    with pytest.raises(FitError, match="^here: peak at 0.0 GeV, cannot rescale by it"):
        phase_tools.positive_peak(lambda v, a, t: _peak(0.0), values, 0.02, 10.0, "here")


def test_peak_metrics():
    fallback = dataclasses.replace(_peak(9.5), method="window-mean", message="m", chi2=None, ndf=None)
    metrics = phase_tools.peak_metrics("em", fallback, 10.0)
    assert metrics == {
        "emMean": 9.5,
        "emMeanUncertainty": 0.05,
        "emSigma": 0.5,
        "emEntries": 100.0,
        "emBins": 20.0,
        "emWindowLow": 8.5,
        "emWindowHigh": 10.5,
        "emFitMethod": "window-mean",
        "emFitMessage": "m",
        "emRelativeDeviation": -0.05,
        "emRelativeDeviationUncertainty": pytest.approx(0.005),
    }


def test_peak_metrics_of_a_fit_quote_its_chi2():
    metrics = phase_tools.peak_metrics("em", _peak(9.5), 10.0)
    assert (metrics["emChi2"], metrics["emNdf"], metrics["emMeanUncertainty"]) == (12.0, 9.0, 0.05)


def test_worker_spread_is_the_error_of_the_mean_of_the_workers():
    assert phase_tools.worker_spread([1.0]) is None
    assert phase_tools.worker_spread([1.0, 2.0, 3.0, 4.0]) == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2.0)


def test_worker_peak_spread_skips_workers_without_a_peak():
    summaries = [{"e": [9.0] * 10}, {"e": [11.0] * 10}, {"e": [1.0]}]
    spread = phase_tools.worker_peak_spread(lambda v, a, t: _peak(float(np.mean(v))), summaries[:2], "e", 0.05, 10.0)
    assert spread == pytest.approx(1.0)  # std 1.414 of two means, over sqrt(2)
    assert phase_tools.worker_peak_spread(fit_peak, summaries[2:], "e", 0.05, 10.0) is None


def test_uncertainty_propagation_helpers():
    assert phase_tools.relative_uncertainty(0.03, 0.04) == pytest.approx(0.05)
    assert phase_tools.scaled_uncertainty(-2.0, 0.1) == pytest.approx(0.2)
    assert phase_tools.scaled_uncertainty([2.0, 4.0], 0.1) == pytest.approx([0.2, 0.4])


def test_statistics_verdict():
    # resolved: 2 x 1 % fits in the 2.5 % accuracy
    assert phase_tools.statistics_verdict(0.01, 0.01, 0.025, 400, "the peak") == (True, "")
    # outside the accuracy: iterate, whatever the statistics
    assert phase_tools.statistics_verdict(0.03, 0.02, 0.025, 400, "the peak") == (False, "")
    within, note = phase_tools.statistics_verdict(0.01, 0.02, 0.025, 400, "the peak")
    assert within and note.startswith("statistics-limited: the peak is 1.00% from its target, measured to ±2.00%")
    assert "about 1024 selected events (2.6 times as many" in note  # 400·(2·2/2.5)² = 1024


def test_copy_constants_shares_no_list():
    constants = {"CalibrECAL": [37.5, 75.0], "CalibrHCALBarrel": 46.0}
    copy = phase_tools.copy_constants(constants)
    assert copy == constants
    copy["CalibrECAL"][0] = 1.0
    assert constants["CalibrECAL"] == [37.5, 75.0]


def test_response_slope_from_two_steps_on_the_same_events():
    # the step before measured 12.5 with C0 and set C = C0·10/12.5; a response μ ∝ C^0.6 gives
    # 12.5·(10/12.5)^0.6 now
    before = StepRecord(1, 0, 3, {"barrelMean": 12.5})
    current = 12.5 * (10.0 / 12.5) ** 0.6
    assert phase_tools.response_slope(before, "barrelMean", current, 10.0) == pytest.approx(0.6)
    assert phase_tools.response_slope(None, "barrelMean", current, 10.0) == 1.0  # first step of the phase
    assert phase_tools.response_slope(StepRecord(1, 0, 3, {}), "barrelMean", current, 10.0) == 1.0
    assert phase_tools.response_slope(StepRecord(1, 0, 3, {"barrelMean": 10.01}), "barrelMean", 10.0, 10.0) == 1.0
    assert phase_tools.response_slope(before, "barrelMean", 13.0, 10.0) == 0.25  # moved away: clipped
