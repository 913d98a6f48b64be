"""Known answers of the synthetic detector model (physics.md §7): event identity, response,
tails, fixed points."""

import dataclasses
import json
import math
import time

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_layout import FLOAT_BRANCHES, INT_BRANCHES
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import (
    INT_MAX, DetectorTruth, constants_used, simulate)
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import fixed_point, phase_fixed_points

TRUTH = DetectorTruth()
#: The model without its non-linearity and tails: linear responses, Gaussian energies.
LINEAR = DetectorTruth(ecal_nonlinearity=1.0, hcal_nonlinearity=1.0, em_scale_nonlinearity=1.0,
                       had_scale_nonlinearity=1.0, photon_tail_fraction=0.0, hadron_tail_fraction=0.0)
OFF = {'CalibrECAL': [40.0, 40.0], 'ECALEndcapCorrectionFactor': 1.0,
       'ECalToEMGeVCalibration': 1.1, 'HCalToEMGeVCalibration': 1.1}
SIGMA = math.hypot(0.15 / math.sqrt(10.0), 0.01)
GAMMA_E = TRUTH.ecal_nonlinearity


@pytest.fixture(scope='module')
def big():
    return simulate('gamma', 0, 100_000, OFF, TRUTH)


def _phase0(columns, low, high):
    """The phase-0 selection written out by hand (physics.md §2.1)."""
    c = np.abs(columns['pfoTargetCosTheta0'])
    return ((columns['nPfoTargetsTotal'] == 1) & (columns['nPfoTargetsPhotons'] == 1)
            & (columns['TotalCaloHitEnergy'] - columns['ECalTotalCaloHitEnergy'] < 0.1)
            & (c < 0.95) & (c > low) & (c < high))


def test_any_slice_gives_the_same_events(big):
    part = simulate('gamma', 300, 100, OFF, TRUTH)
    for name in big:
        assert np.array_equal(big[name][300:400], part[name]), name
    assert list(part['event']) == list(range(300, 400))


def test_events_do_not_depend_on_call_history_but_on_seed():
    first = simulate('gamma', 5, 50, OFF, TRUTH)
    simulate('gamma', 0, 2000, OFF, TRUTH)
    again = simulate('gamma', 5, 50, OFF, TRUTH)
    other = simulate('gamma', 5, 50, OFF, DetectorTruth(seed=TRUTH.seed + 1))
    assert np.array_equal(first['pfoTargetCosTheta0'], again['pfoTargetCosTheta0'])
    assert not np.array_equal(first['pfoTargetCosTheta0'], other['pfoTargetCosTheta0'])


def test_new_constants_only_rescale_digitised_energies():
    """The response is (C/C_true)**γ_E: doubling CalibrECAL scales every barrel energy by 2**γ_E."""
    before = simulate('gamma', 0, 5000, OFF, TRUTH)
    constants = dict(OFF, CalibrECAL=[80.0, 80.0], ECALEndcapCorrectionFactor=1.5)
    after = simulate('gamma', 0, 5000, constants, TRUTH)
    barrel = np.abs(before['pfoTargetCosTheta0']) < TRUTH.ecal_barrel_max
    ratio = after['ECalTotalCaloHitEnergy'] / before['ECalTotalCaloHitEnergy']
    np.testing.assert_allclose(ratio[barrel], 2.0 ** GAMMA_E, rtol=1e-6)
    np.testing.assert_allclose(ratio[~barrel], 3.0 ** GAMMA_E, rtol=1e-6)
    photon = before['pfoECalToEmEnergy'] > 0
    np.testing.assert_allclose(after['pfoECalToEmEnergy'][photon] / before['pfoECalToEmEnergy'][photon],
                               ratio[photon], rtol=1e-6)
    assert np.all(after['pfoECalToEmEnergy'][~photon] == 0)
    changing = {'ECalTotalCaloHitEnergy', 'TotalCaloHitEnergy', 'pfoECalToEmEnergy', 'pfoEnergyPhotons',
                'pfoEnergyTotal', 'pfoMassTotal'}
    for name in set(before) - changing:
        assert np.array_equal(before[name], after[name]), name


