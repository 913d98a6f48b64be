"""Where the calibration of the synthetic detector ends, derived from the detector truth alone (physics.md §7).

Why: an end-to-end run is checked against these numbers. The model's responses are non-linear
in the constants and its showers have low-side tails (detector_model), so:

* a phase measures what *its estimator* gives on the model's exact expected distribution
  (expected_response, expected_hadronic; the phase-2 peaks are the bin centres the reference's
  peak finders pick in the noise-free expected histograms), and
* the reference's multiplicative update C' = C·target/measured, which assumes linearity,
  approaches the phase's fixed point geometrically (by 1 − γ per step) and stops as soon as the
  measurement is within the accuracy, i.e. short of the fixed point.

``expected_run`` therefore replays the procedure's steps on the expected distributions from given
start values: the constants after every step, the number of iterations of each phase and the
final constants, which a run with real statistical fluctuations reproduces within the
tolerances of ``tolerances``. ``phase_fixed_points`` gives the limits (the constants a phase's
update leaves unchanged), which the start values are derived from.

Phase 2 follows the reference: CalibrHCALOther takes μ_EC from the last phase-1 step, measured
before that step's update (hcalOtherEndcapMeanCorrection), and phase 4's χ² minimum is the
continuous one (refined below the grid step).
"""
import functools
import math
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.mip_calibration import calibr_hcal_other, thickness_factor
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import HISTOGRAMS, edges
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE
from ILCDIRAC.CalibrationSystem.Procedure.procedure import phases_to_run
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY
from ILCDIRAC.CalibrationSystem.Procedure.settings import DEFAULT_SETTINGS
from ILCDIRAC.CalibrationSystem.Simulation.calorimeter_hits import MIP_WIDTH
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import (
    COLUMN_SAMPLES, ECAL_LAYERS, HCAL_REGIONS, MUON_LAYERS, ecal_scales, hcal_scales)
from ILCDIRAC.CalibrationSystem.Simulation.expected_hadronic import intercept_estimate, kaon_points
from ILCDIRAC.CalibrationSystem.Simulation.expected_response import (
    ecal_energy, em_energy, hcal_energy, peak_estimate)

#: Generated events per sample and step of the recipe (physics.md §7), the default sample size.
DEFAULT_EVENTS = 4000
#: Phase-2 histograms whose peak is the maximum bin (the others use the SimCaloHit peak finder).
MAXIMUM_BIN = ('ECalDirectionCorrectedCaloHitEnergy', 'HCalDirectionCorrectedCaloHitEnergy',
               'MuonDirectionCorrectedCaloHitEnergy')
#: Phase-2 constant -> the histogram whose maximum bin is its inverse.
MIP_CONSTANTS = dict(zip(('ECalToMipCalibration', 'HCalToMipCalibration', 'MuonToMipCalibration'), MAXIMUM_BIN))
SIM_PEAKS = {'endcapSimPeak': 'HCalDirectionCorrectedSimCaloHitEndCap',
             'ringSimPeak': 'HCalDirectionCorrectedSimCaloHitOther'}
_PEAK_FINDER_OFFSET = 10
_LIMIT_STEPS = 200
_LIMIT_PRECISION = 1e-9


# ---------------------------------------------------------------------------------------------
# Phase 2: the MIP histograms of the muons

def _moyal_bins(name, location):
    """Probability per bin of ``name`` of a Moyal(location, 0.1·location) hit energy."""
    z = (edges(name) - location) / (MIP_WIDTH * location)
    cdf = np.array([math.erfc(math.exp(-0.5 * v) / math.sqrt(2.0)) if v > -1400 else 0.0 for v in z])
    return np.diff(cdf)


