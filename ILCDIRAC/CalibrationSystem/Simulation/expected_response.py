"""What the phases of physics.md §2.0-2.2 and §2.4 measure on the synthetic detector, without
statistical noise: the exact expected distribution of each selected energy, and the phase's own
peak estimator (histogram, 90 % minimum-RMS window, Gaussian fit) applied to it.

Why: the model's energies have a low-side tail and a response non-linear in the constants
(detector_model), so a phase converges where *its estimator* reaches the target, not where a
mean does. Every selected energy here is a finite mixture of components
``scale·(1 − g)·max(1 + σ·z − ℓ, 0)`` (z standard normal; ℓ exponential for a fraction of the
events, else 0; g a uniform loss of robustness-mode gap photons, else 0) whose cumulative
distribution is analytic (an exponentially modified Gaussian), so the expected histogram of
n events is n times the differences of that distribution at the bin edges.

The histogram's range ends at the sample's largest value, a random number: the noise-free
estimate takes the median of the largest of n values. The estimator's statistical spread, which
the coarse bins (0.5 GeV for 10 GeV photons at the default accuracy) and the discrete choice of
the 90 % window make larger and less Gaussian than a fit's error, is sampled instead: the
phase's own fit_peak on toy samples of n values drawn from the exact distribution.
"""
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.errors import FitError
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_edges, fit_gaussian, fit_peak, min_rms_window
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import (
    CONVERSION_BASE, CONVERSION_SLOPE, GAP_LOSS, KAON_ECAL_START, PHOTON_SPLIT_FRACTION, ecal_scales,
    hadron_resolution, hcal_region, hcal_scales, mip_track, pandora_scale, photon_resolution)

#: Share of the phase selections the robustness mode's defects remove, independently of the
#: energy: photons leaking >= 3 % into the HCal, kaons leaking out of the HCal (detector_model).
ROBUSTNESS_PHOTON_KEPT = 0.95
ROBUSTNESS_KAON_KEPT = 0.9
MAX_ABS_COS_THETA = 0.95           # phase 0 takes photons below this |cos θ| only
WINDOW_FRACTION = 0.9
TOYS = 1000                        # toy samples for an estimator's statistical spread
COVERAGE = 0.9973                  # of the central interval that defines the spread (3σ of a Gaussian)
_INVERSE_POINTS = 20001            # grid of the inverse distribution the toys are drawn from
_BRACKET_POINTS = 513              # grid that brackets a quantile before the bisection
_ANGLE_NODES = 16                  # Gauss-Legendre nodes per |cos θ| interval
_LOSS_NODES = 24                   # Gauss-Legendre nodes over a uniform gap loss


def erfc(x):
    """Complementary error function, vectorised (Numerical Recipes' erfcc: fractional error
    below 1.2e-7 everywhere), since numpy has none and math.erfc is scalar.

    :param x: number or array
    :return: float64 array
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223
                                                                                  + t * 0.17087277))))))))
    value = t * np.exp(poly)
    return np.where(x >= 0, value, 2.0 - value)


def normal_cdf(x):
    """Φ(x) of the standard normal distribution.

    :param x: number or array
    :return: float64 array
    """
    return 0.5 * erfc(-np.asarray(x, dtype=np.float64) / np.sqrt(2.0))


def relative_cdf(t, sigma, tail_fraction, tail_mean):
    """P(1 + σ·z − ℓ ≤ t), ℓ exponential with mean ``tail_mean`` in a fraction ``tail_fraction``
    of the events: Φ(y/σ) in the core; Φ(y/σ) + exp(y/λ + σ²/2λ²)·Φ(−y/σ − σ/λ) in the tail,
    y = t − 1 (all arguments broadcast).

    :param t: relative energy
    :param sigma: relative Gaussian width σ
    :param tail_fraction: share of the events in the tail
    :param tail_mean: mean loss λ in the tail
    :return: float64 array
    """
    y = np.asarray(t, dtype=np.float64) - 1.0
    core = normal_cdf(y / sigma)
    if np.all(np.asarray(tail_fraction) == 0):
        return core
    return (1.0 - tail_fraction) * core + tail_fraction * (core + _tail_term(y, sigma, tail_mean))


def relative_pdf(t, sigma, tail_fraction, tail_mean):
    """Density of 1 + σ·z − ℓ (the derivative of relative_cdf).

    :param t: relative energy
    :param sigma: relative Gaussian width σ
    :param tail_fraction: share of the events in the tail
    :param tail_mean: mean loss λ in the tail
    :return: float64 array
    """
    y = np.asarray(t, dtype=np.float64) - 1.0
    core = np.exp(-0.5 * (y / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    if np.all(np.asarray(tail_fraction) == 0):
        return core
    return (1.0 - tail_fraction) * core + tail_fraction * _tail_term(y, sigma, tail_mean) / tail_mean


def _tail_term(y, sigma, tail_mean):
    """exp(y/λ + σ²/2λ²)·Φ(−y/σ − σ/λ), the exponentially modified part of the tail's distribution."""
    exponent = np.minimum(y / tail_mean + 0.5 * (sigma / tail_mean) ** 2, 700.0)
    return np.exp(exponent) * normal_cdf(-y / sigma - sigma / tail_mean)


