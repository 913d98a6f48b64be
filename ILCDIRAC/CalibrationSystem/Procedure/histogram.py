"""Peak of an energy distribution: binning, 90 % minimum-RMS window, Gaussian fit (physics.md §2.0).

Same recipe as the PandoraAnalysis calibration tools for the window: bins of accuracy x E over
[0, max], the narrowest run of bins holding 90 % of the entries. Without their defects: the
largest value is kept in the last bin (ROOT put it in the overflow), the fit starts from sensible
values (upstream zeroed them), and a fit that cannot be trusted falls back to the window mean
*and says so* instead of returning FLOAT_MAX.

The Gaussian is not fitted on those bins: at the default accuracy they are 0.5 GeV wide on a
peak of sigma ~0.55 GeV, a three-parameter fit on ~3 bins. It is fitted with MINUIT (iminuit,
MINUIT2, the minimiser of ROOT's fits) on a histogram of the same values over the window with
FIT_BINS_PER_SIGMA bins per window RMS. The cost is the binned Poisson likelihood
(iminuit.cost.ExtendedBinnedNLL), not ROOT's default chi-square: on bins that fine many hold a
few entries, where the chi-square's sqrt(n) errors pull the fit towards the downward
fluctuations and drop the empty bins, while the likelihood is unbiased for any content. Its
minimum value is the Baker-Cousins likelihood ratio, which is chi-square distributed with
bins - 3 degrees of freedom, so that it is quoted as the fit's chi2/ndf.
"""
import math
from dataclasses import dataclass

import numpy as np
from iminuit import Minuit
from iminuit.cost import ExtendedBinnedNLL

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError

MIN_ENTRIES = 5
# Relative slack on the cumulative-fraction thresholds, so that e.g. 0.9*70 = 63.00000000000001
# is reached by an integer sum of 63.
_THRESHOLD_SLACK = 1e-12
#: Bins of the fit histogram per RMS of the 90 % window (the window spans about 3.5 of them).
FIT_BINS_PER_SIGMA = 4
#: At most this many bins in the fit histogram (a window much wider than its RMS).
MAX_FIT_BINS = 100
#: MINUIT tolerance (its default is 0.1): the mean to ~1e-6 of its error, so that a fit of an
#: expected histogram (Simulation) is exact for its purpose; costs a few more calls.
_TOLERANCE = 1e-4
_ERF = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class Window:
    """The narrowest run of bins holding a given fraction of the entries.

    ``start`` and ``stop`` are bin indices, both included. ``low``/``high`` are the fit range.
    """

    start: int
    stop: int
    mean: float
    rms: float
    low: float
    high: float


@dataclass(frozen=True)
class GaussFit:
    """An accepted Gaussian fit: ``norm`` entries distributed as N(mean, sigma) over the fit range.

    ``mean_error``/``sigma_error`` are MINUIT's (HESSE) errors; ``chi2`` the likelihood-ratio
    chi-square with ``ndf`` = bins - 3 degrees of freedom; ``calls`` the cost evaluations.
    """

    norm: float
    mean: float
    sigma: float
    mean_error: float
    sigma_error: float
    chi2: float
    ndf: int
    calls: int

    def amplitude(self, bin_width):
        """Height A of A·exp(-(x-mean)²/(2·sigma²)) on a histogram of bins ``bin_width`` wide.

        :param float bin_width: the histogram's bin width
        :return: float
        """
        return self.norm * bin_width / (math.sqrt(2.0 * math.pi) * self.sigma)


@dataclass(frozen=True)
class PeakFit:
    """The peak of a distribution and how it was obtained.

    ``method`` is 'gaussian' for an accepted fit, or 'window-mean' when the fit was rejected;
    ``message`` then says why, so that a fallback is never silent. ``mean_error`` is the fit's
    error on the mean, or rms/sqrt(n) of the window for 'window-mean'; ``chi2``/``ndf`` are the
    fit's (None for 'window-mean'). ``counts``/``edges`` are the reference binning the window was
    found on, and ``amplitude`` the Gaussian's height in those bins; ``fit_counts``/``fit_edges``
    the finer histogram the Gaussian was fitted to (None for 'window-mean').
    """

    mean: float
    sigma: float
    entries: int
    n_bins: int
    window_low: float
    window_high: float
    method: str
    message: str
    counts: np.ndarray  # the histogram the window was taken from
    edges: np.ndarray
    amplitude: float | None  # of the accepted Gaussian; None for 'window-mean'
    mean_error: float
    chi2: float | None
    ndf: int | None
    fit_counts: np.ndarray | None = None
    fit_edges: np.ndarray | None = None


