"""Known answers of the synthetic model's muons, PfoAnalysis histograms, photon likelihood and the
phase-2 fixed points (physics.md §2.3, §3, §5, §7), the phase selections applied by hand."""

import math
import time

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import (
    FLOAT_BRANCHES, HISTOGRAMS, INT_BRANCHES, check_binning, edges, empty_histogram)
from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import merge_likelihoods, parse_likelihood
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY as T_K
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import Histogram
from ILCDIRAC.CalibrationSystem.Simulation.calorimeter_hits import HistogramFiller
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth, generate, simulate
from ILCDIRAC.CalibrationSystem.Simulation.event_random import EventRandom
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.mip_calibration import calibr_hcal_other
from ILCDIRAC.CalibrationSystem.Simulation.expected_response import em_energy, peak_estimate
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import (
    expected_mip_peaks, fixed_point, mip_fixed_point, phase_fixed_points)
from ILCDIRAC.CalibrationSystem.Simulation.likelihood_model import CANDIDATES_PER_EVENT, true_shape

TRUTH = DetectorTruth()
STAGE1 = {name: value for values in phase_fixed_points(TRUTH)[1].values() for name, value in values.items()}
GAMMA_E, GAMMA_H = TRUTH.ecal_nonlinearity, TRUTH.hcal_nonlinearity
MOYAL_MEAN = 1 + 0.1 * (0.5772156649 + math.log(2))  # Moyal mean = location + scale·(γ_Euler + ln 2)
MIP_HISTOGRAMS = ('ECalDirectionCorrectedCaloHitEnergy', 'HCalDirectionCorrectedCaloHitEnergy',
                  'MuonDirectionCorrectedCaloHitEnergy', 'HCalDirectionCorrectedSimCaloHitBarrel',
                  'HCalDirectionCorrectedSimCaloHitEndCap', 'HCalDirectionCorrectedSimCaloHitOther',
                  'ECalDirectionCorrectedSimCaloHit')
DIRECTION = {region: f'HCal{region}DirectionCorrectionSimCaloHit' for region in ('Barrel', 'EndCap', 'Other')}


@pytest.fixture(scope='module')
def muons():
    return generate('muon', np.arange(40_000), STAGE1, TRUTH)


@pytest.fixture(scope='module')
def kaons():
    return generate('kaon', np.arange(40_000), STAGE1, TRUTH)


def _width(name):
    nbins, low, high = HISTOGRAMS[name]
    return (high - low) / nbins


def _maximum_bin_centre(histogram):
    """Phase 2.1 by hand: the centre of the (first) maximum bin."""
    index = int(np.argmax(histogram.counts))
    return 0.5 * (histogram.edges[index] + histogram.edges[index + 1])


def _sim_peak(histogram):
    """Phase 2.2 by hand: bins 11..N-11 above both 10-bin neighbours, the largest."""
    c = histogram.counts
    candidates = [i for i in range(11, len(c) - 10) if c[i] > c[i - 10] and c[i] > c[i + 10]]
    best = max(candidates, key=lambda i: (c[i], -i))
    return 0.5 * (histogram.edges[best] + histogram.edges[best + 1])


# ---------------------------------------------------------------------------------------------
# Layout and histogram filling

def test_layout_binning_and_refusals():
    assert len(HISTOGRAMS) == 13
    assert HISTOGRAMS['MuonDirectionCorrectedCaloHitEnergy'] == (500, 0.0, 0.002)
    assert edges('HCalDirectionCorrectedSimCaloHitOther')[[0, 1, -1]] == pytest.approx([0, 2.5e-5, 0.005])
    empty = empty_histogram('ECalBarrelDirectionCorrectionSimCaloHit')
    assert empty.counts.shape == (200,) and empty.sumw == 0 and math.isnan(empty.mean)
    check_binning('ECalBarrelDirectionCorrectionSimCaloHit', empty)
    wrong = Histogram(np.zeros(500), np.linspace(0, 1.0, 501), 0.0, 0.0)  # the processor's default muon range
    with pytest.raises(ProcedureError, match=r'500 bins on \[0, 0.002\]'):
        check_binning('MuonDirectionCorrectedCaloHitEnergy', wrong)
    with pytest.raises(ProcedureError, match='Unknown PfoAnalysis histogram'):
        edges('fPFA')


