"""Start, stop or inspect the self-contained local CalibrationSystem stack.

Usage::

    dirac-calibration-local-stack start  --workdir DIR
    dirac-calibration-local-stack status --workdir DIR
    dirac-calibration-local-stack stop   --workdir DIR

``start`` creates (once) a test PKI, a private MariaDB and a dirac.cfg in DIR, then runs the
Calibration service and agent in the background; ``source DIR/env.sh`` afterwards makes
``python`` and the ``dirac-*`` commands act as the user alice. This is a plain argparse script,
not a DIRAC ``@Script``: it runs before any DIRAC configuration exists.
"""

import argparse
import json
import sys

from ILCDIRAC.CalibrationSystem.LocalStack.mariadb import MariaDBError
from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIError
from ILCDIRAC.CalibrationSystem.LocalStack.stack import LocalStack, StackError

#: Exit code of ``status`` when some part of the stack is not running (as systemctl does).
NOT_RUNNING = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dirac-calibration-local-stack",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--workdir", required=True,
                        help="directory holding the stack's certificates, database, cfg, logs and state")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for MariaDB and the service to come up (default 60)")
    return parser


def _print_started(status: dict) -> None:
    print(f"Local CalibrationSystem stack running in {status['workdir']}")
    print(f"  service:  {status['service_url']}")
    print(f"  act as alice:     source {status['env']['alice']}")
    print(f"  act as bob:       source {status['env']['bob']}")
    print(f"  act as the host:  source {status['env']['host']}")
    print(f"  logs:     {status['workdir']}/logs")
    print(f"  stop it:  dirac-calibration-local-stack stop --workdir {status['workdir']}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stack = LocalStack(args.workdir, start_timeout=args.timeout)
    try:
        if args.action == "start":
            stack.start()
            _print_started(stack.status())
        elif args.action == "stop":
            stack.stop()
            print(f"Local CalibrationSystem stack in {stack.workdir} stopped")
        else:
            status = stack.status()
            print(json.dumps(status, indent=2))
            return 0 if status["running"] else NOT_RUNNING
    except (StackError, PKIError, MariaDBError) as exc:
        print(f"dirac-calibration-local-stack {args.action}: error: {exc}", file=sys.stderr)
        if args.action == "start":
            print(f"Whatever did start keeps running; stop it with: dirac-calibration-local-stack stop "
                  f"--workdir {stack.workdir}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
