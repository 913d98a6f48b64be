"""The local demonstration: a complete calibration on the embedded default deployment.

Starts the local stack, writes synthetic samples of the built-in detector model, runs the user
guide's snippet as ``alice``, shows the progress, prints the constants found against the model's
truth and stops the stack again.
"""
import json
import os
import subprocess
import sys
import time

from ILCDIRAC.CalibrationSystem.LocalStack.stack import LocalStack
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import resultFiles
from ILCDIRAC.CalibrationSystem.Simulation.detector_model import DetectorTruth
from ILCDIRAC.CalibrationSystem.Simulation.fixed_points import expected_run
from ILCDIRAC.CalibrationSystem.Simulation.synthetic_samples import write_samples
from ILCDIRAC.CalibrationSystem.Simulation.tolerances import statistical_tolerances

SOFTWARE_VERSION = "ILCSoft-2019-04-01_gcc62"

SEED_SNIPPET = """
numberOfJobs = {jobs}
from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import setConfig, createCalibration
if {settings!r}:
  assert setConfig( **{settings!r} )[ 'OK' ]
result = createCalibration( {steering!r}, {version!r}, {directories!r}, numberOfJobs )
if not result[ 'OK' ]:
  raise RuntimeError( 'Creating calibration failed! ' + result[ 'Message' ] )
calibrationID = result[ 'Value' ]
print(calibrationID)
"""


def run_demo(workdir, jobs=8, events_per_file=400, files_per_sample=10, timeout=900, keep_running=False,
             out=sys.stdout):
    """Run the demonstration; return 0 if every constant ends within its statistical tolerance of
    where the built-in detector's calibration must end."""
    stack = LocalStack(workdir)

    def say(text):
        print(text, file=out, flush=True)

    say(f"Starting the local stack in {stack.workdir} (MariaDB, test PKI, CalibrationService, CalibrationAgent)")
    try:
        stack.start()
        samples = _samples(stack.workdir / "samples", events_per_file, files_per_sample, say)
        directories = [samples["directories"][s] for s in ("gamma", "muon", "kaon", "zuds")]
        say(f"Creating the calibration as alice with the user guide's snippet ({jobs} jobs)")
        calibrationID = run_seed_snippet(stack, samples["steeringFile"], directories, jobs, say=say)
        say(f"Calibration {calibrationID} created; the agent submits {jobs} local worker jobs")
        client = _alice_client(stack)
        _follow(client, calibrationID, timeout, say)
        from DIRAC.Core.DISET.RPCClient import RPCClient

        result = RPCClient("Calibration/Calibration", proxyLocation=str(stack.pki.proxy("alice"))).getResult(
            calibrationID
        )
        if not result["OK"]:
            say(f"The calibration has no result: {result['Message']}")
            return 1
        directory = _writeResult(result["Value"], stack.workdir / f"result_calib{calibrationID}")
        say(f"The final steering file, calibration.json, the plots of every step and convergence.png are in {directory}")
        return _report(result["Value"], samples["truthFile"], say)
    finally:
        if keep_running:
            say(f"The stack keeps running: source {stack.workdir / 'env.sh'} to use it as alice")
        else:
            say("Stopping the local stack")
            stack.stop()


def _samples(directory, events_per_file, files_per_sample, say):
    """Reuse the samples of an earlier demo in the same work directory, or write them."""
    truth = directory / "truth.json"
    if truth.exists():
        say(f"Reusing the synthetic samples in {directory}")
        with open(truth) as stream:
            written = json.load(stream)
        subdirs = {"gamma": "gamma/10", "muon": "mu-/10", "kaon": "kaon0L/50", "zuds": "zuds/91"}
        return {
            "directories": {sample: str(directory / path) for sample, path in subdirs.items()},
            "steeringFile": str(directory / "steering_file.xml"),
            "truthFile": str(truth),
            "eventsPerFile": written["eventsPerFile"],
        }
    say(f"Writing synthetic samples ({files_per_sample} files x {events_per_file} events per particle) to {directory}")
    return write_samples(directory, events_per_file=events_per_file, files_per_sample=files_per_sample)


def run_seed_snippet(stack, steering, directories, jobs, settings=None, say=None):
    """Create a calibration with the user guide's snippet, in a fresh Python acting as alice
    (``settings`` first go through the seed's setConfig); ``say`` gets what createCalibration
    told the user about the new calibration (e.g. the PfoAnalysis processor it added)."""
    code = SEED_SNIPPET.format(
        jobs=jobs, steering=steering, version=SOFTWARE_VERSION, directories=directories, settings=settings or {}
    )
    process = subprocess.run(
        [sys.executable, "-c", code], env=stack.user_env("alice"), capture_output=True, text=True, timeout=300
    )
    if process.returncode != 0:
        raise RuntimeError(f"The user guide's snippet failed:\n{process.stdout}{process.stderr}")
    *told, last = process.stdout.strip().splitlines()
    calibrationID = int(last)
    for line in told:
        if say is not None and f"Calibration {calibrationID}:" in line:
            say("  createCalibration: " + line.split(f"Calibration {calibrationID}:", 1)[1].strip())
    return calibrationID


