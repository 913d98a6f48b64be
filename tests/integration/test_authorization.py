"""Who may call what on the CalibrationService, over real TLS.

Every ``export_`` method of the handler (DIRAC's inherited ones included) is called as:

- ``alice``: the owner of the calibration (for worker methods: with no credential),
- ``bob``: another user of another group (for worker methods: holding the right credential),
- ``host``: the host certificate, a TrustedHost (for worker methods: with no credential),
- ``stranger``: a proxy from the stack's own CA whose DN is not in the Registry, so only
  ``Authorization/Default = authenticated`` stands between it and the methods with no rule,
- and, for the worker methods, a worker with the calibration's credential (alice's proxy as a
  grid job has it, the host certificate as a local job has it) and alice and the host holding
  the credential of another calibration.

``MATRIX`` is the specification; it must cover exactly the methods the handler exports, so a new
method cannot slip in unreviewed. Every refusal must leave the DB as it was. The agent is stopped
for the module, so no worker job touches the calibrations used here.
"""
import inspect
import secrets
import socket
import ssl
import subprocess

import numpy as np
import pytest

from conftest import SOFTWARE_VERSION

pytestmark = pytest.mark.integration

ALLOWED = "allowed"
UNAUTHORIZED = "refused: Unauthorized query"  # DISET's rule (CS Authorization or auth_ in code)
NOT_OWNER = "refused: does not exist"  # the handler hides other users' calibrations
NO_CREDENTIAL = "refused: worker credential"  # the handler's worker-credential check
USERS_ONLY = "refused: belongs to a user"  # a host cannot own a calibration

ALICE, BOB, HOST, STRANGER = "alice", "bob", "host", "stranger"
WORKER_ALICE, WORKER_HOST = "worker@alice", "worker@host"
ALICE_WRONG, HOST_WRONG = "alice+wrong-credential", "host+wrong-credential"

#: Worker-method callers: (identity, which credential it shows).
WORKER_CALLERS = {
    ALICE: (ALICE, "none"),
    BOB: (BOB, "right"),
    HOST: (HOST, "none"),
    STRANGER: (STRANGER, "right"),
    WORKER_ALICE: (ALICE, "right"),
    WORKER_HOST: (HOST, "right"),
    ALICE_WRONG: (ALICE, "wrong"),
    HOST_WRONG: (HOST, "wrong"),
}
#: The username the service sees for each identity.
USERNAMES = {ALICE: "alice", BOB: "bob", HOST: "localhost", STRANGER: "anonymous"}

OPEN = {ALICE: ALLOWED, BOB: ALLOWED, HOST: ALLOWED, STRANGER: ALLOWED}
AUTHENTICATED = {ALICE: ALLOWED, BOB: ALLOWED, HOST: ALLOWED, STRANGER: UNAUTHORIZED}
OWNER_OR_HOST = {ALICE: ALLOWED, BOB: NOT_OWNER, HOST: ALLOWED, STRANGER: UNAUTHORIZED}
HOST_ONLY = {ALICE: UNAUTHORIZED, BOB: UNAUTHORIZED, HOST: ALLOWED, STRANGER: UNAUTHORIZED}
WORKER = {
    ALICE: NO_CREDENTIAL,
    BOB: NOT_OWNER,
    HOST: NO_CREDENTIAL,
    STRANGER: UNAUTHORIZED,
    WORKER_ALICE: ALLOWED,
    WORKER_HOST: ALLOWED,
    ALICE_WRONG: NO_CREDENTIAL,
    HOST_WRONG: NO_CREDENTIAL,
}