def energy_histogram(values, accuracy, truth_energy):
    """Histogram ``values`` in bins of about ``accuracy*truth_energy`` over [0, max].

    The bin count follows the data maximum as upstream does (int(vmax/(acc·E)), at least 1); the
    last bin is closed so the maximum value is counted. Values below 0 are outside the range.
    Returns ``(counts, edges)``.

    :param values: the selected energies (GeV)
    :param float accuracy: relative bin width (digitisationAccuracy or pandoraPFAAccuracy)
    :param float truth_energy: the sample's energy (GeV), which sets the bin width
    :return: (counts, edges) as numpy arrays
    """
    values = np.asarray(values, dtype=float)
    if not accuracy > 0 or not truth_energy > 0:
        raise FitError(f"accuracy ({accuracy}) and truth energy ({truth_energy}) must be positive")
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise FitError("cannot histogram an empty or non-finite set of values")
    vmax = float(values.max())
    if vmax <= 0:
        raise FitError(f"no positive value to histogram (largest is {vmax})")
    n_bins = max(1, int(vmax / (accuracy * truth_energy)))
    counts, edges = np.histogram(values, bins=n_bins, range=(0.0, vmax))
    return counts, edges


def min_rms_window(counts, edges, fraction=0.9):
    """The window of consecutive bins holding ``fraction`` of the entries with the smallest RMS.

    Starts are tried from bin 0 up to the first bin where the cumulative content reaches
    (1-fraction) of the total; each window grows until it holds ``fraction`` (crossing bin
    included). Strictly smaller RMS wins, so the earliest start wins ties.

    :param counts: bin contents
    :param edges: bin edges
    :param float fraction: share of the entries the window must hold
    :return: Window (first and last bin, mean, RMS, fit range)
    """
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    total = counts.sum()
    if total < MIN_ENTRIES:
        raise FitError(f"only {total:g} entries in the histogram, at least {MIN_ENTRIES} are needed")
    centres = 0.5 * (edges[:-1] + edges[1:])
    cumulative = np.cumsum(counts)
    low_target = (1.0 - fraction) * total * (1.0 - _THRESHOLD_SLACK)
    high_target = fraction * total * (1.0 - _THRESHOLD_SLACK)
    last_start = int(np.argmax(cumulative >= low_target))
    best = None
    for start in range(last_start + 1):
        before = cumulative[start - 1] if start > 0 else 0.0
        reached = np.nonzero(cumulative - before >= high_target)[0]
        stop = int(reached[0]) if reached.size else counts.size - 1
        weights = counts[start : stop + 1]
        x = centres[start : stop + 1]
        mean = float(np.average(x, weights=weights))
        rms = float(np.sqrt(np.average((x - mean) ** 2, weights=weights)))
        if best is None or rms < best[3]:
            best = (start, stop, mean, rms)
    start, stop, mean, rms = best
    low = float(edges[0]) if start == 0 else float(centres[start])
    return Window(start, stop, mean, rms, low, float(centres[stop]))


def fit_edges(window, edges):
    """Edges of the histogram the Gaussian is fitted to: the window's bins, from the lower edge of
    its first to the upper edge of its last (the entries ROOT fits in the range of their centres),
    in bins of about window.rms/FIT_BINS_PER_SIGMA (at least 3, at most MAX_FIT_BINS).

    :param Window window: the 90 % window (min_rms_window)
    :param edges: the edges of the histogram the window was found in
    :return: float64 array of bin edges
    """
    low, high = float(edges[window.start]), float(edges[window.stop + 1])
    per_bin = window.rms / FIT_BINS_PER_SIGMA
    n_bins = MAX_FIT_BINS if not per_bin > 0 else min(MAX_FIT_BINS, max(3, math.ceil((high - low) / per_bin)))
    return np.linspace(low, high, n_bins + 1)


def _gauss_cdf(x, norm, mean, sigma):
    """norm·Φ((x - mean)/sigma): the expected entries below x (ExtendedBinnedNLL's scaled cdf)."""
    return norm * 0.5 * (1.0 + _ERF((x - mean) / (sigma * math.sqrt(2.0))).astype(float))


