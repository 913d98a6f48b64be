"""Error codes of the CalibrationSystem, registered with DIRAC's the way an extension does it.

DIRAC merges ``extra_dErrName``, ``extra_dErrorCode`` and ``extra_dStrError`` of every
extension's ``Core/Utilities/DErrno.py`` into its own ``DErrno`` when a service, an agent or a
script starts (``includeExtensionErrors``). An ``S_ERROR(code, message)`` then reads
"<description> ( <code> : <message>)" and carries the code in its ``Errno``, which
``DErrno.cmpError(result, code)`` tests on either side of an RPC, whether or not the reader
registered the codes.
"""
from DIRAC.Core.Utilities.DErrno import cmpError

#: No such calibration, or one of another user (both answered alike).
ECALNOTFOUND = 3101
#: A request that cannot be served as sent: a malformed argument or result, the wrong step or worker.
ECALREQUEST = 3102
#: A worker method called without the calibration's worker credential.
ECALNOTWORKER = 3103
#: A calibration in a state the request does not apply to (killing an ended one, cleaning a running one).
ECALSTATE = 3104
#: Something that will exist later (the merged photon likelihood before the training ends): ask again.
ECALNOTREADY = 3105
#: A step commit found the step already moved on: another agent, service thread or retried call did it.
ECALSTEPMOVED = 3106
#: A step could not be analysed for a reason that is not physics (a stored result that could not be
#: read, a fault of the process): the step stays as it is and is analysed again.
ECALANALYSIS = 3107

extra_dErrName = {
    "ECALNOTFOUND": ECALNOTFOUND,
    "ECALREQUEST": ECALREQUEST,
    "ECALNOTWORKER": ECALNOTWORKER,
    "ECALSTATE": ECALSTATE,
    "ECALNOTREADY": ECALNOTREADY,
    "ECALSTEPMOVED": ECALSTEPMOVED,
    "ECALANALYSIS": ECALANALYSIS,
}
extra_dErrorCode = {code: name for name, code in extra_dErrName.items()}
extra_dStrError = {
    ECALNOTFOUND: "Calibration not found",
    ECALREQUEST: "Invalid calibration request",
    ECALNOTWORKER: "Not a worker of the calibration",
    ECALSTATE: "Calibration in another state",
    ECALNOTREADY: "Not available yet",
    ECALSTEPMOVED: "Calibration step already moved on",
    ECALANALYSIS: "Step analysis failed, to be retried",
}

#: Errors that asking again cannot cure: a worker that gets one stops at once.
REFUSALS = (ECALNOTFOUND, ECALREQUEST, ECALNOTWORKER, ECALSTATE)


def isRefusal(result):
    """Whether a service answer is a refusal that retrying cannot cure.

    :param dict result: an S_OK/S_ERROR structure
    :return: True for an S_ERROR with one of the REFUSALS codes
    """
    return not result["OK"] and any(cmpError(result, code) for code in REFUSALS)
