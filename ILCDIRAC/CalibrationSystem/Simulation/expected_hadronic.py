"""What phase 4's chi-square method (physics.md §2.5) measures on the synthetic detector, without
statistical noise: the minimum of the expected χ² over the model's exact distribution of kaons.

Why: the kaons' HCal energies have a low-side tail, the 3σ band cuts the distribution, the PFO
energy is split by the raw hit fractions and Pandora's response is non-linear in its constants,
so the intercepts the method finds are not T_K at any simple point. The expected χ² is an
integral over the kaon's direction, where its shower starts, the ECal share and the Gaussian and
tail fluctuations; here it is a weighted sum over quadrature nodes: Gauss-Legendre in |cos θ|
and the ECal share, Gauss-Hermite in the ECal fluctuation, and Gauss-Legendre in the HCal
relative energy u over exactly the interval the band keeps (the PFO energy is linear in u), with
the density of u (expected_response.relative_pdf). The minimum is the continuous one, which the
refined search of hadronic_scale approaches to a thousandth of a grid step; the reference's
grid would quantise it to pandoraPFAAccuracy·50 GeV.
"""
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.hadronic_scale import intercept_covariance, newton_minimum
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import (
    KAON_ECAL_FRACTION, KAON_ECAL_START, KAON_SPLIT_FRACTION, ecal_scales, hadron_resolution, hcal_region, hcal_scales,
    mip_track, pandora_scale)
from ILCDIRAC.CalibrationSystem.Simulation.expected_response import (
    ROBUSTNESS_KAON_KEPT, angle_nodes, angle_pieces, hcal_boundaries, legendre, relative_pdf)

RESOLUTION = 0.55                 # the method's σ(E) = 0.55·√E
BAND_SIGMAS = 3.0
_SHARE_NODES = 12                 # Gauss-Legendre nodes of the ECal share of showers starting there
_SMEAR_NODES = 16                 # Gauss-Hermite nodes of the ECal fluctuation
_U_NODES = 16                     # Gauss-Legendre nodes per piece of the HCal relative energy
_CORE_SIGMAS = 6.0                # the u interval is split at 1 ± 6σ, where the Gaussian core ends
_NEWTON_STEPS = 50


@dataclass(frozen=True)
class KaonPoints:
    """Quadrature of the phase-4 selection inside the band: per node the HCal (x) and ECal (y)
    hadronic energies and the expected number of such kaons per generated kaon (``weight``)."""

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray


def band_limits():
    """The ends of the band ``|x + y − T_K| ≤ 3·0.55·√(x + y)``.

    :return: (lowest, highest) x + y inside it (GeV)
    """
    width = BAND_SIGMAS * RESOLUTION
    root = np.sqrt(width ** 2 + 4.0 * KAON_KINETIC_ENERGY)
    return (0.5 * (root - width)) ** 2, (0.5 * (root + width)) ** 2


def _u_nodes(low, high, sigma, truth):
    """Nodes and weights (density included) of u over [low, high] (arrays, one interval per row)."""
    cuts = np.stack([low, np.clip(1.0 - _CORE_SIGMAS * sigma, low, high),
                     np.clip(1.0 + _CORE_SIGMAS * sigma, low, high), high], axis=-1)
    base, base_weights = np.polynomial.legendre.leggauss(_U_NODES)
    nodes, weights = [], []
    for piece in range(3):
        start, stop = cuts[..., piece, None], cuts[..., piece + 1, None]
        u = start + 0.5 * (stop - start) * (base + 1.0)
        nodes.append(u)
        weights.append(0.5 * (stop - start) * base_weights
                       * relative_pdf(u, sigma[..., None], truth.hadron_tail_fraction, truth.hadron_tail_mean))
    return np.concatenate(nodes, axis=-1), np.concatenate(weights, axis=-1)


def _in_band(ecal, hcal_unit, pandora_ecal, pandora_hcal, sigma, weight, truth, k_had):
    """Points of showers with ECal energy ``ecal`` and HCal energy ``hcal_unit``·u, u in the band."""
    lowest, highest = band_limits()
    offset, slope = k_had * pandora_ecal * ecal, k_had * pandora_hcal * hcal_unit
    low = np.maximum((lowest - offset) / slope, 0.0)
    high = np.maximum((highest - offset) / slope, low)
    u, u_weight = _u_nodes(low, high, sigma, truth)
    hcal = hcal_unit[..., None] * u
    pfo = offset[..., None] + slope[..., None] * u
    share = hcal / (hcal + ecal[..., None])
    return pfo * share, pfo * (1.0 - share), weight[..., None] * u_weight


