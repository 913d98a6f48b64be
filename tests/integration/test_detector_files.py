"""CLIC-like and CLD-like steering files without a PfoAnalysis processor, as the real CLIC and CLD
files are (CLD's with its licence comment holding '--', its <group>s and ${} processor names), run
on the local stack: the calibration adds the processor, says so, and hands back the file changed
only in the calibrated values and the added processor."""
import difflib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ECAL_ONLY, SOFTWARE_VERSION, result_when_finished

from ILCDIRAC.CalibrationSystem.LocalStack import demo
from ILCDIRAC.CalibrationSystem.Procedure.constants import written_value
from ILCDIRAC.CalibrationSystem.Procedure.settings import PRESETS, validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import read_constants, render_final_steering

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"
#: detector -> (fixture, the settings of its preset, the Pandora processor the PfoAnalysis follows)
DETECTORS = {
    "CLIC": ("clic_like_steering.xml", {}, "MyDDMarlinPandora"),
    "CLD": ("cld_like_steering.xml", PRESETS["CLD"], "MyDDMarlinPandora_10ns"),
}


@pytest.fixture(scope="module", params=sorted(DETECTORS))
def detector(request, samples, tmp_path_factory):
    """(the fixture with the start constants of the synthetic samples, its preset settings, the
    note that creation must give)."""
    fixture, preset, pandora = DETECTORS[request.param]
    with open(samples["truthFile"]) as stream:
        initial = json.load(stream)["initialConstants"]
    path = tmp_path_factory.mktemp(request.param) / "reconstruction.xml"
    path.write_bytes(render_final_steering((FIXTURES / fixture).read_bytes(), initial, validate_settings(preset)))
    return path, preset, f"added PfoAnalysis processor 'MyPfoAnalysis' after '{pandora}'"


@pytest.fixture(scope="module")
def created(stack, samples, detector):
    """The user guide's snippet with that steering file: (its output, the calibration ID)."""
    steering, preset, _ = detector
    code = demo.SEED_SNIPPET.format(jobs=2, steering=str(steering), version=SOFTWARE_VERSION,
                                    directories=[samples["directories"][s] for s in ("gamma", "muon")],
                                    settings=dict(ECAL_ONLY, **preset))
    process = subprocess.run([sys.executable, "-c", code], env=stack.user_env("alice"), capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr
    return process.stdout, int(process.stdout.strip().splitlines()[-1])


def test_the_user_is_told_that_the_processor_was_added(created, detector):
    output, _ = created
    assert detector[2] in output


def test_the_result_differs_from_the_input_only_in_constants_and_the_processor(created, clients, detector):
    _, calibrationID = created
    steering, _, added_note = detector
    result = result_when_finished(clients["alice"](), calibrationID)
    assert result["status"] == "Finished"
    given = steering.read_bytes()
    assert result["steeringFileInput"].encode(errors="surrogateescape") == given
    settings = result["settings"]
    initial = read_constants(given, result["parameters"], settings)
    changed = sorted(name for name, value in result["parameters"].items() if value != initial[name])
    assert changed == ["CalibrECAL", "ECALEndcapCorrectionFactor"]
    diff = [line for line in difflib.unified_diff(given.decode().splitlines(), result["steeringFile"].splitlines(),
                                                  lineterm="", n=0) if not line.startswith(("---", "+++", "@@"))]
    removed = [line[1:] for line in diff if line[0] == "-"]
    added = [line[1:] for line in diff if line[0] == "+"]
    assert [line.split('"')[1] for line in removed] == changed
    constant_lines = [line for line in added if any(f'name="{name}"' in line for name in changed)]
    assert [line.split('"')[1] for line in constant_lines] == changed
    processor = [line for line in added if line not in constant_lines]
    assert processor.count("") == 1      # the blank line before the definition (diff places it either side)
    processor.remove("")
    assert processor[:2] == ['    <processor name="MyPfoAnalysis"/>',
                             '  <processor name="MyPfoAnalysis" type="PfoAnalysis">']
    assert processor[-1] == "  </processor>" and processor[2].startswith("    <!--Added by the calibration")
    assert all(line.startswith('    <parameter name="') for line in processor[3:-1])
    assert read_constants(result["steeringFile"], changed, settings) == {
        name: written_value(result["parameters"][name]) for name in changed}  # to the float Marlin reads
    assert any(added_note in event["message"] for event in result["events"])