def _alice_client(stack):
    import DIRAC

    os.environ["X509_CERT_DIR"] = str(stack.pki.ca_dir)
    DIRAC.initialize(require_auth=False, extra_config_files=[str(stack.cfg_file)])
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    return CalibrationClient(proxyLocation=str(stack.pki.proxy("alice")))


def _follow(client, calibrationID, timeout, say):
    """Print a line whenever the calibration's position or its number of results changes."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        result = client.getUserCalibrationStatuses()
        if result["OK"]:
            status = next(s for s in result["Value"] if s["calibrationID"] == calibrationID)
            line = (
                f"  [{time.strftime('%H:%M:%S')}] {status['status']}: stage {status['currentStage']} "
                f"phase {status['currentPhase']} step {status['currentStep']}, "
                f"{status['resultsInCurrentStep']}/{status['resultsNeeded']} results"
            )
            if status["status"] != "Running":
                say(line + (f" - {status['statusMessage']}" if status["statusMessage"] else ""))
                return
            if line[13:] != (last or "")[13:]:
                say(line)
                last = line
        time.sleep(1)
    raise TimeoutError(f"Calibration {calibrationID} did not end within {timeout} s")


def _report(result, truthFile, say):
    """Print the constants with their statistical uncertainties next to where the built-in
    detector's calibration must end (the deviation also in units of the uncertainty), the
    iterations of each phase and the statistics-limited phases; 0 if every constant is within its
    statistical tolerance.

    The model's responses are non-linear, so a phase stops, within its accuracy, short of its
    fixed point: the reference is the procedure replayed on the model's expected distributions
    from the same start values (fixed_points.expected_run), the tolerance what the sample size
    allows (tolerances.statistical_tolerances)."""
    with open(truthFile) as stream:
        truth = json.load(stream)
    detector, initial = DetectorTruth.from_dict(truth["truth"]), truth["initialConstants"]
    events = truth["eventsPerFile"] * truth["filesPerSample"]
    run = expected_run(detector, result["settings"], initial, events)
    expected, fixed = run.final_constants, truth["finalConstants"]
    tolerances = statistical_tolerances(detector, result["settings"], initial, events, run=run)
    steps = result["history"]
    say("")
    sequence = " ".join(f"{step['Stage']}/{step['Phase']}" for step in steps)
    say(f"Calibration {result['calibrationID']}: {result['status']} after {len(steps)} steps "
        f"(stage/phase of each step: {sequence})")
    observed = {}
    for step in steps:
        observed[(step["Stage"], step["Phase"])] = step["PhaseIteration"]
    say("Iterations per phase, calibrated (expected): " + ", ".join(
        f"{stage}/{phase}: {observed.get((stage, phase), 0)} ({count})" for (stage, phase), count in run.iterations.items()))
    say(f"{'constant':<31}{'initial':>11}{'calibrated':>12}{'uncertainty':>13}{'expected':>11}{'fixed point':>13}"
        f"{'deviation':>11}{'in σ':>7}{'tolerance':>11}")
    outside = []
    uncertainties = result["uncertainties"]
    for name, value in result["parameters"].items():
        deviation = _first(value) / _first(expected[name]) - 1
        uncertainty = _first(uncertainties[name]) if name in uncertainties else None
        pull = f"{(_first(value) - _first(expected[name])) / uncertainty:>+7.1f}" if uncertainty else f"{'-':>7}"
        tolerance = tolerances[name].total
        if abs(deviation) > tolerance:
            outside.append(name)
        say(
            f"{name:<31}{_first(initial[name]):>11.5g}{_first(value):>12.5g}"
            f"{'-' if uncertainty is None else f'{uncertainty:.2g}':>13}{_first(expected[name]):>11.5g}"
            f"{_first(fixed[name]):>13.5g}{deviation:>+10.2%}{pull}{tolerance:>10.2%}"
            f"{'' if abs(deviation) <= tolerance else '  <-'}"
        )
    for note in result["statisticsLimited"]:
        say(f"Statistics-limited: {note}")
    if outside:
        say(f"Outside their tolerance: {', '.join(outside)}")
        return 1
    say("Every constant is within its statistical tolerance of where the built-in detector's calibration must end")
    return 0


def _writeResult(result, directory):
    """Write every file of the result into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in resultFiles(result).items():
        (directory / name).write_bytes(content)
    return directory


def _first(value):
    """The barrel value of a FloatVec constant such as CalibrECAL; a float as it is."""
    return value[0] if isinstance(value, list) else value
