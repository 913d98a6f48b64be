#!/usr/bin/env python
"""
Run a complete calibration on this machine: private MariaDB, test PKI, CalibrationService,
CalibrationAgent, local workers and the built-in detector model (`make demo`).

It needs no DIRAC installation or configuration: it makes its own under --workdir.

Example:
  $ dirac-calibration-demo --workdir run/demo --jobs 8
"""
import argparse
import sys


def main():
    parser = argparse.ArgumentParser(prog="dirac-calibration-demo", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--workdir", required=True, help="directory of the local stack and the samples")
    parser.add_argument("--jobs", type=int, default=8, help="number of worker jobs (default 8)")
    parser.add_argument("--events-per-file", type=int, default=400, help="synthetic events per file (default 400)")
    parser.add_argument("--files-per-sample", type=int, default=10, help="synthetic files per particle (default 10)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the end (default 900)")
    parser.add_argument("--keep-running", action="store_true", help="leave the stack running at the end")
    args = parser.parse_args()
    if args.jobs < 1 or args.events_per_file < 1 or args.files_per_sample < 1:
        parser.error("--jobs, --events-per-file and --files-per-sample must be positive")

    from ILCDIRAC.CalibrationSystem.LocalStack.demo import run_demo
    from ILCDIRAC.CalibrationSystem.LocalStack.stack import StackError

    try:
        return run_demo(args.workdir, args.jobs, args.events_per_file, args.files_per_sample, args.timeout,
                        args.keep_running)
    except (StackError, RuntimeError, TimeoutError, OSError, ValueError) as error:
        print(f"dirac-calibration-demo: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