def test_conversion_fraction_and_targets(big):
    converted = big['nPfoTargetsTotal'] == 2
    # P = 0.08 + 0.08|cos θ| averaged over |cos θ| ~ U(0, 1) = 0.12; binomial sigma ~ 0.001.
    assert abs(converted.mean() - 0.12) < 0.004
    assert np.all(big['nPfoTargetsPhotons'][converted] == 0)
    assert np.all(big['nPfoTargetsTracks'][converted] == 2)
    assert np.all(big['nPfosTracks'][converted] == 2)
    assert np.all(big['nPfoTargetsPhotons'][~converted] == 1)
    c = np.abs(big['pfoTargetCosTheta0'])
    assert abs(converted[c < 0.2].mean() - 0.088) < 0.006
    assert abs(converted[c > 0.8].mean() - 0.152) < 0.008


def test_split_photon_fraction(big):
    photons = big['nPfoTargetsPhotons'] == 1
    split = big['nPfosTotal'][photons] == 2
    assert abs(split.mean() - 0.04) < 0.003
    assert np.all(big['nPfosPhotons'][photons][split] == 2)
    assert np.all(big['pfoMassTotal'][photons][~split] == 0)


def test_digitised_mean_follows_the_response_and_the_tail(big):
    """Mean = 10·(C/C_true)**γ_E·(1 − f·λ): the low-side tail takes f·λ of the energy on average."""
    barrel = big['ECalTotalCaloHitEnergy'][_phase0(big, 0.0, 0.65)]
    endcap = big['ECalTotalCaloHitEnergy'][_phase0(big, 0.8, 0.92)]
    kept = 1 - TRUTH.photon_tail_fraction * TRUTH.photon_tail_mean
    assert abs(barrel.mean() / 10 - (40.0 / 37.52) ** GAMMA_E * kept) < 0.002
    assert abs(endcap.mean() / 10 - (40.0 / (37.52 * 1.032)) ** GAMMA_E * kept) < 0.003
    # The tail is on the low side only: the fitted peak lies above the mean.
    assert fit_peak(barrel, 0.02, 10.0).mean > barrel.mean() * 1.008


def test_linear_model_digitised_mean_is_current_over_true_constant():
    columns = simulate('gamma', 0, 100_000, OFF, LINEAR)
    barrel = columns['ECalTotalCaloHitEnergy'][_phase0(columns, 0.0, 0.65)]
    assert abs(barrel.mean() / 10 - 40.0 / 37.52) < 0.002
    assert abs(barrel.std() / barrel.mean() - SIGMA) < 0.002


def test_fixed_point_reproduces_the_photon_energy_with_the_phases_estimator():
    """The linear model's fixed points are the truth (Gaussian energies); the default model's are
    where the phases' peak estimator (90 % window, Gaussian fit) finds 10 GeV, on a large sample too."""
    linear = fixed_point(LINEAR)
    assert linear['CalibrECAL'][0] == pytest.approx(37.52, rel=1e-5)
    assert linear['ECALEndcapCorrectionFactor'] == pytest.approx(1.032, rel=1e-5)
    assert linear['ECalToEMGeVCalibration'] == pytest.approx(1 / 0.95, rel=1e-5)
    assert fixed_point(LINEAR, stage=3)['HCalToEMGeVCalibration'] == pytest.approx(1 / 0.99, rel=1e-5)
    thick = fixed_point(dataclasses.replace(LINEAR, ecal_thick_layer_ratio=2.0))['CalibrECAL']
    assert thick[1] == pytest.approx(2 * thick[0])
    fixed = fixed_point(TRUTH)
    # The tail pulls the fitted peak low: the constant must rise by (1/0.99)**(1/γ_E) or so.
    assert 1.01 < fixed['CalibrECAL'][0] / 37.52 < 1.03
    columns = simulate('gamma', 0, 200_000, fixed, TRUTH)
    for (low, high), accuracy in (((0.0, 0.65), 0.05), ((0.8, 0.92), 0.05)):
        energies = columns['ECalTotalCaloHitEnergy'][_phase0(columns, low, high)]
        assert fit_peak(energies, accuracy, 10.0).mean == pytest.approx(10.0, abs=0.04)
        assert energies.mean() < 9.93  # the mean is not the peak
    single = (columns['nPfosTotal'] == 1) & (columns['nPfosPhotons'] == 1) & (columns['nPfoTargetsPhotons'] == 1)
    assert fit_peak(columns['pfoECalToEmEnergy'][single], 0.025, 10.0).mean == pytest.approx(10.0, abs=0.03)


