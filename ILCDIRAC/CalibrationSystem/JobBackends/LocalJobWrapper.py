"""Runs one local job and records its exit code: ``python -m ...LocalJobWrapper JOBDIR -- CMD...``.

The exit code is written atomically when the command ends, so the backend can tell a job
that finished (any code) from one whose processes were killed or vanished (no code).
"""
import os
import subprocess
import sys


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        print("usage: LocalJobWrapper JOBDIR -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    jobDir, command = argv[0], argv[2:]
    try:
        code = subprocess.call(command)
    except OSError as error:
        print(f"Cannot run {command[0]}: {error}", file=sys.stderr)
        code = 127
    partial = os.path.join(jobDir, "exit_code.partial")
    with open(partial, "w") as stream:
        stream.write(str(code))
    os.replace(partial, os.path.join(jobDir, "exit_code"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
