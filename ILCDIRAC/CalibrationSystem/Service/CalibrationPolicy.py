"""Who may act on which calibration, in one place (as WMS's JobPolicy is for jobs).

DISET's ``Authorization`` section decides which methods a caller may call at all (users and
workers: any authenticated caller; the agent's: TrustedHost). This policy decides the rest, per
calibration: a user acts on the calibrations of the same user name and group, a trusted host on
all; another user's calibration is answered exactly as a missing one; a worker method also needs
the calibration's worker credential; and only users, not hosts, create calibrations.
"""
from DIRAC import S_ERROR, S_OK
from DIRAC.Core.Security import Properties

from ILCDIRAC.CalibrationSystem.Utilities.WorkerCredential import matches
from ILCDIRAC.Core.Utilities.DErrno import ECALNOTFOUND, ECALNOTWORKER, ECALREQUEST


def isInteger(*values):
    """Whether every value is a real integer: DISET's type check lets booleans through as ints.

    :param values: the values
    :return: bool
    """
    return all(isinstance(value, int) and not isinstance(value, bool) for value in values)


class CalibrationPolicy:
    """The rights of one caller, from the credentials DISET established for the request."""

    def __init__(self, credentials):
        """
        :param dict credentials: the request's ``getRemoteCredentials()``
        """
        self.owner = {
            "Owner": credentials.get("username", ""),
            "OwnerGroup": credentials.get("group", ""),
            "OwnerDN": credentials.get("DN", ""),
        }
        self.trustedHost = Properties.TRUSTED_HOST in credentials.get("properties", [])

    def mayCreate(self):
        """Whether the caller may create a calibration, which then belongs to it.

        :return: S_OK, or S_ERROR(ECALREQUEST) for a host
        """
        if self.trustedHost:
            return S_ERROR(ECALREQUEST, "A calibration belongs to a user: create it with a user proxy, "
                                        "not a host certificate")
        return S_OK()

    def calibration(self, calibrationDB, calibrationID):
        """The calibration, if the caller may act on it.

        :param calibrationDB: the CalibrationDB
        :param calibrationID: what the caller sent as calibration ID
        :return: S_OK(calibration dict); S_ERROR(ECALNOTFOUND) if it does not exist or belongs to
            someone else (the same answer), S_ERROR(ECALREQUEST) for an ID that is no integer
        """
        if not isInteger(calibrationID):
            return S_ERROR(ECALREQUEST, f"A calibration ID is an integer, not {calibrationID!r}")
        result = calibrationDB.getCalibration(calibrationID)
        if not result["OK"] or self.trustedHost:
            return result
        found = result["Value"]
        if (self.owner["Owner"], self.owner["OwnerGroup"]) != (found["Owner"], found["OwnerGroup"]):
            return S_ERROR(ECALNOTFOUND, f"Calibration {calibrationID} does not exist")
        return result

    def workerCalibration(self, calibrationDB, calibrationID, credential):
        """The calibration, if the caller may act as one of its workers: it may act on it and
        presents its worker credential.

        :param calibrationDB: the CalibrationDB
        :param calibrationID: what the caller sent as calibration ID
        :param credential: what the caller presented as the worker credential
        :return: S_OK(calibration dict), or S_ERROR as ``calibration``, or S_ERROR(ECALNOTWORKER)
        """
        result = self.calibration(calibrationDB, calibrationID)
        if result["OK"] and not matches(credential, result["Value"]["WorkerCredentialHash"]):
            return S_ERROR(ECALNOTWORKER,
                           f"Not a worker of calibration {calibrationID}: wrong or missing worker credential")
        return result
