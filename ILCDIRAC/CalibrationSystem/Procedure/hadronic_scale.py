"""Phase 4, HadronicEnergy: Pandora's hadronic energy scale from 50 GeV K0L (physics.md §2.5).

Chi-square method: for well-reconstructed kaons the HCal (x) and ECal (y) hadronic energies lie
on a line x/I_H + y/I_E = 1. The reference's grid scan finds the intercepts to one grid step
(accuracy x 50 GeV, as large as the convergence tolerance), so a local search then refines the
minimum below the grid step; each scale is multiplied by T_K/I, so that both intercepts move to
the kinetic energy T_K. The worker applies the event cuts; the service applies the 3σ band, so
that its metrics say how many kaons the band kept.
"""
import math
from typing import NamedTuple

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure import phase_tools
from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError, SettingsError, SummaryError
from ILCDIRAC.CalibrationSystem.Procedure.outcome import PhaseOutcome, Scatter
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY

LABEL = "phase 4 (HadronicEnergy)"
TRUTH_ENERGY = NOMINAL_ENERGY["kaon"]  # GeV, sets the grid step (accuracy x 50 GeV)
TARGET_ENERGY = KAON_KINETIC_ENERGY  # GeV, the ideal intercept of both axes
SAMPLES = ("kaon",)
CONSTANTS = ("ECalToHadGeVCalibrationBarrel", "ECalToHadGeVCalibrationEndCap", "HCalToHadGeVCalibration")
SUMMARY_FIELDS = {"ecalToHad": np.dtype(np.float32), "hcalToHad": np.dtype(np.float32)}
COLUMNS = (
    "nPfoTargetsTotal",
    "nPfoTargetsNeutralHadrons",
    "nPfosTotal",
    "nPfosNeutralHadrons",
    "pfoECalToHadEnergy",
    "pfoHCalToHadEnergy",
    "pfoMinHCalLayerToEdge",
)
RESOLUTION = 0.55  # σ(E) = 0.55·√E for both calorimeters
BAND_SIGMAS = 3.0
EDGE_LAYER_FRACTION = 0.1  # the shower must stay more than ceil(0.1·nHcalLayers) layers from the HCal edge
MIN_EVENTS = 10
MAX_PLOT_POINTS = 5000
# Events per block of the grid scan: two (grid size x block) float64 buffers stay within a few MB.
_BLOCK = 4096
_GUESS_EVENTS = 4096  # events of the subsample whose best grid point bounds the full scan
_BOUND_MARGIN = 1e-9
#: The refinement stops when its search step is below this fraction of the grid step (1.25 MeV at
#: 50 GeV and the default accuracy), far below the statistical error of the intercepts.
REFINE_PRECISION = 1e-3
#: At most this many refinement steps (each scans 3 x 3 points); enough for a minimum many grid
#: steps away along a valley, and a bound on the cost when the χ² is flat in one direction.
MAX_REFINE_STEPS = 500


def collect(outputs, settings):
    """HCal (x) and ECal (y) hadronic energies (float32) of kaons reconstructed as one neutral hadron.

    Cuts: one target, a neutral hadron; one PFO, a neutral hadron; pfoMinHCalLayerToEdge >
    ceil(0.1·nHcalLayers); both energies finite and non-negative.

    :param dict outputs: {sample type: worker_output.ReconstructionOutput} of the worker's slice
    :param dict settings: the calibration settings
    :return: the worker's summary, {field: 1-D array} with exactly the fields of SUMMARY_FIELDS
    """
    data = phase_tools.pfo_columns(outputs["kaon"].columns, COLUMNS, LABEL)
    layers = settings.get("nHcalLayers")
    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)) or layers < 1:
        raise SettingsError(f"Setting nHcalLayers must be a positive integer, got {layers!r}")
    min_layers_to_edge = math.ceil(int(layers) / 10)  # = ceil(0.1·n), exact in integers
    ecal = data["pfoECalToHadEnergy"].astype(np.float64)
    hcal = data["pfoHCalToHadEnergy"].astype(np.float64)
    selected = (
        (data["nPfoTargetsTotal"] == 1)
        & (data["nPfoTargetsNeutralHadrons"] == 1)
        & (data["nPfosTotal"] == 1)
        & (data["nPfosNeutralHadrons"] == 1)
        & (data["pfoMinHCalLayerToEdge"] > min_layers_to_edge)
        & np.isfinite(ecal)
        & np.isfinite(hcal)
        & (ecal >= 0)
        & (hcal >= 0)
    )
    return {"ecalToHad": ecal[selected].astype(np.float32), "hcalToHad": hcal[selected].astype(np.float32)}