def legendre(low, high, count):
    """Gauss-Legendre nodes and weights on [low, high].

    :param float low: lower end
    :param float high: upper end
    :param int count: number of nodes
    :return: (nodes, weights) float64 arrays
    """
    nodes, weights = np.polynomial.legendre.leggauss(count)
    half = 0.5 * (high - low)
    return low + half * (nodes + 1.0), half * weights


@dataclass(frozen=True)
class Component:
    """Events distributed as ``scale·(1 − g)·max(1 + σ·z − ℓ, 0)``; ``weight`` is their expected
    number per generated event, ``loss`` the (low, high) range of a uniform g, or None for g = 0."""

    weight: float
    scale: float
    sigma: float
    tail_fraction: float
    tail_mean: float
    loss: tuple = None

    def without_loss(self):
        """The component as components without loss: Gauss-Legendre nodes of 1 − g.

        :return: list of Component
        """
        if self.loss is None:
            return [self]
        kept, weights = legendre(1.0 - self.loss[1], 1.0 - self.loss[0], _LOSS_NODES)
        return [Component(self.weight * w / weights.sum(), self.scale * k, self.sigma, self.tail_fraction,
                          self.tail_mean) for k, w in zip(kept, weights)]


class Mixture:
    """A selected energy's distribution: a weighted sum of Components, kept as arrays.

    :param components: the Components (those of zero weight are dropped)
    """

    def __init__(self, components):
        parts = [part for component in components if component.weight > 0 for part in component.without_loss()]
        if not parts:
            raise ValueError("The selection keeps no event of the synthetic detector")
        self.weights, self.scales, self.sigmas, self.tail_fractions, self.tail_means = (
            np.array([getattr(part, field) for part in parts], dtype=np.float64)
            for field in ('weight', 'scale', 'sigma', 'tail_fraction', 'tail_mean'))
        self.weight = float(self.weights.sum())

    def cdf(self, x):
        """P(value ≤ x).

        :param x: number or array, >= 0
        :return: float64 array
        """
        x = np.asarray(x, dtype=np.float64)
        values = relative_cdf(x[..., None] / self.scales, self.sigmas, self.tail_fractions, self.tail_means)
        return values @ self.weights / self.weight

    def maximum(self, count, quantile):
        """The ``quantile`` of the largest of ``count`` values: cdf = quantile^(1/count), bracketed on
        a grid, then bisected.

        :param float count: number of values
        :param float quantile: in (0, 1)
        :return: float (GeV)
        """
        target = quantile ** (1.0 / count)
        high = 2.0 * float(self.scales.max())
        while self.cdf(high) < target:
            high *= 2.0
        grid = np.linspace(0.0, high, _BRACKET_POINTS)
        index = int(np.argmax(self.cdf(grid) >= target))
        low, high = grid[max(index - 1, 0)], grid[index]
        for _ in range(30):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if self.cdf(middle) < target else (low, middle)
        return 0.5 * (low + high)

    def histogram(self, accuracy, truth_energy, count, vmax):
        """Expected contents of the phase's histogram of ``count`` values whose largest is ``vmax``:
        int(vmax/(accuracy·E)) equal bins over [0, vmax], as histogram.energy_histogram makes.

        :param float accuracy: relative bin width
        :param float truth_energy: the sample's energy (GeV)
        :param float count: number of values
        :param float vmax: the largest value (GeV)
        :return: (counts, edges) float64 arrays
        """
        n_bins = max(1, int(vmax / (accuracy * truth_energy)))
        edges = np.linspace(0.0, vmax, n_bins + 1)
        return count * np.diff(self.cdf(edges)), edges


