"""What the dirac-calibration-* user scripts share: argument parsing, tables, exiting on errors.

Kept free of any service call so that every script reports the service's own message and
this module can be tested without a running service.
"""
import contextlib
import logging
import sys

from DIRAC import exit as DIRACExit
from DIRAC.Core.Base.Script import Script
from DIRAC.Core.Utilities.ReturnValues import SErrorException, returnValueOrRaise

#: Exit code of a script called with bad arguments (DIRAC's own for unparsable switches).
USAGE_ERROR = 2
#: Exit code of a script whose request the service refused or could not serve.
REQUEST_FAILED = 1


def parseID(text):
    """The calibration ID written as ``text``; ValueError saying what an ID looks like."""
    try:
        calibrationID = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a calibration ID: IDs are positive integers") from None
    if calibrationID <= 0:
        raise ValueError(f"{text!r} is not a calibration ID: IDs are positive integers")
    return calibrationID


def parseIDs(texts):
    """The calibration IDs of a list of arguments, in order and without repetitions."""
    return list(dict.fromkeys(parseID(text) for text in texts))


def argumentsOrExit(arguments, maximum):
    """The script's positional arguments; a usage error if there are more than ``maximum``
    (DIRAC itself only checks that the mandatory ones are there)."""
    if len(arguments) > maximum:
        usageError(f"Unexpected arguments {' '.join(arguments[maximum:])}: see --help")
    return arguments


def idsOrExit(texts):
    """The calibration IDs of a script's arguments; a usage error if one is not an ID."""
    try:
        return parseIDs(texts)
    except ValueError as error:
        usageError(str(error))


def parseAssignment(text, switch):
    """('TYPE', 'VALUE') of a ``--switch TYPE=VALUE`` argument; ValueError otherwise."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip() or not value.strip():
        raise ValueError(f"--{switch} expects TYPE=VALUE (e.g. gamma=...), not {text!r}")
    return key.strip(), value.strip()


def helpRequested(arguments):
    """Whether a command line asks for the help (-h or --help before a '--').

    :param list arguments: the command line without the program name
    :return: bool
    """
    for argument in arguments:
        if argument == "--":
            return False
        if argument in ("-h", "--help") or argument.startswith("--help="):
            return True
    return False


def parseCommandLine():
    """``Script.parseCommandLine(ignoreErrors=False)`` with DIRAC's log messages sent to stderr
    from then on (its 'Running without remote configuration' banner, the service's notes), so that
    stdout carries only what the script prints, as ``ID=$(dirac-calibration-create ...)`` needs.
    The help, which is what --help prints, stays on stdout.

    :return: (switches, arguments), as ``Script.parseCommandLine`` returns them
    """
    if helpRequested(sys.argv[1:]):
        return Script.parseCommandLine(ignoreErrors=False)
    for handler in logging.getLogger("dirac").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):  # the log handlers DIRAC makes while parsing take sys.stdout
        return Script.parseCommandLine(ignoreErrors=False)


def usageError(message):
    """Stop a script that was called wrongly, saying what is wrong."""
    print(f"ERROR: {message}", file=sys.stderr)
    DIRACExit(USAGE_ERROR)


def fail(message):
    """Stop a script whose request failed, with the reason (usually the service's message)."""
    print(f"ERROR: {message}", file=sys.stderr)
    DIRACExit(REQUEST_FAILED)


def valueOrExit(result):
    """The value of an S_OK; for an S_ERROR, print its message and exit with REQUEST_FAILED."""
    try:
        return returnValueOrRaise(result)
    except SErrorException as error:
        fail(error.result["Message"])


def clientOrExit():
    """A CalibrationClient; if the configuration does not know the service (env.sh not sourced),
    exit saying what to do instead of failing at the first call."""
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import (
        NO_SERVICE_MESSAGE,
        CalibrationClient,
        serviceConfigured,
    )

    if not serviceConfigured():
        fail(NO_SERVICE_MESSAGE)
    return CalibrationClient()


def reportOutcomes(outcomes):
    """Print the per-calibration answer of killCalibrations/cleanCalibrations; the exit code
    (REQUEST_FAILED if any of them failed)."""
    failed = False
    for calibrationID, message in sorted(outcomes.items()):
        isError = message.startswith("Error: ")
        failed |= isError
        print(f"{calibrationID}: {message}", file=sys.stderr if isError else sys.stdout)
    return REQUEST_FAILED if failed else 0


def formatTable(headers, rows):
    """A plain-text table: columns as wide as their widest cell, numbers right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(text) for text in column) for column in zip(headers, *cells)]
    numeric = [all(_isNumber(row[i]) for row in cells) and bool(cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(
            text.rjust(width) if isNumber else text.ljust(width)
            for text, width, isNumber in zip(row, widths, numeric)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in cells])


def _isNumber(text):
    try:
        float(text.rstrip("%"))
    except ValueError:
        return False
    return True


def formatTime(value):
    """A time from the service (datetime, UTC) as 'YYYY-MM-DD HH:MM:SS'; '-' if there is none."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def formatConstant(value):
    """A calibration constant: a float, or the list of a FloatVec parameter such as CalibrECAL."""
    if isinstance(value, (list, tuple)):
        return ", ".join(formatConstant(item) for item in value)
    return f"{value:.6g}" if isinstance(value, float) else str(value)
