#!/usr/bin/env python
"""
Change where the CalibrationAgent copies a calibration's results (copied again if already done).

PATH is an absolute directory on a local deployment, or an LFN directory with the storage
element SE on the grid.

Example:
  $ dirac-calibration-change-output 12 /ilc/user/a/alice/calib12 CERN-DST-EOS
"""
from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    argumentsOrExit,
    clientOrExit,
    idsOrExit,
    parseCommandLine,
    valueOrExit,
)


@Script()
def main():
    Script.registerArgument("CalibrationID: the calibration")
    Script.registerArgument("Path: directory (or LFN directory) to copy the results to")
    Script.registerArgument("SE: storage element of the LFN directory", mandatory=False, default="")
    _, arguments = parseCommandLine()

    argumentsOrExit(arguments, 3)
    calibrationText, path, storageElement = Script.getPositionalArgs(group=True)
    (calibrationID,) = idsOrExit([calibrationText])

    print(valueOrExit(clientOrExit().changeDirectoryToCopyTo(calibrationID, path, storageElement)))
    DIRACExit(0)


if __name__ == "__main__":
    main()
