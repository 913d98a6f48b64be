"""How far a calibration of the synthetic detector may end from its expected final constants,
given the sample size and the model's resolutions (physics.md §7).

Why: a tolerance as wide as a phase's accuracy cannot tell faithful physics from approximate
physics; the statistics of the test's samples allow far better. Two parts, per constant:

* statistical: the estimators' spreads on the selected events: the peak estimators' (the
  phase's own fit_peak on toy samples of the exact distribution, which includes the coarse
  binning and the discrete choice of the 90 % window; expected_response.peak_spread), the χ²
  minimum's (sandwich covariance, expected_hadronic) and the direction-correction means'. They
  are carried through every step of the run: every step reconstructs the *same* events, so a
  measurement's fluctuation is one variable at every step of its phase, in both stages. The
  propagation is linear, with each measurement's slopes in the constants taken by finite
  differences on the expected distributions, and with the correlation of phases that select the
  same photons;
* quantisation: the phase-2 peaks are bin centres; a neighbour of the expected bin can win if
  its expected content is within three Poisson standard deviations of the expected peak bin's
  (with the digitisation constants anywhere within their own statistical tolerance).

The total is ``sigmas`` standard deviations plus the quantisation.
"""
import zlib
from dataclasses import dataclass

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import KAON_ECAL_START, PHOTON_SPLIT_FRACTION
from ILCDIRAC.CalibrationSystem.Simulation.expected_response import ROBUSTNESS_KAON_KEPT, TOYS, peak_spread
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import (
    MIP_CONSTANTS, SIM_PEAKS, bin_centre, expected_mip_histograms, expected_run, measure, peak_bin,
    sim_peak_candidates)
from ILCDIRAC.CalibrationSystem.Simulation.calorimeter_hits import DIRECTION_HITS, DIRECTION_SMEAR

#: Measurements and the constants that move them (the ECal-to-hadron scales move together).
_INPUTS = {
    0: (('CalibrECAL',), ('ECALEndcapCorrectionFactor',)),
    1: (('CalibrHCALBarrel',), ('CalibrHCALEndcap',), ('CalibrHCALOther',)),
    3: (('CalibrECAL',), ('ECALEndcapCorrectionFactor',), ('ECalToEMGeVCalibration',)),
    4: (('CalibrECAL',), ('ECALEndcapCorrectionFactor',), ('CalibrHCALBarrel',), ('CalibrHCALEndcap',),
        ('CalibrHCALOther',), ('ECalToHadGeVCalibrationBarrel', 'ECalToHadGeVCalibrationEndCap'),
        ('HCalToHadGeVCalibration',)),
}
_SLOPE_STEP = {0: 0.03, 1: 0.03, 3: 0.03, 4: 0.01}  # in log(constant): wide enough to average the binning
_DIRECTIONS = {'directionEndcap': 'EndCap', 'directionRing': 'Other'}
_QUANTISATION_SIGMAS = 3.0


@dataclass(frozen=True)
class Tolerance:
    """A constant's relative tolerance ``total`` = sigmas·``statistical`` + ``quantisation``."""

    total: float
    statistical: float
    quantisation: float


def _scaled(constants, names, factor):
    """The constants with those of ``names`` multiplied by ``factor`` (every value of a FloatVec)."""
    scaled = dict(constants)
    for name in names:
        value = constants[name]
        scaled[name] = [v * factor for v in value] if isinstance(value, list) else value * factor
    return scaled


def _slopes(truth, step, settings, events):
    """{measurement: {input group: d log(measurement) / d log(constant)}} at ``step``."""
    h = _SLOPE_STEP[step.phase]
    slopes = {name: {} for name in step.measurement.values}
    for group in _INPUTS[step.phase]:
        up, down = (measure(step.phase, truth, _scaled(step.constants, group, np.exp(sign * h)), settings, step.stage,
                            events).values for sign in (1.0, -1.0))
        for name in slopes:
            slopes[name][group] = (np.log(up[name]) - np.log(down[name])) / (2.0 * h)
    return slopes