def intercept_grid(accuracy):
    """The intercepts scanned: 0.5·T_K + i·accuracy·50 GeV for i = 0 … int(1/accuracy) − 1.

    The reference's results are therefore quantised to accuracy·50 GeV; refined or not, they are
    clamped to this range.

    :param float accuracy: pandoraPFAAccuracy
    :return: float64 array of the intercepts (GeV)
    """
    # The small offset keeps e.g. 1/0.01 from truncating to 99 if it rounds just below 100.
    size = int(1.0 / accuracy + 1e-9)
    if size < 2:
        raise SettingsError(
            f"pandoraPFAAccuracy = {accuracy} gives a chi-square grid of {size} intercept value(s); use at most 0.5"
        )
    return 0.5 * TARGET_ENERGY + np.arange(size) * accuracy * TRUTH_ENERGY


def in_band(hcal, ecal):
    """Events within 3σ of the ideal line x + y = T_K: ``|x + y − T_K|`` ≤ 3·0.55·√(x + y), x, y ≥ 0.

    :param hcal: the events' HCal hadronic energies x (GeV)
    :param ecal: their ECal hadronic energies y (GeV)
    :return: boolean array, True for the events in the band
    """
    total = hcal + ecal
    return (
        (hcal >= 0)
        & (ecal >= 0)
        & (np.abs(total - TARGET_ENERGY) <= BAND_SIGMAS * RESOLUTION * np.sqrt(np.maximum(total, 0.0)))
    )


def _scan(hcal, ecal, ecal_intercepts, hcal_intercepts, bound=np.inf):
    """Σ (x·a + y·b − a·b)²/(x·a² + y·b²) over the events for every (a, b) = (ecal_intercepts[i], hcal_intercepts[j]).

    Events are summed in blocks; a grid point whose partial sum exceeds ``bound`` is abandoned
    (every term is >= 0, so it cannot end below the bound) and returned as +inf.
    """
    sums = np.zeros((ecal_intercepts.size, hcal_intercepts.size))
    active = np.ones(sums.shape, dtype=bool)
    numerator = np.empty((hcal_intercepts.size, min(_BLOCK, hcal.size)))
    denominator = np.empty_like(numerator)
    # An event without energy gives a zero denominator: +inf, which fit_intercepts refuses.
    with np.errstate(divide="ignore"):
        for start in range(0, hcal.size, _BLOCK):
            x = hcal[start : start + _BLOCK]
            y = ecal[start : start + _BLOCK]
            for i, a in enumerate(ecal_intercepts):
                columns = np.flatnonzero(active[i])
                if columns.size == 0:
                    continue
                b = hcal_intercepts[columns, None]
                num = numerator[: columns.size, : x.size]
                den = denominator[: columns.size, : x.size]
                np.multiply(b, y - a, out=num)  # x·a + y·b − a·b = x·a + b·(y − a)
                num += x * a
                np.square(num, out=num)
                np.multiply(b * b, y, out=den)
                den += x * (a * a)
                num /= den
                sums[i, columns] += num.sum(axis=1)
            active &= sums <= bound
    sums[~active] = np.inf
    return sums


def chi_square_grid(hcal, ecal, ecal_intercepts, hcal_intercepts):
    """χ²[i, j] of the events around the line x/b + y/a = 1 with a = ecal_intercepts[i], b = hcal_intercepts[j].

    Per event d = ``|x·a + y·b − a·b|``/√(a²+b²) and σ_d = √((σ_x·a)² + (σ_y·b)²)/√(a²+b²) with
    σ_x² = 0.55²·x, σ_y² = 0.55²·y; the √(a²+b²) cancels in d/σ_d, and squaring makes the float
    absolute value of the reference implicit. Exact, O(points x events), in blocks of events.

    :param hcal: the events' HCal hadronic energies x (GeV)
    :param ecal: their ECal hadronic energies y (GeV)
    :param ecal_intercepts: the ECal intercepts a (GeV), e.g. intercept_grid
    :param hcal_intercepts: the HCal intercepts b (GeV)
    :return: float64 array of shape (len(ecal_intercepts), len(hcal_intercepts))
    """
    arrays = (np.asarray(v, dtype=np.float64) for v in (hcal, ecal, ecal_intercepts, hcal_intercepts))
    return _scan(*arrays) / RESOLUTION**2


