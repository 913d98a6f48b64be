"""Peak of an energy distribution: binning, 90 % minimum-RMS window, Gaussian fit (physics.md §2.0).

Same recipe as the PandoraAnalysis calibration tools, without their defects: the largest value
is kept in the last bin (ROOT put it in the overflow), the fit starts from sensible values
(upstream zeroed them), and a fit that cannot be trusted falls back to the window mean *and says
so* instead of returning FLOAT_MAX.
"""
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError

MIN_ENTRIES = 5
# Relative slack on the cumulative-fraction thresholds, so that e.g. 0.9*70 = 63.00000000000001
# is reached by an integer sum of 63.
_THRESHOLD_SLACK = 1e-12
_MAX_ITERATIONS = 200
_TOLERANCE = 1e-9


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
    """An accepted Gaussian chi-square fit: A·exp(-(x-mean)²/(2·sigma²))."""

    amplitude: float
    mean: float
    sigma: float
    mean_error: float
    sigma_error: float
    chi2: float
    ndf: int
    iterations: int


@dataclass(frozen=True)
class PeakFit:
    """The peak of a distribution and how it was obtained.

    ``method`` is 'gaussian' for an accepted fit, or 'window-mean' when the fit was rejected;
    ``message`` then says why, so that a fallback is never silent. ``mean_error`` is the fit's
    error on the mean, or RMS/sqrt(entries) of the window for 'window-mean', where ``chi2`` and
    ``ndf`` are None.
    """

    mean: float
    sigma: float
    entries: int
    n_bins: int
    window_low: float
    window_high: float
    method: str
    message: str
    counts: np.ndarray  # the histogram the peak was taken from
    edges: np.ndarray
    amplitude: float | None  # of the accepted Gaussian; None for 'window-mean'
    mean_error: float
    chi2: float | None
    ndf: int | None


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


def fit_gaussian(counts, edges, window):
    """Chi-square fit of a Gaussian to the non-empty bins of ``window`` (errors sqrt(n)).

    Levenberg-Marquardt from A = largest bin, mu = window mean, sigma = window RMS. Raises
    FitError (with the reason) unless the fit converged, its covariance is usable, sigma is
    finite and positive and low <= mu <= high.

    :param counts: bin contents
    :param edges: bin edges
    :param Window window: the bins to fit (min_rms_window)
    :return: GaussFit (amplitude, mean, sigma, chi-square, ...)
    """
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    centres = 0.5 * (edges[:-1] + edges[1:])
    n = counts[window.start : window.stop + 1]
    x = centres[window.start : window.stop + 1][n > 0]
    n = n[n > 0]
    if n.size < 3:
        raise FitError(f"the window has {n.size} non-empty bins, a Gaussian fit needs at least 3")
    # Three non-empty bins in the window imply a positive window RMS to start from.
    start = np.array([n.max(), window.mean, window.rms])
    params, covariance, chi2, iterations = _levenberg_marquardt(x, n, start)
    amplitude, mean, sigma = params
    sigma = abs(sigma)  # the model depends on sigma² only
    if covariance is None:
        raise FitError("the Gaussian fit did not converge or its covariance matrix is singular")
    if not np.all(np.isfinite(params)) or not sigma > 0:
        raise FitError(f"the Gaussian fit gave a non-finite or zero width (sigma={sigma})")
    if not window.low <= mean <= window.high:
        raise FitError(f"the fitted mean {mean:.4g} is outside the fit range [{window.low:.4g}, {window.high:.4g}]")
    errors = np.sqrt(np.diag(covariance))
    return GaussFit(
        float(amplitude), float(mean), float(sigma), float(errors[1]), float(errors[2]), chi2, int(n.size - 3), iterations
    )


def _gauss_and_jacobian(x, params):
    amplitude, mean, sigma = params
    d = x - mean
    g = np.exp(-0.5 * (d / sigma) ** 2)
    model = amplitude * g
    jacobian = np.column_stack([g, model * d / sigma**2, model * d**2 / sigma**3])
    return model, jacobian


def _levenberg_marquardt(x, n, params):
    """Minimise sum((n - model)²/n). Returns (params, covariance or None, chi2, iterations)."""
    weights = 1.0 / np.sqrt(n)
    model, jacobian = _gauss_and_jacobian(x, params)
    residual = (n - model) * weights
    chi2 = float(residual @ residual)
    damping = 1e-3
    for iteration in range(1, _MAX_ITERATIONS + 1):
        wj = jacobian * weights[:, None]
        normal = wj.T @ wj
        gradient = wj.T @ residual
        try:
            step = np.linalg.solve(normal + damping * np.diag(np.diag(normal)), gradient)
        except np.linalg.LinAlgError:
            return params, None, chi2, iteration
        trial = params + step
        trial_model, trial_jacobian = _gauss_and_jacobian(x, trial)
        trial_residual = (n - trial_model) * weights
        trial_chi2 = float(trial_residual @ trial_residual)
        small_step = np.all(np.abs(step) <= _TOLERANCE * (np.abs(params) + _TOLERANCE))
        if np.isfinite(trial_chi2) and trial_chi2 <= chi2:
            small_gain = chi2 - trial_chi2 <= _TOLERANCE * max(chi2, 1.0)
            params, jacobian, residual, chi2 = trial, trial_jacobian, trial_residual, trial_chi2
            damping = max(damping / 10.0, 1e-12)
            if small_gain and small_step:
                return params, _covariance(jacobian, weights), chi2, iteration
        elif small_step:
            return params, _covariance(jacobian, weights), chi2, iteration
        else:
            damping *= 10.0
    return params, None, chi2, _MAX_ITERATIONS


def _covariance(jacobian, weights):
    """Inverse of the chi-square curvature, or None if it is not positive definite."""
    wj = jacobian * weights[:, None]
    try:
        covariance = np.linalg.inv(wj.T @ wj)
    except np.linalg.LinAlgError:
        return None
    diagonal = np.diag(covariance)
    if not np.all(np.isfinite(covariance)) or np.any(diagonal <= 0):
        return None
    return covariance


def fit_peak(values, accuracy, truth_energy, fraction=0.9):
    """The peak (mean, width) of ``values``: Gaussian fit in the min-RMS window, or the window mean.

    Non-finite values are dropped and counted in the message. FitError if fewer than 5 values
    are left; a rejected fit falls back to the window mean and ``method``/``message`` say so.

    :param values: the selected energies (GeV)
    :param float accuracy: relative bin width
    :param float truth_energy: the sample's energy (GeV)
    :param float fraction: share of the entries in the min-RMS window
    :return: PeakFit (mean, width, method 'gaussian' or 'window mean', the histogram and window)
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
    try:
        fit = fit_gaussian(counts, edges, window)
    except FitError as error:
        notes.insert(0, f"Gaussian fit rejected ({error}); using the mean of the {fraction:.0%} window")
        in_window = float(counts[window.start : window.stop + 1].sum())
        mean, sigma, method, amplitude = window.mean, window.rms, "window-mean", None
        mean_error, chi2, ndf = window.rms / np.sqrt(in_window), None, None
    else:
        mean, sigma, method, amplitude = fit.mean, fit.sigma, "gaussian", fit.amplitude
        mean_error, chi2, ndf = fit.mean_error, fit.chi2, fit.ndf
    return PeakFit(
        mean, sigma, entries, counts.size, window.low, window.high, method, "; ".join(notes), counts, edges, amplitude,
        mean_error, chi2, ndf,
    )