def _noise(run, truth, events, toys):
    """Names, relative covariance matrix of the noise variables (one per measurement)."""
    sigma, counts, last = {}, {}, {}
    for step in run.steps:
        for name, peak in step.measurement.peaks.items():
            last[name] = peak
        if step.measurement.intercepts is not None:
            fit = step.measurement.intercepts
            relative = fit.covariance / np.outer((fit.ecal, fit.hcal), (fit.ecal, fit.hcal))
            for i, name in enumerate(('ecalIntercept', 'hcalIntercept')):
                sigma[name] = float(np.sqrt(relative[i, i]))
            sigma['interceptCorrelation'] = relative[0, 1] / np.sqrt(relative[0, 0] * relative[1, 1])
    for name, (mixture, accuracy, truth_energy) in last.items():
        sigma[name] = peak_spread(mixture, accuracy, truth_energy, events, toys, seed=zlib.crc32(name.encode()))
        counts[name] = events * mixture.weight
    for name, region in _DIRECTIONS.items():
        sigma[name] = _direction_error(truth, region, events)
    names = [name for name in sigma if name != 'interceptCorrelation']
    covariance = np.diag([sigma[name] ** 2 for name in names])
    index = {name: i for i, name in enumerate(names)}
    if 'ecalIntercept' in index:
        i, j = index['ecalIntercept'], index['hcalIntercept']
        covariance[i, j] = covariance[j, i] = \
            sigma['interceptCorrelation'] * sigma['ecalIntercept'] * sigma['hcalIntercept']
    # Phase 3 selects, unsplit, the same photons as each phase-0 region.
    for region in ('ecalBarrel', 'ecalEndcap'):
        if region in index and 'em' in index:
            shared = (1.0 - PHOTON_SPLIT_FRACTION) * counts[region] / np.sqrt(counts[region] * counts['em'])
            i, j = index[region], index['em']
            covariance[i, j] = covariance[j, i] = shared * sigma[region] * sigma['em']
    return names, covariance


def _direction_error(truth, region, events):
    """Relative error of a direction-correction mean D: the hits of one kaon share its axis, so
    Var(D) = Var(axis)/n_kaons + smear²/(n_kaons·hits)."""
    low, high = {'EndCap': (truth.hcal_ring_max, truth.hcal_endcap_max),
                 'Other': (truth.hcal_barrel_max, truth.hcal_ring_max)}[region]
    kaons = events * (1.0 - KAON_ECAL_START) * (high - low) * (ROBUSTNESS_KAON_KEPT if truth.robustness else 1.0)
    variance = (high - low) ** 2 / 12.0 / kaons + DIRECTION_SMEAR ** 2 / (kaons * DIRECTION_HITS)
    return float(np.sqrt(variance) / truth.direction_correction_mean(region))


def _propagate(run, truth, settings, events, names):
    """d log(constant)/d ε for every noise variable ε (rows: names), through every step of the
    run; also those of the constants each phase-2 step ran with."""
    index = {name: i for i, name in enumerate(names)}
    tangents = {name: np.zeros(len(names)) for name in CONSTANTS}
    slopes, endcap_mean, at_phase2 = {}, None, []
    for step in run.steps:
        if step.phase == 2:
            at_phase2.append((step, {name: t.copy() for name, t in tangents.items()}))
            directions = index['directionEndcap'], index['directionRing']
            other = tangents['CalibrHCALEndcap'].copy()
            other[directions[0]] += 1.0
            other[directions[1]] -= 1.0
            if settings['hcalOtherEndcapMeanCorrection']:
                other -= endcap_mean
            tangents['CalibrHCALOther'] = other
            continue
        key = (step.stage, step.phase)
        if key not in slopes:
            slopes[key] = _slopes(truth, run.last_step(*key), settings, events)
        measured = {}
        for name, by_group in slopes[key].items():
            measured[name] = sum(slope * tangents[group[0]] for group, slope in by_group.items())
            measured[name][index[name]] += 1.0
        if step.phase == 1:
            endcap_mean = measured['hcalEndcap']
        for name, changes in _UPDATES[step.phase].items():
            tangents[name] = tangents[name] + sum(sign * measured[m] for m, sign in changes)
    return tangents, at_phase2