def expected_mip_histograms(truth, constants):
    """Noise-free contents of the seven MIP histograms per muon event, with the current ``constants``.

    A region's share is its share of directions uniform in |cos θ|; every event has 40 ECal,
    n_hcal_layers HCal and 7 muon hits, each Moyal around the region's (digitised) MPV.

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :return: {histogram name: expected counts per muon}
    """
    ecal_share = (truth.ecal_barrel_max, 1.0 - truth.ecal_barrel_max)
    hcal_share = (truth.hcal_barrel_max, 1.0 - truth.hcal_ring_max, truth.hcal_ring_max - truth.hcal_barrel_max)
    ecal_digitised, _ = ecal_scales(constants, truth)
    hcal_digitised = hcal_scales(constants, truth)

    def mixture(name, layers, shares, locations):
        return layers * sum(share * _moyal_bins(name, location) for share, location in zip(shares, locations))

    result = {
        'ECalDirectionCorrectedCaloHitEnergy': mixture(
            'ECalDirectionCorrectedCaloHitEnergy', ECAL_LAYERS, ecal_share,
            [scale * mpv for scale, mpv in zip(ecal_digitised, truth.ecal_sim_mpvs)]),
        'ECalDirectionCorrectedSimCaloHit': mixture(
            'ECalDirectionCorrectedSimCaloHit', ECAL_LAYERS, ecal_share, truth.ecal_sim_mpvs),
        'HCalDirectionCorrectedCaloHitEnergy': mixture(
            'HCalDirectionCorrectedCaloHitEnergy', truth.n_hcal_layers, hcal_share,
            [scale * mpv for scale, mpv in zip(hcal_digitised, truth.hcal_sim_mpvs)]),
        'MuonDirectionCorrectedCaloHitEnergy': mixture(
            'MuonDirectionCorrectedCaloHitEnergy', MUON_LAYERS, (1.0,), (truth.mip_muon,)),
    }
    for region, share, mpv in zip(HCAL_REGIONS, hcal_share, truth.hcal_sim_mpvs):
        name = f'HCalDirectionCorrectedSimCaloHit{region}'
        result[name] = mixture(name, truth.n_hcal_layers, (share,), (mpv,))
    return result


def sim_peak_candidates(counts):
    """Bins the SimCaloHit peak finder of §2.3.2 accepts: i = 11..N−11 with n_i above n_(i±10).

    :param counts: the histogram's contents
    :return: list of bin indices (0-based)
    """
    offset = _PEAK_FINDER_OFFSET
    return [i for i in range(offset + 1, len(counts) - offset)
            if counts[i] > counts[i - offset] and counts[i] > counts[i + offset]]


def peak_bin(name, counts):
    """The bin the phase-2 peak finder of histogram ``name`` picks: the (first) maximum bin, or the
    fullest candidate of the SimCaloHit peak finder.

    :param str name: the histogram
    :param counts: its contents
    :return: int bin index
    """
    if name in MAXIMUM_BIN:
        return int(np.argmax(counts))
    candidates = sim_peak_candidates(counts)
    return max(candidates, key=lambda i: (counts[i], -i))


def bin_centre(name, index):
    """Centre of bin ``index`` of histogram ``name``.

    :param str name: the histogram (pfoanalysis_layout.HISTOGRAMS)
    :param int index: the bin
    :return: float
    """
    nbins, low, high = HISTOGRAMS[name]
    return low + (index + 0.5) * (high - low) / nbins


def expected_mip_peaks(truth, constants):
    """Noise-free phase-2 peaks {histogram name: bin centre}: the maximum bin of the three
    CaloHitEnergy histograms, the §2.3.2 peak finder on the four SimCaloHit ones.

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :return: {histogram name: peak (GeV)}
    """
    return {name: bin_centre(name, peak_bin(name, counts))
            for name, counts in expected_mip_histograms(truth, constants).items()}


def mip_fixed_point(truth, constants):
    """GeV-to-MIP constants of §7 for the current ``constants``: 1/(C_cur·m) of the ECal and HCal
    barrel (the dominant region) and 1/e_μ, before the bin-centre quantisation of the peak.

    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants
    :return: {constant: value}
    """
    scales, _ = ecal_scales(constants, truth)
    return {
        'ECalToMipCalibration': 1.0 / (scales[0] * truth.ecal_sim_mpvs[0]),
        'HCalToMipCalibration': 1.0 / float(hcal_scales(constants, truth)[0] * truth.hcal_sim_mpvs[0]),
        'MuonToMipCalibration': 1.0 / truth.mip_muon,
    }


# ---------------------------------------------------------------------------------------------
# One step of each phase on the expected distributions

@dataclass(frozen=True)
class Measurement:
    """What a phase measures in one step: ``values`` {name: value}; for the peak estimators also
    ``peaks`` {name: (expected_response.Mixture, accuracy, truth energy)}, what they were taken
    from; for phase 4 ``intercepts`` (expected_hadronic.InterceptEstimate)."""

    values: dict
    peaks: dict
    intercepts: object = None


def _peak_measurement(mixtures, accuracy, truth_energy, events):
    values = {name: peak_estimate(mixture, accuracy, truth_energy, events).mean for name, mixture in mixtures.items()}
    return Measurement(values, {name: (mixture, accuracy, truth_energy) for name, mixture in mixtures.items()})