def fit_gaussian(counts, edges, window):
    """Binned-likelihood fit (MINUIT) of a Gaussian to the histogram ``counts``/``edges``.

    Starts from norm = entries, mu = window mean, sigma = window RMS. Raises FitError (with the
    reason) unless MINUIT found a valid minimum with an accurate covariance, sigma is finite and
    positive and low <= mu <= high of the window.

    :param counts: bin contents of the fit histogram (fit_edges), integers or expected contents
    :param edges: its bin edges
    :param Window window: the window the histogram covers (start values and allowed range)
    :return: GaussFit (entries, mean, sigma, their errors, chi-square, ndf, cost evaluations)
    """
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    filled = int(np.count_nonzero(counts > 0))
    if filled < 3:
        raise FitError(f"the window has {filled} non-empty bins, a Gaussian fit needs at least 3")
    if not window.rms > 0:
        raise FitError("the window has no width to start a Gaussian fit from")
    cost = ExtendedBinnedNLL(counts, edges, _gauss_cdf)
    minuit = Minuit(cost, norm=counts.sum(), mean=window.mean, sigma=window.rms)
    minuit.limits["norm"] = (0.0, None)
    minuit.limits["sigma"] = (0.0, None)
    minuit.tol = _TOLERANCE
    minuit.migrad()
    if not minuit.valid:
        raise FitError("MINUIT found no valid minimum for the Gaussian fit")
    minuit.hesse()
    norm, mean, sigma = (float(v) for v in minuit.values)
    errors = [float(e) for e in minuit.errors]
    if not minuit.accurate or not all(np.isfinite(errors)) or not errors[1] > 0:
        raise FitError("the Gaussian fit's covariance matrix is not accurate")
    if not (np.isfinite(sigma) and sigma > 0):
        raise FitError(f"the Gaussian fit gave a non-finite or zero width (sigma={sigma})")
    if not window.low <= mean <= window.high:
        raise FitError(f"the fitted mean {mean:.4g} is outside the fit range [{window.low:.4g}, {window.high:.4g}]")
    return GaussFit(norm, mean, sigma, errors[1], errors[2], float(minuit.fval), counts.size - 3, int(minuit.nfcn))


def fit_peak(values, accuracy, truth_energy, fraction=0.9):
    """The peak (mean, width, error on the mean) of ``values``: Gaussian fit in the min-RMS window, or the window mean.

    Non-finite values are dropped and counted in the message. FitError if fewer than 5 values
    are left; a rejected fit falls back to the window mean and ``method``/``message`` say so.

    :param values: the selected energies (GeV)
    :param float accuracy: relative bin width
    :param float truth_energy: the sample's energy (GeV)
    :param float fraction: share of the entries in the min-RMS window
    :return: PeakFit (mean and its error, width, method 'gaussian' or 'window-mean', chi2/ndf, the
        histograms and window)
    """
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    notes = []
    if finite.size < values.size:
        notes.append(f"{values.size - finite.size} non-finite values ignored")
    if finite.size < MIN_ENTRIES:
        raise FitError(f"only {finite.size} finite values, at least {MIN_ENTRIES} are needed for a peak")
    counts, edges = energy_histogram(finite, accuracy, truth_energy)
    entries = int(counts.sum())
    if entries < finite.size:
        notes.append(f"{finite.size - entries} negative values outside the histogram")
    window = min_rms_window(counts, edges, fraction)
    fine_edges = fit_edges(window, edges)
    fine_counts = np.histogram(finite, bins=fine_edges)[0]
    try:
        fit = fit_gaussian(fine_counts, fine_edges, window)
    except FitError as error:
        notes.insert(0, f"Gaussian fit rejected ({error}); using the mean of the {fraction:.0%} window")
        in_window = float(counts[window.start : window.stop + 1].sum())
        return PeakFit(window.mean, window.rms, entries, counts.size, window.low, window.high, "window-mean",
                       "; ".join(notes), counts, edges, None, window.rms / math.sqrt(in_window), None, None)
    return PeakFit(fit.mean, fit.sigma, entries, counts.size, window.low, window.high, "gaussian", "; ".join(notes),
                   counts, edges, fit.amplitude(float(edges[1] - edges[0])), fit.mean_error, fit.chi2, fit.ndf,
                   fine_counts, fine_edges)
