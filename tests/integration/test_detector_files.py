"""A CLIC-like steering file without a PfoAnalysis processor, as the real CLIC and CLD files are,
runs on the local stack: the calibration adds the processor, says so, and hands back the file
changed only in the calibrated values and the added processor."""
import difflib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ECAL_ONLY, SOFTWARE_VERSION, result_when_finished

from ILCDIRAC.CalibrationSystem.LocalStack import demo
from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings
from ILCDIRAC.CalibrationSystem.Procedure.steering import read_constants, render_final_steering

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "clic_like_steering.xml"
ADDED_NOTE = "added PfoAnalysis processor 'MyPfoAnalysis' after 'MyDDMarlinPandora'"


@pytest.fixture(scope="module")
def clic_like(samples, tmp_path_factory):
    """The CLIC-like fixture with the start constants of the synthetic samples."""
    with open(samples["truthFile"]) as stream:
        initial = json.load(stream)["initialConstants"]
    path = tmp_path_factory.mktemp("clic_like") / "clicReconstruction.xml"
    path.write_bytes(render_final_steering(FIXTURE.read_bytes(), initial, validate_settings({})))
    return path


@pytest.fixture(scope="module")
def created(stack, samples, clic_like):
    """The user guide's snippet with that steering file: (its output, the calibration ID)."""
    code = demo.SEED_SNIPPET.format(jobs=2, steering=str(clic_like), version=SOFTWARE_VERSION,
                                    directories=[samples["directories"][s] for s in ("gamma", "muon")],
                                    settings=ECAL_ONLY)
    process = subprocess.run([sys.executable, "-c", code], env=stack.user_env("alice"), capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr
    return process.stdout, int(process.stdout.strip().splitlines()[-1])


def test_the_user_is_told_that_the_processor_was_added(created):
    output, _ = created
    assert ADDED_NOTE in output


def test_the_result_differs_from_the_input_only_in_constants_and_the_processor(created, clients, clic_like):
    _, calibrationID = created
    result = result_when_finished(clients["alice"](), calibrationID)
    assert result["status"] == "Finished"
    given = clic_like.read_bytes()
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
    assert read_constants(result["steeringFile"], changed, settings) == {name: result["parameters"][name]
                                                                         for name in changed}
    assert any(ADDED_NOTE in event["message"] for event in result["events"])
