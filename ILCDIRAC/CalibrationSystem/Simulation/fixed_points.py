"""Analytic fixed points of the synthetic detector model: what each phase converges to (physics.md §7).

Why: an end-to-end run is checked against these numbers, so they are derived from the detector
truth alone, each phase at the fixed points of the phases before it. Where the reference's
algorithm quantises its result (the phase-2 peaks are bin centres of the maximum bin), the fixed
point is that bin centre in the noise-free expected histogram, which the model gives exactly.
"""
import math

import numpy as np

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import HISTOGRAMS, edges
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY, NOMINAL_ENERGY
from ILCDIRAC.CalibrationSystem.Simulation.calorimeter_hits import MIP_WIDTH
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import (
    COLUMN_SAMPLES, ECAL_LAYERS, HCAL_REGIONS, MUON_LAYERS, ecal_scales, hcal_scales, mip_track)

#: HCal |cos θ| ranges of the phase-1 selection (CLIC preset), the default for the kaon fixed point.
CLIC_HCAL_RANGES = {'barrel': (0.2, 0.6), 'endcap': (0.8, 0.9)}
#: Phase-2 histograms whose peak is the maximum bin (the others use the SimCaloHit peak finder).
_MAXIMUM_BIN = ('ECalDirectionCorrectedCaloHitEnergy', 'HCalDirectionCorrectedCaloHitEnergy',
                'MuonDirectionCorrectedCaloHitEnergy')


def _mean_mip_track(truth, low, high):
    """⟨δ_E⟩ over directions uniform in |cos θ| ∈ (low, high) (midpoint rule, fine enough)."""
    abs_cos = low + (high - low) * (np.arange(10000) + 0.5) / 10000
    return float(np.mean(mip_track(abs_cos, truth)))


def phase1_corrections(truth, hcal_ranges=None):
    """C_H*/C_H,true per phase-1 region: (T_K/(T_K − ⟨δ_E⟩_sel))^(1/γ_H), ⟨δ_E⟩ over the
    selection's |cos θ| range (``hcal_ranges`` {'barrel': (lo, hi), 'endcap': (lo, hi)}, default CLIC)."""
    ranges = CLIC_HCAL_RANGES if hcal_ranges is None else hcal_ranges
    kinetic = KAON_KINETIC_ENERGY
    return {region: (kinetic / (kinetic - _mean_mip_track(truth, *ranges[region]))) ** (1.0 / truth.hcal_nonlinearity)
            for region in ('barrel', 'endcap')}


def calibr_hcal_other(d_endcap, d_ring, p_endcap, p_ring, calibr_hcal_endcap, thickness_factor=1.0,
                      endcap_mean=None):
    """CalibrHCALOther of physics.md §2.3.5: (D_EC/D_R)·(P_EC/P_R)·A·CalibrHCALEndcap, times
    T_K/μ_EC when ``endcap_mean`` μ_EC is given (the reference's extra factor)."""
    value = (d_endcap / d_ring) * (p_endcap / p_ring) * thickness_factor * calibr_hcal_endcap
    return value if endcap_mean is None else value * KAON_KINETIC_ENERGY / endcap_mean


def mip_fixed_point(truth, constants):
    """GeV-to-MIP constants of §7 for the current ``constants``: 1/(C_cur·m) of the ECal and HCal
    barrel (the dominant region) and 1/e_μ, before the bin-centre quantisation of the peak."""
    scales, _ = ecal_scales(constants, truth)
    return {
        'ECalToMipCalibration': 1.0 / (scales[0] * truth.ecal_sim_mpvs[0]),
        'HCalToMipCalibration': 1.0 / float(hcal_scales(constants, truth)[0] * truth.hcal_sim_mpvs[0]),
        'MuonToMipCalibration': 1.0 / truth.mip_muon,
    }


