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
    """The HMAC key made from a secret file (by default the service's host key)."""
    with open(path, "rb") as stream:
        secret = stream.read()
    if len(secret) < 32:
        raise ValueError(f"The worker credential secret {path} holds fewer than 32 bytes")
    return hashlib.sha256(secret).digest()


def workerCredential(key, calibrationID, creationTime):
    """The credential of a calibration's workers."""
    message = f"calibration:{calibrationID}:{creationTime.isoformat()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def credentialHash(credential):
    """What the DB keeps of a credential."""
    return hashlib.sha256(credential.encode()).hexdigest()


def matches(credential, storedHash):
    """Whether a presented credential is the one whose hash is stored (constant time)."""
    return isinstance(credential, str) and hmac.compare_digest(credentialHash(credential), storedHash)
