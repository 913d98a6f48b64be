#!/usr/bin/env python
"""
Fetch the result of a finished calibration into a directory and print its final constants.

Writes the steering file with the final constants (steeringFile.xml), the one given at the
start (steeringFile.xml_INPUT), calibration.json (constants and their statistical
uncertainties, settings and history of every step), the plots and, after the photon training, the photon likelihood file. Exits with 1 and
the service's reason while the calibration is running, or if it failed or was killed.

Example:
  $ dirac-calibration-result 12 --output-dir calib12
"""
import os

from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    argumentsOrExit,
    fail,
    formatConstant,
    formatTable,
    idsOrExit,
    valueOrExit,
)
from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import resultFiles


@Script()
def main():
    Script.registerSwitch("", "output-dir=", "directory to write the files to (default ./calibration_<ID>)")
    Script.registerArgument("CalibrationID: the finished calibration")
    switches, arguments = Script.parseCommandLine(ignoreErrors=False)

    (calibrationID,) = idsOrExit(argumentsOrExit(arguments, 1))
    outputDir = dict(switches).get("output-dir") or f"calibration_{calibrationID}"

    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient

    result = valueOrExit(CalibrationClient().getResult(calibrationID))
    written = _write(resultFiles(result), outputDir)
    initial = result["history"][0]["Parameters"] if result["history"] else {}
    print(f"Calibration {calibrationID}: {result['status']} after {len(result['history'])} steps")
    uncertainties = result["uncertainties"]
    rows = [
        (name, formatConstant(initial.get(name, "-")), formatConstant(value), formatConstant(uncertainties.get(name, "-")))
        for name, value in sorted(result["parameters"].items())
    ]
    print(formatTable(("Constant", "Initial", "Final", "Uncertainty"), rows))
    for note in result["statisticsLimited"]:
        print(f"Statistics-limited: {note}")
    print(f"\nFiles written to {os.path.abspath(outputDir)}:")
    for name, size in written:
        print(f"  {name} ({size} bytes)")
    DIRACExit(0)


def _write(files, outputDir):
    """Write {name: bytes} into outputDir; [(name, size)] of what was written."""
    unsafe = sorted(name for name in files if name in ("", ".", "..") or os.path.basename(name) != name)
    if unsafe:
        fail(f"The result holds file names that are not plain names: {unsafe}")
    try:
        os.makedirs(outputDir, exist_ok=True)
        for name, content in files.items():
            with open(os.path.join(outputDir, name), "wb") as stream:
                stream.write(content)
    except OSError as error:
        fail(f"Cannot write the result to {outputDir!r}: {error}")
    return [(name, len(content)) for name, content in sorted(files.items())]


if __name__ == "__main__":
    main()
