"""Running a reStructuredText guide as a test: its code blocks, console commands and sessions.

A guide's ``console`` blocks are run command by command (a line starting with ``$ ``, with its
continuation lines and here-document lines; the other lines are example output, not compared)
in a long-lived bash session; its ``python`` blocks in one long-lived Python process, so that a
later block uses what an earlier one defined. A block marked ``:class: not-run`` is only shown.
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
from typing import NamedTuple

NOT_RUN = "not-run"
BLOCK_TIMEOUT = 150  # seconds

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<language>\S+)\s*$")
_OPTION = re.compile(r"^\s+:(?P<name>[\w-]+):\s*(?P<value>.*)$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<delimiter>\w+)\1")

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
    """The commands of a console block: lines starting with '$ ', joined with their continuation
    lines (after a trailing backslash) and here-document lines (up to the delimiter)."""
    commands, continued, delimiter = [], False, None
    for line in code.splitlines():
        if delimiter is not None:
            commands[-1] += "\n" + line
            if line.strip() == delimiter:
                delimiter = None
            continue
        if continued:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        here = _HEREDOC.search(line)
        delimiter = here["delimiter"] if here else None
        continued = delimiter is None and line.endswith("\\")
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


class ShellSession(Session):
    """A bash session running console blocks."""

    def __init__(self, cwd, env):
        super().__init__(lambda marker: ["bash", "--noprofile", "--norc"], cwd, env)

    def run_commands(self, commands, timeout=BLOCK_TIMEOUT):
        """(True if every command succeeded, the output)."""
        return self.run(bash_script(commands, self.marker), timeout)


class PythonSession(Session):
    """One Python process running blocks of code in a shared namespace."""

    def __init__(self, cwd, env):
        super().__init__(lambda marker: [sys.executable, "-u", "-c", PYTHON_DRIVER, marker], cwd, env)

    def run_code(self, name, code, timeout=BLOCK_TIMEOUT):
        """(True if the code ran without an exception, its output)."""
        return self.run(json.dumps({"name": name, "code": code}) + "\n", timeout)