def measure(phase, truth, constants, settings, stage, events, endcap_mean=None):
    """Phase ``phase``'s measurement with ``constants`` on ``events`` generated events per sample.

    :param int phase: 0, 1, 2, 3 or 4
    :param DetectorTruth truth: the detector
    :param dict constants: the steering constants of the step
    :param dict settings: the calibration settings
    :param int stage: 1 or 3
    :param int events: generated events per sample
    :param float endcap_mean: phase 2: μ_EC of the last phase-1 step; None when none ran before
        (startPhase 2): then measured with the step's constants, as phase 2 does
    :return: Measurement
    """
    digitisation, pandora = float(settings['digitisationAccuracy']), float(settings['pandoraPFAAccuracy'])
    if phase == 0:
        mixtures = {'ecalBarrel': ecal_energy(truth, constants, settings['ecalBarrelCosThetaRange']),
                    'ecalEndcap': ecal_energy(truth, constants, settings['ecalEndcapCosThetaRange'])}
        return _peak_measurement(mixtures, digitisation, NOMINAL_ENERGY['gamma'], events)
    if phase == 1:
        mixtures = {'hcalBarrel': hcal_energy(truth, constants, settings['hcalBarrelCosThetaRange']),
                    'hcalEndcap': hcal_energy(truth, constants, settings['hcalEndcapCosThetaRange'])}
        return _peak_measurement(mixtures, digitisation, NOMINAL_ENERGY['kaon'], events)
    if phase == 2:
        peaks = expected_mip_peaks(truth, constants)
        values = {constant: peaks[name] for constant, name in MIP_CONSTANTS.items()}
        values.update({key: peaks[name] for key, name in SIM_PEAKS.items()})
        if endcap_mean is None:
            endcap_mean = measure(1, truth, constants, settings, stage, events).values['hcalEndcap']
        values.update(directionEndcap=truth.direction_correction_mean('EndCap'),
                      directionRing=truth.direction_correction_mean('Other'), endcapMean=endcap_mean)
        return Measurement(values, {})
    if phase == 3:
        return _peak_measurement({'em': em_energy(truth, constants, stage)}, pandora, NOMINAL_ENERGY['gamma'], events)
    if phase == 4:
        intercepts = intercept_estimate(kaon_points(truth, constants, stage), events)
        return Measurement({'ecalIntercept': intercepts.ecal, 'hcalIntercept': intercepts.hcal}, {}, intercepts)
    raise ValueError(f"Phase {phase} changes no constant of the synthetic detector")


def _first(value):
    return value[0] if isinstance(value, list) else value


def update(phase, constants, values, settings):
    """The reference's update of the phase's constants from its measured ``values``.

    :param int phase: 0-4
    :param dict constants: the constants of the step
    :param dict values: Measurement.values
    :param dict settings: the calibration settings
    :return: (new constants, converged)
    """
    new = {name: list(value) if isinstance(value, list) else value for name, value in constants.items()}
    digitisation, pandora = float(settings['digitisationAccuracy']), float(settings['pandoraPFAAccuracy'])
    if phase == 0:
        target = NOMINAL_ENERGY['gamma']
        barrel = _first(constants['CalibrECAL'])
        new_barrel = target * barrel / values['ecalBarrel']
        new_endcap = target * barrel * constants['ECALEndcapCorrectionFactor'] / values['ecalEndcap']
        new['CalibrECAL'] = [new_barrel, float(settings['ecalResponseCorrectionForThickLayers']) * new_barrel]
        new['ECALEndcapCorrectionFactor'] = new_endcap / new_barrel
        return new, _within(values, ('ecalBarrel', 'ecalEndcap'), target, digitisation)
    if phase == 1:
        for name, key in (('CalibrHCALBarrel', 'hcalBarrel'), ('CalibrHCALEndcap', 'hcalEndcap')):
            new[name] = KAON_KINETIC_ENERGY * _first(constants[name]) / values[key]
        return new, _within(values, ('hcalBarrel', 'hcalEndcap'), KAON_KINETIC_ENERGY, digitisation)
    if phase == 2:
        new.update({constant: 1.0 / values[constant] for constant in MIP_CONSTANTS})
        mean = values['endcapMean'] if settings['hcalOtherEndcapMeanCorrection'] else None
        new['CalibrHCALOther'] = calibr_hcal_other(
            values['directionEndcap'], values['directionRing'], values['endcapSimPeak'], values['ringSimPeak'],
            thickness_factor(settings), _first(constants['CalibrHCALEndcap']), mean)
        return new, True
    if phase == 3:
        new['ECalToEMGeVCalibration'] = new['HCalToEMGeVCalibration'] = \
            NOMINAL_ENERGY['gamma'] * constants['ECalToEMGeVCalibration'] / values['em']
        return new, _within(values, ('em',), NOMINAL_ENERGY['gamma'], pandora)
    new['HCalToHadGeVCalibration'] = \
        KAON_KINETIC_ENERGY * constants['HCalToHadGeVCalibration'] / values['hcalIntercept']
    new['ECalToHadGeVCalibrationBarrel'] = new['ECalToHadGeVCalibrationEndCap'] = \
        KAON_KINETIC_ENERGY * constants['ECalToHadGeVCalibrationBarrel'] / values['ecalIntercept']
    return new, _within(values, ('ecalIntercept', 'hcalIntercept'), KAON_KINETIC_ENERGY, pandora)


