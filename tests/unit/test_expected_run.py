"""Where a calibration of the synthetic detector ends (Simulation/fixed_points.expected_run), its
statistical tolerances (Simulation/tolerances) and the in-process procedure (Simulation/direct_run).

The repeated-sample check of the tolerances over the whole procedure is bench/tolerances.py; here
a cheaper one: the ECal digitisation of independent samples."""

import dataclasses

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.constants import CONSTANTS
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY as T_K
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.direct_run import run_directly
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run, phase_fixed_points
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import initial_constants
from ILCDIRAC.CalibrationSystem.Simulation.tolerances import statistical_tolerances

TRUTH = DetectorTruth()
LINEAR = DetectorTruth(ecal_nonlinearity=1.0, hcal_nonlinearity=1.0, em_scale_nonlinearity=1.0,
                       had_scale_nonlinearity=1.0, photon_tail_fraction=0.0, hadron_tail_fraction=0.0)
SETTINGS = validate_settings({})
ECAL_ONLY = validate_settings({'stopStage': 1, 'stopPhase': 0})
START = initial_constants(TRUTH, 0.15)


def _first(value):
    return value[0] if isinstance(value, list) else value


def _all(points):
    return {name: value for values in points.values() for name, value in values.items()}


@pytest.fixture(scope='module')
def run():
    return expected_run(TRUTH, SETTINGS, START)


def test_the_non_linear_model_iterates_each_phase_geometrically(run):
    """From 15 % off, γ < 1: two steps for the digitisation (5 %), three for the Pandora scales
    (2.5 %) in stage 1; stage 3 starts close: one step, or two where k_EM, k_had changed."""
    assert run.iterations == {(1, 0): 2, (1, 1): 2, (1, 2): 1, (1, 3): 3, (1, 4): 3,
                              (3, 0): 1, (3, 1): 1, (3, 2): 1, (3, 3): 2, (3, 4): 2}
    # Each update is the reference's multiplicative one, C' = C·target/measured.
    for step in run.steps:
        values, before, after = step.measurement.values, step.constants, step.new_constants
        if step.phase == 0:
            assert _first(after['CalibrECAL']) == \
                pytest.approx(10 * _first(before['CalibrECAL']) / values['ecalBarrel'])
        if step.phase == 1:
            assert after['CalibrHCALEndcap'] == pytest.approx(T_K * before['CalibrHCALEndcap'] / values['hcalEndcap'])
        if step.phase == 4:
            assert after['HCalToHadGeVCalibration'] == pytest.approx(
                T_K * before['HCalToHadGeVCalibration'] / values['hcalIntercept'])
        converged = {0: 0.05, 1: 0.05, 3: 0.025, 4: 0.025}.get(step.phase)
        if converged is not None:
            target = 10.0 if step.phase in (0, 3) else T_K
            assert step.converged == (max(abs(v / target - 1) for v in values.values()) < converged)


def test_a_non_linear_phase_stops_short_of_its_fixed_point(run):
    """The last update leaves (1 − γ) of the last deviation: the end is not the fixed point."""
    fixed = _all(phase_fixed_points(TRUTH)[3])
    final = run.final_constants
    assert abs(_first(final['CalibrECAL']) / _first(fixed['CalibrECAL']) - 1) > 0.005
    for name in CONSTANTS:
        assert _first(final[name]) == pytest.approx(_first(fixed[name]), rel=0.02), name


def test_the_reference_calibr_hcal_other_uses_the_last_phase_1_measurement(run):
    for stage in (1, 3):
        hcal, mip = run.last_step(stage, 1), run.last_step(stage, 2)
        assert mip.measurement.values['endcapMean'] == hcal.measurement.values['hcalEndcap']
        values = mip.measurement.values
        expected = (values['directionEndcap'] / values['directionRing'] * values['endcapSimPeak']
                    / values['ringSimPeak'] * mip.constants['CalibrHCALEndcap'] * T_K / values['endcapMean'])
        assert mip.new_constants['CalibrHCALOther'] == pytest.approx(expected)


def test_without_a_phase_1_step_mu_ec_is_measured_with_the_constants_of_phase_2():
    settings = validate_settings({'startPhase': 2, 'stopStage': 1, 'stopPhase': 2})
    run = expected_run(TRUTH, settings, START)
    step = run.last_step(1, 2)
    hcal = expected_run(TRUTH, validate_settings({'startPhase': 1, 'stopStage': 1, 'stopPhase': 1}), START).steps[0]
    assert step.measurement.values['endcapMean'] == hcal.measurement.values['hcalEndcap']


def test_from_the_fixed_points_every_phase_stays_put():
    stage1 = _all(phase_fixed_points(TRUTH)[1])
    settings = validate_settings({'stopStage': 1, 'stopPhase': 4})
    run = expected_run(TRUTH, settings, stage1)
    assert set(run.iterations.values()) == {1}
    for name in CONSTANTS:
        assert _first(run.final_constants[name]) == pytest.approx(_first(stage1[name]), rel=1e-6), name


