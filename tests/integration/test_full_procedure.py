"""The complete procedure for real: stages 1 -> 2 -> 3 on the built-in detector model, started
15 % away from its fixed points, with the real service, agent, MariaDB and worker processes.

The model's responses are non-linear and its showers have low-side tails, so the run is checked
against the procedure replayed on the model's expected distributions from the same start values
(Simulation/fixed_points.expected_run): the iterations each phase takes, and every final constant
within its statistical tolerance (Simulation/tolerances), not within an accuracy.
"""
import json

import pytest

from conftest import run_seed_snippet, wait_for

from ILCDIRAC.CalibrationSystem.Procedure.constants import format_value, get_spec
from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import merge_likelihoods, parse_likelihood, write_likelihood
from ILCDIRAC.CalibrationSystem.Procedure.procedure import STAGES
from ILCDIRAC.CalibrationSystem.Procedure.samples import KAON_KINETIC_ENERGY
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import render_steering
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import resultFiles
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run
from ILCDIRAC.CalibrationSystem.Simulation.tolerances import statistical_tolerances
from ILCDIRAC.CalibrationSystem.Worker.pandora_settings import write_training_settings
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples

pytestmark = pytest.mark.integration

WORKERS = 8
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def samples(stack):
    """4000 events per particle (the recipe of physics.md §7), 500 per worker."""
    return write_samples(stack.workdir / "full-samples", events_per_file=400, files_per_sample=10)


@pytest.fixture(scope="module")
def result(stack, samples, clients):
    calibrationID = run_seed_snippet(stack, samples, WORKERS, samples_used=("gamma", "muon", "kaon", "zuds"))

    def finished():
        answer = clients["alice"]().getResult(calibrationID)
        if answer["OK"]:
            return answer["Value"]
        assert "Running" in answer["Message"], answer["Message"]
        return None

    return wait_for(finished, 900, interval=3, what=f"calibration {calibrationID} to finish")


@pytest.fixture(scope="module")
def truth(samples):
    with open(samples["truthFile"]) as stream:
        return json.load(stream)


@pytest.fixture(scope="module")
def expected(result, truth):
    """The expected run from the samples' start values with the calibration's settings, and the
    final constants' tolerances for all the events of a sample at every step."""
    detector = DetectorTruth.from_dict(truth["truth"])
    events = truth["eventsPerFile"] * truth["filesPerSample"]
    run = expected_run(detector, result["settings"], truth["initialConstants"], events)
    return run, statistical_tolerances(detector, result["settings"], truth["initialConstants"], events, run=run)


def _first(value):
    return value[0] if isinstance(value, list) else value