def _moyal_bins(name, location):
    """Probability per bin of ``name`` of a Moyal(location, 0.1·location) hit energy."""
    z = (edges(name) - location) / (MIP_WIDTH * location)
    cdf = np.array([math.erfc(math.exp(-0.5 * v) / math.sqrt(2.0)) if v > -1400 else 0.0 for v in z])
    return np.diff(cdf)


def expected_mip_histograms(truth, constants):
    """Noise-free contents of the seven MIP histograms per muon event, with the current ``constants``.

    A region's share is its share of directions uniform in |cos θ|; every event has 40 ECal,
    n_hcal_layers HCal and 7 muon hits, each Moyal around the region's (digitised) MPV.
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


def _sim_peak_bin(counts):
    """The SimCaloHit peak finder of §2.3.2: i = 11..N−11 with n_i above n_(i±10), the largest."""
    best = None
    for i in range(11, len(counts) - 10):
        if counts[i] > counts[i - 10] and counts[i] > counts[i + 10] and (best is None or counts[i] > counts[best]):
            best = i
    return best


def expected_mip_peaks(truth, constants):
    """Noise-free phase-2 peaks {histogram name: bin centre}: the maximum bin of the three
    CaloHitEnergy histograms, the §2.3.2 peak finder on the four SimCaloHit ones."""
    peaks = {}
    for name, counts in expected_mip_histograms(truth, constants).items():
        index = int(np.argmax(counts)) if name in _MAXIMUM_BIN else _sim_peak_bin(counts)
        nbins, low, high = HISTOGRAMS[name]
        peaks[name] = low + (index + 0.5) * (high - low) / nbins
    return peaks


def analytic_fixed_point(truth, sample='gamma', stage=1, hcal_ranges=None):
    """Constants at which the phases using ``sample`` stop changing them, each phase evaluated at
    the fixed points of the phases before it.

    gamma: phase 0 (CalibrECAL [C_E, r_thick·C_E], ECALEndcapCorrectionFactor k_EC) and phase 3
    (ECalToEM = HCalToEM = 1/k_EM at converged digitisation, ρ_E = 1).
    kaon: phase 1 (C_H·phase1_corrections) and phase 4 (ECalToHad = 1/(k_had·h_E), HCalToHad =
    1/(k_had·ρ_H) with ρ_H the converged HCal response, barrel and endcap/ring by solid angle).
    muon: phase 2 (muon and kaon samples): 1/peak of the expected MIP histograms, and
    CalibrHCALOther from the formula with the expected D_EC, D_R, the expected sim peaks P_EC, P_R
    and μ_EC = T_K (converged). The HCal MIP histogram also holds the ring hits, so its peak is
    evaluated with CalibrHCALOther at its own fixed point (as in stage 3).
    ``stage`` 3 changes only the Pandora responses k_EM, k_had.
    """
    if sample not in COLUMN_SAMPLES:
        raise ValueError(f"No fixed point for the {sample!r} sample; samples: {list(COLUMN_SAMPLES)}")
    correction = phase1_corrections(truth, hcal_ranges)
    calibr_hcal = {'CalibrHCALBarrel': truth.calibr_hcal_barrel * correction['barrel'],
                   'CalibrHCALEndcap': truth.calibr_hcal_endcap * correction['endcap']}
    if sample == 'kaon':
        ecal_to_had = 1.0 / (truth.k_had(stage) * truth.h_ecal)
        response = {region: factor ** truth.hcal_nonlinearity for region, factor in correction.items()}
        rho = truth.hcal_barrel_max * response['barrel'] + (1.0 - truth.hcal_barrel_max) * response['endcap']
        return dict(calibr_hcal, **{
            'ECalToHadGeVCalibrationBarrel': ecal_to_had,
            'ECalToHadGeVCalibrationEndCap': ecal_to_had,
            'HCalToHadGeVCalibration': 1.0 / (truth.k_had(stage) * rho),
        })
    ecal = {'CalibrECAL': [truth.calibr_ecal, truth.ecal_thick_layer_ratio * truth.calibr_ecal],
            'ECALEndcapCorrectionFactor': truth.ecal_endcap_correction_factor}
    if sample == 'muon':
        sim_peaks = expected_mip_peaks(truth, dict(ecal, **calibr_hcal, CalibrHCALOther=truth.calibr_hcal_ring))
        other = calibr_hcal_other(
            truth.direction_correction_mean('EndCap'), truth.direction_correction_mean('Other'),
            sim_peaks['HCalDirectionCorrectedSimCaloHitEndCap'], sim_peaks['HCalDirectionCorrectedSimCaloHitOther'],
            calibr_hcal['CalibrHCALEndcap'], endcap_mean=KAON_KINETIC_ENERGY)
        peaks = expected_mip_peaks(truth, dict(ecal, **calibr_hcal, CalibrHCALOther=other))
        return {
            'CalibrHCALOther': other,
            'ECalToMipCalibration': 1.0 / peaks['ECalDirectionCorrectedCaloHitEnergy'],
            'HCalToMipCalibration': 1.0 / peaks['HCalDirectionCorrectedCaloHitEnergy'],
            'MuonToMipCalibration': 1.0 / peaks['MuonDirectionCorrectedCaloHitEnergy'],
        }
    em_scale = 1.0 / truth.k_em(stage)
    return dict(ecal, ECalToEMGeVCalibration=em_scale, HCalToEMGeVCalibration=em_scale)


def phase_fixed_points(truth, hcal_ranges=None):
    """{stage: {phase: {constant: fixed point}}} for stages 1 and 3 (phases 0-4; the stage-2
    training changes no constant): what a converged calibration ends each phase with."""
    result = {}
    for stage in (1, 3):
        phases = {}
        for sample in COLUMN_SAMPLES:
            for name, value in analytic_fixed_point(truth, sample, stage, hcal_ranges).items():
                phases.setdefault(CONSTANTS[name].phase, {})[name] = value
        result[stage] = dict(sorted(phases.items()))
    return result


def fixed_point_tolerances(settings, final_constants, ring_sim_mpv):
    """How far a calibrated constant may lie from its fixed point: its phase's accuracy, or the
    resolution of the measurement when that is coarser (one histogram bin of a MIP peak, one
    step of the hadronic chi-square grid).

    :param dict settings: the calibration's settings (accuracies)
    :param dict final_constants: the fixed points (the MIP peaks are their inverses)
    :param float ring_sim_mpv: the HCal ring's simulated MIP peak (GeV), which CalibrHCALOther uses
    """
    digitisation, pandora = settings['digitisationAccuracy'], settings['pandoraPFAAccuracy']

    def one_bin(name, peak):
        bins, low, high = HISTOGRAMS[name]
        return (high - low) / bins / peak

    grid_step = pandora * NOMINAL_ENERGY['kaon'] / KAON_KINETIC_ENERGY
    tolerances = {name: digitisation for name in ('CalibrECAL', 'ECALEndcapCorrectionFactor', 'CalibrHCALBarrel',
                                                   'CalibrHCALEndcap')}
    tolerances['CalibrHCALOther'] = max(digitisation, one_bin('HCalDirectionCorrectedSimCaloHitOther', ring_sim_mpv))
    for constant, histogram in (('ECalToMipCalibration', 'ECalDirectionCorrectedCaloHitEnergy'),
                                ('HCalToMipCalibration', 'HCalDirectionCorrectedCaloHitEnergy'),
                                ('MuonToMipCalibration', 'MuonDirectionCorrectedCaloHitEnergy')):
        tolerances[constant] = max(digitisation, one_bin(histogram, 1.0 / final_constants[constant]))
    tolerances.update({name: pandora for name in ('ECalToEMGeVCalibration', 'HCalToEMGeVCalibration')})
    tolerances.update({name: max(pandora, grid_step) for name in (
        'ECalToHadGeVCalibrationBarrel', 'ECalToHadGeVCalibrationEndCap', 'HCalToHadGeVCalibration')})
    return tolerances