def test_filler_bins_like_root_and_keeps_exact_sums():
    filler = HistogramFiller()
    values = np.array([-0.5, 0.0, 0.0049999, 0.005, 0.4, 0.9999, 1.0, 3.0])
    filler.fill('HCalOtherDirectionCorrectionSimCaloHit', values)
    histogram = filler.histograms()['HCalOtherDirectionCorrectionSimCaloHit']
    name = 'HCalOtherDirectionCorrectionSimCaloHit'
    expected, _ = np.histogram(values[(values >= 0) & (values < 1)], bins=edges(name))
    np.testing.assert_array_equal(histogram.counts, expected)
    assert histogram.counts[0] == 2 and histogram.counts[1] == 1 and histogram.counts[-1] == 1
    assert histogram.counts.sum() == 5  # under- and overflow are not in the bins ...
    assert histogram.sumw == 8 and histogram.sumwx == pytest.approx(values.sum())  # ... but in the sums
    assert all(h.sumw == 0 for other, h in filler.histograms().items() if other != name)


def test_every_sample_reconstruction_has_all_histograms_with_layout_binning(muons, kaons):
    gamma = generate('gamma', np.arange(2000), STAGE1, TRUTH)
    for output in (muons, kaons, gamma):
        assert set(output.histograms) == set(HISTOGRAMS)
        for name, histogram in output.histograms.items():
            check_binning(name, histogram)
        assert output.likelihood is None
        assert set(output.columns) == set(INT_BRANCHES) | set(FLOAT_BRANCHES)
    # §5.3 fill conditions: MIP histograms need one track target, direction corrections a contained
    # neutral hadron; the ECal direction corrections are not modelled.
    assert all(gamma.histograms[name].sumw == 0 for name in HISTOGRAMS)
    assert all(kaons.histograms[name].sumw == 0 for name in MIP_HISTOGRAMS)
    assert all(muons.histograms[name].sumw == 0 for name in DIRECTION.values())
    assert all(output.histograms[f'ECal{region}DirectionCorrectionSimCaloHit'].sumw == 0
               for output in (muons, kaons) for region in ('Barrel', 'EndCap', 'Other'))


# ---------------------------------------------------------------------------------------------
# Muons

def test_muon_event_columns(muons):
    c = muons.columns
    n = c['event'].size
    for name in ('nPfoTargetsTotal', 'nPfoTargetsTracks', 'nPfosTotal', 'nPfosTracks'):
        assert np.all(c[name] == 1), name
    assert np.all(c['nPfoTargetsPhotons'] == 0) and np.all(c['nPfoTargetsNeutralHadrons'] == 0)
    assert np.all(c['pfoEnergyTracks'] == 10) and np.all(c['pfoECalToEmEnergy'] == 0)
    assert np.all(c['pfoMinHCalLayerToEdge'] == 0)
    assert np.all(c['pfoMassTotal'] == np.float32(0.1056583755))
    abs_cos = np.abs(c['pfoTargetCosTheta0'].astype(np.float64))
    # Digitised / sim = C_true·(C/C_true)**γ with the current constant C of the track's region (physics.md §7).
    ecal_ratio = c['ECalTotalCaloHitEnergy'] / c['ECalTotalSimCaloHitEnergy']
    barrel = abs_cos < 0.6999
    ecal_response = (STAGE1['CalibrECAL'][0] / 37.52) ** GAMMA_E
    np.testing.assert_allclose(ecal_ratio[barrel], 37.52 * ecal_response, rtol=1e-5)
    endcap_response = (STAGE1['CalibrECAL'][0] * STAGE1['ECALEndcapCorrectionFactor'] / (37.52 * 1.032)) ** GAMMA_E
    np.testing.assert_allclose(ecal_ratio[abs_cos > 0.7001], 37.52 * 1.032 * endcap_response, rtol=1e-5)
    hcal_ratio = c['HCalTotalCaloHitEnergy'] / c['HCalTotalSimCaloHitEnergy']
    for region, name, true in ((abs_cos < 0.6499, 'CalibrHCALBarrel', 46.0),
                               ((abs_cos > 0.6501) & (abs_cos < 0.7799), 'CalibrHCALOther', TRUTH.calibr_hcal_ring),
                               (abs_cos > 0.7801, 'CalibrHCALEndcap', 46.9)):
        np.testing.assert_allclose(hcal_ratio[region], true * (STAGE1[name] / true) ** GAMMA_H, rtol=1e-5)
    np.testing.assert_allclose(c['MuonTotalSimCaloHitEnergy'], c['MuonTotalCaloHitEnergy'] / 56.7, rtol=1e-5)
    # ECal sum = 40 hits x Moyal mean x path length 1/sin θ (barrel); e_E per hit at the truth.
    per_hit = c['ECalTotalCaloHitEnergy'][barrel] * np.sqrt(1 - abs_cos[barrel] ** 2) / 40
    assert per_hit.mean() == pytest.approx(0.0057 * ecal_response * MOYAL_MEAN, rel=0.005)
    # The last 5 of 60 HCal layers are "from the edge".
    assert (c['hCalCaloHitEnergyFromEdge'].sum() / c['HCalTotalCaloHitEnergy'].sum()) == pytest.approx(5 / 60, rel=0.02)
    total = sum(c[f'{calo}TotalCaloHitEnergy'].astype(np.float64) for calo in ('ECal', 'HCal', 'Muon'))
    np.testing.assert_allclose(c['TotalCaloHitEnergy'], total, rtol=1e-6)
    assert n == 40_000


