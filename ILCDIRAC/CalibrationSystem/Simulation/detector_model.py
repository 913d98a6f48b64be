"""Synthetic detector response standing in for simulation + Marlin (physics.md §7).

Why: the calibration loop must be testable end to end without iLCSoft. The model turns a hidden
detector truth and the *current* constants of a steering file into the PfoAnalysis columns that
Marlin would produce, such that every calibration phase has an analytic fixed point (fixed_points).

Event identity: every random number of event ``i`` is a function of (truth.seed, sample, i, draw
name) only (event_random). The same "simulated" events therefore come back at every iteration,
only re-digitised with new constants, and any slicing of an event range yields identical
per-event values. ``generate`` adds the PfoAnalysis histograms (calorimeter_hits) and, for the
Z -> uds photon training, the likelihood file (likelihood_model).

Response decisions (physics.md §7, extended so that approximate physics is caught): the
calorimeter and Pandora responses are non-linear in their constants, ``value**γ`` relative to the
truth (``γ < 1``), so the reference's multiplicative updates, which assume linearity, must iterate;
and photon and hadron showers have a low-side tail (a fraction loses an exponentially distributed
share of its energy), so a peak estimator that takes the mean instead of the fitted core lands
elsewhere. Energies are ``E·max(1 + σ·z − ℓ, 0)`` with z standard normal and ℓ the tail loss
(0 outside the tail), whose distribution expected_response writes down exactly.

Geometry decision: the ECal barrel is |cos θ| < ecal_barrel_max; everything else (the
barrel/endcap gap and the far forward region included) is digitised as ECal endcap, with the
endcap truth constant. Likewise the HCal endcap digitisation covers |cos θ| >= hcal_ring_max. No
event is dropped; the phase selections exclude the gap anyway. In robustness mode, photons in
the gap lose part of their energy in dead material. Only the HCal direction-correction
histograms stop at hcal_endcap_max: their means D_X define the true ring constant.
"""
import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import FLOAT_BRANCHES, INT_BRANCHES
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import write_likelihood
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY, SAMPLE_TYPES
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Simulation.calorimeter_hits import (
    DIRECTION_SMEAR, HistogramFiller, direction_corrections, mip_layers)
from ILCDIRAC.CalibrationSystem.Simulation.event_random import EventRandom
from ILCDIRAC.CalibrationSystem.Simulation.likelihood_model import likelihood_data

INT_MAX = 2147483647
QUARK_DEFAULT = -99  # PfoAnalysis value of the quark variables in events without a Z -> qq

_QUARK_COLUMNS = ('eQQ', 'eQ1', 'eQ2', 'costQQ', 'costQ1', 'costQ2', 'mQQ', 'thrust', 'qPdg')
_CALORIMETERS = ('ECal', 'HCal', 'Muon', 'BCal', 'LHCal', 'LCal')

# Photon sample (physics.md §7): conversion inside 500 mm, split PFOs, robustness-mode defects.
CONVERSION_BASE = 0.08
CONVERSION_SLOPE = 0.08
PHOTON_SPLIT_FRACTION = 0.04
_PHOTON_HCAL_LEAK_FRACTION = 0.05      # robustness: events with >= 3 % of the energy in the HCal
_PHOTON_HCAL_SHARE = (0.03, 0.15)
GAP_LOSS = (0.05, 0.40)               # robustness: dead material between ECal barrel and endcap
_FORWARD_COS_THETA = 0.98              # PfoAnalysis: MC energy beyond this counts as forward
ECAL_LAYERS = 40                      # layers a MIP crosses in the ECal

# K0L sample (physics.md §7).
#: Energy share of showers starting in the ECal: at least 0.2, so that their ECal energy (>= 8 GeV,
#: 16 % resolution) never passes the phase-1 cut of 2.5 GeV outside the HCal.
KAON_ECAL_FRACTION = (0.2, 0.7)
KAON_ECAL_START = 0.5                  # probability that the shower starts in the ECal
KAON_SPLIT_FRACTION = 0.06
KAON_CONTAINED_LAYERS = 7             # contained showers stay >= 7 layers from the HCal edges
_KAON_LEAK_FRACTION = 0.1              # robustness: showers leaking out of the HCal
_KAON_LEAK_SHARE = (0.08, 0.30)
_NEUTRAL_HADRON_MASS = 0.939565        # Pandora gives neutral-hadron PFOs the neutron mass

# mu-, 10 GeV (physics.md §7): MIP hits in every layer.
MUON_LAYERS = 7
_EDGE_LAYERS = 5                       # hCalCaloHitEnergyFromEdge: HCal hits < 5 layers from the outer edge
_MUON_MASS = 0.1056583755
_CALIBR_MUON = 56.7                    # DDSimpleMuonDigi CalibrMUON: not calibrated, relates sim to digitised

