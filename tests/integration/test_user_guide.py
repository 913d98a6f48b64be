"""The user guide runs as written: every code block a user would type, against the real stack.

The convention (also stated at the top of docs/user_guide.rst): the ``python`` and ``console``
code blocks of the guide run in document order, as alice, in an empty directory. The Python
blocks share one Python process, so that a later block uses what an earlier one defined; in a
console block each line starting with ``$ `` (with its continuation lines) is a command, run in
one bash session, and the other lines are example output, not compared. A block marked
``:class: not-run`` is only shown. A guide that drifts from the code fails here.
"""
from pathlib import Path

import pytest

from conftest import wait_for
from guide import NOT_RUN, PythonSession, ShellSession, code_blocks, console_commands

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user_guide.rst"
RUNNABLE = ("python", "console")
COPY_TIMEOUT = 60  # seconds for the agent to copy finished results to their outputPath


def _runnable(block):
    return block.language in RUNNABLE and NOT_RUN not in block.classes


def test_the_guide_marks_every_block_it_does_not_run():
    blocks = code_blocks(GUIDE.read_text())
    unmarked = [b.line for b in blocks if b.language not in RUNNABLE and NOT_RUN not in b.classes]
    assert not unmarked, f"user_guide.rst lines {unmarked}: code blocks that are neither python/console nor not-run"
    runnable = [b for b in blocks if _runnable(b)]
    assert sum(b.language == "python" for b in runnable) >= 5
    assert sum(b.language == "console" for b in runnable) >= 3
    assert all(console_commands(b.code) for b in runnable if b.language == "console")


def test_console_commands_keep_continuations_and_skip_output():
    code = "$ echo one \\\n  two\none two\n$ ID=$(echo 3)\n3"
    assert console_commands(code) == ["echo one \\\n  two", "ID=$(echo 3)"]


def test_console_commands_keep_here_documents():
    code = "$ cat > f <<'EOF'\n$ not a command\nend \\\nEOF\n$ cat f\noutput"
    assert console_commands(code) == ["cat > f <<'EOF'\n$ not a command\nend \\\nEOF", "cat f"]


def _alice_calibrations(clients):
    result = clients["alice"]().getUserCalibrationStatuses()
    assert result["OK"], result
    return {status["calibrationID"] for status in result["Value"]}


@pytest.mark.integration
def test_the_user_guide_runs_as_written(stack, clients, tmp_path):
    work = tmp_path / "guide"
    work.mkdir()
    env = stack.user_env("alice")
    before = _alice_calibrations(clients)
    python = PythonSession(work, env)
    shell = ShellSession(work, env)
    try:
        for block in (b for b in code_blocks(GUIDE.read_text()) if _runnable(b)):
            if block.language == "python":
                ok, output = python.run_code(f"user_guide.rst:{block.line}", block.code)
            else:
                ok, output = shell.run_commands(console_commands(block.code))
            assert ok, f"user_guide.rst line {block.line}: this {block.language} block failed\n{block.code}\n" \
                       f"---- output ----\n{output}"
        for output in ("results", "results-again"):
            wait_for(lambda: list((work / output).glob("calib*/steeringFile.xml")), COPY_TIMEOUT,
                     what=f"the agent to copy the richer calibration's results to {output}/")
    finally:
        python.close()
        shell.close()
        left = sorted(_alice_calibrations(clients) - before)
        if left:
            alice = clients["alice"]()
            alice.killCalibrations(left, "end of test_user_guide")
            alice.cleanCalibrations(left)

    assert (work / "samples" / "truth.json").exists()
    written = sorted(work.glob("calibration_*/steeringFile.xml"))
    assert len(written) >= 2, "the Python example and dirac-calibration-result both write a result directory"
    for final in written:
        assert final.read_bytes() != (final.parent / "steeringFile.xml_INPUT").read_bytes()
