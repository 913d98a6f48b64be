"""Known-answer tests of the binning, the 90 % minimum-RMS window and the Gaussian peak fit."""
import math

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import (
    Window,
    energy_histogram,
    fit_edges,
    fit_gaussian,
    fit_peak,
    min_rms_window,
)

UNIT_EDGES = np.arange(11.0)  # ten bins of width 1, centres 0.5 ... 9.5


def test_histogram_binning_and_maximum_kept():
    counts, edges = energy_histogram([1.0, 2.0, 3.0, 4.0, 10.0], accuracy=0.1, truth_energy=10.0)
    assert counts.size == 10  # int(10 / (0.1*10))
    assert edges[0] == 0.0 and edges[-1] == 10.0
    assert counts.sum() == 5  # ROOT lost the maximum in the overflow
    assert counts[-1] == 1


def test_histogram_at_least_one_bin():
    counts, _ = energy_histogram([0.1, 0.2], accuracy=0.05, truth_energy=10.0)
    assert counts.tolist() == [2]


def test_histogram_refuses_bad_input():
    with pytest.raises(FitError):
        energy_histogram([], 0.05, 10.0)
    with pytest.raises(FitError):
        energy_histogram([-1.0, 0.0], 0.05, 10.0)
    with pytest.raises(FitError):
        energy_histogram([1.0], 0.0, 10.0)


def test_window_by_hand():
    # total 50: starts 0..1 (cumulative 2, 5 reaches 5 = 10 %); both windows end at bin 4 (45 = 90 %).
    # Start 1 drops the far bin 0 and is narrower: bins 1..4, centres 1.5..4.5, contents 3, 10, 25, 10.
    counts = [2, 3, 10, 25, 10, 0, 0, 0, 0, 0]
    window = min_rms_window(counts, UNIT_EDGES)
    mean = (3 * 1.5 + 10 * 2.5 + 25 * 3.5 + 10 * 4.5) / 48  # 3.375
    variance = (3 * 1.875**2 + 10 * 0.875**2 + 25 * 0.125**2 + 10 * 1.125**2) / 48
    assert (window.start, window.stop) == (1, 4)
    assert window.mean == pytest.approx(mean)
    assert window.rms == pytest.approx(math.sqrt(variance))
    assert (window.low, window.high) == (1.5, 4.5)  # centres of the first and last bins


def test_window_tie_earliest_start_wins():
    # Starts 0, 1 and 2 all give bins {2,3,4} (bins 0 and 1 are empty): same RMS, start 0 wins,
    # so the fit range starts at the lower edge 0 and not at the centre of bin 2.
    counts = [0, 0, 10, 25, 10, 0, 0, 0, 0, 5]
    window = min_rms_window(counts, UNIT_EDGES)
    assert (window.start, window.stop) == (0, 4)
    assert window.mean == pytest.approx(3.5)
    assert window.rms == pytest.approx(math.sqrt(20 / 45))
    assert (window.low, window.high) == (0.0, 4.5)


def test_window_threshold_not_spoilt_by_rounding():
    # 0.9*70 is 63.00000000000001 in floating point; 63 entries must still count as 90 %.
    window = min_rms_window([63, 7], [0.0, 1.0, 2.0])
    assert (window.start, window.stop) == (0, 0)


def test_window_needs_five_entries():
    with pytest.raises(FitError, match="at least 5"):
        min_rms_window([1, 2, 1, 0, 0, 0, 0, 0, 0, 0], UNIT_EDGES)


def _expected_gaussian_counts(edges, entries, mean, sigma):
    cdf = np.array([0.5 * (1.0 + math.erf((x - mean) / (sigma * math.sqrt(2.0)))) for x in edges])
    return entries * np.diff(cdf)


def test_gaussian_fit_exact_curve():
    # The expected contents of 500 entries of N(10.3, 0.8) on a truncated range: fitted exactly,
    # with a zero likelihood-ratio chi-square and the errors of 500 entries.
    edges = np.linspace(8.0, 12.5, 31)
    counts = _expected_gaussian_counts(edges, 500.0, 10.3, 0.8)
    window = Window(start=0, stop=0, mean=10.0, rms=1.0, low=8.0, high=12.5)
    fit = fit_gaussian(counts, edges, window)
    assert fit.norm == pytest.approx(500.0, rel=1e-4)
    assert fit.mean == pytest.approx(10.3, abs=1e-4)
    assert fit.sigma == pytest.approx(0.8, rel=1e-4)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-6)
    assert fit.ndf == 27
    # a truncated Gaussian's mean is known less well than sigma/sqrt(N) of the full one
    assert 0.8 / math.sqrt(500) < fit.mean_error < 2 * 0.8 / math.sqrt(500)
    assert fit.amplitude(0.1) == pytest.approx(500.0 * 0.1 / (math.sqrt(2 * math.pi) * 0.8), rel=1e-4)


