"""The exact expected distributions of the synthetic detector's selections (Simulation/expected_response,
expected_hadronic) against the model's simulated events and known answers."""

import math

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure import ecal_digitisation, em_scale, hadronic_scale, hcal_digitisation
from ILCDIRAC.CalibrationSystem.Procedure.histogram import fit_peak
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY as T_K
from ILCDIRAC.CalibrationSystem.Procedure.settings import create_settings
from ILCDIRAC.CalibrationSystem.Procedure.worker_output import ReconstructionOutput
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth, simulate
from ILCDIRAC.CalibrationSystem.Simulation.expected_hadronic import (
    KaonPoints, band_limits, intercept_estimate, kaon_points)
from ILCDIRAC.CalibrationSystem.Simulation.expected_response import (
    Component, Mixture, ecal_energy, em_energy, erfc, hcal_energy, peak_estimate, peak_spread, relative_cdf,
    relative_pdf)

SETTINGS = create_settings('CLIC')
TRUTH = DetectorTruth()
OFF = {'CalibrECAL': [40.0, 40.0], 'ECALEndcapCorrectionFactor': 1.0, 'CalibrHCALBarrel': 48.0,
       'CalibrHCALEndcap': 45.0, 'CalibrHCALOther': 50.0, 'ECalToEMGeVCalibration': 1.1,
       'HCalToEMGeVCalibration': 1.1, 'ECalToHadGeVCalibrationBarrel': 1.2, 'ECalToHadGeVCalibrationEndCap': 1.2,
       'HCalToHadGeVCalibration': 1.0}
EVENTS = 200_000


def _selected(phase, sample, truth, events=EVENTS):
    columns = simulate(sample, 0, events, OFF, truth)
    return phase.collect({sample: ReconstructionOutput(columns, {})}, SETTINGS)


@pytest.fixture(scope='module')
def photons():
    return _selected(ecal_digitisation, 'gamma', TRUTH)


@pytest.fixture(scope='module')
def kaons():
    return _selected(hcal_digitisation, 'kaon', TRUTH)


def _assert_distribution(mixture, values, events):
    """The expected number of selected events, and their distribution (Kolmogorov distance at the
    values' quantiles ~ 1/√n)."""
    values = np.asarray(values, dtype=np.float64)
    assert events * mixture.weight == pytest.approx(values.size, rel=4 / np.sqrt(values.size))
    x = np.quantile(values, np.linspace(0.005, 0.995, 41))
    empirical = np.searchsorted(np.sort(values), x, side='right') / values.size
    assert np.max(np.abs(mixture.cdf(x) - empirical)) < 2.0 / np.sqrt(values.size)


def test_erfc_is_accurate_everywhere():
    x = np.linspace(-6, 9, 3001)
    exact = np.array([math.erfc(v) for v in x])
    assert np.max(np.abs(erfc(x) / exact - 1)) < 2e-7


def test_relative_distribution_by_monte_carlo_and_its_density():
    generator = np.random.default_rng(3)
    sigma, fraction, mean = 0.05, 0.3, 0.08
    values = 1 + sigma * generator.standard_normal(400_000) \
        - np.where(generator.uniform(size=400_000) < fraction, generator.exponential(mean, 400_000), 0.0)
    t = np.linspace(0.6, 1.2, 25)
    empirical = np.array([np.mean(values <= v) for v in t])
    assert np.max(np.abs(relative_cdf(t, sigma, fraction, mean) - empirical)) < 0.003
    step = 1e-3
    derivative = (relative_cdf(t + step, sigma, fraction, mean)
                  - relative_cdf(t - step, sigma, fraction, mean)) / (2 * step)
    np.testing.assert_allclose(relative_pdf(t, sigma, fraction, mean), derivative, rtol=2e-3, atol=1e-4)
    assert relative_cdf(1.0, sigma, 0.0, mean) == pytest.approx(0.5)


def test_photon_energies_follow_the_expected_distribution(photons):
    for region, key in (('barrel', 'ecalBarrelCosThetaRange'), ('endcap', 'ecalEndcapCosThetaRange')):
        _assert_distribution(ecal_energy(TRUTH, OFF, SETTINGS[key]), photons[region], EVENTS)


def test_em_energies_follow_the_expected_distribution_also_in_robustness_mode():
    for truth in (TRUTH, DetectorTruth(robustness=True)):
        _assert_distribution(em_energy(truth, OFF, 1), _selected(em_scale, 'gamma', truth, 100_000)['ecalToEm'],
                             100_000)


