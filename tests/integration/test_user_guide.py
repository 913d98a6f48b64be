"""The user guide runs as written: every code block a user would type, against the real stack.

The convention (also stated at the top of docs/user_guide.rst): the ``python`` and ``console``
code blocks of the guide run in document order, as alice, in an empty directory. The Python
blocks share one Python process, so that a later block uses what an earlier one defined; in a
console block each line starting with ``$ `` (with its continuation lines) is a command, run in
one bash session, and the other lines are example output, not compared. A block marked
``:class: not-run`` is only shown. A guide that drifts from the code fails here.
"""
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import wait_for

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user_guide.rst"
RUNNABLE = ("python", "console")
NOT_RUN = "not-run"
BLOCK_TIMEOUT = 150  # seconds; the slowest block waits for a two-phase calibration (~25 s)
COPY_TIMEOUT = 60  # seconds for the agent to copy finished results to their outputPath

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<language>\S+)\s*$")
_OPTION = re.compile(r"^\s+:(?P<name>[\w-]+):\s*(?P<value>.*)$")

#: Runs the guide's Python blocks: one JSON line {"name", "code"} per block on stdin, executed in
#: one namespace; after each block a line "<marker> ok" or "<marker> failed" (after the traceback).
PYTHON_DRIVER = r"""
import json, sys, traceback
marker, namespace = sys.argv[1], {"__name__": "__main__"}
for line in sys.stdin:
    block = json.loads(line)
    try:
        exec(compile(block["code"], block["name"], "exec"), namespace)
        outcome = "ok"
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        outcome = "failed"
    print(f"\n{marker} {outcome}", flush=True)
"""


class Block(NamedTuple):
    line: int
    language: str
    classes: tuple
    code: str

    @property
    def runnable(self):
        return self.language in RUNNABLE and NOT_RUN not in self.classes


def _indentation(line):
    return len(line) - len(line.lstrip())


def code_blocks(text):
    """The code blocks of a reStructuredText document, in order."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if not match:
            continue
        start, indent, options = index, len(match["indent"]), {}
        while index < len(lines) and _OPTION.match(lines[index]):
            option = _OPTION.match(lines[index])
            options[option["name"]] = option["value"]
            index += 1
        body = []
        while index < len(lines) and (not lines[index].strip() or _indentation(lines[index]) > indent):
            body.append(lines[index])
            index += 1
        code = textwrap.dedent("\n".join(body)).strip("\n")
        blocks.append(Block(start, match["language"], tuple(options.get("class", "").split()), code))
    return blocks


def console_commands(code):
    """The commands of a console block: lines starting with '$ ', joined with their continuations."""
    commands, continued = [], False
    for line in code.splitlines():
        if continued:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.endswith("\\")
    return commands


def bash_script(commands, marker):
    """Run each command unless an earlier one of the block failed; then report with the marker.

    Braces keep assignments (ID=$(...)) in the session; stdin is /dev/null so that no command
    reads the rest of the script.
    """
    parts = ["__failed="]
    for command in commands:
        parts.append(
            f'if [ -z "$__failed" ]; then\nprintf "%s\\n" {shlex.quote("$ " + command)}\n'
            f"{{ {command}\n}} </dev/null\n__status=$?\n"
            f'[ "$__status" -eq 0 ] || __failed="$__status"\nfi'
        )
    parts.append('[ -z "$__failed" ] || echo "(exit code $__failed)"')
    parts.append(f'echo; echo "{marker} ${{__failed:+failed}}${{__failed:-ok}}"')
    return "\n".join(parts) + "\n"


class Session:
    """A long-lived process that runs one block at a time and says when each has ended."""

    def __init__(self, command, cwd, env):
        """:param command: callable(marker) -> the command line of the session's process"""
        self.marker = f"@@guide-{uuid.uuid4().hex}@@"
        self.process = subprocess.Popen(
            command(self.marker), cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, text, timeout=BLOCK_TIMEOUT):
        """(True if the block succeeded, its output)."""
        self.process.stdin.write(text)
        self.process.stdin.flush()
        output, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.close()
                return False, "".join(output) + f"\n(no end after {timeout} s: stopped)"
            if line is None:
                return False, "".join(output) + f"\n(the session ended, exit code {self.process.wait()})"
            if line.startswith(self.marker):
                return line.split()[-1] == "ok", "".join(output)
            output.append(line)

    def close(self):
        """End the session and whatever it still runs (its own process group)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


def test_the_guide_marks_every_block_it_does_not_run():
    blocks = code_blocks(GUIDE.read_text())
    unmarked = [b.line for b in blocks if b.language not in RUNNABLE and NOT_RUN not in b.classes]
    assert not unmarked, f"user_guide.rst lines {unmarked}: code blocks that are neither python/console nor not-run"
    runnable = [b for b in blocks if b.runnable]
    assert sum(b.language == "python" for b in runnable) >= 5
    assert sum(b.language == "console" for b in runnable) >= 3
    assert all(console_commands(b.code) for b in runnable if b.language == "console")


def test_console_commands_keep_continuations_and_skip_output():
    code = "$ echo one \\\n  two\none two\n$ ID=$(echo 3)\n3"
    assert console_commands(code) == ["echo one \\\n  two", "ID=$(echo 3)"]


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
    python = Session(lambda marker: [sys.executable, "-u", "-c", PYTHON_DRIVER, marker], work, env)
    shell = Session(lambda marker: ["bash", "--noprofile", "--norc"], work, env)
    try:
        for block in (b for b in code_blocks(GUIDE.read_text()) if b.runnable):
            if block.language == "python":
                ok, output = python.run(json.dumps({"name": f"user_guide.rst:{block.line}", "code": block.code}) + "\n")
            else:
                ok, output = shell.run(bash_script(console_commands(block.code), shell.marker))
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