def test_gaussian_fit_rejects_mean_outside_range():
    edges = np.linspace(8.0, 12.5, 31)
    counts = _expected_gaussian_counts(edges, 500.0, 10.3, 0.8)
    window = Window(start=0, stop=0, mean=10.0, rms=1.0, low=8.0, high=10.0)
    with pytest.raises(FitError, match="outside the fit range"):
        fit_gaussian(counts, edges, window)


def test_fit_histogram_spans_the_window_bins_finely():
    # window bins 2..4 of unit width: from edge 2 to edge 5, in bins of rms/4 = 0.25
    window = Window(start=2, stop=4, mean=3.5, rms=1.0, low=2.5, high=4.5)
    edges = fit_edges(window, UNIT_EDGES)
    assert edges[0] == 2.0 and edges[-1] == 5.0
    assert np.diff(edges) == pytest.approx(np.full(12, 0.25))


def test_peak_error_and_chi2_of_a_known_gaussian():
    # 0.5 GeV reference bins on a sigma 0.55 GeV peak: the fit uses ~4 bins per sigma, and its
    # chi-square follows ndf
    rng = np.random.default_rng(3)
    peak = fit_peak(rng.normal(10.0, 0.55, 2000), accuracy=0.05, truth_energy=10.0)
    assert peak.method == "gaussian"
    assert peak.fit_edges[1] - peak.fit_edges[0] < 0.55 / 3
    assert 0.55 / math.sqrt(2000) < peak.mean_error < 2 * 0.55 / math.sqrt(2000)
    assert abs(peak.mean - 10.0) < 4 * peak.mean_error
    assert peak.ndf == peak.fit_counts.size - 3
    assert peak.chi2 < peak.ndf + 5 * math.sqrt(2 * peak.ndf)


def test_peak_errors_cover_the_true_mean_at_68_percent():
    # Binomial: 400 toys at p = 0.683 have a standard deviation of 2.3 %; 4 of them are allowed.
    rng = np.random.default_rng(2024)
    toys = 400
    covered = 0
    for _ in range(toys):
        peak = fit_peak(rng.normal(10.0, 0.55, 400), accuracy=0.05, truth_energy=10.0)
        covered += abs(peak.mean - 10.0) < peak.mean_error
    rate, spread = covered / toys, math.sqrt(0.683 * 0.317 / toys)
    assert abs(rate - 0.683) < 4 * spread


def test_peak_of_gaussian_with_flat_tail():
    rng = np.random.default_rng(12345)
    values = np.concatenate([rng.normal(10.0, 0.5, 20000), rng.uniform(0.0, 20.0, 2000)])
    peak = fit_peak(values, accuracy=0.05, truth_energy=10.0)
    assert peak.method == "gaussian" and peak.message == ""
    assert peak.mean == pytest.approx(10.0, abs=0.02)
    assert peak.sigma == pytest.approx(0.5, rel=0.1)
    assert peak.entries == 22000
    assert peak.n_bins == int(values.max() / 0.5)
    assert peak.window_low < 10.0 < peak.window_high
    assert peak.mean_error == pytest.approx(0.5 / np.sqrt(20000), rel=0.2)
    assert peak.ndf > 0 and 0 < peak.chi2 / peak.ndf < 3


def test_peak_falls_back_to_window_mean_and_says_so():
    # Two filled bins (9.0 and 10.0 in 0.5-wide bins): too few for a three-parameter fit.
    values = [9.0] * 50 + [10.0] * 50
    peak = fit_peak(values, accuracy=0.05, truth_energy=10.0)
    assert peak.method == "window-mean"
    assert "Gaussian fit rejected" in peak.message and "non-empty bins" in peak.message
    assert peak.mean == pytest.approx(9.5)  # centres 9.25 and 9.75, equal weights
    assert peak.mean_error == pytest.approx(0.25 / math.sqrt(100))  # window rms/sqrt(n)
    assert peak.chi2 is None and peak.ndf is None and peak.amplitude is None


def test_peak_reports_ignored_values():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(10.0, 0.5, 1000), [np.nan, np.inf, -3.0]])
    peak = fit_peak(values, 0.05, 10.0)
    assert peak.entries == 1000
    assert "2 non-finite" in peak.message and "1 negative" in peak.message


def test_peak_needs_five_finite_values():
    with pytest.raises(FitError, match="at least 5"):
        fit_peak([10.0, 10.1, 9.9, 10.2], 0.05, 10.0)
    with pytest.raises(FitError):
        fit_peak([np.nan] * 10, 0.05, 10.0)
    with pytest.raises(FitError):
        fit_peak([], 0.05, 10.0)