MATRIX = {
    # DIRAC's RequestHandler: ping and whoami are hard-coded open to all; refreshConfiguration
    # needs CSAdministrator (the stack's host has it); echo falls to the Default.
    "ping": OPEN,
    "whoami": OPEN,
    "echo": AUTHENTICATED,
    "refreshConfiguration": HOST_ONLY,
    # users
    "createCalibration": {ALICE: ALLOWED, BOB: ALLOWED, HOST: USERS_ONLY, STRANGER: UNAUTHORIZED},
    "getUserCalibrationStatuses": AUTHENTICATED,
    "getResult": OWNER_OR_HOST,
    "killCalibration": OWNER_OR_HOST,
    "killCalibrations": OWNER_OR_HOST,
    "cleanCalibration": OWNER_OR_HOST,
    "cleanCalibrations": OWNER_OR_HOST,
    "changeDirectoryToCopyTo": OWNER_OR_HOST,
    # workers
    "getNewParameters": WORKER,
    "getInputDataDict": WORKER,
    "getCalibrationSetup": WORKER,
    "getNewPhotonLikelihood": WORKER,
    "submitResult": WORKER,
    # agent (which reads and advances calibrations through its own CalibrationDB)
    "getWorkerCredential": HOST_ONLY,
}

REASON = "authorization test"
#: How DIRAC 9.1's client reports a connection the service dropped during the TLS handshake.
TLS_REFUSALS = ("Transport endpoint is not connected", "Peer closed connection", "Connection reset")


def _handler():
    from ILCDIRAC.CalibrationSystem.Service.CalibrationHandler import CalibrationHandler

    return CalibrationHandler  # the DISET handler: the mixin's export_ methods and DIRAC's own


def _exported():
    return {name[len("export_"):] for name in dir(_handler()) if name.startswith("export_")}


def _takes_credential(method):
    return list(inspect.signature(getattr(_handler(), f"export_{method}")).parameters)[-1] == "credential"