#: HCal regions by index, with the steering constant and the histograms of each.
HCAL_REGIONS = ('Barrel', 'EndCap', 'Other')
_HCAL_CONSTANTS = ('CalibrHCALBarrel', 'CalibrHCALEndcap', 'CalibrHCALOther')
_HCAL_SIM_HISTOGRAMS = tuple(f'HCalDirectionCorrectedSimCaloHit{region}' for region in HCAL_REGIONS)
_HCAL_DIRECTION_HISTOGRAMS = tuple(f'HCal{region}DirectionCorrectionSimCaloHit' for region in HCAL_REGIONS)

#: Samples the model generates; ``simulate`` (PfoAnalysis columns) covers all but zuds, which only
#: makes the photon-likelihood training file (``generate`` with stage 2).
SUPPORTED_SAMPLES = SAMPLE_TYPES
COLUMN_SAMPLES = ('gamma', 'muon', 'kaon')


@dataclass(frozen=True)
class DetectorTruth:
    """Hidden truth of the synthetic detector; the calibration must recover its fixed points."""

    calibr_ecal: float = 37.52                    # CalibrECAL of the true detector
    ecal_endcap_correction_factor: float = 1.032  # ECALEndcapCorrectionFactor
    ecal_thick_layer_ratio: float = 1.0           # ecalResponseCorrectionForThickLayers (known input)
    calibr_hcal_barrel: float = 46.0
    calibr_hcal_endcap: float = 46.9
    mip_ecal: float = 0.0057                      # digitised MIP per layer, GeV
    mip_hcal: float = 0.0219
    mip_muon: float = 5.0e-5
    ring_mpv_ratio: float = 0.9                   # m_EC / m_R of the HCal sim MIP peaks
    k_em_stage1: float = 0.95                     # Pandora EM response before / after the
    k_em_stage3: float = 0.99                     # photon-likelihood training
    k_had_stage1: float = 0.96
    k_had_stage3: float = 0.99
    h_ecal: float = 0.85                          # ECal hadron / EM response
    em_stochastic: float = 0.15                   # photon resolution a/sqrt(E) (+) b
    em_constant: float = 0.01
    had_stochastic: float = 0.45                  # hadron resolution
    had_constant: float = 0.03
    photon_tail_fraction: float = 0.25            # low-side tails: this fraction of the showers loses
    photon_tail_mean: float = 0.08                # an exponentially distributed share of its energy
    hadron_tail_fraction: float = 0.3             # with this mean (photons: leakage; hadrons: invisible
    hadron_tail_mean: float = 0.15                # energy of the HCal shower)
    ecal_barrel_max: float = 0.70                 # |cos θ| boundaries
    ecal_endcap_min: float = 0.80
    ecal_endcap_max: float = 0.98
    hcal_barrel_max: float = 0.65
    hcal_ring_max: float = 0.78
    hcal_endcap_max: float = 0.98
    ecal_nonlinearity: float = 0.6                # response ~ (C/C_true)**gamma of CalibrECAL (and the
    hcal_nonlinearity: float = 0.8                # endcap factor), of the CalibrHCAL constants,
    em_scale_nonlinearity: float = 0.6            # of ECal/HCalToEMGeVCalibration (Pandora: s**gamma)
    had_scale_nonlinearity: float = 0.7           # and of ECal/HCalToHadGeVCalibration
    n_hcal_layers: int = 60
    robustness: bool = False
    seed: int = 20190401

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ('int', int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"DetectorTruth.{field.name} must be an integer, got {value!r}")
            elif field.type in ('bool', bool):
                if not isinstance(value, bool):
                    raise ValueError(f"DetectorTruth.{field.name} must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (value == 0 and field.name not in _MAY_BE_ZERO):
                raise ValueError(f"DetectorTruth.{field.name} must be a positive number, got {value!r}")
            else:
                object.__setattr__(self, field.name, float(value))
        for name in _MAY_BE_ZERO:
            if getattr(self, name) >= 1.0:
                raise ValueError(f"DetectorTruth.{name} is a fraction of the showers: it must be in [0, 1)")
        if self.seed < 0:
            raise ValueError(f"DetectorTruth.seed must be >= 0, got {self.seed}")
        if self.n_hcal_layers < 10:
            raise ValueError(f"DetectorTruth.n_hcal_layers must be >= 10, got {self.n_hcal_layers}")
        if not self.ecal_barrel_max <= self.ecal_endcap_min < self.ecal_endcap_max <= 1.0:
            raise ValueError("DetectorTruth ECal geometry must satisfy "
                             "ecal_barrel_max <= ecal_endcap_min < ecal_endcap_max <= 1")
        if not self.hcal_barrel_max < self.hcal_ring_max < self.hcal_endcap_max <= 1.0:
            raise ValueError("DetectorTruth HCal geometry must satisfy "
                             "hcal_barrel_max < hcal_ring_max < hcal_endcap_max <= 1")

    @property
    def calibr_hcal_ring(self):
        """True HCal ring constant C_R := C_HE·(D_EC/D_R)·(m_EC/m_R) (physics.md §7), with D_X the
        expected mean of the region's direction-correction histogram (direction_correction_mean)."""
        return self.calibr_hcal_endcap * (self.direction_correction_mean('EndCap')
                                          / self.direction_correction_mean('Other')) * self.ring_mpv_ratio

    @property
    def hcal_true_constants(self):
        """True HCal constants by region index (HCAL_REGIONS: barrel, endcap, ring)."""
        return (self.calibr_hcal_barrel, self.calibr_hcal_endcap, self.calibr_hcal_ring)

    @property
    def hcal_sim_mpvs(self):
        """Sim MIP MPVs by HCal region: m_X = e_H/C_X,true for barrel and endcap, m_R = m_EC/ratio."""
        endcap = self.mip_hcal / self.calibr_hcal_endcap
        return (self.mip_hcal / self.calibr_hcal_barrel, endcap, endcap / self.ring_mpv_ratio)

    @property
    def ecal_sim_mpvs(self):
        """Sim MIP MPVs of the ECal barrel and endcap; the endcap one keeps the digitised MIPs equal."""
        return (self.mip_ecal / self.calibr_ecal,
                self.mip_ecal / (self.calibr_ecal * self.ecal_endcap_correction_factor))

    def direction_correction_mean(self, region):
        """Expected mean of HCal{region}DirectionCorrectionSimCaloHit: for shower axes uniform in
        cos θ over the region, 1/corr = sin θ (barrel) or |cos θ| (endcap, ring), smeared by
        N(0, 0.04) and clipped to [0, 1] (midpoint rule over the axis, exact clipped-normal mean).

        :param str region: 'Barrel', 'EndCap' or 'Other' (the ring)
        :return: float D_X
        """
        return _direction_correction_means(self.hcal_barrel_max, self.hcal_ring_max,
                                           self.hcal_endcap_max)[HCAL_REGIONS.index(region)]

    def k_em(self, stage):
        """Pandora EM response: improved by the stage-3 (trained) photon likelihood.

        :param int stage: 1, 2 or 3
        :return: float k_EM
        """
        return self.k_em_stage3 if stage == 3 else self.k_em_stage1

    def k_had(self, stage):
        """Pandora hadronic response, likewise improved in stage 3.

        :param int stage: 1, 2 or 3
        :return: float k_had
        """
        return self.k_had_stage3 if stage == 3 else self.k_had_stage1

    def to_dict(self):
        """JSON-able form.

        :return: {field name: value}
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Inverse of to_dict; unknown keys are refused (a typo must not silently use a default).

        :param dict data: {field name: value}, fields left out take their defaults
        :return: DetectorTruth; ValueError saying what is wrong
        """
        if not isinstance(data, dict):
            raise ValueError(f"Detector truth must be a JSON object, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown detector truth keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)


#: Truth fields that may be 0 (no tail).
_MAY_BE_ZERO = ('photon_tail_fraction', 'hadron_tail_fraction')


@functools.lru_cache(maxsize=32)
def _direction_correction_means(barrel_max, ring_max, endcap_max):
    points = 4000
    means = []
    for low, high, barrel in ((0.0, barrel_max, True), (ring_max, endcap_max, False), (barrel_max, ring_max, False)):
        abs_cos = low + (high - low) * (np.arange(points) + 0.5) / points
        axis = np.sqrt(1.0 - abs_cos ** 2) if barrel else abs_cos
        means.append(float(np.mean(_clipped_normal_mean(axis, DIRECTION_SMEAR))))
    return tuple(means)


def _clipped_normal_mean(mu, sigma):
    """E[clip(mu + sigma·N, 0, 1)] for N standard normal."""
    erf = np.vectorize(math.erf)

    def cdf(z):
        return 0.5 * (1.0 + erf(z / math.sqrt(2.0)))

    def pdf(z):
        return np.exp(-0.5 * z ** 2) / math.sqrt(2.0 * math.pi)

    low, high = -mu / sigma, (1.0 - mu) / sigma
    return mu * (cdf(high) - cdf(low)) + sigma * (pdf(low) - pdf(high)) + (1.0 - cdf(high))


# ---------------------------------------------------------------------------------------------
# Constants

def _constant(constants, name, default=None):
    """A positive constant from the steering values; for a FloatVec the first (thin-layer) value."""
    if name not in constants:
        if default is None:
            raise ValueError(f"Constant {name} is missing; the detector model needs it")
        return default
    try:
        value = float(np.atleast_1d(np.asarray(constants[name], dtype=np.float64))[0])
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"Constant {name} must be a number or a list of numbers, got {constants[name]!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Constant {name} must be a positive number, got {value}")
    return value


def _scale(current, true, nonlinearity):
    """Digitised / sim energy: the true constant times (C/C_true)**γ, the current constant when γ = 1."""
    return current if nonlinearity == 1.0 else true * (current / true) ** nonlinearity


def pandora_scale(current, nonlinearity):
    """What Pandora multiplies a digitised energy by for the calibration constant ``current``: s**γ.

    :param float current: the steering file's ECal/HCalTo(EM|Had)GeVCalibration
    :param float nonlinearity: γ (em_scale_nonlinearity or had_scale_nonlinearity)
    :return: float
    """
    return current ** nonlinearity


def relative_energy(rnd, n, sigma, tail_fraction, tail_mean):
    """Per event ``max(1 + σ·z − ℓ, 0)``: a Gaussian core with a low-side tail, ℓ exponential with
    mean ``tail_mean`` for a fraction ``tail_fraction`` of the events, else 0 (expected_response).

    :param EventRandom rnd: the events' random numbers (draws 'resolution', 'tail', 'tail_loss')
    :param int n: number of events
    :param sigma: relative Gaussian width (a number or one per event)
    :param float tail_fraction: share of the events in the tail
    :param float tail_mean: mean relative loss ℓ in the tail
    :return: float64 array of the relative energies
    """
    tail = rnd.uniform('tail') < tail_fraction
    loss = np.where(tail, -tail_mean * np.log(rnd.uniform('tail_loss')), 0.0)
    return np.maximum(1.0 + sigma * rnd.normal('resolution') - loss, 0.0)


_ECAL_CONSTANTS = ('CalibrECAL', 'ECALEndcapCorrectionFactor')
_CONSTANTS_USED = {
    'gamma': _ECAL_CONSTANTS + ('ECalToEMGeVCalibration', 'HCalToEMGeVCalibration'),
    'muon': _ECAL_CONSTANTS + _HCAL_CONSTANTS,
    'kaon': _ECAL_CONSTANTS + _HCAL_CONSTANTS + (
        'ECalToHadGeVCalibrationBarrel', 'ECalToHadGeVCalibrationEndCap', 'HCalToHadGeVCalibration'),
    'zuds': (),
}


def constants_used(sample, truth):
    """Names of the steering constants that the model reads for ``sample``.

    :param str sample: a sample type
    :param DetectorTruth truth: the detector (robustness-mode photons also read the HCal constants)
    :return: tuple of constant names
    """
    _check_sample(sample)
    names = _CONSTANTS_USED[sample]
    if truth.robustness and sample == 'gamma':
        names += _HCAL_CONSTANTS
    return names


def _check_sample(sample, supported=SUPPORTED_SAMPLES):
    if sample not in supported:
        raise ValueError(f"The synthetic detector model does not simulate the {sample!r} sample here; "
                         f"supported: {list(supported)}")


# ---------------------------------------------------------------------------------------------
# Samples

def ecal_scales(constants, truth):
    """Digitisation scales of the ECal: digitised / sim energy, C_true·(C/C_true)**γ_E.

    :param dict constants: the steering constants (CalibrECAL, ECALEndcapCorrectionFactor)
    :param DetectorTruth truth: the detector
    :return: ((barrel scale, endcap scale), (barrel C_true, endcap C_true))
    """
    c_barrel = _constant(constants, 'CalibrECAL')
    c_endcap = c_barrel * _constant(constants, 'ECALEndcapCorrectionFactor')
    true = (truth.calibr_ecal, truth.calibr_ecal * truth.ecal_endcap_correction_factor)
    return (_scale(c_barrel, true[0], truth.ecal_nonlinearity),
            _scale(c_endcap, true[1], truth.ecal_nonlinearity)), true


def _ecal_digitised(deposit, abs_cos, constants, truth):
    """Sim and digitised ECal energy of a deposit given on the true (GeV) scale, by ECal region."""
    barrel = abs_cos < truth.ecal_barrel_max
    (scale_barrel, scale_endcap), (true_barrel, true_endcap) = ecal_scales(constants, truth)
    sim = deposit / np.where(barrel, true_barrel, true_endcap)
    return sim, np.where(barrel, scale_barrel * sim, scale_endcap * sim)


def hcal_region(abs_cos, truth):
    """Index into HCAL_REGIONS: 0 barrel, 1 endcap (everything forward of the ring), 2 ring.

    :param abs_cos: the directions' |cos θ| (array)
    :param DetectorTruth truth: the detector (its HCal boundaries)
    :return: integer array
    """
    return np.where(abs_cos < truth.hcal_barrel_max, 0, np.where(abs_cos < truth.hcal_ring_max, 2, 1))


def hcal_scales(constants, truth):
    """Digitisation scales of the HCal regions, C_true·(C/C_true)**γ_H, by region index.

    :param dict constants: the steering constants (the three CalibrHCAL constants)
    :param DetectorTruth truth: the detector
    :return: float array [barrel, endcap, ring]
    """
    return np.array([_scale(_constant(constants, name), true, truth.hcal_nonlinearity)
                     for name, true in zip(_HCAL_CONSTANTS, truth.hcal_true_constants)])


def _hcal_digitised(deposit, abs_cos, constants, truth):
    """Sim and digitised HCal energy of a deposit given on the true (GeV) scale, by HCal region."""
    region = hcal_region(abs_cos, truth)
    sim = deposit / np.array(truth.hcal_true_constants)[region]
    return sim, hcal_scales(constants, truth)[region] * sim


def _pair_mass(energy, share, mass, opening):
    """Invariant mass of two PFOs of equal ``mass`` sharing ``energy`` at an opening angle."""
    e1, e2 = share * energy, (1.0 - share) * energy
    p1 = np.sqrt(np.maximum(e1 ** 2 - mass ** 2, 0.0))
    p2 = np.sqrt(np.maximum(e2 ** 2 - mass ** 2, 0.0))
    return np.sqrt(np.maximum(2.0 * mass ** 2 + 2.0 * (e1 * e2 - p1 * p2 * np.cos(opening)), 0.0))


def _pfo_shares(pfo_energy, ecal, hcal):
    """PFO energy attributed to ECal and HCal by the raw hit-energy fractions (physics.md §5.3)."""
    raw = ecal + hcal
    ecal_fraction = np.divide(ecal, raw, out=np.zeros_like(raw), where=raw > 0)
    return pfo_energy * ecal_fraction, pfo_energy * (1.0 - ecal_fraction)


def _simulate_gamma(rnd, n, constants, truth, stage, filler):
    energy = NOMINAL_ENERGY['gamma']
    cos_theta = rnd.uniform('cos_theta', -1.0, 1.0)
    abs_cos = np.abs(cos_theta)
    converted = rnd.uniform('conversion') < CONVERSION_BASE + CONVERSION_SLOPE * abs_cos
    deposit = energy * relative_energy(rnd, n, photon_resolution(truth), truth.photon_tail_fraction,
                                       truth.photon_tail_mean)
    hcal_share = np.zeros(n)
    if truth.robustness:
        gap = (abs_cos >= truth.ecal_barrel_max) & (abs_cos < truth.ecal_endcap_min)
        deposit *= np.where(gap, 1.0 - rnd.uniform('gap_loss', *GAP_LOSS), 1.0)
        leak = rnd.uniform('hcal_leak') < _PHOTON_HCAL_LEAK_FRACTION
        hcal_share = np.where(leak, rnd.uniform('hcal_share', *_PHOTON_HCAL_SHARE), 0.0)

    ecal_sim, ecal = _ecal_digitised(deposit * (1.0 - hcal_share), abs_cos, constants, truth)
    if truth.robustness:
        hcal_sim, hcal = _hcal_digitised(deposit * hcal_share, abs_cos, constants, truth)
    else:
        hcal_sim, hcal = np.zeros(n), np.zeros(n)

    # Pandora EM scale of the photon PFO(s); converted photons give two track PFOs instead.
    ecal_to_em, hcal_to_em = (pandora_scale(_constant(constants, name, 1.0), truth.em_scale_nonlinearity)
                              for name in ('ECalToEMGeVCalibration', 'HCalToEMGeVCalibration'))
    pfo_energy = truth.k_em(stage) * (ecal_to_em * ecal + hcal_to_em * hcal)
    photon = ~converted
    split = photon & (rnd.uniform('split') < PHOTON_SPLIT_FRACTION)
    photon_energy = np.where(photon, pfo_energy, 0.0)
    ecal_em, hcal_em = _pfo_shares(photon_energy, ecal, hcal)
    share = rnd.uniform('pair_share', 0.05, 0.95)
    opening = np.where(split, rnd.uniform('split_angle', 0.02, 0.2), rnd.uniform('conversion_angle', 0.001, 0.01))
    pair_mass = _pair_mass(np.where(split, pfo_energy, energy), share, 0.0, opening)

    two_pfos = split | converted
    return {
        'ECalTotalCaloHitEnergy': ecal,
        'HCalTotalCaloHitEnergy': hcal,
        'ECalTotalSimCaloHitEnergy': ecal_sim,
        'HCalTotalSimCaloHitEnergy': hcal_sim,
        'pfoTargetCosTheta0': cos_theta,
        'nPfoTargetsTotal': np.where(converted, 2, 1),
        'nPfoTargetsPhotons': np.where(converted, 0, 1),
        'nPfoTargetsTracks': np.where(converted, 2, 0),
        'pfoTargetsEnergyTotal': np.full(n, energy),
        'pfoTargetsEnergyPhotons': np.where(converted, 0.0, energy),
        'pfoTargetsEnergyTracks': np.where(converted, energy, 0.0),
        'mcEnergyFwd': np.where(abs_cos > _FORWARD_COS_THETA, energy, 0.0),
        'nPfosTotal': np.where(two_pfos, 2, 1),
        'nPfosPhotons': np.where(converted, 0, np.where(split, 2, 1)),
        'nPfosTracks': np.where(converted, 2, 0),
        'pfoEnergyPhotons': photon_energy,
        'pfoEnergyTracks': np.where(converted, energy, 0.0),
        'pfoEnergyTotal': np.where(converted, energy, pfo_energy),
        'pfoECalToEmEnergy': ecal_em,
        'pfoHCalToEmEnergy': hcal_em,
        'pfoMassTotal': np.where(two_pfos, pair_mass, 0.0),
        'pfoMinHCalLayerToEdge': np.where(hcal > 0, 0, INT_MAX),
    }


def mip_track(abs_cos, truth):
    """True-scale ECal energy of a MIP crossing all ECal layers: e_E per layer × path factor.

    :param abs_cos: the directions' |cos θ| (array)
    :param DetectorTruth truth: the detector
    :return: float array (GeV)
    """
    sin_theta = np.sqrt(np.maximum(1.0 - abs_cos ** 2, 1e-12))
    path = np.where(abs_cos < truth.ecal_barrel_max, 1.0 / sin_theta, 1.0 / np.maximum(abs_cos, 1e-6))
    return ECAL_LAYERS * truth.mip_ecal * path


def photon_resolution(truth):
    """Relative Gaussian width of the 10 GeV photon energy, a/√E ⊕ b.

    :param DetectorTruth truth: the detector
    :return: float
    """
    return math.hypot(truth.em_stochastic / math.sqrt(NOMINAL_ENERGY['gamma']), truth.em_constant)


def hadron_resolution(energy, truth):
    """Relative Gaussian width of a hadron shower depositing ``energy`` (GeV), a/√E ⊕ b.

    :param energy: deposited energy (GeV), a number or an array
    :param DetectorTruth truth: the detector
    :return: float array
    """
    return np.hypot(truth.had_stochastic / np.sqrt(np.maximum(energy, 1e-6)), truth.had_constant)


def _simulate_kaon(rnd, n, constants, truth, stage, filler):
    energy, kinetic = NOMINAL_ENERGY['kaon'], KAON_KINETIC_ENERGY
    cos_theta = rnd.uniform('cos_theta', -1.0, 1.0)
    abs_cos = np.abs(cos_theta)
    # Half of the showers start in the ECal (they fail the phase-1 cut); the others leave only a MIP track there.
    ecal_start = rnd.uniform('ecal_start') < KAON_ECAL_START
    ecal_fraction = rnd.uniform('ecal_fraction', *KAON_ECAL_FRACTION)
    track = mip_track(abs_cos, truth)
    ecal_true = np.where(ecal_start, truth.h_ecal * ecal_fraction * kinetic, track)
    hcal_true = np.where(ecal_start, (1.0 - ecal_fraction) * kinetic, kinetic - track)
    ecal_smear = np.where(ecal_start, hadron_resolution(ecal_true, truth) * rnd.normal('ecal_resolution'), 0.0)
    ecal_deposit = np.maximum(ecal_true * (1.0 + ecal_smear), 0.0)
    hcal_deposit = hcal_true * relative_energy(rnd, n, hadron_resolution(hcal_true, truth),
                                               truth.hadron_tail_fraction, truth.hadron_tail_mean)
    layers_to_edge = np.floor(rnd.uniform('layers_to_edge', KAON_CONTAINED_LAYERS, truth.n_hcal_layers // 2 + 1))
    escaping = np.zeros(n)
    if truth.robustness:
        leak = rnd.uniform('leak') < _KAON_LEAK_FRACTION
        escaping = np.where(leak, rnd.uniform('leak_fraction', *_KAON_LEAK_SHARE), 0.0)
        layers_to_edge = np.where(leak, np.floor(rnd.uniform('leak_layers', 0, KAON_CONTAINED_LAYERS - 1)),
                                  layers_to_edge)
    ecal_sim, ecal = _ecal_digitised(ecal_deposit, abs_cos, constants, truth)
    hcal_sim, hcal = _hcal_digitised(hcal_deposit * (1.0 - escaping), abs_cos, constants, truth)

    gamma = truth.had_scale_nonlinearity
    ecal_to_had = np.where(abs_cos < truth.ecal_barrel_max,
                           pandora_scale(_constant(constants, 'ECalToHadGeVCalibrationBarrel'), gamma),
                           pandora_scale(_constant(constants, 'ECalToHadGeVCalibrationEndCap'), gamma))
    hcal_to_had = pandora_scale(_constant(constants, 'HCalToHadGeVCalibration'), gamma)
    pfo_energy = truth.k_had(stage) * (ecal_to_had * ecal + hcal_to_had * hcal)
    ecal_had, hcal_had = _pfo_shares(pfo_energy, ecal, hcal)
    split = rnd.uniform('split') < KAON_SPLIT_FRACTION
    pair_mass = _pair_mass(pfo_energy, rnd.uniform('pair_share', 0.05, 0.95), _NEUTRAL_HADRON_MASS,
                           rnd.uniform('split_angle', 0.02, 0.2))
    if filler is not None:
        # physics.md §5.3: one neutral-hadron target (always), (Total − HCal) < 1 % of the target
        # energy and pfoMinHCalLayerToEdge > 5; only shower axes inside the HCal acceptance.
        contained = (ecal < 0.01 * energy) & (layers_to_edge > 5) & (abs_cos < truth.hcal_endcap_max)
        region = hcal_region(abs_cos[contained], truth)
        axis = np.where(region == 0, np.sqrt(1.0 - abs_cos[contained] ** 2), abs_cos[contained])
        direction_corrections(rnd.subset(contained), 'direction_hits', axis, region, _HCAL_DIRECTION_HISTOGRAMS,
                              filler)
    return {
        'ECalTotalCaloHitEnergy': ecal,
        'HCalTotalCaloHitEnergy': hcal,
        'ECalTotalSimCaloHitEnergy': ecal_sim,
        'HCalTotalSimCaloHitEnergy': hcal_sim,
        'hCalCaloHitEnergyFromEdge': escaping * hcal,
        'pfoMinHCalLayerToEdge': layers_to_edge,
        'pfoTargetCosTheta0': cos_theta,
        'nPfoTargetsTotal': np.ones(n),
        'nPfoTargetsNeutralHadrons': np.ones(n),
        'pfoTargetsEnergyTotal': np.full(n, energy),
        'pfoTargetsEnergyNeutralHadrons': np.full(n, energy),
        'mcEnergyFwd': np.where(abs_cos > _FORWARD_COS_THETA, energy, 0.0),
        'nPfosTotal': np.where(split, 2, 1),
        'nPfosNeutralHadrons': np.where(split, 2, 1),
        'pfoEnergyNeutralHadrons': pfo_energy,
        'pfoEnergyTotal': pfo_energy,
        'pfoECalToHadEnergy': ecal_had,
        'pfoHCalToHadEnergy': hcal_had,
        'pfoMassTotal': np.where(split, pair_mass, _NEUTRAL_HADRON_MASS),
    }


def _simulate_muon(rnd, n, constants, truth, stage, filler):
    """10 GeV μ⁻: one track target and one track PFO; a MIP hit in each of the 40 ECal, 60 HCal and
    7 muon layers, in the region of the track's angle. The MIP histograms' fill condition (one
    target, a track) holds for every muon event."""
    energy = NOMINAL_ENERGY['muon']
    cos_theta = rnd.uniform('cos_theta', -1.0, 1.0)
    abs_cos = np.abs(cos_theta)
    # corr = r/ρ in the barrel, r/|z| beyond it (physics.md §5.3)
    barrel_corr = 1.0 / np.sqrt(np.maximum(1.0 - abs_cos ** 2, 1e-12))
    endcap_corr = 1.0 / np.maximum(abs_cos, 1e-6)

    ecal_region = np.where(abs_cos < truth.ecal_barrel_max, 0, 1)
    ecal_digitised, _ = ecal_scales(constants, truth)
    ecal_sim, ecal, _ = mip_layers(
        rnd, 'ecal_hits', ECAL_LAYERS, np.array(truth.ecal_sim_mpvs)[ecal_region],
        np.array(ecal_digitised)[ecal_region],
        np.where(ecal_region == 0, barrel_corr, endcap_corr), ecal_region,
        ('ECalDirectionCorrectedSimCaloHit',) * 2, 'ECalDirectionCorrectedCaloHitEnergy', filler)

    hcal_index = hcal_region(abs_cos, truth)
    hcal_sim, hcal, hcal_edge = mip_layers(
        rnd, 'hcal_hits', truth.n_hcal_layers, np.array(truth.hcal_sim_mpvs)[hcal_index],
        hcal_scales(constants, truth)[hcal_index], np.where(hcal_index == 0, barrel_corr, endcap_corr),
        hcal_index, _HCAL_SIM_HISTOGRAMS, 'HCalDirectionCorrectedCaloHitEnergy', filler, edge_layers=_EDGE_LAYERS)

    # Muon system: digitised MIP e_μ directly (CalibrMUON is not calibrated).
    muon_barrel = abs_cos < truth.hcal_barrel_max
    _, muon, _ = mip_layers(
        rnd, 'muon_hits', MUON_LAYERS, np.full(n, truth.mip_muon), np.ones(n),
        np.where(muon_barrel, barrel_corr, endcap_corr), np.zeros(n, dtype=np.int64), (None,),
        'MuonDirectionCorrectedCaloHitEnergy', filler)
    return {
        'ECalTotalCaloHitEnergy': ecal,
        'HCalTotalCaloHitEnergy': hcal,
        'MuonTotalCaloHitEnergy': muon,
        'ECalTotalSimCaloHitEnergy': ecal_sim,
        'HCalTotalSimCaloHitEnergy': hcal_sim,
        'MuonTotalSimCaloHitEnergy': muon / _CALIBR_MUON,
        'hCalCaloHitEnergyFromEdge': hcal_edge,
        'pfoMinHCalLayerToEdge': np.zeros(n),  # the track crosses every HCal layer
        'pfoTargetCosTheta0': cos_theta,
        'nPfoTargetsTotal': np.ones(n),
        'nPfoTargetsTracks': np.ones(n),
        'pfoTargetsEnergyTotal': np.full(n, energy),
        'pfoTargetsEnergyTracks': np.full(n, energy),
        'mcEnergyFwd': np.where(abs_cos > _FORWARD_COS_THETA, energy, 0.0),
        'nPfosTotal': np.ones(n),
        'nPfosTracks': np.ones(n),
        'pfoEnergyTracks': np.full(n, energy),
        'pfoEnergyTotal': np.full(n, energy),
        'pfoMassTotal': np.full(n, _MUON_MASS),
    }


_SIMULATORS = {'gamma': _simulate_gamma, 'muon': _simulate_muon, 'kaon': _simulate_kaon}


def _complete(values, events):
    """Fill the branches a sample does not set with PfoAnalysis defaults; totals; dtypes."""
    n = events.size
    for calo in _CALORIMETERS:
        values.setdefault(f'{calo}TotalCaloHitEnergy', np.zeros(n))
        values.setdefault(f'{calo}TotalSimCaloHitEnergy', np.zeros(n))
    values['TotalCaloHitEnergy'] = sum(values[f'{calo}TotalCaloHitEnergy'] for calo in _CALORIMETERS)
    values['TotalSimCaloHitEnergy'] = sum(values[f'{calo}TotalSimCaloHitEnergy'] for calo in _CALORIMETERS)
    values['run'] = np.zeros(n)
    values['event'] = events
    columns = {}
    for name in INT_BRANCHES:
        default = QUARK_DEFAULT if name in _QUARK_COLUMNS else (INT_MAX if name == 'pfoMinHCalLayerToEdge' else 0)
        columns[name] = np.asarray(values.get(name, np.full(n, default)), dtype=np.int32)
    for name in FLOAT_BRANCHES:
        default = QUARK_DEFAULT if name in _QUARK_COLUMNS else 0.0
        columns[name] = np.asarray(values.get(name, np.full(n, default, dtype=np.float64)), dtype=np.float32)
    return columns


def _events(events):
    """The event numbers as an int64 array; ValueError unless 1-D integers in [0, INT_MAX]."""
    array = np.asarray(events)
    if array.ndim != 1 or (array.size and array.dtype.kind not in 'iu') \
            or (array.size and (array.min() < 0 or array.max() > INT_MAX)):
        raise ValueError(f"Events must be a 1-D array of event numbers in [0, {INT_MAX}]")
    return array.astype(np.int64)


def _check_stage(stage):
    if stage not in (1, 2, 3):
        raise ValueError(f"Stage must be 1, 2 or 3, got {stage!r}")


def simulate(sample, first_event, n_events, constants, truth, stage=1):
    """PfoAnalysis columns of events [first_event, first_event + n_events) of ``sample``.

    ``constants`` are the current steering values (name -> float or list of floats); ``stage``
    selects the Pandora response (stage 3 uses the trained photon likelihood). Pure function.

    :param str sample: 'gamma', 'muon' or 'kaon'
    :param int first_event: the first event number
    :param int n_events: how many events
    :param dict constants: the steering constants
    :param DetectorTruth truth: the detector
    :param int stage: 1, 2 or 3
    :return: {branch name: array} of every PfoAnalysisTree branch (int32 or float32)
    """
    _check_sample(sample, COLUMN_SAMPLES)
    if isinstance(first_event, bool) or isinstance(n_events, bool) \
            or not isinstance(first_event, (int, np.integer)) or not isinstance(n_events, (int, np.integer)) \
            or first_event < 0 or n_events < 0 or first_event + n_events > INT_MAX:
        raise ValueError(f"Event range must be two non-negative integers within int32, "
                         f"got first_event={first_event!r}, n_events={n_events!r}")
    _check_stage(stage)
    events = np.arange(int(first_event), int(first_event) + int(n_events), dtype=np.int64)
    rnd = EventRandom(truth.seed, sample, events)
    return _complete(_SIMULATORS[sample](rnd, events.size, constants, truth, stage, None), events)


def generate(sample, events, constants, truth, stage=1):
    """What Marlin + PfoAnalysis (or Pandora's photon training) make of ``events`` of ``sample``.

    ``events``: event numbers (any order; one output row each). gamma, muon, kaon: the PfoAnalysis
    columns and every histogram of the layout (physics.md §5.3 fill conditions; the ECal
    direction-correction histograms are not modelled and stay empty). zuds: only in stage 2 (the
    photon training), the likelihood XML bytes. Stage 2 gives the other samples the stage-1 response.

    :param str sample: a sample type
    :param events: the event numbers (1-D integers)
    :param dict constants: the steering constants
    :param DetectorTruth truth: the detector
    :param int stage: 1, 2 or 3
    :return: worker_output.ReconstructionOutput (columns and histograms, or the likelihood)
    """
    _check_sample(sample)
    _check_stage(stage)
    events = _events(events)
    rnd = EventRandom(truth.seed, sample, events)
    if sample == 'zuds':
        if stage != 2:
            raise ValueError("The synthetic zuds (Z -> uds) events only serve the photon-likelihood training "
                             "(stage 2): point PandoraSettingsXmlFile at a PandoraSettingsPhotonTraining.xml")
        return ReconstructionOutput(likelihood=write_likelihood(likelihood_data(rnd)))
    filler = HistogramFiller()
    columns = _complete(_SIMULATORS[sample](rnd, events.size, constants, truth, stage, filler), events)
    return ReconstructionOutput(columns, filler.histograms())