def test_kaon_hcal_energies_follow_the_expected_distribution(kaons):
    for region, key in (('barrel', 'hcalBarrelCosThetaRange'), ('endcap', 'hcalEndcapCosThetaRange')):
        _assert_distribution(hcal_energy(TRUTH, OFF, SETTINGS[key]), kaons[region], EVENTS)


def test_largest_value_and_histogram():
    mixture = Mixture([Component(0.5, 10.0, 0.05, 0.2, 0.08), Component(0.25, 9.0, 0.05, 0.0, 0.08, (0.1, 0.3))])
    assert mixture.weight == pytest.approx(0.75)
    largest = mixture.maximum(1000, 0.5)
    assert float(mixture.cdf(largest)) ** 1000 == pytest.approx(0.5, rel=1e-6)
    counts, edges = mixture.histogram(0.05, 10.0, 1000, largest)
    assert counts.size == int(largest / 0.5) and edges[-1] == largest
    assert counts.sum() == pytest.approx(1000 * (float(mixture.cdf(largest)) - float(mixture.cdf(0.0))))
    with pytest.raises(ValueError, match='keeps no event'):
        Mixture([Component(0.0, 10.0, 0.05, 0.0, 0.1)])


def test_peak_estimate_is_the_phases_estimator_without_noise(photons):
    gaussian = Mixture([Component(1.0, 10.0, 0.05, 0.0, 0.1)])
    assert peak_estimate(gaussian, 0.05, 10.0, 4000).mean == pytest.approx(10.0, rel=2e-5)
    mixture = ecal_energy(TRUTH, OFF, SETTINGS['ecalBarrelCosThetaRange'])
    expected = peak_estimate(mixture, 0.02, 10.0, EVENTS)
    values = photons['barrel'].astype(np.float64)
    # A large sample's fitted peak agrees; the tail takes the mean about 1 % lower.
    assert fit_peak(values, 0.02, 10.0).mean == pytest.approx(expected.mean, rel=0.002)
    assert expected.method == 'gaussian' and values.mean() < 0.992 * expected.mean
    assert expected.count == pytest.approx(EVENTS * mixture.weight)


def test_peak_spread_is_the_spread_of_the_phases_estimator_on_independent_samples():
    gaussian = Mixture([Component(1.0, 10.0, 0.05, 0.0, 0.1)])
    generator = np.random.default_rng(5)
    peaks = [fit_peak(generator.normal(10.0, 0.5, 2000), 0.05, 10.0).mean for _ in range(300)]
    spread = peak_spread(gaussian, 0.05, 10.0, 2000, toys=300)
    assert spread == pytest.approx(np.std(peaks) / 10.0, rel=0.25)
    # No better than the mean of 2000 values, σ/√n.
    assert spread > 0.05 / np.sqrt(2000)


def test_band_limits():
    lowest, highest = band_limits()
    for total in (lowest, highest):
        assert abs(total - T_K) == pytest.approx(3 * 0.55 * np.sqrt(total))
    assert lowest < T_K < highest


def test_kaon_points_and_chi_square_minimum_against_simulated_kaons():
    columns = simulate('kaon', 0, EVENTS, OFF, TRUTH)
    summary = hadronic_scale.collect({'kaon': ReconstructionOutput(columns, {})}, SETTINGS)
    x, y = summary['hcalToHad'].astype(np.float64), summary['ecalToHad'].astype(np.float64)
    band = hadronic_scale.in_band(x, y)
    points = kaon_points(TRUTH, OFF, 1)
    assert EVENTS * points.weight.sum() == pytest.approx(band.sum(), rel=4 / np.sqrt(band.sum()))
    expected = intercept_estimate(points, EVENTS)
    sample = intercept_estimate(KaonPoints(x[band], y[band], np.ones(band.sum())), EVENTS)
    errors = np.sqrt(np.diag(expected.covariance))
    assert abs(sample.ecal - expected.ecal) < 4 * errors[0]
    assert abs(sample.hcal - expected.hcal) < 4 * errors[1]
    # The sandwich covariance scales as 1/n: for 4000 kaons about 0.4 % (ECal) and 0.2 % (HCal).
    small = intercept_estimate(points, 4000)
    assert np.sqrt(small.covariance[0, 0]) / small.ecal == pytest.approx(0.004, rel=0.3)
    assert np.sqrt(small.covariance[1, 1]) / small.hcal == pytest.approx(0.002, rel=0.3)