# ---------------------------------------------------------------------- certificates


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificate(directory, subject, ca=None):
    """A key and a certificate for ``subject``: a self-signed CA if ``ca`` is None, else a
    client certificate signed by ``ca`` = (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    if ca is None:
        _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-subj", subject, "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return cert, key
    extensions = directory / "client.ext"
    extensions.write_text("basicConstraints = critical, CA:FALSE\n"
                          "keyUsage = critical, digitalSignature, keyEncipherment\n"
                          "extendedKeyUsage = clientAuth\n")
    csr = directory / "cert.csr"
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj", subject, "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", f"0x{secrets.randbits(63):x}", "-days", "2", "-sha256", "-extfile", str(extensions),
             "-out", str(cert))
    return cert, key


def _proxy(cert, key, path, group):
    from ILCDIRAC.CalibrationSystem.LocalStack.pki import make_proxy

    make_proxy(cert, key, path, group, lifetime=3600)
    return path


# ---------------------------------------------------------------------- the module's world


class World:
    """The clients of every identity, alice's calibration A and bob's calibration B (with their
    worker credentials), and every calibration created here, killed and cleaned at the end."""

    def __init__(self, stack, samples, clients, db, certificates):
        from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
        from ILCDIRAC.CalibrationSystem.LocalStack.pki import user_dn

        self.db = db
        self.samples = samples
        with open(samples["steeringFile"]) as stream:
            self.steering = stream.read()
        stranger = _certificate(certificates / "stranger", user_dn("mallory"), (stack.pki.ca_cert, stack.pki.ca_key))
        self.clients = {name: clients[name]() for name in (ALICE, BOB, HOST)}
        self.clients[STRANGER] = CalibrationClient(
            proxyLocation=str(_proxy(*stranger, certificates / "stranger.proxy", "calice_user")))
        self.created = []
        self.A = self.B = self.credentials = None

    def populate(self):
        """Create A and B and fetch their worker credentials."""
        self.A = self.create(ALICE)
        self.B = self.create(BOB)
        self.credentials = {cid: self._credential(cid) for cid in (self.A, self.B)}

    def create_raw(self, who, client=None):
        """The raw createCalibration RPC of a small calibration, as ``who`` (or ``client``)."""
        files = {"gamma": self.samples["inputFiles"]["gamma"]}
        counts = {"gamma": self.samples["numberOfEventsPerFile"]["gamma"]}
        job = {"steeringFile": self.steering, "softwareVersion": SOFTWARE_VERSION, "numberOfJobs": 2}
        result = (client or self.clients[who]).executeRPC(files, counts, {"stopStage": 1, "stopPhase": 0}, job,
                                              call="createCalibration")
        if result["OK"]:
            self.created.append(result["Value"])
        return result

    def stored_steering(self):
        """The steering file a calibration of this World stores: the user's with the PfoAnalysis
        processor creation adds."""
        from ILCDIRAC.CalibrationSystem.Procedure.pfoanalysis_processor import prepare_pfoanalysis
        from ILCDIRAC.CalibrationSystem.Procedure.settings import validate_settings

        return prepare_pfoanalysis(self.steering.encode(), validate_settings({})).steering_file.decode()

    def create(self, who):
        result = self.create_raw(who)
        assert result["OK"], result
        return result["Value"]

    def _credential(self, calibrationID):
        result = self.clients[HOST].getWorkerCredential(calibrationID)
        assert result["OK"], result
        return result["Value"]

    def worker(self, caller):
        """The client and the credential a caller of a worker method uses on calibration A."""
        who, credential = WORKER_CALLERS[caller]
        return self.clients[who], {"none": "", "right": self.credentials[self.A],
                                   "wrong": self.credentials[self.B]}[credential]

    def query(self, sql, args=()):
        cursor = self.db.cursor()
        cursor.execute(sql, args)
        rows = cursor.fetchall()
        cursor.close()
        return rows

    def calibration(self, calibrationID, columns="Status, StatusMessage"):
        rows = self.query(f"SELECT {columns} FROM Calibrations WHERE CalibrationID = %s", (calibrationID,))
        return rows[0] if rows else None

    def snapshot(self):
        """Everything a call could change about the calibrations of this module, and how many
        calibrations exist at all."""
        ids = tuple(self.created)
        marks = ", ".join(["%s"] * len(ids))
        state = {
            "calibrations": self.query("SELECT COUNT(*) FROM Calibrations"),
            "rows": self.query(
                "SELECT CalibrationID, Status, StatusMessage, Stage, Phase, Step, PhaseIteration, Parameters, "
                f"OutputPath, OutputSE, ResultsCopied, LastUpdate, EndTime FROM Calibrations "
                f"WHERE CalibrationID IN ({marks}) ORDER BY CalibrationID", ids),
            "workers": self.query(f"SELECT CalibrationID, WorkerID, InputData FROM Workers "
                                  f"WHERE CalibrationID IN ({marks}) ORDER BY CalibrationID, WorkerID", ids),
        }
        for table in ("JobAttempts", "StepResults", "Steps", "CalibrationFiles", "CalibrationEvents"):
            state[table] = self.query(f"SELECT COUNT(*) FROM {table} WHERE CalibrationID IN ({marks})", ids)
        return state

    def remove_all(self):
        """Kill and clean every calibration made here, as the trusted host: the IDs still in the DB."""
        host = self.clients[HOST]
        for calibrationID in self.created:
            host.killCalibration(calibrationID, "end of the authorization test")
            host.cleanCalibration(calibrationID)
        return [cid for cid in self.created if self.calibration(cid) is not None]


@pytest.fixture(scope="module")
def world(agent_stopped, stack, samples, clients, db, tmp_path_factory):
    created = World(stack, samples, clients, db, tmp_path_factory.mktemp("certificates"))
    try:
        created.populate()
        yield created
    finally:
        left = created.remove_all()
        assert not left, f"calibrations of the authorization test left in the DB: {left}"


# ---------------------------------------------------------------------- the rows
# Each row builder prepares its own targets and returns (call, check): call(caller) makes the RPC,
# check(caller, result) says what an allowed call must have answered and done. DISET sends
# dicts as JSON: the integer calibration IDs used as keys arrive as strings.


def _row_ping(w):
    return (lambda caller: w.clients[caller].ping(),
            lambda caller, result: result["Value"]["name"] == "Calibration/Calibration")


def _row_whoami(w):
    return (lambda caller: w.clients[caller].whoami(),
            lambda caller, result: result["Value"]["username"] == USERNAMES[caller])


def _row_echo(w):
    return (lambda caller: w.clients[caller].echo("authorization"),
            lambda caller, result: result["Value"] == "authorization")


def _row_refreshConfiguration(w):
    return (lambda caller: w.clients[caller].refreshConfiguration(False),
            lambda caller, result: result["OK"])


def _row_createCalibration(w):
    def check(caller, result):
        owner = w.calibration(result["Value"], "Owner, OwnerGroup, Status")
        return owner == (USERNAMES[caller], {ALICE: "calice_user", BOB: "ilc_user"}[caller], "Running")

    return w.create_raw, check


def _row_getUserCalibrationStatuses(w):
    def check(caller, result):
        seen = {status["calibrationID"] for status in result["Value"]}
        return {w.A: caller == ALICE, w.B: caller == BOB} == {w.A: w.A in seen, w.B: w.B in seen}

    return lambda caller: w.clients[caller].getUserCalibrationStatuses(), check


def _row_getResult(w):
    return (lambda caller: w.clients[caller].getResult(w.A),
            lambda caller, result: not result["OK"] and f"Calibration {w.A} has no result: it is Running "
            "(stage 1, phase 0, step 0)" in result["Message"])


def _killed_by(w, calibrationID, caller):
    return w.calibration(calibrationID) == ("Killed", f"Killed by {USERNAMES[caller]}: {REASON}")


def _row_killCalibration(w):
    targets = {ALICE: w.create(ALICE), HOST: w.create(ALICE)}
    return (lambda caller: w.clients[caller].killCalibration(targets.get(caller, targets[ALICE]), REASON),
            lambda caller, result: result["OK"] and _killed_by(w, targets[caller], caller))


def _row_killCalibrations(w):
    targets = {ALICE: w.create(ALICE), HOST: w.create(ALICE)}

    def check(caller, result):
        target = targets[caller]
        return result["Value"] == {str(target): f"Calibration {target} killed; its jobs are being killed"} and \
            _killed_by(w, target, caller)

    return lambda caller: w.clients[caller].killCalibrations([targets.get(caller, targets[ALICE])], REASON), check


def _ended(w):
    """Two killed calibrations of alice: one for alice to clean, one for the host."""
    targets = {ALICE: w.create(ALICE), HOST: w.create(ALICE)}
    for calibrationID in targets.values():
        assert w.clients[ALICE].killCalibration(calibrationID, REASON)["OK"]
    return targets


def _row_cleanCalibration(w):
    targets = _ended(w)
    return (lambda caller: w.clients[caller].cleanCalibration(targets.get(caller, targets[ALICE])),
            lambda caller, result: result["OK"] and w.calibration(targets[caller]) is None)


def _row_cleanCalibrations(w):
    targets = _ended(w)

    def check(caller, result):
        target = targets[caller]
        return result["Value"] == {str(target): f"Calibration {target} deleted"} and w.calibration(target) is None

    return lambda caller: w.clients[caller].cleanCalibrations([targets.get(caller, targets[ALICE])]), check


def _row_changeDirectoryToCopyTo(w):
    return (lambda caller: w.clients[caller].changeDirectoryToCopyTo(w.A, f"/calibration-output/{caller}", ""),
            lambda caller, result: result["OK"] and w.calibration(w.A, "OutputPath, ResultsCopied")
            == (f"/calibration-output/{caller}", 0))


def _worker_row(method, arguments, check):
    """A worker method called on calibration A with ``arguments(caller)`` then the credential."""

    def build(w):
        def call(caller):
            client, credential = w.worker(caller)
            return getattr(client, method)(*arguments(w, caller), credential)

        return call, lambda caller, result: check(w, caller, result)

    return build


def _summary():
    from ILCDIRAC.CalibrationSystem.Procedure.summary import encode_summary

    return encode_summary(0, {"barrel": np.full(10, 10.0, np.float32), "endcap": np.full(10, 10.0, np.float32)})


def _stored_results(w):
    return set(w.query("SELECT Step, WorkerID FROM StepResults WHERE CalibrationID = %s", (w.A,)))


def _submitted(w, caller, result):
    """Worker 0's result of step 0 is stored once; the second worker identity is told it has
    already been reported. Nothing else is stored."""
    value = result["Value"]
    return (value["Stored"] or "already reported" in value["Message"]) and _stored_results(w) == {(0, 0)}


ROWS = {
    "ping": _row_ping,
    "whoami": _row_whoami,
    "echo": _row_echo,
    "refreshConfiguration": _row_refreshConfiguration,
    "createCalibration": _row_createCalibration,
    "getUserCalibrationStatuses": _row_getUserCalibrationStatuses,
    "getResult": _row_getResult,
    "killCalibration": _row_killCalibration,
    "killCalibrations": _row_killCalibrations,
    "cleanCalibration": _row_cleanCalibration,
    "cleanCalibrations": _row_cleanCalibrations,
    "changeDirectoryToCopyTo": _row_changeDirectoryToCopyTo,
    "getNewParameters": _worker_row(
        "getNewParameters", lambda w, caller: (w.A, -1),
        lambda w, caller, result: result["OK"] and result["Value"]["currentStep"] == 0
        and result["Value"]["calibrationStatus"] == "Running"),
    "getInputDataDict": _worker_row(
        "getInputDataDict", lambda w, caller: (w.A, 0),
        lambda w, caller, result: result["OK"] and set(result["Value"]) == {"gamma"}),
    "getCalibrationSetup": _worker_row(
        "getCalibrationSetup", lambda w, caller: (w.A,),
        lambda w, caller, result: result["OK"] and result["Value"]["steeringFile"] == w.stored_steering()
        and result["Value"]["numberOfJobs"] == 2),
    "getNewPhotonLikelihood": _worker_row(
        "getNewPhotonLikelihood", lambda w, caller: (w.A,),
        lambda w, caller, result: not result["OK"] and "has no merged photon likelihood yet" in result["Message"]),
    # refused callers try worker 1 (whose result would complete step 0), allowed ones worker 0
    "submitResult": _worker_row(
        "submitResult", lambda w, caller: (w.A, 1, 0, 0, 0 if MATRIX["submitResult"][caller] == ALLOWED else 1,
                                           _summary()),
        _submitted),
    "getWorkerCredential": lambda w: (
        lambda caller: w.clients[caller].getWorkerCredential(w.A),
        lambda caller, result: result["Value"] == w.credentials[w.A]),
}


def _outcome(result):
    """How a call ended, from its error message (or from the per-ID 'Error: ...' of the list methods)."""
    if result["OK"]:
        value = result["Value"]
        errors = [v for v in value.values() if isinstance(v, str) and v.startswith("Error: ")] \
            if isinstance(value, dict) else []
        if not errors:
            return ALLOWED
        message = errors[0]
    else:
        message = result["Message"]
    for marker, outcome in (("Unauthorized query", UNAUTHORIZED), ("does not exist", NOT_OWNER),
                            ("worker credential", NO_CREDENTIAL), ("belongs to a user", USERS_ONLY)):
        if marker in message:
            return outcome
    return ALLOWED


def _holds(check, caller, result):
    try:
        return check(caller, result)
    except (KeyError, TypeError):
        return False


# ---------------------------------------------------------------------- tests


def test_the_matrix_covers_every_exported_method():
    exported = _exported()
    assert set(MATRIX) == exported, (
        f"methods without an authorization row: {sorted(exported - set(MATRIX))}; "
        f"rows of methods that are gone: {sorted(set(MATRIX) - exported)}")
    assert set(ROWS) == set(MATRIX)
    for method in exported:
        expected = set(WORKER) if _takes_credential(method) else {ALICE, BOB, HOST, STRANGER}
        assert set(MATRIX[method]) == expected, f"{method}: callers {sorted(MATRIX[method])}, not {sorted(expected)}"


@pytest.mark.parametrize("method", list(MATRIX))
def test_authorization_matrix(world, method):
    """Refused callers first (so they meet the targets untouched), then the allowed ones."""
    call, check = ROWS[method](world)
    expected = MATRIX[method]
    wrong = []
    for caller in sorted(expected, key=lambda c: expected[c] == ALLOWED):
        before = world.snapshot()
        result = call(caller)
        outcome = _outcome(result)
        if outcome != expected[caller]:
            wrong.append(f"{caller}: {outcome} instead of {expected[caller]} ({result})")
        elif expected[caller] == ALLOWED:
            if not _holds(check, caller, result):
                wrong.append(f"{caller}: allowed, but the answer or its effect is wrong: {result}")
        elif world.snapshot() != before:
            wrong.append(f"{caller}: refused, but the DB changed")
    assert not wrong, f"{method}:\n" + "\n".join(wrong)


def test_another_users_calibration_looks_like_a_missing_one(world):
    """bob cannot tell alice's calibration from one that does not exist."""
    missing = int(world.query("SELECT COALESCE(MAX(CalibrationID), 0) + 1000 FROM Calibrations")[0][0])
    bob, alice = world.clients[BOB], world.clients[ALICE]
    for call in (lambda client, cid: client.getResult(cid),
                 lambda client, cid: client.killCalibration(cid, REASON),
                 lambda client, cid: client.getNewParameters(cid, -1, world.credentials[world.A])):
        hidden, absent = call(bob, world.A), call(alice, missing)
        assert not hidden["OK"] and not absent["OK"]
        assert hidden["Errno"] == absent["Errno"]
        assert hidden["Message"].replace(f"Calibration {world.A} ", "Calibration ID ") == \
            absent["Message"].replace(f"Calibration {missing} ", "Calibration ID ")


