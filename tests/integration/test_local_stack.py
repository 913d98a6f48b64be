"""The local stack for real: test PKI, private MariaDB, and the Calibration service answering
``ping`` over TLS as the users and the host; process control across processes."""

import os
import signal
import stat
import subprocess
import sys
import time

import MySQLdb
import pytest

from ILCDIRAC.CalibrationSystem.LocalStack import pki
from ILCDIRAC.CalibrationSystem.LocalStack.stack import LocalStack

pytestmark = pytest.mark.integration

PING = (
    "from DIRAC.Core.DISET.RPCClient import RPCClient\n"
    "result = RPCClient('Calibration/Calibration').ping()\n"
    "print(result['OK'], result['Value']['name'] if result['OK'] else result['Message'])\n"
)


def _ping(env: dict, cwd) -> str:
    proc = subprocess.run([sys.executable, "-c", PING], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its parent counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def _service_log_identities(stack: LocalStack) -> str:
    return "\n".join(line for line in (stack.workdir / "logs" / "service.log").read_text().splitlines()
                     if "RPC/ping" in line)


def test_certificates_verify_against_the_ca_and_proxies_carry_the_group(stack):
    paths = stack.pki
    certs = [str(paths.host_cert), str(paths.user_cert("alice")), str(paths.user_cert("bob"))]
    proc = subprocess.run(["openssl", "verify", "-CApath", str(paths.ca_dir), *certs],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(paths.host_cert)],
                         capture_output=True, text=True, check=True).stdout
    assert "DNS:localhost" in san and "IP Address:127.0.0.1" in san
    for user in ("alice", "bob"):
        proxy = paths.proxy(user)
        assert stat.S_IMODE(proxy.stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.user_key(user).stat().st_mode) == 0o600
        assert pki.proxy_is_fresh(proxy, 6 * 24 * 3600)
        assert not pki.proxy_is_fresh(proxy, 8 * 24 * 3600)
        issuer = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-in", str(proxy)],
                                capture_output=True, text=True, check=True).stdout
        assert f"CN = {user}" in issuer


def test_db_user_reaches_the_database_over_tcp_and_root_does_not(stack):
    params = stack.db_params()
    assert params["host"] == "127.0.0.1" and params["dbname"] == "CalibrationDB"
    assert stat.S_IMODE((stack.workdir / "mysql" / "password").stat().st_mode) == 0o600
    conn = MySQLdb.connect(host=params["host"], port=params["port"], user=params["user"],
                           passwd=params["password"], db=params["dbname"])
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT DATABASE()")
        assert cursor.fetchone() == ("CalibrationDB",)
    finally:
        conn.close()
    with pytest.raises(MySQLdb.OperationalError):
        MySQLdb.connect(host="127.0.0.1", port=params["port"], user="root")
    with pytest.raises(MySQLdb.OperationalError):
        MySQLdb.connect(host="127.0.0.1", port=params["port"], user=params["user"], passwd="wrong")


def test_ping_over_tls_as_alice_bob_and_the_host(stack, tmp_path):
    assert _ping(stack.user_env("alice"), tmp_path) == "True Calibration/Calibration"
    assert _ping(stack.user_env("bob"), tmp_path) == "True Calibration/Calibration"
    assert _ping(stack.host_env(), tmp_path) == "True Calibration/Calibration"
    identities = _service_log_identities(stack).splitlines()[-3:]
    assert "[calice_user:alice]" in identities[0]
    assert "[ilc_user:bob]" in identities[1]
    assert "[hosts:localhost]" in identities[2]


def test_the_service_sends_one_tls_session_ticket_per_connection(stack):
    """With OpenSSL's two tickets, the second one holds the service's first answer of every call
    ~40 ms behind the client's delayed ACK (LocalStack/config.OPENSSL_CONFIG)."""
    paths = stack.pki
    # s_client stays connected while its input is open: long enough to receive the tickets
    proc = subprocess.run(
        ["sh", "-c", 'sleep 1 | openssl s_client -msg -connect "$0" -cert "$1" -key "$2" -CApath "$3"',
         f"localhost:{stack.service_port}", str(paths.host_cert), str(paths.host_key), str(paths.ca_dir)],
        capture_output=True, text=True, timeout=60, check=False)
    assert "Verification: OK" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count("NewSessionTicket") == 1, proc.stdout


def test_env_sh_makes_plain_python_act_as_alice(stack, tmp_path):
    script = f"source {stack.workdir / 'env.sh'} && python -c \"$PING\""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PING": PING}
    proc = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stdout.strip() == "True Calibration/Calibration", proc.stderr
    assert "[calice_user:alice]" in _service_log_identities(stack).splitlines()[-1]


def test_second_start_keeps_the_running_processes_and_is_fast(stack):
    before = {name: proc["pid"] for name, proc in stack.status()["processes"].items()}
    started = time.monotonic()
    LocalStack(stack.workdir, overrides=stack.overrides).start()
    assert time.monotonic() - started < 5
    status = stack.status()
    assert status["running"]
    assert {name: proc["pid"] for name, proc in status["processes"].items()} == before


def test_killed_service_restarts_on_the_same_url(stack, tmp_path):
    url = stack.service_url
    old_pid = stack.status()["processes"]["service"]["pid"]
    stack.stop_service(kill=True)
    assert not stack.status()["processes"]["service"]["running"]
    assert _gone(old_pid)
    stack.start_service()
    assert stack.service_url == url
    assert _ping(stack.user_env("alice"), tmp_path) == "True Calibration/Calibration"


def test_stale_state_never_signals_an_unrelated_process(tmp_path):
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        stale = LocalStack(tmp_path / "stale")
        stale.workdir.mkdir()
        stale.state_file.write_text(
            '{"processes": {"service": {"pid": %d, "start_time": 1, "command": ["x"], "log": "x"}}}'
            % bystander.pid)
        assert not stale.status()["processes"]["service"]["running"]
        stale.stop()
        assert bystander.poll() is None
        assert stale.status()["processes"]["service"]["pid"] is None
    finally:
        os.killpg(bystander.pid, signal.SIGKILL)
        bystander.wait()


def test_cli_starts_and_another_process_stops(tmp_path):
    cli = [os.path.join(sys.prefix, "bin", "dirac-calibration-local-stack")]
    workdir = str(tmp_path / "cli")
    pids = []
    try:
        started = subprocess.run([*cli, "start", "--workdir", workdir], capture_output=True, text=True,
                                 timeout=120, check=False)
        assert started.returncode == 0, started.stderr
        assert f"source {workdir}/env.sh" in started.stdout
        assert "dips://localhost:" in started.stdout
        pids = [proc["pid"] for proc in LocalStack(workdir).status()["processes"].values()]
        assert subprocess.run([*cli, "status", "--workdir", workdir], capture_output=True,
                              check=False).returncode == 0
    finally:
        stopped = subprocess.run([*cli, "stop", "--workdir", workdir], capture_output=True, text=True,
                                 timeout=120, check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert len(pids) == 3 and all(_gone(pid) for pid in pids)
    assert subprocess.run([*cli, "status", "--workdir", workdir], capture_output=True,
                          check=False).returncode == 3