def test_muon_histogram_sums_count_every_hit(muons):
    h, n = muons.histograms, 40_000
    abs_cos = np.abs(muons.columns['pfoTargetCosTheta0'].astype(np.float64))
    assert h['ECalDirectionCorrectedCaloHitEnergy'].sumw == 40 * n
    assert h['ECalDirectionCorrectedSimCaloHit'].sumw == 40 * n
    assert h['HCalDirectionCorrectedCaloHitEnergy'].sumw == 60 * n
    assert h['MuonDirectionCorrectedCaloHitEnergy'].sumw == 7 * n
    ring = (abs_cos >= 0.65) & (abs_cos < 0.78)
    assert h['HCalDirectionCorrectedSimCaloHitOther'].sumw == 60 * ring.sum()
    assert h['HCalDirectionCorrectedSimCaloHitBarrel'].sumw == 60 * (abs_cos < 0.65).sum()
    # Moyal means: the histogram mean is location × 1.127 (e_μ for the muon system).
    assert h['MuonDirectionCorrectedCaloHitEnergy'].mean == pytest.approx(5e-5 * MOYAL_MEAN, rel=0.002)
    assert h['HCalDirectionCorrectedSimCaloHitOther'].mean == pytest.approx(
        TRUTH.hcal_sim_mpvs[2] * MOYAL_MEAN, rel=0.003)
    # The bins hold the in-range part; the Moyal tail of the narrow sim histograms overflows a little.
    barrel = h['HCalDirectionCorrectedSimCaloHitBarrel']
    assert 0.99 * barrel.sumw < barrel.counts.sum() < barrel.sumw
    assert h['ECalDirectionCorrectedCaloHitEnergy'].counts.sum() == 40 * n


def test_muon_hits_by_hand():
    """Three events rebuilt hit by hit from their random streams: exact bins and sums."""
    events = np.array([7, 123, 99_999])
    output = generate('muon', events, STAGE1, TRUTH)
    rnd = EventRandom(TRUTH.seed, 'muon', events)
    moyal = rnd.hit_moyal('muon_hits', 7).astype(np.float64)
    values = (np.float32(5e-5) * (np.float32(1) + np.float32(0.1) * rnd.hit_moyal('muon_hits', 7))).astype(np.float64)
    histogram = output.histograms['MuonDirectionCorrectedCaloHitEnergy']
    assert histogram.sumwx == pytest.approx(values.sum(), rel=1e-12)
    np.testing.assert_array_equal(histogram.counts,
                                  np.histogram(values, bins=edges('MuonDirectionCorrectedCaloHitEnergy'))[0])
    assert values.mean() == pytest.approx(5e-5 * (1 + 0.1 * moyal.mean()), rel=1e-6)