def _within(values, keys, target, accuracy):
    return max(abs(values[key] - target) for key in keys) / target < accuracy


# ---------------------------------------------------------------------------------------------
# The whole procedure

@dataclass(frozen=True)
class ExpectedStep:
    """One step of the expected run: where, the constants it ran with, what it measured, the new
    constants and the convergence verdict."""

    stage: int
    phase: int
    iteration: int
    constants: dict
    measurement: Measurement
    new_constants: dict
    converged: bool


@dataclass(frozen=True)
class ExpectedRun:
    """The procedure on the expected distributions: every step, in order."""

    steps: tuple

    @property
    def final_constants(self):
        """The constants after the last step."""
        return self.steps[-1].new_constants

    @property
    def iterations(self):
        """{(stage, phase): steps the phase took} in execution order."""
        counts = {}
        for step in self.steps:
            counts[(step.stage, step.phase)] = step.iteration
        return counts

    def last_step(self, stage, phase):
        """The last step of ``phase`` in ``stage``.

        :param int stage: the stage
        :param int phase: the phase
        :return: ExpectedStep
        """
        return [step for step in self.steps if (step.stage, step.phase) == (stage, phase)][-1]


def expected_run(truth, settings, start, events=DEFAULT_EVENTS, measurement=measure):
    """Replay the procedure from the constants ``start`` on the expected distributions.

    :param DetectorTruth truth: the detector
    :param dict settings: validated calibration settings (accuracies, ranges, start and stop)
    :param dict start: the start constants (all 13)
    :param int events: generated events per sample and step
    :param measurement: what a step measures, a function with the arguments of ``measure`` (which
        it is by default; bench/tolerances.py gives approximate algorithms instead)
    :return: ExpectedRun; ValueError if a phase would not converge within nMaxIterationsPerPhase
    """
    constants = {name: list(value) if isinstance(value, list) else value for name, value in start.items()}
    steps, endcap_mean = [], None
    for stage, phase in phases_to_run(settings):
        if phase not in range(5):
            continue  # the photon training changes no constant
        for iteration in range(1, int(settings['nMaxIterationsPerPhase']) + 1):
            measured = measurement(phase, truth, constants, settings, stage, events, endcap_mean)
            new, converged = update(phase, constants, measured.values, settings)
            steps.append(ExpectedStep(stage, phase, iteration, constants, measured, new, converged))
            if phase == 1:
                endcap_mean = measured.values['hcalEndcap']
            constants = new
            if converged or not PHASE_TABLE[phase].iterative:
                break
        else:
            raise ValueError(f"Phase {phase} of stage {stage} does not converge within "
                             f"{settings['nMaxIterationsPerPhase']} iterations on the expected distributions")
    return ExpectedRun(tuple(steps))


# ---------------------------------------------------------------------------------------------
# Fixed points: the constants a phase's update leaves unchanged

def _limit(phase, truth, constants, settings, stage, events):
    """Iterate the phase's update without its convergence test until the constants stop moving."""
    if phase == 4:
        return _hadronic_limit(truth, constants, settings, stage, events)
    names = [name for name, spec in CONSTANTS.items() if spec.phase == phase]
    for _ in range(_LIMIT_STEPS):
        measurement = measure(phase, truth, constants, settings, stage, events, KAON_KINETIC_ENERGY)
        new, _ = update(phase, constants, measurement.values, settings)
        change = max(abs(_first(new[name]) / _first(constants[name]) - 1.0) for name in names)
        constants = new
        if change < _LIMIT_PRECISION:
            break
    return constants


