"""The credential that lets a calibration's worker jobs, and nobody else, act as its workers.

It is derived (HMAC-SHA256) from a secret only the service holds and the calibration's identity,
so the DB keeps just its hash and the service can hand it again to the agent for every
(re)submission; a worker shows it with every call.
"""
import hashlib
import hmac

#: How a job hands the credential to dirac-calibration-worker: in its environment (local jobs)
#: or in a file of its working directory (grid jobs, from the input sandbox).
ENVIRONMENT_VARIABLE = "CALIBRATION_WORKER_CREDENTIAL"
CREDENTIAL_FILE = "calibration_worker_credential"


def loadKey(path):
    """The HMAC key made from a secret file (by default the service's host key).

    :param str path: the secret file, at least 32 bytes
    :return: the key (bytes); OSError if the file cannot be read, ValueError if it is too short
    """
    with open(path, "rb") as stream:
        secret = stream.read()
    if len(secret) < 32:
        raise ValueError(f"The worker credential secret {path} holds fewer than 32 bytes")
    return hashlib.sha256(secret).digest()


def workerCredential(key, calibrationID, creationTime):
    """The credential of a calibration's workers.

    :param bytes key: from ``loadKey``
    :param int calibrationID: the calibration
    :param datetime.datetime creationTime: its creation time, as stored in the DB
    :return: the credential, a hex string
    """
    message = f"calibration:{calibrationID}:{creationTime.isoformat()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def credentialHash(credential):
    """What the DB keeps of a credential.

    :param str credential: the credential
    :return: its SHA-256, a hex string
    """
    return hashlib.sha256(credential.encode()).hexdigest()


def matches(credential, storedHash):
    """Whether a presented credential is the one whose hash is stored (constant time).

    :param credential: what a caller presented
    :param str storedHash: the calibration's WorkerCredentialHash
    :return: True if they match
    """
    return isinstance(credential, str) and hmac.compare_digest(credentialHash(credential), storedHash)