def test_muon_event_identity(muons):
    """Any split of the events gives the same rows, and histograms that add up to the whole."""
    parts = [generate('muon', np.arange(low, high), STAGE1, TRUTH) for low, high in ((0, 15_000), (15_000, 40_000))]
    for name, column in muons.columns.items():
        np.testing.assert_array_equal(np.concatenate([p.columns[name] for p in parts]), column, err_msg=name)
    for name, histogram in muons.histograms.items():
        np.testing.assert_array_equal(parts[0].histograms[name].counts + parts[1].histograms[name].counts,
                                      histogram.counts, err_msg=name)
        assert parts[0].histograms[name].sumw + parts[1].histograms[name].sumw == histogram.sumw
        assert parts[0].histograms[name].sumwx + parts[1].histograms[name].sumwx == pytest.approx(histogram.sumwx)
    shuffled = np.array([39_999, 5, 17_000])
    single = generate('muon', shuffled, STAGE1, TRUTH).columns
    for name in ('ECalTotalCaloHitEnergy', 'HCalTotalCaloHitEnergy', 'MuonTotalCaloHitEnergy', 'pfoTargetCosTheta0'):
        np.testing.assert_array_equal(single[name], muons.columns[name][shuffled], err_msg=name)
    other = generate('muon', np.arange(100), STAGE1, DetectorTruth(seed=3)).columns
    assert not np.array_equal(other['HCalTotalCaloHitEnergy'], muons.columns['HCalTotalCaloHitEnergy'][:100])


def test_muon_mip_fixed_points_by_hand(muons):
    """Phase 2.1 applied by hand: 1/(centre of the maximum bin), within one bin of the analytic value."""
    fixed = fixed_point(TRUTH, 'muon')
    spec = mip_fixed_point(TRUTH, STAGE1)
    # The digitised MIP is e_E·(C/C_true)**γ_E: e_E at the truth.
    ecal_response = (STAGE1['CalibrECAL'][0] / 37.52) ** GAMMA_E
    assert spec['ECalToMipCalibration'] == pytest.approx(1 / (0.0057 * ecal_response))
    assert spec['MuonToMipCalibration'] == pytest.approx(1 / 5e-5)
    rho_barrel = (STAGE1['CalibrHCALBarrel'] / 46.0) ** GAMMA_H
    assert spec['HCalToMipCalibration'] == pytest.approx(1 / (0.0219 * rho_barrel))
    # The HCal histogram mixes three regions' MIPs: its top is flat over about five bins.
    for constant, name, bins in (('ECalToMipCalibration', 'ECalDirectionCorrectedCaloHitEnergy', 1),
                                 ('HCalToMipCalibration', 'HCalDirectionCorrectedCaloHitEnergy', 3),
                                 ('MuonToMipCalibration', 'MuonDirectionCorrectedCaloHitEnergy', 1)):
        peak = _maximum_bin_centre(muons.histograms[name])
        assert abs(peak - 1 / fixed[constant]) <= bins * _width(name) + 1e-12, constant
        assert abs(peak - 1 / spec[constant]) <= (bins + 1.5) * _width(name), constant
    assert fixed['ECalToMipCalibration'] == pytest.approx(1 / 0.0057)  # still e_E's bin
    assert fixed['MuonToMipCalibration'] == pytest.approx(1 / 5e-5)


def test_mip_fixed_point_follows_the_current_constants():
    shifted = dict(STAGE1, CalibrECAL=[1.1 * 37.52, 1.1 * 37.52], CalibrHCALBarrel=0.95 * STAGE1['CalibrHCALBarrel'])
    spec = mip_fixed_point(TRUTH, shifted)
    assert spec['ECalToMipCalibration'] == pytest.approx(1 / (1.1 ** GAMMA_E * 0.0057))
    histograms = generate('muon', np.arange(20_000), shifted, TRUTH).histograms
    peak = _maximum_bin_centre(histograms['ECalDirectionCorrectedCaloHitEnergy'])
    assert abs(peak - 1.1 ** GAMMA_E * 0.0057) <= _width('ECalDirectionCorrectedCaloHitEnergy')
    expected = expected_mip_peaks(TRUTH, shifted)['HCalDirectionCorrectedCaloHitEnergy']
    assert abs(_maximum_bin_centre(histograms['HCalDirectionCorrectedCaloHitEnergy']) - expected) \
        <= 2 * _width('HCalDirectionCorrectedCaloHitEnergy')
    # The barrel (65 % of the hits) dominates the peak; the unchanged endcap pulls it a little.
    assert expected == pytest.approx(0.0219 * (0.95 * STAGE1['CalibrHCALBarrel'] / 46.0) ** GAMMA_H, rel=0.03)