def test_em_scale_follows_stage_and_constants():
    """Pandora's EM energy is k_EM·ECalToEM**γ_EM·(ECal energy)."""
    stage1 = simulate('gamma', 0, 1000, OFF, TRUTH)
    stage3 = simulate('gamma', 0, 1000, OFF, TRUTH, stage=3)
    single = stage1['nPfoTargetsPhotons'] == 1
    np.testing.assert_allclose(stage1['pfoECalToEmEnergy'][single],
                               0.95 * 1.1 ** TRUTH.em_scale_nonlinearity * stage1['ECalTotalCaloHitEnergy'][single],
                               rtol=1e-6)
    np.testing.assert_allclose(stage3['pfoECalToEmEnergy'][single] / stage1['pfoECalToEmEnergy'][single],
                               0.99 / 0.95, rtol=1e-6)
    assert np.all(stage1['pfoECalToEmEnergy'][~single] == 0)
    defaults = simulate('gamma', 0, 1000, {'CalibrECAL': [40.0], 'ECALEndcapCorrectionFactor': 1.0}, TRUTH)
    np.testing.assert_allclose(defaults['pfoECalToEmEnergy'][single],
                               0.95 * defaults['ECalTotalCaloHitEnergy'][single], rtol=1e-6)


def test_nonlinear_response():
    truth = dataclasses.replace(LINEAR, ecal_nonlinearity=0.5)
    columns = simulate('gamma', 0, 20_000, dict(OFF, CalibrECAL=[4 * 37.52]), truth)
    barrel = columns['ECalTotalCaloHitEnergy'][_phase0(columns, 0.0, 0.65)]
    assert abs(barrel.mean() / 10 - 2.0) < 0.01


def test_low_side_tail_shape():
    """A fraction f of the photons loses an exponential share of mean λ: far below the Gaussian
    core only the tail remains; above it, nothing."""
    columns = simulate('gamma', 0, 200_000, dict(OFF, CalibrECAL=[37.52]), TRUTH)
    energies = columns['ECalTotalCaloHitEnergy'][_phase0(columns, 0.0, 0.65)]
    far_low = np.mean(energies < 10 * (1 - 4 * SIGMA))
    # σ·z − ℓ < −4σ: nearly ℓ > 4σ + σ·z, i.e. f·exp(−4σ/λ + σ²/2λ²) for the Gaussian z.
    expected = TRUTH.photon_tail_fraction * math.exp(-4 * SIGMA / TRUTH.photon_tail_mean
                                                     + 0.5 * (SIGMA / TRUTH.photon_tail_mean) ** 2)
    assert far_low == pytest.approx(expected, rel=0.1)
    assert np.mean(energies > 10 * (1 + 4 * SIGMA)) < 1e-3


def test_all_pfo_analysis_columns_with_types(big):
    assert set(big) == set(INT_BRANCHES) | set(FLOAT_BRANCHES)
    for name in INT_BRANCHES:
        assert big[name].dtype == np.int32 and big[name].shape == (100_000,), name
    for name in FLOAT_BRANCHES:
        assert big[name].dtype == np.float32 and big[name].shape == (100_000,), name
    assert np.all(big['qPdg'] == -99) and np.all(big['thrust'] == -99)
    assert np.all(big['pfoMinHCalLayerToEdge'] == INT_MAX)
    assert np.array_equal(big['TotalCaloHitEnergy'], big['ECalTotalCaloHitEnergy'])
    assert np.all(big['HCalTotalCaloHitEnergy'] == 0)
    assert np.all(big['pfoTargetsEnergyTotal'] == 10)
    forward = np.abs(big['pfoTargetCosTheta0']) > 0.98
    assert np.all(big['mcEnergyFwd'][forward] == 10) and np.all(big['mcEnergyFwd'][~forward] == 0)