@dataclass(frozen=True)
class PeakEstimate:
    """The phase estimator on an expected distribution: ``mean`` (GeV) at the median sample
    maximum, by ``method`` ('gaussian' or 'window-mean', as histogram.PeakFit), for ``count``
    selected events."""

    mean: float
    count: float
    method: str


def peak_estimate(mixture, accuracy, truth_energy, events):
    """The phase's peak of ``mixture`` for a sample of ``events`` generated events, without noise:
    histogram.fit_peak's window on the expected histogram and its fit on the expected fit histogram.

    :param Mixture mixture: the selected energy's distribution
    :param float accuracy: relative bin width (digitisationAccuracy or pandoraPFAAccuracy)
    :param float truth_energy: the sample's energy, which sets the bin width (GeV)
    :param int events: generated events of the sample
    :return: PeakEstimate
    """
    count = events * mixture.weight
    counts, edges = mixture.histogram(accuracy, truth_energy, count, mixture.maximum(count, 0.5))
    window = min_rms_window(counts, edges, WINDOW_FRACTION)
    fine_edges = fit_edges(window, edges)
    try:
        mean, method = fit_gaussian(count * np.diff(mixture.cdf(fine_edges)), fine_edges, window).mean, 'gaussian'
    except FitError:
        mean, method = window.mean, 'window-mean'
    return PeakEstimate(float(mean), float(count), method)


def peak_spread(mixture, accuracy, truth_energy, events, toys=TOYS, seed=0):
    """The relative statistical spread of histogram.fit_peak on samples of the expected number of
    selected events drawn from ``mixture`` (by its inverse distribution on a fine grid): the
    standard deviation, or a third of the half-width of the central 99.73 % of the toys if larger
    (the estimator's tails are heavier than a Gaussian's: its window and binning jump).

    :param Mixture mixture: the selected energy's distribution
    :param float accuracy: relative bin width
    :param float truth_energy: the sample's energy (GeV)
    :param int events: generated events of the sample
    :param int toys: toy samples
    :param int seed: of the toys' random numbers (the spread is reproducible)
    :return: float, relative to the toys' mean peak
    """
    count = max(int(round(events * mixture.weight)), 5)
    grid = np.linspace(0.0, mixture.maximum(count, 0.9999), _INVERSE_POINTS)
    cdf = mixture.cdf(grid)
    generator = np.random.default_rng(seed)
    peaks = np.array([fit_peak(np.interp(generator.uniform(cdf[0], cdf[-1], count), cdf, grid),
                               accuracy, truth_energy, WINDOW_FRACTION).mean for _ in range(toys)])
    centre = peaks.mean()
    tails = np.quantile(np.abs(peaks - centre), COVERAGE) / 3.0
    return float(max(peaks.std(), tails) / centre)


# ---------------------------------------------------------------------------------------------
# The selected energies of phases 0, 1 and 3

def _photon_survival(low, high):
    """∫ of the unconverted fraction 1 − b − s·c over |cos θ| in [low, high] (|cos θ| uniform on [0, 1])."""
    return (1.0 - CONVERSION_BASE) * (high - low) - 0.5 * CONVERSION_SLOPE * (high ** 2 - low ** 2)


def _photon_components(truth, low, high, scale_of_region, weight_factor):
    """Components of unconverted photons with |cos θ| in (low, high): per ECal region (and the
    robustness mode's gap), scale = 10 GeV × the region's factor from ``scale_of_region``."""
    energy = NOMINAL_ENERGY['gamma']
    cuts = sorted({low, high, *(c for c in (truth.ecal_barrel_max, truth.ecal_endcap_min) if low < c < high)})
    components = []
    for start, stop in zip(cuts[:-1], cuts[1:]):
        region = 0 if stop <= truth.ecal_barrel_max else 1
        gap = truth.robustness and region == 1 and stop <= truth.ecal_endcap_min
        components.append(Component(weight_factor * _photon_survival(start, stop), energy * scale_of_region[region],
                                    photon_resolution(truth), truth.photon_tail_fraction, truth.photon_tail_mean,
                                    GAP_LOSS if gap else None))
    return components