class InterceptFit(NamedTuple):
    """The intercepts of the line through the kaons: refined, and the reference's grid point."""

    ecal: float  # I_E (GeV), refined
    hcal: float  # I_H (GeV), refined
    chi2: float  # χ² at (I_E, I_H)
    grid_ecal: float  # the grid point of the reference's scan
    grid_hcal: float
    grid_chi2: float
    refine_steps: int  # 3 x 3 scans the refinement made
    refine_resolution: float  # its final search step (GeV): the refined intercepts' grid resolution


def grid_minimum(hcal, ecal, grid):
    """(I_E, I_H, χ²_min) of the grid point with the smallest χ², as the reference scans: the first
    one wins a tie (ECal intercept in the outer loop, HCal in the inner one).

    Same result as the argmin of chi_square_grid, faster: the minimum on a subsample of the
    events gives a bound (its χ² on all events), and the full scan abandons every grid point
    whose partial χ² exceeds that bound. The relative margin keeps rounding from dropping a tie.

    :param hcal: the events' HCal hadronic energies x (GeV), float64
    :param ecal: their ECal hadronic energies y (GeV), float64
    :param grid: the intercepts scanned (intercept_grid)
    :return: (I_E, I_H, χ²_min) as floats
    """
    stride = max(1, hcal.size // _GUESS_EVENTS)
    guess = _scan(hcal[::stride], ecal[::stride], grid, grid)
    i, j = np.unravel_index(int(np.argmin(guess)), guess.shape)
    bound = _scan(hcal, ecal, grid[[i]], grid[[j]])[0, 0] * (1.0 + _BOUND_MARGIN)
    if not np.isfinite(bound):
        raise FitError(
            f"{LABEL}: the chi-square scan gave non-finite values;"
            " an event has zero hadronic energy in both calorimeters"
        )
    sums = _scan(hcal, ecal, grid, grid, bound)
    i, j = np.unravel_index(int(np.argmin(sums)), sums.shape)
    return float(grid[i]), float(grid[j]), float(sums[i, j] / RESOLUTION**2)


def refine_minimum(hcal, ecal, start, step, limits):
    """The χ² minimum near ``start``, to REFINE_PRECISION of ``step``, within ``limits``.

    Pattern search: scan the 3 x 3 points (I_E ± s, I_H ± s) around the current point; move to the
    smallest (first wins a tie) if it is strictly below the centre, else halve s. It starts at
    half the grid step, follows a diagonal valley (the two intercepts are correlated, so the best
    grid point can lie more than half a step from the minimum) and never leaves ``limits``, so
    a minimum beyond the grid stays clamped to its edge as in the reference.

    :param hcal: the events' HCal hadronic energies x (GeV), float64
    :param ecal: their ECal hadronic energies y (GeV), float64
    :param start: (I_E, I_H) to start from, the grid minimum
    :param float step: the grid step (GeV)
    :param limits: (lowest, highest) intercept allowed (GeV), the grid's ends
    :return: (I_E, I_H, χ², steps made, final search step)
    """
    centre = np.asarray(start, dtype=np.float64)
    offsets = np.array([-1.0, 0.0, 1.0])
    search = 0.5 * step
    steps = 0
    while search > REFINE_PRECISION * step and steps < MAX_REFINE_STEPS:
        steps += 1
        ecal_points = np.clip(centre[0] + search * offsets, *limits)
        hcal_points = np.clip(centre[1] + search * offsets, *limits)
        sums = _scan(hcal, ecal, ecal_points, hcal_points)
        i, j = np.unravel_index(int(np.argmin(sums)), sums.shape)
        if sums[i, j] < sums[1, 1]:
            centre = np.array([ecal_points[i], hcal_points[j]])
        else:
            search *= 0.5
    chi2 = _scan(hcal, ecal, centre[:1], centre[1:])[0, 0] / RESOLUTION**2
    return float(centre[0]), float(centre[1]), float(chi2), steps, float(search)


def fit_intercepts(hcal, ecal, accuracy):
    """The intercepts (I_E, I_H) of the line x/I_H + y/I_E = 1 with the smallest χ².

    The reference's grid scan (grid_minimum) finds the best grid point; refine_minimum then
    finds the minimum between grid points, within the grid's range.

    :param hcal: the events' HCal hadronic energies x (GeV)
    :param ecal: their ECal hadronic energies y (GeV)
    :param float accuracy: pandoraPFAAccuracy (sets the grid)
    :return: InterceptFit (refined intercepts and χ², the grid point and its χ², the refinement's
        steps and resolution)
    """
    hcal, ecal = np.asarray(hcal, dtype=np.float64).ravel(), np.asarray(ecal, dtype=np.float64).ravel()
    if hcal.size == 0 or hcal.size != ecal.size:
        raise FitError(f"{LABEL}: cannot fit a line to {hcal.size} HCal and {ecal.size} ECal energies")
    grid = intercept_grid(accuracy)
    grid_ecal, grid_hcal, grid_chi2 = grid_minimum(hcal, ecal, grid)
    refined = refine_minimum(hcal, ecal, (grid_ecal, grid_hcal), accuracy * TRUTH_ENERGY, (grid[0], grid[-1]))
    return InterceptFit(*refined[:3], grid_ecal, grid_hcal, grid_chi2, *refined[3:])


def chi_square_terms(hcal, ecal, ecal_intercept, hcal_intercept):
    """Per event q = (x·a + y·b − a·b)²/(x·a² + y·b²) (its χ² term times 0.55²) and the gradient
    of q in (a, b) = (I_E, I_H).

    :param hcal: the events' HCal hadronic energies x (GeV), float64
    :param ecal: their ECal hadronic energies y (GeV), float64
    :param float ecal_intercept: a (GeV)
    :param float hcal_intercept: b (GeV)
    :return: (q, gradient of shape (2, events))
    """
    x, y, a, b = hcal, ecal, ecal_intercept, hcal_intercept
    n = x * a + y * b - a * b
    d = x * a * a + y * b * b
    q = n * n / d
    grad_a = 2.0 * n * (x - b) / d - q * 2.0 * x * a / d
    grad_b = 2.0 * n * (y - a) / d - q * 2.0 * y * b / d
    return q, np.stack([grad_a, grad_b])


def intercept_covariance(hcal, ecal, ecal_intercept, hcal_intercept, weights=None):
    """Statistical covariance of the χ² minimum (I_E, I_H) from the events themselves (sandwich:
    H⁻¹·Var(∇q)·H⁻¹/n with H the mean Hessian of q), right although the method's 0.55·√E is not the
    detector's resolution, where the χ² curvature alone would be off by the ratio of the two.

    :param hcal: the events' HCal hadronic energies x (GeV)
    :param ecal: their ECal hadronic energies y (GeV)
    :param float ecal_intercept: the minimum's I_E (GeV)
    :param float hcal_intercept: its I_H (GeV)
    :param weights: the events' weights (an expected distribution's), None for events of a sample
    :return: 2 x 2 covariance of (I_E, I_H) in GeV², for as many events as the weights add up to
    """
    hcal, ecal = np.asarray(hcal, dtype=np.float64), np.asarray(ecal, dtype=np.float64)
    weights = np.ones_like(hcal) if weights is None else np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    theta = np.array([ecal_intercept, hcal_intercept], dtype=np.float64)
    inverse = np.linalg.inv(_mean_hessian(hcal, ecal, weights, theta))
    gradient = chi_square_terms(hcal, ecal, *theta)[1]
    spread = (gradient * weights) @ gradient.T / total
    return inverse @ spread @ inverse / total


def _mean_gradient(hcal, ecal, weights, theta):
    return chi_square_terms(hcal, ecal, *theta)[1] @ weights / weights.sum()


def _mean_hessian(hcal, ecal, weights, theta):
    """The mean Hessian of q at theta = (I_E, I_H), by central differences of the gradient."""
    step = 1e-4 * TARGET_ENERGY
    hessian = np.column_stack([
        (_mean_gradient(hcal, ecal, weights, theta + step * unit)
         - _mean_gradient(hcal, ecal, weights, theta - step * unit)) / (2 * step)
        for unit in np.eye(2)
    ])
    return 0.5 * (hessian + hessian.T)


#: Newton's method stops when its step is below this fraction of T_K.
NEWTON_TOLERANCE = 1e-9


def newton_minimum(hcal, ecal, start, weights=None, max_steps=50):
    """The χ² minimum (I_E, I_H) near ``start`` by Newton's method on the mean Hessian: cheap where
    the grid scan is not, for events whose minimum lies near ``start`` (a worker's share of the
    events around the minimum of all of them; an expected distribution's nodes).

    :param hcal: the events' HCal hadronic energies x (GeV)
    :param ecal: their ECal hadronic energies y (GeV)
    :param start: (I_E, I_H) to start from (GeV)
    :param weights: the events' weights, None for events of a sample
    :param int max_steps: at most this many steps
    :return: (I_E, I_H) as floats; FitError if the χ² has no curvature or the steps do not converge
    """
    hcal, ecal = np.asarray(hcal, dtype=np.float64), np.asarray(ecal, dtype=np.float64)
    weights = np.ones_like(hcal) if weights is None else np.asarray(weights, dtype=np.float64)
    theta = np.array(start, dtype=np.float64)
    for _ in range(max_steps):
        try:
            step = np.linalg.solve(_mean_hessian(hcal, ecal, weights, theta),
                                   _mean_gradient(hcal, ecal, weights, theta))
        except np.linalg.LinAlgError:
            raise FitError(f"{LABEL}: the chi-square has no curvature at {theta}") from None
        theta = theta - step
        if np.max(np.abs(step)) < NEWTON_TOLERANCE * TARGET_ENERGY:
            return float(theta[0]), float(theta[1])
    raise FitError(f"{LABEL}: the chi-square minimum did not converge within {max_steps} Newton steps (at {theta})")


def _worker_intercepts(summaries, start):
    """Each worker's χ² minimum (I_E, I_H) of its kaons in the band (newton_minimum from the
    minimum of all, ``start``), those with fewer than MIN_EVENTS or no minimum left out."""
    intercepts = []
    for summary in summaries:
        hcal = np.asarray(summary["hcalToHad"], dtype=np.float64)
        ecal = np.asarray(summary["ecalToHad"], dtype=np.float64)
        band = in_band(hcal, ecal) if hcal.size == ecal.size else np.zeros(0, dtype=bool)
        if np.count_nonzero(band) >= MIN_EVENTS:
            try:
                intercepts.append(newton_minimum(hcal[band], ecal[band], start))
            except FitError:
                continue
    return np.array(intercepts).reshape(-1, 2)


def analyse(summaries, constants, settings, previous=None):
    """New hadronic scales from the workers' summaries.

    HCalToHad' = T_K·HCalToHad/I_H, ECalToHadBarrel' = T_K·ECalToHadBarrel/I_E with the refined
    intercepts (fit_intercepts), and the EndCap value is set to the barrel one; converged when both
    intercepts, measured with the current constants, are within pandoraPFAAccuracy of T_K
    (relative to T_K) and measured precisely enough for it (phase_tools.statistics_verdict).
    Uncertainties: δI/I of each intercept (intercept_covariance) over its response slope
    (phase_tools.response_slope), cross-checked by the spread of the workers' own intercepts.

    :param list summaries: the decoded summaries of the step's workers
    :param dict constants: the constants the step ran with
    :param dict settings: the calibration settings
    :param previous: advance.StepRecord of the step before if it was of this phase (stage), else None
    :return: outcome.PhaseOutcome: the complete new constants, metrics, convergence verdict and plots;
        FitError if too few kaons are left in the band
    """
    if not summaries:
        raise FitError(f"{LABEL}: no worker summaries to analyse")
    accuracy = float(settings["pandoraPFAAccuracy"])
    needed_by = f"{LABEL} needs {list(CONSTANTS)}"
    hcal_scale = phase_tools.positive_constant(constants, "HCalToHadGeVCalibration", needed_by)
    ecal_scale = phase_tools.positive_constant(constants, "ECalToHadGeVCalibrationBarrel", needed_by)
    hcal, ecal = phase_tools.gather(summaries, "hcalToHad", LABEL), phase_tools.gather(summaries, "ecalToHad", LABEL)
    if hcal.size != ecal.size:
        raise SummaryError(
            f"{LABEL}: {hcal.size} HCal but {ecal.size} ECal energies;"
            " a worker summary is inconsistent"
        )
    band = in_band(hcal, ecal)
    hcal, ecal = hcal[band], ecal[band]
    if hcal.size < MIN_EVENTS:
        raise FitError(
            f"{LABEL}: only {hcal.size} of {band.size} selected kaons lie within 3σ of"
            f" x + y = {TARGET_ENERGY:.3f} GeV, at least {MIN_EVENTS} are needed. Use more kaon events, or"
            " seed the hadronic scales within about 20 % of their final values."
        )
    fit = fit_intercepts(hcal, ecal, accuracy)
    ecal_intercept, hcal_intercept = fit.ecal, fit.hcal
    grid = intercept_grid(accuracy)
    new_constants = phase_tools.copy_constants(constants)
    new_constants["HCalToHadGeVCalibration"] = TARGET_ENERGY * hcal_scale / hcal_intercept
    new_constants["ECalToHadGeVCalibrationBarrel"] = TARGET_ENERGY * ecal_scale / ecal_intercept
    new_constants["ECalToHadGeVCalibrationEndCap"] = new_constants["ECalToHadGeVCalibrationBarrel"]
    deviation = max(abs(hcal_intercept - TARGET_ENERGY), abs(ecal_intercept - TARGET_ENERGY)) / TARGET_ENERGY
    covariance = intercept_covariance(hcal, ecal, ecal_intercept, hcal_intercept)
    ecal_error, hcal_error = (float(v) for v in np.sqrt(np.diag(covariance)))
    slopes = {axis: phase_tools.response_slope(previous, f"{axis}Intercept", value, TARGET_ENERGY)
              for axis, value in (("ecal", ecal_intercept), ("hcal", hcal_intercept))}
    uncertainties = {
        "HCalToHadGeVCalibration":
            new_constants["HCalToHadGeVCalibration"] * hcal_error / hcal_intercept / slopes["hcal"],
        "ECalToHadGeVCalibrationBarrel":
            new_constants["ECalToHadGeVCalibrationBarrel"] * ecal_error / ecal_intercept / slopes["ecal"],
    }
    uncertainties["ECalToHadGeVCalibrationEndCap"] = uncertainties["ECalToHadGeVCalibrationBarrel"]
    uncertainty = max(ecal_error, hcal_error) / TARGET_ENERGY
    within, note = phase_tools.statistics_verdict(deviation, uncertainty, accuracy, hcal.size, "the kaons' intercept")
    workers = _worker_intercepts(summaries, (ecal_intercept, hcal_intercept)) if len(summaries) > 1 \
        else np.zeros((0, 2))
    spreads = {
        f"{axis}InterceptWorkerSpread": phase_tools.worker_spread(workers[:, index])
        for index, axis in enumerate(("ecal", "hcal"))
    }
    edges = (float(grid[0]), float(grid[-1]))
    metrics = {
        "maxRelativeDeviationUncertainty": uncertainty,
        "ecalInterceptUncertainty": ecal_error,
        "hcalInterceptUncertainty": hcal_error,
        "interceptCorrelation": float(covariance[0, 1] / (ecal_error * hcal_error)),
        "ecalResponseSlope": slopes["ecal"],
        "hcalResponseSlope": slopes["hcal"],
        **{name: value for name, value in spreads.items() if value is not None},
        "maxRelativeDeviation": deviation,
        "accuracy": accuracy,
        "target": TARGET_ENERGY,
        "ecalIntercept": ecal_intercept,
        "hcalIntercept": hcal_intercept,
        "ecalRelativeDeviation": (ecal_intercept - TARGET_ENERGY) / TARGET_ENERGY,
        "hcalRelativeDeviation": (hcal_intercept - TARGET_ENERGY) / TARGET_ENERGY,
        "ecalRelativeDeviationUncertainty": ecal_error / TARGET_ENERGY,
        "hcalRelativeDeviationUncertainty": hcal_error / TARGET_ENERGY,
        "ecalInterceptAtGridEdge": float(ecal_intercept in edges),
        "hcalInterceptAtGridEdge": float(hcal_intercept in edges),
        "ecalGridIntercept": fit.grid_ecal,
        "hcalGridIntercept": fit.grid_hcal,
        "gridLow": edges[0],
        "gridHigh": edges[1],
        "gridStep": accuracy * TRUTH_ENERGY,
        "refineSteps": float(fit.refine_steps),
        "refineResolution": fit.refine_resolution,
        "chi2Minimum": fit.chi2,
        "chi2GridMinimum": fit.grid_chi2,
        "chi2PerEvent": fit.chi2 / hcal.size,
        "eventsSelected": float(band.size),
        "eventsInBand": float(hcal.size),
        "bandFraction": hcal.size / band.size,
    }
    stride = -(-hcal.size // MAX_PLOT_POINTS)
    plot = Scatter(
        "hadronic_scale",
        "Hadronic scale: 50 GeV K0L within the 3σ band",
        "HCal hadronic energy [GeV]",
        "ECal hadronic energy [GeV]",
        hcal[::stride],
        ecal[::stride],
        (hcal_intercept, ecal_intercept),
        TARGET_ENERGY,
    )
    return PhaseOutcome(new_constants, metrics, within, (plot,), uncertainties=uncertainties, statistics_note=note)
