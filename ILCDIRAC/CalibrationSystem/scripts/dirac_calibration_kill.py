#!/usr/bin/env python
"""
Kill running calibrations: they end as Killed and the CalibrationAgent kills their jobs.

Prints what happened to each calibration; exits with 1 if any of them could not be killed.

Example:
  $ dirac-calibration-kill 12 13 --reason "wrong steering file"
  12: Calibration 12 killed; its jobs are being killed
  13: Calibration 13 killed; its jobs are being killed
"""
from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import clientOrExit, parseCommandLine, idsOrExit, reportOutcomes, valueOrExit


@Script()
def main():
    Script.registerSwitch("", "reason=", "why, kept as the calibration's status message")
    Script.registerArgument(["CalibrationID: calibration to kill"])
    switches, arguments = parseCommandLine()

    calibrationIDs = idsOrExit(arguments)
    reason = dict(switches).get("reason", "")

    DIRACExit(reportOutcomes(valueOrExit(clientOrExit().killCalibrations(calibrationIDs, reason))))


if __name__ == "__main__":
    main()