def test_sim_peaks_by_hand(muons):
    """Phase 2.2 by hand on the HCal sim histograms: the MPVs m_X = e_H/C_X (ring: m_EC/0.9)."""
    m_barrel, m_endcap, m_ring = TRUTH.hcal_sim_mpvs
    assert (m_barrel, m_endcap, m_ring) == pytest.approx((0.0219 / 46.0, 0.0219 / 46.9, 0.0219 / 46.9 / 0.9))
    expected = expected_mip_peaks(TRUTH, STAGE1)
    for name, mpv in (('HCalDirectionCorrectedSimCaloHitBarrel', m_barrel),
                      ('HCalDirectionCorrectedSimCaloHitEndCap', m_endcap),
                      ('HCalDirectionCorrectedSimCaloHitOther', m_ring)):
        peak = _sim_peak(muons.histograms[name])
        assert abs(expected[name] - mpv) <= 0.5 * _width(name) + 1e-12, name  # the MPV's own bin
        assert abs(peak - expected[name]) <= 3 * _width(name) + 1e-12, name  # a flat top: a few bins of noise


# ---------------------------------------------------------------------------------------------
# Kaon direction corrections and CalibrHCALOther

def _contained_by_hand(columns):
    """§5.3 fill condition of the HCal direction-correction histograms, on the columns."""
    total = columns['TotalCaloHitEnergy'].astype(np.float64)
    hcal = columns['HCalTotalCaloHitEnergy'].astype(np.float64)
    return ((columns['nPfoTargetsTotal'] == 1) & (columns['nPfoTargetsNeutralHadrons'] == 1)
            & (total - hcal < 0.01 * columns['pfoTargetsEnergyTotal']) & (columns['pfoMinHCalLayerToEdge'] > 5))


@pytest.mark.parametrize('robustness', [False, True])
def test_direction_correction_histograms_only_for_contained_kaons(robustness):
    truth = DetectorTruth(robustness=robustness)
    output = generate('kaon', np.arange(10_000), STAGE1, truth)
    c = output.columns
    abs_cos = np.abs(c['pfoTargetCosTheta0'].astype(np.float64))
    contained = _contained_by_hand(c) & (abs_cos < 0.98)
    assert 0.40 < contained.mean() < 0.50  # half start in the ECal; robustness: 10 % leak
    for region, (low, high) in (('Barrel', (0, 0.65)), ('Other', (0.65, 0.78)), ('EndCap', (0.78, 0.98))):
        in_region = contained & (abs_cos >= low) & (abs_cos < high)
        assert output.histograms[DIRECTION[region]].sumw == 100 * in_region.sum(), region


def test_direction_correction_means(kaons):
    """D_X realised = the expected clipped mean, within the event-level statistics (~0.001)."""
    for region in ('Barrel', 'EndCap', 'Other'):
        histogram = kaons.histograms[DIRECTION[region]]
        assert histogram.mean == pytest.approx(TRUTH.direction_correction_mean(region), abs=0.003), region
        counts = histogram.counts
        assert counts.sum() <= histogram.sumw and counts[-20:].sum() > 0
    assert kaons.histograms[DIRECTION['EndCap']].mean == pytest.approx(0.88, abs=0.004)
    assert kaons.histograms[DIRECTION['Other']].mean == pytest.approx(0.72, abs=0.01)


def test_calibr_hcal_other_fixed_point():
    """CalibrHCALOther's fixed point is the §2.3.5 formula with the expected D's, the bin centres
    of the sim MIP peaks, CalibrHCALEndcap's fixed point and μ_EC = T_K (phase 1 converged)."""
    fixed = fixed_point(TRUTH, 'muon')['CalibrHCALOther']
    # The peaks are bin centres: the ring MPV 5.19e-4 lands in the bin centred on 5.125e-4.
    quantisation = (4.675e-4 / (0.0219 / 46.9)) / (5.125e-4 / (0.0219 / 46.9 / 0.9))
    assert fixed == pytest.approx(TRUTH.calibr_hcal_ring * STAGE1['CalibrHCALEndcap'] / 46.9 * quantisation, rel=1e-9)
    assert fixed == pytest.approx(TRUTH.calibr_hcal_ring * STAGE1['CalibrHCALEndcap'] / 46.9, rel=0.02)