def test_robustness_mode_defects():
    truth = DetectorTruth(robustness=True)
    at_truth = dict(OFF, CalibrECAL=[37.52], ECALEndcapCorrectionFactor=1.032, CalibrHCALBarrel=46.0,
                    CalibrHCALEndcap=46.9, CalibrHCALOther=truth.calibr_hcal_ring)
    columns = simulate('gamma', 0, 50_000, at_truth, truth)
    leaking = columns['TotalCaloHitEnergy'] - columns['ECalTotalCaloHitEnergy'] > 0.1
    assert abs(leaking.mean() - 0.05) < 0.005
    share = columns['HCalTotalCaloHitEnergy'] / columns['TotalCaloHitEnergy']
    assert np.all(share[leaking] > 0.029) and np.all(share[leaking] < 0.16)
    assert np.all(columns['pfoMinHCalLayerToEdge'][leaking] == 0)
    assert np.all(columns['HCalTotalCaloHitEnergy'][~leaking] == 0)
    c = np.abs(columns['pfoTargetCosTheta0'])
    gap = (c > 0.71) & (c < 0.79)
    clean = simulate('gamma', 0, 50_000, at_truth, DetectorTruth())
    assert np.all(columns['ECalTotalSimCaloHitEnergy'][gap] < clean['ECalTotalSimCaloHitEnergy'][gap])
    assert constants_used('gamma', truth)[-3:] == ('CalibrHCALBarrel', 'CalibrHCALEndcap', 'CalibrHCALOther')
    with pytest.raises(ValueError, match='CalibrHCAL'):
        simulate('gamma', 0, 100, OFF, truth)


def test_fast_enough():
    start = time.perf_counter()
    simulate('gamma', 0, 100_000, OFF, TRUTH)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize('call, message', [
    (lambda: simulate('muon', 0, 10, OFF, TRUTH), 'CalibrHCALBarrel'),
    (lambda: simulate('kaon', 0, 10, OFF, TRUTH), 'CalibrHCALBarrel'),
    (lambda: simulate('zuds', 0, 10, OFF, TRUTH), 'zuds'),
    (lambda: simulate('electron', 0, 10, OFF, TRUTH), 'electron'),
    (lambda: simulate('gamma', -1, 10, OFF, TRUTH), 'Event range'),
    (lambda: simulate('gamma', 0, 1.5, OFF, TRUTH), 'Event range'),
    (lambda: simulate('gamma', 0, 10, OFF, TRUTH, stage=4), 'Stage'),
    (lambda: simulate('gamma', 0, 10, {'CalibrECAL': [40.0]}, TRUTH), 'ECALEndcapCorrectionFactor'),
    (lambda: simulate('gamma', 0, 10, dict(OFF, CalibrECAL=[-1.0]), TRUTH), 'CalibrECAL'),
    (lambda: simulate('gamma', 0, 10, dict(OFF, CalibrECAL='x'), TRUTH), 'CalibrECAL'),
])
def test_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_empty_range():
    columns = simulate('gamma', 7, 0, OFF, TRUTH)
    assert all(array.shape == (0,) for array in columns.values())


def test_truth_round_trip_and_validation():
    truth = DetectorTruth(seed=7, robustness=True, calibr_ecal=40)
    data = json.loads(json.dumps(truth.to_dict()))
    assert DetectorTruth.from_dict(data) == truth
    assert isinstance(DetectorTruth.from_dict(data).calibr_ecal, float)
    assert DetectorTruth.from_dict({}) == DetectorTruth()
    with pytest.raises(ValueError, match='Unknown detector truth keys'):
        DetectorTruth.from_dict(dict(data, CalibrECAL=1.0))
    assert DetectorTruth(photon_tail_fraction=0).photon_tail_fraction == 0.0
    for bad in ({'calibr_ecal': -1.0}, {'calibr_ecal': True}, {'calibr_ecal': float('nan')},
                {'seed': 1.5}, {'seed': -3}, {'robustness': 1}, {'n_hcal_layers': 5},
                {'ecal_barrel_max': 0.9}, {'hcal_ring_max': 0.6}, {'calibr_ecal': 0.0},
                {'hadron_tail_fraction': 1.0}, {'photon_tail_fraction': -0.1}, {'photon_tail_mean': 0.0},
                {'ecal_nonlinearity': 0.0}):
        with pytest.raises(ValueError):
            DetectorTruth(**bad)
    with pytest.raises(ValueError):
        DetectorTruth.from_dict([1, 2])


