#!/usr/bin/env python
"""
Show your calibrations: status, position (stage/phase/step), results of the current step,
jobs, and where the results go.

With --watch the table is refreshed until Ctrl-C, or N times with --count N, every 10 s or
every --interval DURATION, written with its unit: 30s, 2m. The jobs of a calibration that has
ended and are not yet known to have ended are shown as Ending.

Example:
  $ dirac-calibration-status
  $ dirac-calibration-status 12 13 --watch --interval 30s
"""
import sys
import time

from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.CalibrationStatus import (
    ATTEMPT_RUNNING,
    ATTEMPT_SUBMITTING,
    ATTEMPT_WAITING,
    RUNNING,
)
from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    clientOrExit,
    parseCommandLine,
    REQUEST_FAILED,
    formatTable,
    formatTime,
    idsOrExit,
    usageError,
    valueOrExit,
)

DEFAULT_WATCH_SECONDS = 10
#: The job states of workers that have not been seen to end, and how they are shown once their
#: calibration has ended.
LIVE_ATTEMPT_STATUSES = (ATTEMPT_SUBMITTING, ATTEMPT_WAITING, ATTEMPT_RUNNING)
ENDING = "Ending"
#: Seconds per unit of an --interval.
DURATION_UNITS = {"s": 1, "m": 60}
CLEAR_SCREEN = "\033[H\033[2J"
HEADERS = ("ID", "Status", "Stage/Phase/Step", "Results", "Finished", "Jobs", "Created (UTC)", "Ended (UTC)", "Output")


def parseDuration(text):
    """Seconds of a duration written with its unit ('30s', '2m', '0.5s'); ValueError otherwise.

    A bare number is refused: whether it meant seconds (or, after --watch, a calibration ID)
    cannot be told.
    """
    number = text.strip().rstrip("sm")
    unit = text.strip()[len(number):]
    try:
        value = float(number) * DURATION_UNITS[unit]
    except (KeyError, ValueError):
        raise ValueError(f"--interval {text!r}: write a positive duration with its unit, e.g. 30s or 2m") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"--interval {text!r}: write a positive duration with its unit, e.g. 30s or 2m")
    return value


def _refuseWatchValue(arguments):
    """--watch takes no value any more: say how to give the interval instead of a getopt error."""
    for argument in arguments:
        if argument == "--":
            break
        if argument.startswith("--watch="):
            usageError(f"{argument}: --watch takes no value; give the interval with its unit, e.g. "
                       f"--watch --interval {argument.partition('=')[2]}s")


@Script()
def main():
    Script.registerSwitch("", "watch", f"refresh the table until Ctrl-C (every {DEFAULT_WATCH_SECONDS}s)")
    Script.registerSwitch("", "interval=", "DURATION between refreshes, with its unit: 30s, 2m (implies --watch)")
    Script.registerSwitch("", "count=", "stop after N refreshes (implies --watch)")
    Script.registerArgument(["CalibrationID: show only these calibrations"], mandatory=False)
    _refuseWatchValue(sys.argv[1:])
    switches, arguments = parseCommandLine()

    options = dict(switches)
    wanted = idsOrExit(arguments)
    try:
        interval = parseDuration(options["interval"]) if "interval" in options else DEFAULT_WATCH_SECONDS
    except ValueError as error:
        usageError(str(error))
    try:
        count = int(options["count"]) if "count" in options else None
        if count is not None and count <= 0:
            raise ValueError
    except ValueError:
        usageError(f"--count {options['count']!r}: give a positive number of refreshes")
    watching = bool({"watch", "interval", "count"} & set(options))

    client = clientOrExit()
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


def jobCounts(status):
    """{job state: number of workers} to show for a calibration.

    The job states are those the agent saw at its last sync with the job backend. A calibration
    often ends between two syncs (the service analyses the last step as soon as the results are
    in), so its workers may still be recorded as Waiting or Running although they are leaving (or
    will be killed after a grace time): for an ended calibration they are counted as Ending.
    """
    counts = dict(status["jobs"])
    if status["status"] != RUNNING:
        ending = sum(counts.pop(state, 0) for state in LIVE_ATTEMPT_STATUSES)
        if ending:
            counts[ENDING] = ending
    return counts


def _row(status):
    jobs = " ".join(f"{name}:{number}" for name, number in sorted(jobCounts(status).items())) or "-"
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