def test_calibr_hcal_other_from_realised_histograms(muons, kaons):
    """§2.3 by hand on the simulated samples: D from the kaon histograms' stored sums, P from the
    muon sim peaks, μ_EC the phase-1 estimator's endcap peak; the formula lands on its fixed point."""
    d_endcap = kaons.histograms[DIRECTION['EndCap']].mean
    d_ring = kaons.histograms[DIRECTION['Other']].mean
    p_endcap = _sim_peak(muons.histograms['HCalDirectionCorrectedSimCaloHitEndCap'])
    p_ring = _sim_peak(muons.histograms['HCalDirectionCorrectedSimCaloHitOther'])
    c = kaons.columns
    total, hcal = c['TotalCaloHitEnergy'].astype(np.float64), c['HCalTotalCaloHitEnergy'].astype(np.float64)
    abs_cos = np.abs(c['pfoTargetCosTheta0'])
    endcap = ((c['nPfoTargetsTotal'] == 1) & (c['nPfoTargetsNeutralHadrons'] == 1)
              & (c['hCalCaloHitEnergyFromEdge'] / total < 0.05) & (total - hcal < 2.5)
              & (abs_cos > 0.8) & (abs_cos < 0.9))
    mean = fit_peak(hcal[endcap], 0.05, 50.0).mean
    assert mean == pytest.approx(T_K, rel=0.008)
    realised = calibr_hcal_other(d_endcap, d_ring, p_endcap, p_ring, 1.0, STAGE1['CalibrHCALEndcap'], mean)
    # P_EC's flat top moves by a few 1 % bins at this statistics.
    assert realised == pytest.approx(fixed_point(TRUTH, 'muon')['CalibrHCALOther'], rel=0.035)


# ---------------------------------------------------------------------------------------------
# Fixed points of every phase, stage 3

def test_phase_fixed_points_cover_every_constant_and_stage_3_changes_only_the_scales():
    points = phase_fixed_points(TRUTH)
    assert set(points) == {1, 3}
    for stage in (1, 3):
        assert list(points[stage]) == [0, 1, 2, 3, 4]
        names = [name for values in points[stage].values() for name in values]
        assert sorted(names) == sorted(CONSTANTS)
        assert all(CONSTANTS[name].phase == phase for phase, values in points[stage].items() for name in values)
    for phase in (0, 1, 2):
        for name, value in points[3][phase].items():
            assert np.ravel(value) == pytest.approx(np.ravel(points[1][phase][name]), rel=1e-8), name
    for name, value in {**points[1][3], **points[1][4]}.items():
        changed = {**points[3][3], **points[3][4]}[name]
        assert abs(changed / value - 1) > 0.025, name  # larger than a_p, so stage 3 must re-converge
    # A fixed point is where the phase's estimator hits its target.
    stage3 = {name: value for values in points[3].values() for name, value in values.items()}
    assert peak_estimate(em_energy(TRUTH, stage3, 3), 0.025, 10.0, 4000).mean == pytest.approx(10.0, rel=1e-8)


def test_stage_3_fixed_points_by_hand():
    """Phase 3 in stage 3: the photons' fitted EM peak hits 10 GeV at the stage-3 fixed point."""
    constants = {name: value for values in phase_fixed_points(TRUTH)[3].values() for name, value in values.items()}
    photons = simulate('gamma', 0, 40_000, constants, TRUTH, stage=3)
    single = ((photons['nPfoTargetsTotal'] == 1) & (photons['nPfoTargetsPhotons'] == 1) & (photons['nPfosTotal'] == 1)
              & (photons['nPfosPhotons'] == 1) & (photons['pfoHCalToEmEnergy'] < 0.1))
    assert fit_peak(photons['pfoECalToEmEnergy'][single], 0.025, 10.0).mean == pytest.approx(10.0, abs=0.04)
    at_stage1 = simulate('gamma', 0, 40_000, constants, TRUTH, stage=1)
    assert fit_peak(at_stage1['pfoECalToEmEnergy'][single], 0.025, 10.0).mean \
        == pytest.approx(10.0 * 0.95 / 0.99, abs=0.04)