def test_ring_truth_and_stage_response():
    # D_X: mean of clip(axis + N(0, 0.04), 0, 1), axis = |cos θ| (ring, endcap) or sin θ (barrel),
    # cos θ uniform over the region; checked against a brute-force Monte Carlo.
    generator = np.random.default_rng(1)
    for region, low, high, barrel in (('EndCap', 0.78, 0.98, False), ('Other', 0.65, 0.78, False),
                                      ('Barrel', 0.0, 0.65, True)):
        c = generator.uniform(low, high, 2_000_000)
        axis = np.sqrt(1 - c ** 2) if barrel else c
        brute = np.clip(axis + 0.04 * generator.standard_normal(c.size), 0, 1).mean()
        assert TRUTH.direction_correction_mean(region) == pytest.approx(brute, abs=1e-4), region
    assert TRUTH.direction_correction_mean('EndCap') == pytest.approx(0.88, abs=0.002)
    assert TRUTH.direction_correction_mean('Other') == pytest.approx(0.715, abs=1e-6)
    ratio = TRUTH.direction_correction_mean('EndCap') / TRUTH.direction_correction_mean('Other')
    assert TRUTH.calibr_hcal_ring == pytest.approx(46.9 * ratio * 0.9)
    assert DetectorTruth(ring_mpv_ratio=1.0).calibr_hcal_ring == pytest.approx(57.67, abs=0.05)  # CLD-like
    assert TRUTH.k_em(1) == 0.95 and TRUTH.k_em(3) == 0.99 and TRUTH.k_em(2) == 0.95


# ---------------------------------------------------------------------------------------------
# K0L, 50 GeV

T_K = 50.0 - 0.497672
#: All stage-1 fixed points: phase 4's depends on every digitisation constant, the ring's included.
KAON_FIXED = {name: value for values in phase_fixed_points(TRUTH)[1].values() for name, value in values.items()}
LINEAR_FIXED = {name: value for values in phase_fixed_points(LINEAR)[1].values() for name, value in values.items()}
GAMMA_HAD = TRUTH.had_scale_nonlinearity


@pytest.fixture(scope='module')
def kaons():
    return simulate('kaon', 0, 60_000, KAON_FIXED, TRUTH)


@pytest.fixture(scope='module')
def linear_kaons():
    return simulate('kaon', 0, 60_000, LINEAR_FIXED, LINEAR)


def _phase1(columns, low, high):
    """The phase-1 selection written out by hand (physics.md §2.2)."""
    c = np.abs(columns['pfoTargetCosTheta0'])
    total, hcal = columns['TotalCaloHitEnergy'], columns['HCalTotalCaloHitEnergy']
    return ((columns['nPfoTargetsTotal'] == 1) & (columns['nPfoTargetsNeutralHadrons'] == 1)
            & (columns['hCalCaloHitEnergyFromEdge'] / total < 0.05) & (total - hcal < 2.5)
            & (c > low) & (c < high))


def _phase4(columns):
    """The phase-4 selection and band written out by hand (physics.md §2.5): (x, y) of the kaons."""
    x, y = columns['pfoHCalToHadEnergy'].astype(float), columns['pfoECalToHadEnergy'].astype(float)
    keep = ((columns['nPfoTargetsTotal'] == 1) & (columns['nPfoTargetsNeutralHadrons'] == 1)
            & (columns['nPfosTotal'] == 1) & (columns['nPfosNeutralHadrons'] == 1)
            & (columns['pfoMinHCalLayerToEdge'] > 6) & (np.abs(x + y - T_K) <= 3 * 0.55 * np.sqrt(x + y)))
    return x[keep], y[keep]


def _chi2_minimum(x, y):
    """The χ² line fit of physics.md §2.5 by brute force: Σ(x·a + y·b − a·b)²/(x·a² + y·b²) on a fine grid."""
    a = np.linspace(0.9 * T_K, 1.1 * T_K, 81)
    b = np.linspace(0.96 * T_K, 1.04 * T_K, 81)
    chi2 = [[np.sum((x * ai + y * bj - ai * bj) ** 2 / (x * ai ** 2 + y * bj ** 2)) for bj in b] for ai in a]
    i, j = np.unravel_index(np.argmin(chi2), (a.size, b.size))
    return a[i], b[j]


