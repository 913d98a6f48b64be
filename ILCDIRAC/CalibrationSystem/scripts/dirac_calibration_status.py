#!/usr/bin/env python
"""
Show your calibrations: status, position (stage/phase/step), results of the current step,
jobs, and where the results go.

With --watch the table is refreshed every SECONDS (default 10) until Ctrl-C, or N times with
--count N.
Put calibration IDs before --watch, or write --watch=SECONDS: a number right after --watch is
its interval.

Example:
  $ dirac-calibration-status
  $ dirac-calibration-status 12 13 --watch 5
"""
import sys
import time

from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    REQUEST_FAILED,
    formatTable,
    formatTime,
    idsOrExit,
    usageError,
    valueOrExit,
)

DEFAULT_WATCH_SECONDS = 10
CLEAR_SCREEN = "\033[H\033[2J"
HEADERS = ("ID", "Status", "Stage/Phase/Step", "Results", "Finished", "Jobs", "Created (UTC)", "Ended (UTC)", "Output")


def _defaultWatchInterval(argv):
    """getopt has no optional switch values: give a bare --watch its default interval."""
    arguments = list(argv)
    for index, argument in enumerate(arguments):
        if argument == "--":
            break
        if argument == "--watch":
            following = arguments[index + 1] if index + 1 < len(arguments) else ""
            if not following.replace(".", "", 1).isdigit():
                arguments[index] = f"--watch={DEFAULT_WATCH_SECONDS}"
    return arguments


@Script()
def main():
    Script.registerSwitch("", "watch=", f"refresh every SECONDS (default {DEFAULT_WATCH_SECONDS}) until Ctrl-C")
    Script.registerSwitch("", "count=", "stop after N refreshes (implies --watch)")
    Script.registerArgument(["CalibrationID: show only these calibrations"], mandatory=False)
    sys.argv[1:] = _defaultWatchInterval(sys.argv[1:])
    switches, arguments = Script.parseCommandLine(ignoreErrors=False)

    options = dict(switches)
    wanted = idsOrExit(arguments)
    try:
        interval = float(options.get("watch", DEFAULT_WATCH_SECONDS))
        count = int(options["count"]) if "count" in options else None
        if not 0 < interval < float("inf") or (count is not None and count <= 0):
            raise ValueError
    except ValueError:
        usageError("--watch takes a positive number of seconds and --count a positive number of refreshes")
    watching = "watch" in options or count is not None

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    client = CalibrationClient()
    refreshes, exitCode = 0, 0
    try:
        while True:
            statuses = valueOrExit(client.getUserCalibrationStatuses())
            if watching:
                print(CLEAR_SCREEN if sys.stdout.isatty() else "\n" if refreshes else "", end="")
                print(f"Calibrations at {time.strftime('%Y-%m-%d %H:%M:%S')}, every {interval:g} s (Ctrl-C to stop)")
            exitCode = _show(statuses, wanted)
            sys.stdout.flush()
            refreshes += 1
            if not watching or refreshes == count:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        print()
    DIRACExit(exitCode)


def _show(statuses, wanted):
    """Print the table of the statuses (those of the wanted IDs, if any); the exit code."""
    shown = [s for s in statuses if not wanted or s["calibrationID"] in wanted]
    missing = sorted(set(wanted) - {s["calibrationID"] for s in statuses})
    if shown:
        print(formatTable(HEADERS, [_row(status) for status in shown]))
        for status in shown:
            if status["statusMessage"]:
                print(f"  {status['calibrationID']}: {status['statusMessage']}")
    elif not missing:
        print("You have no calibrations")
    for calibrationID in missing:
        print(f"ERROR: Calibration {calibrationID} does not exist", file=sys.stderr)
    return REQUEST_FAILED if missing else 0


def _row(status):
    jobs = " ".join(f"{name}:{number}" for name, number in sorted(status["jobs"].items())) or "-"
    return (
        status["calibrationID"],
        status["status"],
        f"{status['currentStage']}/{status['currentPhase']}/{status['currentStep']}",
        f"{status['resultsInCurrentStep']}/{status['resultsNeeded']}",
        f"{status['percentageOfFinishedJobs']:.0f}%",
        jobs,
        formatTime(status["creationTime"]),
        formatTime(status["endTime"]),
        _output(status),
    )


def _output(status):
    """Where the results go, whether they are there, and for how long they are kept."""
    if not status["outputPath"]:
        return "-"
    where = " ".join(filter(None, (status["outputPath"], status["outputSE"])))
    if not status["resultsCopied"]:
        return where
    left = status.get("timeLeftBeforeOutputWillBeDeleted")
    if left is None:
        return f"{where} (copied)"
    kept = f"{left / 86400:.1f} d" if left >= 2 * 86400 else f"{left / 3600:.1f} h"
    return f"{where} (copied, kept {kept} more)"


if __name__ == "__main__":
    main()
