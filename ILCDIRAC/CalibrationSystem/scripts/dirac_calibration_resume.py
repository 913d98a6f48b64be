#!/usr/bin/env python
"""
Resume a failed or killed calibration from one of its completed steps, and print the new
calibration's ID.

The new calibration keeps the history of the old one up to that step (default: the last
completed one), runs the step again with the constants it ran with and goes on from there, with
the same input files, steering file and settings except those changed with --set. A resume may
change digitisationAccuracy, pandoraPFAAccuracy, nMaxIterationsPerPhase,
fractionOfFinishedJobsNeededToStartNextStep, stopStage, stopPhase, numberOfJobs, outputPath and
outputSE; the old calibration stays as it was.

Example:
  $ dirac-calibration-resume 12 --set nMaxIterationsPerPhase=50 --set numberOfJobs=20
  14
  $ dirac-calibration-resume 13 --from-step 4 --set digitisationAccuracy=0.03
  15
"""
import json

from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    argumentsOrExit,
    idsOrExit,
    parseAssignment,
    usageError,
    valueOrExit,
)


@Script()
def main():
    Script.registerSwitch("", "from-step=", "completed step to run again first (default: the last completed one)")
    Script.registerSwitch("", "set=", "SETTING=VALUE: a setting to change, VALUE in JSON (repeatable)")
    Script.registerArgument("CalibrationID: the failed or killed calibration")
    switches, arguments = Script.parseCommandLine(ignoreErrors=False)

    (calibrationID,) = idsOrExit(argumentsOrExit(arguments, 1))
    try:
        fromStep, changes = resumeOptions(switches)
    except ValueError as error:
        usageError(str(error))

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import resumeCalibration

    print(valueOrExit(resumeCalibration(calibrationID, fromStep, **changes)))


def resumeOptions(switches):
    """(step to resume from or None, {setting: value}) from the script's switches.

    :param list switches: (name, value) pairs as ``Script.parseCommandLine`` gives them
    :return: tuple; ValueError saying what is wrong with a switch
    """
    fromStep, changes = None, {}
    for key, value in switches:
        if key == "from-step":
            try:
                fromStep = int(value)
            except ValueError:
                raise ValueError(f"--from-step {value}: a step is a number (see dirac-calibration-status)") from None
        elif key == "set":
            name, text = parseAssignment(value, "set")
            if name in changes:
                raise ValueError(f"--set gives {name} twice")
            changes[name] = _settingValue(text)
    return fromStep, changes


def _settingValue(text):
    """A --set value: JSON (numbers, true/false, lists), or else the text itself (a path)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


if __name__ == "__main__":
    main()