def kaon_points(truth, constants, stage):
    """The kaons phase 4 keeps (one neutral-hadron PFO, contained) that lie in the band.

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :param int stage: 1 or 3 (the Pandora response)
    :return: KaonPoints
    """
    k_had, gamma = truth.k_had(stage), truth.had_scale_nonlinearity
    ecal_scale, ecal_true = ecal_scales(constants, truth)
    ecal_response = np.array(ecal_scale) / np.array(ecal_true)
    hcal_response = hcal_scales(constants, truth) / np.array(truth.hcal_true_constants)
    pandora_ecal = np.array([pandora_scale(float(constants[name]), gamma)
                             for name in ('ECalToHadGeVCalibrationBarrel', 'ECalToHadGeVCalibrationEndCap')])
    pandora_hcal = pandora_scale(float(constants['HCalToHadGeVCalibration']), gamma)
    kept = (1.0 - KAON_SPLIT_FRACTION) * (ROBUSTNESS_KAON_KEPT if truth.robustness else 1.0)
    # Showers starting in the HCal: a MIP track δ_E in the ECal, (T_K − δ_E)·u in the HCal.
    abs_cos, angle_weight = angle_nodes(0.0, 1.0, hcal_boundaries(truth))
    ecal_index = (abs_cos >= truth.ecal_barrel_max).astype(int)
    track = mip_track(abs_cos, truth)
    hcal_true = KAON_KINETIC_ENERGY - track
    points = [_in_band(track * ecal_response[ecal_index], hcal_true * hcal_response[hcal_region(abs_cos, truth)],
                       pandora_ecal[ecal_index], pandora_hcal, hadron_resolution(hcal_true, truth),
                       kept * (1.0 - KAON_ECAL_START) * angle_weight, truth, k_had)]

    # Showers starting in the ECal: share x_E of T_K seen as h_E·x_E·T_K·(1 + σ·z) in the ECal;
    # the direction only matters through the regions, so one node per piece of angle_pieces.
    pieces = angle_pieces(0.0, 1.0, hcal_boundaries(truth))
    middle = np.array([0.5 * (low + high) for low, high in pieces])
    piece_weight = np.array([high - low for low, high in pieces])
    share, share_weight = legendre(*KAON_ECAL_FRACTION, _SHARE_NODES)
    share_weight = share_weight / (KAON_ECAL_FRACTION[1] - KAON_ECAL_FRACTION[0])
    smear, smear_weight = np.polynomial.hermite_e.hermegauss(_SMEAR_NODES)
    smear_weight = smear_weight / np.sqrt(2.0 * np.pi)
    piece, share, smear = (array.ravel() for array in np.meshgrid(np.arange(middle.size), share, smear,
                                                                   indexing='ij'))
    weight = np.outer(np.outer(piece_weight, share_weight), smear_weight).ravel()
    ecal_index = (middle >= truth.ecal_barrel_max).astype(int)[piece]
    hcal_piece = hcal_region(middle, truth)[piece]
    ecal_true = truth.h_ecal * share * KAON_KINETIC_ENERGY
    ecal = np.maximum(ecal_true * (1.0 + hadron_resolution(ecal_true, truth) * smear), 0.0)
    hcal_true = (1.0 - share) * KAON_KINETIC_ENERGY
    points.append(_in_band(ecal * ecal_response[ecal_index], hcal_true * hcal_response[hcal_piece],
                           pandora_ecal[ecal_index], pandora_hcal, hadron_resolution(hcal_true, truth),
                           kept * KAON_ECAL_START * weight, truth, k_had))
    x, y, w = (np.concatenate([p[i].ravel() for p in points]) for i in range(3))
    keep = w > 0
    return KaonPoints(x[keep], y[keep], w[keep])


@dataclass(frozen=True)
class InterceptEstimate:
    """The χ² minimum (I_E, I_H) in GeV; ``covariance``: its statistical covariance for
    ``count`` kaons in the band (sandwich: H⁻¹·Var(∇q)·H⁻¹/n, since the method's 0.55 is not the
    true resolution); ``count``: expected kaons in the band."""

    ecal: float
    hcal: float
    covariance: np.ndarray
    count: float


def intercept_estimate(points, events, start=(KAON_KINETIC_ENERGY, KAON_KINETIC_ENERGY)):
    """Minimum of the expected χ² of ``points`` (hadronic_scale.newton_minimum from ``start``).

    :param KaonPoints points: kaon_points
    :param int events: generated kaons of the sample, for the covariance
    :param start: (I_E, I_H) to start from (GeV)
    :return: InterceptEstimate
    """
    theta = newton_minimum(points.x, points.y, start, points.weight, _NEWTON_STEPS)
    total = points.weight.sum()
    count = events * total
    covariance = intercept_covariance(points.x, points.y, *theta, weights=points.weight) * total / count
    return InterceptEstimate(float(theta[0]), float(theta[1]), covariance, float(count))