#: d log(new constant) = d log(constant) + Σ sign·d log(measurement), per phase (physics.md §2).
_UPDATES = {
    0: {'CalibrECAL': (('ecalBarrel', -1.0),),
        'ECALEndcapCorrectionFactor': (('ecalBarrel', 1.0), ('ecalEndcap', -1.0))},
    1: {'CalibrHCALBarrel': (('hcalBarrel', -1.0),), 'CalibrHCALEndcap': (('hcalEndcap', -1.0),)},
    3: {'ECalToEMGeVCalibration': (('em', -1.0),), 'HCalToEMGeVCalibration': (('em', -1.0),)},
    4: {'HCalToHadGeVCalibration': (('hcalIntercept', -1.0),),
        'ECalToHadGeVCalibrationBarrel': (('ecalIntercept', -1.0),),
        'ECalToHadGeVCalibrationEndCap': (('ecalIntercept', -1.0),)},
}
#: Histograms of each MIP constant and the digitisation constants that move its peak.
_MIP_INPUTS = {
    'ECalToMipCalibration': ('CalibrECAL', 'ECALEndcapCorrectionFactor'),
    'HCalToMipCalibration': ('CalibrHCALBarrel', 'CalibrHCALEndcap', 'CalibrHCALOther'),
    'MuonToMipCalibration': (),
}


def _candidates(name, counts):
    """Bins whose expected content is within _QUANTISATION_SIGMAS Poisson deviations of the peak bin's."""
    best = peak_bin(name, counts)
    allowed = range(len(counts)) if name in MIP_CONSTANTS.values() else sim_peak_candidates(counts)
    return [i for i in allowed
            if counts[best] - counts[i] <= _QUANTISATION_SIGMAS * np.sqrt(counts[best] + counts[i])]


def _shifted(step, inputs, tangents, covariance, sigmas):
    """The step's constants, then those with each of ``inputs`` moved by ±``sigmas`` of its
    statistical spread: where the digitisation constants may be when phase 2 runs."""
    yield step.constants
    for name in inputs:
        spread = sigmas * np.sqrt(tangents[name] @ covariance @ tangents[name])
        for sign in (-1.0, 1.0):
            yield _scaled(step.constants, (name,), np.exp(sign * spread))


def _quantisation(truth, step, tangents, covariance, events, sigmas):
    """Relative quantisation of the MIP constants and of CalibrHCALOther at a phase-2 step."""
    result = {}
    for constant, name in MIP_CONSTANTS.items():
        peaks = {bin_centre(name, i)
                 for constants in _shifted(step, _MIP_INPUTS[constant], tangents, covariance, sigmas)
                 for i in _candidates(name, events * expected_mip_histograms(truth, constants)[name])}
        result[constant] = max(abs(step.measurement.values[constant] / peak - 1.0) for peak in peaks)
    histograms = expected_mip_histograms(truth, step.constants)
    sim = {key: [bin_centre(name, i) for i in _candidates(name, events * histograms[name])]
           for key, name in SIM_PEAKS.items()}
    ratio = step.measurement.values['endcapSimPeak'] / step.measurement.values['ringSimPeak']
    result['CalibrHCALOther'] = max(abs(endcap / ring / ratio - 1.0) for endcap in sim['endcapSimPeak']
                                    for ring in sim['ringSimPeak'])
    return result


def statistical_tolerances(truth, settings, start, events, sigmas=3.0, run=None, toys=TOYS):
    """{constant: Tolerance}: how far each final constant of a calibration with ``events``
    generated events per sample and step may lie from the expected run's final constant.

    :param DetectorTruth truth: the detector
    :param dict settings: validated calibration settings
    :param dict start: the start constants
    :param int events: generated events per sample and step (all workers together)
    :param float sigmas: standard deviations of the statistical part
    :param run: the fixed_points.expected_run of these arguments, if already made
    :param int toys: toy samples per peak estimator (expected_response.peak_spread)
    :return: {constant: Tolerance}
    """
    run = run or expected_run(truth, settings, start, events)
    names, covariance = _noise(run, truth, events, toys)
    tangents, at_phase2 = _propagate(run, truth, settings, events, names)
    quantisation = _quantisation(truth, *at_phase2[-1], covariance, events, sigmas) if at_phase2 else {}
    result = {}
    for constant, tangent in tangents.items():
        statistical = float(np.sqrt(tangent @ covariance @ tangent))
        quantised = quantisation.get(constant, 0.0)
        result[constant] = Tolerance(sigmas * statistical + quantised, statistical, quantised)
    return result
