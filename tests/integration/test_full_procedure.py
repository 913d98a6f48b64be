"""The complete procedure for real: stages 1 -> 2 -> 3 on the built-in detector model, started
15 % away from its fixed points, with the real service, agent, MariaDB and worker processes."""
import json

import pytest

from conftest import run_seed_snippet, wait_for

from ILCDIRAC.CalibrationSystem.Procedure.photon_likelihood import merge_likelihoods, parse_likelihood, write_likelihood
from ILCDIRAC.CalibrationSystem.Procedure.phases import PHASE_TABLE
from ILCDIRAC.CalibrationSystem.Procedure.procedure import STAGES
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import render_steering
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import resultFiles
from ILCDIRAC.CalibrationSystem.Simulation.builtin_reconstruction import reconstruct
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import fixed_point_tolerances
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


def test_the_calibration_goes_through_every_stage_and_phase_in_order(result):
    positions = [(step["Stage"], step["Phase"]) for step in result["history"]]
    assert [step["Step"] for step in result["history"]] == list(range(len(positions)))
    distinct = [p for i, p in enumerate(positions) if i == 0 or p != positions[i - 1]]
    assert distinct == [(stage, phase) for stage, phases in STAGES.items() for phase in phases]
    for stage, phase in distinct:
        iterations = positions.count((stage, phase))
        # The hadronic scales converge geometrically: each update rescales one axis by T_K/I, but the
        # χ² weights and the 3σ band do not scale with it, so the refined intercepts of the second
        # step are still ~2.5 % off when the start is 15 % off (the grid alone snapped onto a point
        # within the tolerance instead).
        allowed = 1 if not PHASE_TABLE[phase].iterative else 3 if phase == 4 else 2
        assert iterations <= allowed, (stage, phase, positions)
    assert result["history"][-1]["Converged"] is True


def test_every_constant_ends_within_tolerance_of_the_fixed_point(result, truth):
    fixed = truth["finalConstants"]
    tolerances = fixed_point_tolerances(result["settings"], fixed, truth["hcalSimMipMpvs"]["Other"])
    deviations = {}
    for name, value in result["parameters"].items():
        first = value[0] if isinstance(value, list) else value
        expected = fixed[name][0] if isinstance(fixed[name], list) else fixed[name]
        deviations[name] = first / expected - 1
    outside = {name: f"{d:+.2%} > {tolerances[name]:.1%}" for name, d in deviations.items() if abs(d) > tolerances[name]}
    assert not outside
    assert set(deviations) == set(fixed)


def test_calibr_hcal_other_uses_the_endcap_peak_of_the_last_phase1_step(result):
    """As the reference: μ_EC is the HCal endcap peak the step before (the last HCalDigi step)
    measured with its constants, read by the service from that step's stored metrics."""
    history = result["history"]
    phase2 = [index for index, step in enumerate(history) if step["Phase"] == 2]
    assert [history[index]["Stage"] for index in phase2] == [1, 3]
    for index in phase2:
        before, metrics = history[index - 1], history[index]["Metrics"]
        assert (before["Stage"], before["Phase"]) == (history[index]["Stage"], 1)
        assert metrics["endcapMean"] == before["Metrics"]["endcapMean"]
        assert metrics["endcapMeanSource"] == f"phase 1, step {before['Step']}, before its update"


def test_the_results_hold_plots_and_the_final_steering_file(result):
    files = resultFiles(result)
    plots = [name for name in files if name.endswith(".png")]
    assert "convergence.png" in plots
    assert len(plots) > len(result["history"])
    assert all(files[name].startswith(PNG) for name in plots)
    barrel = result["parameters"]["CalibrECAL"][0]
    assert repr(barrel)[:8] in result["steeringFile"]
    assert "43.148" in result["steeringFileInput"]


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
