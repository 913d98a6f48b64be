#!/usr/bin/env python
"""
Fetch the result of a calibration into a directory and print its constants.

Writes the steering file with the final constants (steeringFile.xml), the one given at the
start (steeringFile.xml_INPUT), calibration.json (constants and their statistical
uncertainties, settings and history of every step), the plots, summary.html (all of it on one
page) and, after the photon training, the photon likelihood file. Exits with 1 and the service's
reason while the calibration is running.

A calibration that failed or was killed still has a result: the constants it had reached. It is
written marked as not final: steeringFile_NOT_FINAL.xml instead of steeringFile.xml, a file
NOT_FINAL.txt and "final": false in calibration.json, with the reason and what to try next; the
script then exits with 1 and prints them.

A directory that holds another calibration's result is refused, so that two results never mix;
--replace removes that result's files first.

--compare prints the constants next to a reference: an earlier calibration (its ID) or a
steering file, with their difference.

Example:
  $ dirac-calibration-result 12 --output-dir calib12
  $ dirac-calibration-result 13 --output-dir calib12 --replace --compare 12
  $ dirac-calibration-result 13 --compare CLICPerformance/clicConfig/clicReconstruction.xml
"""
import os
import sys

from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script

from ILCDIRAC.CalibrationSystem.Client.ScriptUtilities import (
    clientOrExit,
    parseCommandLine,
    REQUEST_FAILED,
    argumentsOrExit,
    fail,
    formatConstant,
    formatTable,
    idsOrExit,
    parseID,
    usageError,
    valueOrExit,
)


@Script()
def main():
    Script.registerSwitch("", "output-dir=", "directory to write the files to (default ./calibration_<ID>)")
    Script.registerSwitch("", "replace", "replace another calibration's result found in the output directory")
    Script.registerSwitch("", "compare=", "ID of an earlier calibration, or a steering file, to compare with")
    Script.registerArgument("CalibrationID: the calibration")
    switches, arguments = parseCommandLine()

    (calibrationID,) = idsOrExit(argumentsOrExit(arguments, 1))
    options = dict(switches)
    outputDir = options.get("output-dir") or f"calibration_{calibrationID}"

    from ILCDIRAC.CalibrationSystem.Client.ResultDirectory import OutputDirectoryError, writeResultDirectory
    from ILCDIRAC.CalibrationSystem.Procedure.constants import written_value
    from ILCDIRAC.CalibrationSystem.Utilities.CalibrationResults import NOT_FINAL_MARKER, resultFiles

    client = clientOrExit()
    result, final = _resultOrExit(client.getResult(calibrationID))
    reference = _reference(client, options["compare"], result) if "compare" in options else None
    files = resultFiles(result)
    try:
        written = writeResultDirectory(outputDir, files, calibrationID, replace="replace" in options)
    except OutputDirectoryError as error:
        fail(str(error))
    initial = result["history"][0]["Parameters"] if result["history"] else {}
    print(f"Calibration {calibrationID}: {result['status']} after {len(result['history'])} steps"
          + ("" if final else " (NOT FINAL)"))
    uncertainties = result["uncertainties"]
    rows = [
        (name, formatConstant(initial.get(name, "-")), formatConstant(written_value(value)),  # as the file says
         formatConstant(uncertainties.get(name, "-")))
        for name, value in sorted(result["parameters"].items())
    ]
    print(formatTable(("Constant", "Initial", "Final" if final else "Reached", "Uncertainty"), rows))
    for note in result["statisticsLimited"]:
        print(f"Statistics-limited: {note}")
    if reference is not None:
        _printComparison(result, *reference)
    print(f"\nFiles written to {os.path.abspath(outputDir)}:")
    for name, size in written:
        print(f"  {name} ({size} bytes)")
    if not final:
        print("ERROR: " + files[NOT_FINAL_MARKER].decode(), end="", file=sys.stderr)
        DIRACExit(REQUEST_FAILED)
    DIRACExit(0)


def _resultOrExit(answer):
    """(result, whether final) of getResult: a finished calibration's, or the constants a failed or
    killed one reached (the ``Result`` of the S_ERROR); exits with the service's reason otherwise."""
    if answer["OK"]:
        return answer["Value"], True
    if isinstance(answer.get("Result"), dict):
        return answer["Result"], False
    return valueOrExit(answer), True


def _reference(client, text, result):
    """(label, constants, uncertainties) of --compare: an earlier calibration or a steering file."""
    if text.strip().isdigit():
        try:
            referenceID = parseID(text)
        except ValueError as error:
            usageError(f"--compare {error}")
        other, final = _resultOrExit(client.getResult(referenceID))
        label = f"calibration {referenceID} ({other['status']}{'' if final else ', not final'})"
        return label, other["parameters"], other["uncertainties"]
    return f"steering file {text}", _steeringConstants(text, result), {}


def _steeringConstants(path, result):
    """The constants of ``result`` as the steering file at ``path`` sets them."""
    from ILCDIRAC.CalibrationSystem.Procedure.errors import ProcedureError
    from ILCDIRAC.CalibrationSystem.Procedure.steering import read_constants

    try:
        with open(path, "rb") as stream:
            content = stream.read()
    except OSError as error:
        usageError(f"--compare {path!r} is neither a calibration ID nor a readable steering file: {error.strerror}")
    try:
        return read_constants(content, sorted(result["parameters"]), result["settings"])
    except ProcedureError as error:
        usageError(f"--compare: cannot read the constants of {path!r}: {error}")


def _printComparison(result, label, constants, uncertainties):
    from ILCDIRAC.CalibrationSystem.Client.ResultComparison import comparisonTable

    print(f"\nCompared with {label}:")
    print(comparisonTable(result["parameters"], constants, result["uncertainties"], uncertainties))


if __name__ == "__main__":
    main()