# <δ_E> = 40 e_E <1/sin θ> over |cos θ| in (0.2, 0.6), and <1/|cos θ|> over (0.8, 0.9).
RHO_BARREL = T_K / (T_K - 40 * 0.0057 * (math.asin(0.6) - math.asin(0.2)) / 0.4)
RHO_ENDCAP = T_K / (T_K - 40 * 0.0057 * math.log(0.9 / 0.8) / 0.1)


def test_linear_kaon_fixed_points_are_the_analytic_ones():
    """Without tails and non-linearity the HCal peaks are Gaussian: C_H* = C_H·T_K/(T_K − <δ_E>)."""
    fixed = fixed_point(LINEAR, 'kaon')
    assert fixed['CalibrHCALBarrel'] == pytest.approx(46.0 * RHO_BARREL, rel=1e-5)
    assert fixed['CalibrHCALEndcap'] == pytest.approx(46.9 * RHO_ENDCAP, rel=1e-5)
    assert fixed['ECalToHadGeVCalibrationEndCap'] == fixed['ECalToHadGeVCalibrationBarrel']
    # The χ² line through the scattered kaons is close to, not at, 1/(k_had·h_E) and 1/(k_had·ρ_H).
    rho = 0.65 * RHO_BARREL + 0.35 * RHO_ENDCAP
    assert fixed['ECalToHadGeVCalibrationBarrel'] == pytest.approx(1 / (0.96 * 0.85), rel=0.01)
    assert fixed['HCalToHadGeVCalibration'] == pytest.approx(1 / (0.96 * rho), rel=0.005)
    settings = {'hcalBarrelCosThetaRange': [0.15, 0.485], 'hcalEndcapCosThetaRange': [0.72, 0.94]}
    cld = fixed_point(LINEAR, 'kaon', settings=settings)
    # The CLD endcap range reaches into the ring (|cos θ| < 0.78), digitised with the ring constant.
    endcap = 40 * 0.0057 * math.log(0.94 / 0.72) / 0.22
    assert cld['CalibrHCALEndcap'] == pytest.approx(46.9 * T_K / (T_K - endcap), rel=0.01)
    gamma = dataclasses.replace(LINEAR, hcal_nonlinearity=0.5)
    assert fixed_point(gamma, 'kaon')['CalibrHCALBarrel'] == pytest.approx(46.0 * RHO_BARREL ** 2, rel=1e-5)


def test_kaon_fixed_points_are_where_the_phases_estimators_hit_t_k(kaons):
    """Default model: the fitted HCal peaks and the χ² line of a large sample at the fixed point."""
    for low, high in ((0.2, 0.6), (0.8, 0.9)):
        selected = kaons['HCalTotalCaloHitEnergy'][_phase1(kaons, low, high)]
        assert fit_peak(selected, 0.05, 50.0).mean == pytest.approx(T_K, abs=0.3)
        assert selected.mean() < T_K - 0.5  # the tail: the mean is not the peak
    ecal_intercept, hcal_intercept = _chi2_minimum(*_phase4(kaons))
    assert ecal_intercept == pytest.approx(T_K, rel=0.012)
    assert hcal_intercept == pytest.approx(T_K, rel=0.004)
    stage3 = fixed_point(TRUTH, 'kaon', stage=3)
    assert stage3['CalibrHCALBarrel'] == pytest.approx(KAON_FIXED['CalibrHCALBarrel'], rel=1e-8)
    # k_had 0.96 -> 0.99 moves the scales by about (0.96/0.99)**(1/γ_had), more than pandoraPFAAccuracy.
    ratio = stage3['HCalToHadGeVCalibration'] / KAON_FIXED['HCalToHadGeVCalibration']
    assert ratio == pytest.approx((0.96 / 0.99) ** (1 / GAMMA_HAD), rel=0.01)


def test_kaon_slices_are_the_same_events(kaons):
    part = simulate('kaon', 1000, 50, KAON_FIXED, TRUTH)
    for name in kaons:
        assert np.array_equal(kaons[name][1000:1050], part[name]), name