def _iterations(result):
    counts = {}
    for step in result["history"]:
        key = (step["Stage"], step["Phase"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_the_calibration_goes_through_every_stage_and_phase_in_order(result):
    positions = [(step["Stage"], step["Phase"]) for step in result["history"]]
    assert [step["Step"] for step in result["history"]] == list(range(len(positions)))
    distinct = [p for i, p in enumerate(positions) if i == 0 or p != positions[i - 1]]
    assert distinct == [(stage, phase) for stage, phases in STAGES.items() for phase in phases]
    assert [step["PhaseIteration"] for step in result["history"]] == \
        [positions[:i + 1].count(p) for i, p in enumerate(positions)]
    assert result["history"][-1]["Converged"] is True


def test_each_phase_takes_the_iterations_its_non_linearity_implies(result, expected):
    """Phases 0, 1 and 3 iterate geometrically (the multiplicative update assumes linearity), the
    hadronic scale too (the chi-square weights and the 3σ band do not rescale with the update);
    phase 2 and the training run once."""
    observed, run = _iterations(result), expected[0]
    assert observed.pop((2, 5)) == 1   # the expected run skips the training: it changes no constant
    assert observed == run.iterations
    assert max(run.iterations.values()) >= 3  # the loop is exercised


def test_every_constant_ends_within_its_statistical_tolerance_of_the_expected_run(result, expected):
    run, tolerances = expected
    final = run.final_constants
    assert set(result["parameters"]) == set(final)
    deviations = {name: _first(value) / _first(final[name]) - 1 for name, value in result["parameters"].items()}
    outside = {name: f"{d:+.3%} > {tolerances[name].total:.3%}" for name, d in deviations.items()
               if abs(d) > tolerances[name].total}
    assert not outside
    # Statistics, not accuracies: the tolerances of the digitisation and EM scales are far below 5 % and 2.5 %.
    assert tolerances["CalibrECAL"].total < 0.015 and tolerances["ECalToEMGeVCalibration"].total < 0.01


def test_calibr_hcal_other_takes_the_endcap_peak_of_the_last_phase_1_step(result):
    """The reference's CalibrHCALOther (hcalOtherEndcapMeanCorrection): μ_EC is the HCal endcap peak
    the last phase-1 step measured with its constants, before its update, read by the service from
    that step's stored metrics; checked on the realised peaks of each stage."""
    history = result["history"]
    phase2 = [index for index, step in enumerate(history) if step["Phase"] == 2]
    assert [history[index]["Stage"] for index in phase2] == [1, 3]
    for index in phase2:
        step, before = history[index], history[index - 1]
        metrics = step["Metrics"]
        assert (before["Stage"], before["Phase"]) == (step["Stage"], 1)
        endcap_mean = before["Metrics"]["endcapMean"]
        assert metrics["endcapMean"] == endcap_mean
        assert metrics["endcapMeanSource"] == f"phase 1, step {before['Step']}, before its update"
        assert metrics["endcapMeanCorrection"] == pytest.approx(KAON_KINETIC_ENERGY / endcap_mean, rel=1e-9)
        formula = (metrics["directionCorrectionRatio"] * metrics["mipPeakRatio"] * metrics["thicknessFactor"]
                   * _first(step["Parameters"]["CalibrHCALEndcap"]) * KAON_KINETIC_ENERGY / endcap_mean)
        assert _first(history[index + 1]["Parameters"]["CalibrHCALOther"]) == pytest.approx(formula, rel=1e-6)


def test_the_results_hold_plots_and_the_final_steering_file(result, truth):
    files = resultFiles(result)
    plots = [name for name in files if name.endswith(".png")]
    assert "convergence.png" in plots
    assert len(plots) > len(result["history"])
    assert all(files[name].startswith(PNG) for name in plots)
    assert "summary.html" in files
    barrel = result["parameters"]["CalibrECAL"][0]
    assert format_value(get_spec("CalibrECAL"), [barrel]) in result["steeringFile"]  # 7 significant digits
    assert repr(truth["initialConstants"]["CalibrECAL"][0])[:8] in result["steeringFileInput"]


def test_the_merged_likelihood_is_the_count_weighted_merge_of_the_workers_likelihoods(result, samples, db,
                                                                                       tmp_path):
    """Each worker's training output, made again from its slice of the zuds events, merged
    independently, gives exactly the file the service serves to stage 3."""
    served = resultFiles(result)["newPandoraLikelihoodData.xml"]
    cursor = db.cursor()
    cursor.execute("SELECT InputData FROM Workers WHERE CalibrationID = %s ORDER BY WorkerID",
                   (result["calibrationID"],))
    settings = validate_settings({})
    template = open(samples["steeringFile"], "rb").read()
    with open(samples["photonTrainingSettingsFile"], "rb") as stream:
        training = write_training_settings(tmp_path, stream.read())
    likelihoods = []
    for (inputData,) in cursor.fetchall():
        files, skip, events = json.loads(inputData)["zuds"]
        steering = render_steering(
            template, {}, settings,
            {"LCIOInputFiles": " ".join(files), "SkipNEvents": str(skip), "MaxRecordNumber": str(events)},
            {("MyDDMarlinPandora", "PandoraSettingsXmlFile"): training},
        )
        likelihoods.append(parse_likelihood(reconstruct(steering, settings).likelihood))
    assert len(likelihoods) == WORKERS
    assert served == write_likelihood(merge_likelihoods(likelihoods))
    merged = parse_likelihood(served)
    assert merged.n_signal.sum() == sum(item.n_signal.sum() for item in likelihoods)