def test_a_certificate_of_another_ca_is_refused_at_tls(world, tmp_path):
    """An impostor with alice's DN, signed by a CA the service does not trust: the service drops
    the connection in the TLS handshake, before DISET sees a query."""
    from DIRAC.Core.Security.X509Chain import X509Chain
    from ILCDIRAC.CalibrationSystem.Client.CalibrationClient import CalibrationClient
    from ILCDIRAC.CalibrationSystem.LocalStack.pki import user_dn

    ca = _certificate(tmp_path / "ca", "/O=Elsewhere/CN=Foreign CA")
    impostor = _proxy(*_certificate(tmp_path / "impostor", user_dn("alice"), ca), tmp_path / "impostor.proxy",
                      "calice_user")
    chain = X509Chain()
    assert chain.loadProxyFromFile(str(impostor))["OK"]
    assert chain.getIssuerCert()["Value"].getSubjectDN()["Value"] == user_dn("alice")
    before = world.snapshot()
    result = world.create_raw("impostor", CalibrationClient(proxyLocation=str(impostor)))
    assert not result["OK"], result
    # the connection failed (DIRAC retries it, then reports the last failure); DISET never answered
    assert any(text in result["Message"] for text in TLS_REFUSALS), result["Message"]
    assert world.snapshot() == before


def test_a_client_without_certificate_gets_no_session(stack):
    """A TLS client presenting no certificate at all is dropped before any DISET exchange."""
    context = ssl.create_default_context(cafile=str(stack.pki.ca_cert))
    with socket.create_connection(("localhost", stack.service_port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"0")
                answer = tls.recv(1024)
        except (ssl.SSLError, ConnectionResetError) as error:
            answer = error
        except TimeoutError:
            pytest.fail("the service kept a TLS session without client certificate open")
    assert answer == b"" or isinstance(answer, (ssl.SSLError, ConnectionResetError)), answer