def test_kaon_hcal_peak_and_scaling(kaons, linear_kaons):
    for low, high in ((0.2, 0.6), (0.8, 0.9)):
        selected = linear_kaons['HCalTotalCaloHitEnergy'][_phase1(linear_kaons, low, high)]
        assert abs(selected.mean() - T_K) < 0.12
    # Showers starting in the ECal (half of them) fail the phase-1 cut.
    assert abs((kaons['TotalCaloHitEnergy'] - kaons['HCalTotalCaloHitEnergy'] >= 2.5).mean() - 0.5) < 0.01
    scaled = simulate('kaon', 0, 2000, dict(KAON_FIXED, CalibrHCALBarrel=2 * KAON_FIXED['CalibrHCALBarrel']), TRUTH)
    before, after = kaons['HCalTotalCaloHitEnergy'][:2000], scaled['HCalTotalCaloHitEnergy']
    # (A shower may lose all its HCal energy in the tail: ℓ > 1.)
    barrel = (np.abs(scaled['pfoTargetCosTheta0']) < TRUTH.hcal_barrel_max) & (before > 0)
    np.testing.assert_allclose(after[barrel] / before[barrel], 2.0 ** TRUTH.hcal_nonlinearity, rtol=1e-6)
    np.testing.assert_array_equal(after[~barrel], before[~barrel])


def test_kaon_pfos_and_hadronic_scale(kaons, linear_kaons):
    single = (kaons['nPfosTotal'] == 1) & (kaons['nPfosNeutralHadrons'] == 1)
    assert abs((~single).mean() - 0.06) < 0.004
    x, y = kaons['pfoHCalToHadEnergy'], kaons['pfoECalToHadEnergy']
    linear = (linear_kaons['nPfosTotal'] == 1) & (linear_kaons['nPfosNeutralHadrons'] == 1)
    # At the linear model's fixed point the events lie around x + y = T_K (physics.md §7).
    total = linear_kaons['pfoHCalToHadEnergy'] + linear_kaons['pfoECalToHadEnergy']
    assert abs(np.mean(total[linear]) - T_K) < 0.4
    ecal_barrel = np.abs(kaons['pfoTargetCosTheta0']) < TRUTH.ecal_barrel_max
    ecal_to_had = np.where(ecal_barrel, KAON_FIXED['ECalToHadGeVCalibrationBarrel'],
                           KAON_FIXED['ECalToHadGeVCalibrationEndCap']) ** GAMMA_HAD
    expected = 0.96 * (ecal_to_had * kaons['ECalTotalCaloHitEnergy']
                       + KAON_FIXED['HCalToHadGeVCalibration'] ** GAMMA_HAD * kaons['HCalTotalCaloHitEnergy'])
    np.testing.assert_allclose(x + y, expected, rtol=1e-5)
    np.testing.assert_allclose(kaons['pfoEnergyNeutralHadrons'], expected, rtol=1e-5)
    assert np.all(kaons['pfoMassTotal'][single] == np.float32(0.939565))
    assert np.all(kaons['pfoMassTotal'][~single] > 0.939565 * 2)
    layers = kaons['pfoMinHCalLayerToEdge']
    assert layers.min() == 7 and layers.max() == 30
    assert np.all(kaons['hCalCaloHitEnergyFromEdge'] == 0)
    stage3 = simulate('kaon', 0, 100, KAON_FIXED, TRUTH, stage=3)
    np.testing.assert_allclose(stage3['pfoEnergyTotal'] / kaons['pfoEnergyTotal'][:100], 0.99 / 0.96, rtol=1e-6)


def test_kaon_leakage_in_robustness_mode():
    columns = simulate('kaon', 0, 30_000, KAON_FIXED, DetectorTruth(robustness=True))
    fails_edge_cut = columns['hCalCaloHitEnergyFromEdge'] / columns['TotalCaloHitEnergy'] >= 0.05
    near_edge = columns['pfoMinHCalLayerToEdge'] <= 5
    assert abs(near_edge.mean() - 0.1) < 0.01
    # Every leaking shower that starts in the HCal fails the phase-1 edge cut (ECal starters fail
    # anyway), unless the tail took all its HCal energy.
    hcal_start = (columns['TotalCaloHitEnergy'] - columns['HCalTotalCaloHitEnergy'] < 2.5) \
        & (columns['HCalTotalCaloHitEnergy'] > 1.0)
    assert np.array_equal(fails_edge_cut[hcal_start], near_edge[hcal_start])
    assert np.all(columns['pfoMinHCalLayerToEdge'][near_edge] >= 0)
