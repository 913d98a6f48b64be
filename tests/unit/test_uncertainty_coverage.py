"""The quoted uncertainties cover the truth at the stated rate: the procedure run directly on
independent samples of the built-in detector (Simulation), whose truth says where each run must
end (the procedure replayed on the model's expected distributions, fixed_points.expected_run).

The default model bends its responses on purpose (μ ∝ C^γ, γ < 1), so that this checks the
response slopes the phases measure from their own iterations too (phase_tools.response_slope).
The MIP peaks (bin centres, quoted to the bin width/sqrt(12)) and CalibrHCALOther (whose direction
corrections need several workers for an uncertainty) are not Gaussian estimates and are left out.
"""
import dataclasses
import math

import numpy as np
import pytest

from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.direct_run import run_directly
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import initial_constants

TRUTH = DetectorTruth()
STAGE_1 = validate_settings({"stopStage": 1, "stopPhase": 4})
START = initial_constants(TRUTH, 0.15)
EVENTS = 1000
SEEDS = 60
ONE_SIGMA = math.erf(1.0 / math.sqrt(2.0))  # 0.683
FITTED = ("CalibrECAL", "ECALEndcapCorrectionFactor", "CalibrHCALBarrel", "CalibrHCALEndcap",
          "ECalToEMGeVCalibration", "HCalToHadGeVCalibration", "ECalToHadGeVCalibrationBarrel")


def _first(value):
    return value[0] if isinstance(value, list) else value


@pytest.fixture(scope="module")
def pulls():
    """(final - expected)/uncertainty of every fitted constant, one row per independent sample."""
    expected = expected_run(TRUTH, STAGE_1, START, EVENTS).final_constants
    rows = []
    for seed in range(SEEDS):
        steps = run_directly(dataclasses.replace(TRUTH, seed=5000 + seed), STAGE_1, START, EVENTS)
        final, quoted = steps[-1].new_constants, steps[-1].metrics["uncertainties"]
        rows.append([(_first(final[name]) - _first(expected[name])) / _first(quoted[name]) for name in FITTED])
    return np.array(rows)


@pytest.mark.parametrize("column, name", list(enumerate(FITTED)))
def test_one_sigma_covers_the_truth_at_68_percent(pulls, column, name):
    rate = np.mean(np.abs(pulls[:, column]) < 1.0)
    tolerance = 3.0 * math.sqrt(ONE_SIGMA * (1.0 - ONE_SIGMA) / SEEDS)  # binomial, 3 standard deviations
    assert abs(rate - ONE_SIGMA) < tolerance, f"{name}: {rate:.2f} of {SEEDS} samples within 1 sigma"


def test_the_pulls_are_unbiased_with_unit_width(pulls):
    # every fitted constant: the mean of SEEDS pulls within 4/sqrt(SEEDS), their width within 30 %
    # (without the response slopes the digitisation constants' pulls have a width of 1.5)
    assert np.all(np.abs(pulls.mean(axis=0)) < 4.0 / math.sqrt(SEEDS)), pulls.mean(axis=0)
    assert np.all((pulls.std(axis=0) > 0.7) & (pulls.std(axis=0) < 1.3)), pulls.std(axis=0)