def test_the_linear_model_lands_on_its_fixed_points_in_one_update():
    start = initial_constants(LINEAR, 0.15)
    run = expected_run(LINEAR, validate_settings({'stopStage': 1, 'stopPhase': 3}), start)
    assert run.iterations == {(1, 0): 2, (1, 1): 2, (1, 2): 1, (1, 3): 2}
    fixed = _all(phase_fixed_points(LINEAR)[1])
    for name in ('CalibrECAL', 'ECALEndcapCorrectionFactor', 'CalibrHCALBarrel', 'ECalToEMGeVCalibration'):
        assert _first(run.final_constants[name]) == pytest.approx(_first(fixed[name]), rel=1e-4), name


def test_a_phase_that_cannot_converge_is_refused():
    # γ near 2: every update overshoots by nearly as much as it corrects.
    slow = dataclasses.replace(TRUTH, ecal_nonlinearity=1.99)
    with pytest.raises(ValueError, match='does not converge within 3 iterations'):
        expected_run(slow, validate_settings({'stopStage': 1, 'stopPhase': 0, 'nMaxIterationsPerPhase': 3}), START)


def test_tolerances_are_statistical_not_accuracies(run):
    tolerances = statistical_tolerances(TRUTH, SETTINGS, START, 4000, run=run, toys=100)
    assert set(tolerances) == set(CONSTANTS)
    for name, tolerance in tolerances.items():
        assert tolerance.total == pytest.approx(3 * tolerance.statistical + tolerance.quantisation), name
    # Far below the accuracies (5 %, 2.5 %) where statistics allow; the MIP peaks are bin centres.
    assert tolerances['CalibrECAL'].total < 0.015 and tolerances['ECalToEMGeVCalibration'].total < 0.01
    assert tolerances['HCalToHadGeVCalibration'].total < 0.025
    assert tolerances['ECalToMipCalibration'].statistical == 0 and tolerances['ECalToMipCalibration'].quantisation > 0
    # Ten times the events: tighter, though by less than √10, since the bins stay 0.5 GeV wide.
    tighter = statistical_tolerances(TRUTH, ECAL_ONLY, START, 40_000, toys=100)
    loose = statistical_tolerances(TRUTH, ECAL_ONLY, START, 4000, toys=100)
    assert tighter['CalibrECAL'].statistical < 0.75 * loose['CalibrECAL'].statistical


def test_independent_samples_land_within_their_tolerance_of_the_expected_run():
    """The cheaper check of bench/tolerances.py: phase 0 on 12 independent samples of 4000 events."""
    run = expected_run(TRUTH, ECAL_ONLY, START)
    tolerances = statistical_tolerances(TRUTH, ECAL_ONLY, START, 4000, run=run, toys=200)
    deviations = []
    for seed in range(12):
        steps = run_directly(dataclasses.replace(TRUTH, seed=100 + seed), ECAL_ONLY, START, 4000)
        assert [(step.phase, step.iteration) for step in steps] == [(0, 1), (0, 2)]
        final = steps[-1].new_constants
        deviations.append([_first(final[name]) / _first(run.final_constants[name]) - 1
                           for name in ('CalibrECAL', 'ECALEndcapCorrectionFactor')])
    deviations = np.array(deviations)
    for column, name in enumerate(('CalibrECAL', 'ECALEndcapCorrectionFactor')):
        assert np.all(np.abs(deviations[:, column]) < tolerances[name].total), name
        # The spread is the stated one: 12 samples give its standard deviation to about ±35 %.
        assert 0.5 < deviations[:, column].std() / tolerances[name].statistical < 1.6, name


def test_the_direct_run_is_the_procedure():
    """Same events, same analyses: the direct run of the default truth makes the expected iterations
    of phase 0 and stops where the settings say."""
    steps = run_directly(TRUTH, ECAL_ONLY, START, 4000)
    assert [(step.stage, step.phase, step.iteration, step.converged) for step in steps] == \
        [(1, 0, 1, False), (1, 0, 2, True)]
    assert steps[1].constants == steps[0].new_constants
    assert steps[0].metrics['barrelMean'] > 10.5  # 15 % off, seen through γ_E = 0.6
    with pytest.raises(ValueError, match='does not converge within 1 iterations'):
        run_directly(TRUTH, validate_settings({'stopStage': 1, 'stopPhase': 0, 'nMaxIterationsPerPhase': 1}),
                     START, 4000)


def test_the_direct_run_gives_calibr_hcal_other_the_endcap_peak_of_the_last_phase_1_step():
    """As the service does (Procedure.advance): phase 2 reads μ_EC from the step before it."""
    steps = run_directly(TRUTH, validate_settings({'stopStage': 1, 'stopPhase': 2}), START, 4000)
    last_phase1, phase2 = steps[-2], steps[-1]
    assert (last_phase1.phase, phase2.phase) == (1, 2)
    assert phase2.metrics['endcapMean'] == last_phase1.metrics['endcapMean']
    assert phase2.metrics['endcapMeanSource'].startswith('phase 1')