def _ecal_responses(constants, truth):
    """Digitised / deposited energy of the ECal barrel and endcap (ρ_E = C_eff/C_true)."""
    scales, true = ecal_scales(constants, truth)
    return scales[0] / true[0], scales[1] / true[1]


def ecal_energy(truth, constants, cos_range):
    """Phase 0: ECalTotalCaloHitEnergy of single unconverted photons with |cos θ| strictly in
    ``cos_range`` and below 0.95, contained in the ECal.

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :param cos_range: (low, high) of the region's |cos θ| setting
    :return: Mixture
    """
    low, high = max(0.0, cos_range[0]), min(MAX_ABS_COS_THETA, cos_range[1])
    kept = ROBUSTNESS_PHOTON_KEPT if truth.robustness else 1.0
    return Mixture(_photon_components(truth, low, high, _ecal_responses(constants, truth), kept))


def em_energy(truth, constants, stage):
    """Phase 3: pfoECalToEmEnergy of single photons reconstructed as one photon PFO, all angles.

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :param int stage: 1 or 3 (the Pandora response)
    :return: Mixture
    """
    pandora = truth.k_em(stage) * pandora_scale(float(constants['ECalToEMGeVCalibration']),
                                                truth.em_scale_nonlinearity)
    responses = [pandora * response for response in _ecal_responses(constants, truth)]
    kept = (1.0 - PHOTON_SPLIT_FRACTION) * (ROBUSTNESS_PHOTON_KEPT if truth.robustness else 1.0)
    return Mixture(_photon_components(truth, 0.0, 1.0, responses, kept))


def angle_pieces(low, high, boundaries):
    """[low, high] cut at the ``boundaries`` inside it: pieces of |cos θ| that each lie in one region.

    :param float low: lower end
    :param float high: upper end
    :param boundaries: region boundaries
    :return: list of (start, stop)
    """
    cuts = sorted({low, high, *(c for c in boundaries if low < c < high)})
    return list(zip(cuts[:-1], cuts[1:]))


def angle_nodes(low, high, boundaries):
    """Gauss-Legendre nodes and weights of |cos θ| in [low, high], per piece of angle_pieces.

    :param float low: lower end
    :param float high: upper end
    :param boundaries: region boundaries
    :return: (nodes, weights) float64 arrays
    """
    pieces = [legendre(start, stop, _ANGLE_NODES) for start, stop in angle_pieces(low, high, boundaries)]
    return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def hcal_boundaries(truth):
    """|cos θ| where the ECal or HCal region changes.

    :param DetectorTruth truth: the detector
    :return: tuple of floats
    """
    return truth.hcal_barrel_max, truth.ecal_barrel_max, truth.hcal_ring_max


def hcal_energy(truth, constants, cos_range):
    """Phase 1: HCalTotalCaloHitEnergy of kaons whose shower starts in the HCal, |cos θ| strictly
    in ``cos_range``: (T_K − δ_E)·u·ρ_H, δ_E the MIP track in the ECal (those starting in the
    ECal never pass the 2.5 GeV cut, detector_model.KAON_ECAL_FRACTION).

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :param cos_range: (low, high) of the region's |cos θ| setting
    :return: Mixture
    """
    abs_cos, weights = angle_nodes(cos_range[0], cos_range[1], hcal_boundaries(truth))
    responses = hcal_scales(constants, truth) / np.array(truth.hcal_true_constants)
    deposit = KAON_KINETIC_ENERGY - mip_track(abs_cos, truth)
    sigma = hadron_resolution(deposit, truth)
    response = responses[hcal_region(abs_cos, truth)]
    kept = (1.0 - KAON_ECAL_START) * (ROBUSTNESS_KAON_KEPT if truth.robustness else 1.0)
    return Mixture(Component(kept * w, d * r, s, truth.hadron_tail_fraction, truth.hadron_tail_mean)
                   for w, d, r, s in zip(weights, deposit, response, sigma))
