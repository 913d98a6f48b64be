#!/usr/bin/env python
"""
Delete ended calibrations with everything they stored, results included.

A running calibration must be killed first. Prints what happened to each calibration; exits
with 1 if any of them could not be deleted.

Example:
  $ dirac-calibration-clean 12
  12: Calibration 12 deleted
"""
from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import clientOrExit, parseCommandLine, idsOrExit, reportOutcomes, valueOrExit


@Script()
def main():
    Script.registerArgument(["CalibrationID: calibration to delete"])
    _, arguments = parseCommandLine()

    calibrationIDs = idsOrExit(arguments)

    DIRACExit(reportOutcomes(valueOrExit(clientOrExit().cleanCalibrations(calibrationIDs))))


if __name__ == "__main__":
    main()