def _hadronic_limit(truth, constants, settings, stage, events):
    """Phase 4's fixed point, where both intercepts are T_K: the χ² minimum is smooth in the
    scales and costly, so Newton's method (with the Jacobian taken once) replaces the plain
    iteration, which only gains a factor of about 1 − γ_had per step."""
    scales = (('ECalToHadGeVCalibrationBarrel', 'ECalToHadGeVCalibrationEndCap'), ('HCalToHadGeVCalibration',))

    def residual(logs):
        trial = dict(constants, **{name: float(np.exp(value)) for names, value in zip(scales, logs) for name in names})
        values = measure(4, truth, trial, settings, stage, events).values
        return np.log([values['ecalIntercept'], values['hcalIntercept']]) - np.log(KAON_KINETIC_ENERGY), trial

    logs = np.log([constants[names[0]] for names in scales])
    value, trial = residual(logs)
    step = 1e-3
    jacobian = np.column_stack([(residual(logs + step * unit)[0] - value) / step for unit in np.eye(2)])
    for _ in range(_LIMIT_STEPS):
        if np.max(np.abs(value)) < _LIMIT_PRECISION:
            break
        logs = logs - np.linalg.solve(jacobian, value)
        value, trial = residual(logs)
    return trial


def _truth_start(truth):
    """Constants at the truth, the start of the search for the fixed points."""
    digitisation = {
        'CalibrECAL': [truth.calibr_ecal, truth.ecal_thick_layer_ratio * truth.calibr_ecal],
        'ECALEndcapCorrectionFactor': truth.ecal_endcap_correction_factor,
        'CalibrHCALBarrel': truth.calibr_hcal_barrel, 'CalibrHCALEndcap': truth.calibr_hcal_endcap,
        'CalibrHCALOther': truth.calibr_hcal_ring,
    }
    return {
        **digitisation, **mip_fixed_point(truth, digitisation),
        'ECalToEMGeVCalibration': 1.0, 'HCalToEMGeVCalibration': 1.0,
        'ECalToHadGeVCalibrationBarrel': 1.0 / truth.h_ecal, 'ECalToHadGeVCalibrationEndCap': 1.0 / truth.h_ecal,
        'HCalToHadGeVCalibration': 1.0,
    }


@functools.lru_cache(maxsize=16)
def _phase_fixed_points(truth, settings_items, events):
    settings = dict(settings_items)
    constants, result = _truth_start(truth), {}
    for stage in (1, 3):
        phases = {}
        for phase in range(5):
            # Phase 2 too: the HCal MIP histogram holds the ring hits, so its peak moves with CalibrHCALOther.
            constants = _limit(phase, truth, constants, settings, stage, events)
            phases[phase] = {name: constants[name] for name, spec in CONSTANTS.items() if spec.phase == phase}
        result[stage] = phases
    return result


def _settings_key(truth, settings):
    merged = dict(DEFAULT_SETTINGS, ecalResponseCorrectionForThickLayers=truth.ecal_thick_layer_ratio,
                  **(settings or {}))
    return tuple(sorted((name, tuple(value) if isinstance(value, list) else value) for name, value in merged.items()))


def phase_fixed_points(truth, settings=None, events=DEFAULT_EVENTS):
    """{stage: {phase: {constant: fixed point}}} for stages 1 and 3 (phases 0-4; the stage-2
    training changes no constant), each phase at the fixed points of the phases before it.

    A fixed point is where the phase's update leaves its constants unchanged: its estimator on
    the expected distribution of ``events`` generated events hits the target (phase 2: μ_EC =
    T_K, as at phase 1's fixed point).

    :param DetectorTruth truth: the detector
    :param dict settings: calibration settings laid over DEFAULT_SETTINGS (CLIC) with the truth's
        ecalResponseCorrectionForThickLayers
    :param int events: generated events per sample (the histograms' binning follows the largest value)
    :return: dict
    """
    stages = _phase_fixed_points(truth, _settings_key(truth, settings), events)
    return {stage: {phase: {name: list(value) if isinstance(value, list) else value for name, value in values.items()}
                    for phase, values in phases.items()} for stage, phases in stages.items()}


def fixed_point(truth, sample='gamma', stage=1, settings=None, events=DEFAULT_EVENTS):
    """The fixed points of the constants of the phases using ``sample``: gamma phases 0 and 3,
    kaon phases 1 and 4, muon phase 2 (phase_fixed_points).

    :param DetectorTruth truth: the detector
    :param str sample: 'gamma', 'muon' or 'kaon'
    :param int stage: 1 or 3
    :param dict settings: calibration settings (default: DEFAULT_SETTINGS, CLIC)
    :param int events: generated events per sample
    :return: {constant: fixed point}
    """
    if sample not in COLUMN_SAMPLES:
        raise ValueError(f"No fixed point for the {sample!r} sample; samples: {list(COLUMN_SAMPLES)}")
    phases = {'gamma': (0, 3), 'kaon': (1, 4), 'muon': (2,)}[sample]
    points = phase_fixed_points(truth, settings, events)[stage]
    return {name: value for phase in phases for name, value in points[phase].items()}