# ---------------------------------------------------------------------------------------------
# Z -> uds photon likelihood (stage 2)

def test_zuds_likelihood_parses_and_follows_the_true_shapes():
    output = generate('zuds', np.arange(20_000), {}, TRUTH, stage=2)
    assert output.columns == {} and output.histograms == {}
    data = parse_likelihood(output.likelihood)
    assert data.energy_bin_lower_edges.tolist() == [0, 0.2, 0.5, 1, 1.5, 2.5, 5, 10, 20]
    for kind, counts in (('Sig', data.n_signal), ('Bkg', data.n_background)):
        expected = 20_000 * np.array(CANDIDATES_PER_EVENT[kind])
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), kind  # Poisson
    for name, (nbins, _, _, contents) in data.histograms.items():
        assert contents[0] == 0 and contents[-1] == 0 and contents.sum() == pytest.approx(1.0), name
    # A well-filled PDF follows its true shape (multinomial: p ± √(p/N)).
    _, _, _, contents = data.histograms['PhotonSigPeakRms_0']
    shape = true_shape('PeakRms', 'Sig', 0)
    assert np.all(np.abs(contents - shape) < 5 * np.sqrt(shape / data.n_signal[0]) + 1e-12)
    # p·N are whole counts
    np.testing.assert_allclose(contents * data.n_signal[0], np.round(contents * data.n_signal[0]), atol=1e-6)


def test_zuds_likelihood_merges_exactly_across_workers():
    """Event identity: two workers' files merge to the file of all their events."""
    def likelihood(events):
        return parse_likelihood(generate('zuds', events, {}, TRUTH, stage=2).likelihood)
    whole = likelihood(np.arange(3000))
    merged = merge_likelihoods([likelihood(np.arange(1000)), likelihood(np.arange(1000, 3000))])
    np.testing.assert_array_equal(merged.n_signal, whole.n_signal)
    np.testing.assert_array_equal(merged.n_background, whole.n_background)
    for name, (_, _, _, contents) in whole.histograms.items():
        np.testing.assert_allclose(merged.histograms[name][3], contents, rtol=1e-12, atol=1e-15, err_msg=name)
    assert likelihood(np.arange(1000)).n_signal.tolist() != likelihood(np.arange(1000, 2000)).n_signal.tolist()


def test_zuds_only_in_the_photon_training_and_empty_slices():
    for stage in (1, 3):
        with pytest.raises(ValueError, match='zuds'):
            generate('zuds', np.arange(10), {}, TRUTH, stage=stage)
    empty = parse_likelihood(generate('zuds', np.zeros(0, dtype=np.int64), {}, TRUTH, stage=2).likelihood)
    assert empty.n_signal.sum() == 0 and all(h[3].sum() == 0 for h in empty.histograms.values())
    for sample in ('muon', 'kaon', 'gamma'):
        output = generate(sample, np.zeros(0, dtype=np.int64), STAGE1, TRUTH)
        assert output.columns['event'].shape == (0,) and all(h.sumw == 0 for h in output.histograms.values())
    training = generate('gamma', np.arange(100), STAGE1, TRUTH, stage=2).columns
    stage1 = generate('gamma', np.arange(100), STAGE1, TRUTH).columns
    np.testing.assert_array_equal(training['pfoEnergyTotal'], stage1['pfoEnergyTotal'])


@pytest.mark.parametrize('events, message', [
    (np.array([[1, 2]]), 'Events'), (np.array([-1]), 'Events'), (np.array([0.5]), 'Events'),
    (np.array([2**31]), 'Events'),
])
def test_generate_refuses_bad_events(events, message):
    with pytest.raises(ValueError, match=message):
        generate('muon', events, STAGE1, TRUTH)
    with pytest.raises(ValueError, match='Stage'):
        generate('muon', np.arange(3), STAGE1, TRUTH, stage=0)


def test_every_sample_is_fast():
    """10^5 events of any sample in well under a second or two (generous bounds for loaded machines)."""
    events = np.arange(100_000)
    for sample, stage in (('gamma', 1), ('muon', 1), ('kaon', 1), ('zuds', 2)):
        start = time.perf_counter()
        generate(sample, events, STAGE1, TRUTH, stage=stage)
        assert time.perf_counter() - start < 2.5, sample
