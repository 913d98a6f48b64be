"""The local stack: test PKI, private MariaDB, generated dirac.cfg, Calibration service and agent.

Everything lives in one work directory::

    DIR/pki/        CA, host and user certificates, <user>.proxy
    DIR/mysql/      MariaDB data, socket, the DB user's password (0600)
    DIR/etc/        dirac.cfg of the service, the agent and the users (DIRAC_ROOT_PATH=DIR)
    DIR/host/etc/   the same cfg with UseServerCertificate=yes (DIRAC_ROOT_PATH for host clients)
    DIR/logs/       mariadb.log, service.log, agent.log
    DIR/jobs/       the agent's local job directory
    DIR/stack.json  ports and the identity (pid + kernel start time) of every process started
    DIR/env.sh, env-bob.sh, env-host.sh   source to act as alice, bob or the host

Processes run in their own sessions (so a signal to the group reaches their children) and are
recorded in stack.json, so that another process (the CLI) can stop them later. A pid is only
signalled if the process still has the start time recorded, so a stale file never hits an
unrelated process.
"""

import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ILCDIRAC.CalibrationSystem.LocalStack import config as stack_config
from ILCDIRAC.CalibrationSystem.LocalStack.mariadb import MariaDB
from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIPaths, ensure_certificates, ensure_proxies

SERVICE_COMPONENT = f"{stack_config.SYSTEM}/{stack_config.SERVICE}"
AGENT_COMPONENT = f"{stack_config.SYSTEM}/{stack_config.AGENT}"
DB_USER = "calibration"
#: Variables that would make a DIRAC process pick other credentials or another configuration.
_FOREIGN_VARS = ("GRID_PROXY_FILE", "X509_USER_PROXY", "DIRACSYSCONFIG", "DIRAC_ROOT_PATH",
                 "DIRAC_X509_HOST_CERT", "DIRAC_X509_HOST_KEY")
_LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says why and where to look."""


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), or None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()


def _start_time(pid: int) -> int | None:
    """Kernel start time of a process (clock ticks since boot): with the pid, its identity."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _running(pid: int) -> bool:
    """True while any thread of the process is not a zombie. The main thread turns zombie
    first; the others may still be exiting and still hold the open files (a listening port)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return False
    for task in tasks:
        try:
            data = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if data[data.rindex(")") + 2] not in "ZX":
            return True
    return False


def _group_alive(pgid: int) -> bool:
    """True while a process of the process group is running."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[2]) == pgid and _running(int(entry.name)):
                return True
    return False


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


class LocalStack:
    """Start, inspect and stop the local stack living in ``workdir``.

    ``template`` is the ConfigTemplate.cfg the component sections come from; ``overrides`` maps
    absolute cfg paths to values applied last (e.g. a test's agent PollingTime). ``start()`` is
    idempotent, and ``stop()`` works from another process through DIR/stack.json.
    """

    def __init__(self, workdir: str | os.PathLike, template: str | os.PathLike = stack_config.DEFAULT_TEMPLATE,
                 overrides: dict[str, str] | None = None, dbname: str = stack_config.DATABASE,
                 start_timeout: float = 60.0, stop_grace: float = 10.0):
        self.workdir = Path(workdir).resolve()
        self.template = Path(template)
        self.overrides = dict(overrides or {})
        self.dbname = dbname
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.pki = PKIPaths(self.workdir / "pki")
        self.bin_dir = Path(sys.prefix) / "bin"
        self.state_file = self.workdir / "stack.json"
        self.log_dir = self.workdir / "logs"
        self.cfg_file = self.workdir / "etc" / "dirac.cfg"
        self.host_root = self.workdir / "host"
        self._children: dict[str, subprocess.Popen] = {}
        self._state = self._load_state()

    # ------------------------------------------------------------------ state

    def _load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"processes": {}}

    def _save_state(self) -> None:
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(self._state, indent=2, sort_keys=True))
        tmp.replace(self.state_file)

    @contextmanager
    def _locked(self):
        """Serialise start/stop between processes; the state is re-read under the lock."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / ".stack.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._state = self._load_state()
            yield

    def _port(self, name: str, host: str) -> int:
        """A port chosen free once and then kept, so that URLs in the cfg stay valid."""
        if name not in self._state:
            self._state[name] = _free_port(host)
            self._save_state()
        return self._state[name]

    @property
    def service_port(self) -> int:
        return self._port("service_port", "")

    @property
    def mysql_port(self) -> int:
        return self._port("mysql_port", "127.0.0.1")

    @property
    def service_url(self) -> str:
        return f"dips://{stack_config.HOST}:{self.service_port}/{SERVICE_COMPONENT}"

    @property
    def mariadb(self) -> MariaDB:
        return MariaDB(self.workdir / "mysql", self.mysql_port)

    def db_params(self) -> dict:
        """How DIRAC (or a test) reaches the calibration database over TCP."""
        return {"host": "127.0.0.1", "port": self.mysql_port, "user": DB_USER,
                "password": self.mariadb.password(), "dbname": self.dbname}

    # ------------------------------------------------------------------ environments

    def _env(self, root: Path, proxy: Path | None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _FOREIGN_VARS}
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", os.defpath)])
        env["DIRAC_ROOT_PATH"] = str(root)
        env["X509_CERT_DIR"] = str(self.pki.ca_dir)
        if proxy is not None:
            env["X509_USER_PROXY"] = str(proxy)
        return env

    def user_env(self, user: str = "alice") -> dict[str, str]:
        """The full environment of a process acting as ``user`` (its proxy, the stack's cfg)."""
        if user not in stack_config.USER_GROUPS:
            raise StackError(f"unknown local user {user!r}; the stack has {sorted(stack_config.USER_GROUPS)}")
        return self._env(self.workdir, self.pki.proxy(user))

    def host_env(self) -> dict[str, str]:
        """The full environment of a process acting with the host certificate: DIRAC has no
        variable for that, only /DIRAC/Security/UseServerCertificate, which DIR/host's cfg sets."""
        return self._env(self.host_root, None)

    def _server_env(self) -> dict[str, str]:
        """Environment of MariaDB, the service and the agent (dirac-service/-agent default to
        the host certificate themselves)."""
        return self._env(self.workdir, None)

    def _write_env_script(self, path: Path, env: dict[str, str], who: str) -> None:
        lines = [f"# Source this file in bash to act as {who} on the local stack in {self.workdir}.",
                 f"unset {' '.join(var for var in _FOREIGN_VARS if var not in env)}".rstrip()]
        for var in ("DIRAC_ROOT_PATH", "X509_CERT_DIR", "X509_USER_PROXY"):
            if var in env:
                lines.append(f"export {var}={shlex.quote(env[var])}")
        lines.append(f'export PATH={shlex.quote(str(self.bin_dir))}:"$PATH"')
        path.write_text("\n".join(lines) + "\n")

    def _write_env_scripts(self) -> None:
        for user in stack_config.USER_GROUPS:
            name = "env.sh" if user == "alice" else f"env-{user}.sh"
            self._write_env_script(self.workdir / name, self.user_env(user), user)
        self._write_env_script(self.workdir / "env-host.sh", self.host_env(), "the host (localhost)")

    # ------------------------------------------------------------------ process control

    def _alive(self, name: str) -> bool:
        """True if the recorded process is still the one we started and not a zombie."""
        record = self._state["processes"].get(name)
        if not record:
            return False
        child = self._children.get(name)
        if child is not None and child.poll() is not None:
            return False
        return _start_time(record["pid"]) == record["start_time"] and _running(record["pid"])

    def _launch(self, name: str, command: list[str]) -> None:
        """Start a command in its own session, output appended to DIR/logs/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(command)}\n".encode())
            log.flush()
            child = subprocess.Popen(command, cwd=self.workdir, env=self._server_env(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._children[name] = child
        self._state["processes"][name] = {"pid": child.pid, "start_time": _start_time(child.pid),
                                          "command": command, "log": str(log_path)}
        self._save_state()

    def _reap(self, name: str, pid: int) -> None:
        """Collect the exit status if the process is a child of this Python (launched by this
        or another LocalStack instance), so that no zombie is left behind."""
        child = self._children.get(name)
        if child is not None:
            child.poll()
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def _terminate(self, name: str, kill: bool = False) -> None:
        """Stop a recorded process and its process group: SIGTERM, then SIGKILL after the grace
        period (at once if ``kill``). A record that no longer matches a live process is dropped."""
        record = self._state["processes"].get(name)
        if record is None:
            return
        if self._alive(name):
            pgid = record["pid"]
            os.killpg(pgid, signal.SIGKILL if kill else signal.SIGTERM)
            deadline = time.monotonic() + (0 if kill else self.stop_grace)
            while time.monotonic() < deadline and _group_alive(pgid):
                self._reap(name, pgid)
                time.sleep(0.05)
            if _group_alive(pgid):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _group_alive(pgid):
                    time.sleep(0.05)
            self._reap(name, pgid)
        self._children.pop(name, None)
        del self._state["processes"][name]
        self._save_state()

    def _wait_for_port(self, name: str, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not _port_open(port):
            if not self._alive(name):
                raise StackError(f"{name} exited during start-up. Tail of {self.log_dir / name}.log:\n"
                                 f"{_tail(self.log_dir / f'{name}.log')}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not accept connections on port {port} within "
                                 f"{self.start_timeout:.0f} s. Tail of {self.log_dir / name}.log:\n"
                                 f"{_tail(self.log_dir / f'{name}.log')}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ components

    def _start_mariadb(self) -> MariaDB:
        server = self.mariadb
        if not self._alive("mariadb"):
            self._terminate("mariadb")
            if _port_open(server.port):
                raise StackError(f"port {server.port} of the stack's MariaDB is taken by another process; "
                                 f"stop it, or delete 'mysql_port' from {self.state_file}")
            server.initialise()
            self._launch("mariadb", server.server_command())
        return server

    def _write_configs(self) -> None:
        for root, host in ((self.workdir, False), (self.host_root, True)):
            cfg = stack_config.build_config(self.workdir, self.pki, self.service_port, self.db_params(),
                                            template=self.template, overrides=self.overrides,
                                            use_server_certificate=host)
            stack_config.write_config(cfg, root / "etc" / "dirac.cfg")

    def set_overrides(self, overrides: dict[str, str | None]) -> None:
        """Change configuration overrides (a None value removes one) and rewrite the cfg files;
        a running service or agent keeps its configuration until it is restarted."""
        with self._locked():
            for path, value in overrides.items():
                if value is None:
                    self.overrides.pop(path, None)
                else:
                    self.overrides[path] = value
            self._write_configs()

    def _dirac_script(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.exists():
            raise StackError(f"{path} not found: install DIRAC into the Python environment at {sys.prefix}")
        return str(path)

    def _require_config(self) -> None:
        if not self.cfg_file.exists():
            raise StackError(f"{self.cfg_file} does not exist: run start() first")

    def _launch_service(self) -> bool:
        """Launch the service unless it runs; True if it was launched."""
        self._require_config()
        if self._alive("service"):
            return False
        self._terminate("service")
        if _port_open(self.service_port):
            raise StackError(f"port {self.service_port} of the Calibration service is taken by another "
                             f"process; stop it, or delete 'service_port' from {self.state_file}")
        self._launch("service", [self._dirac_script("dirac-service"), SERVICE_COMPONENT])
        return True

    def _launch_agent(self) -> None:
        self._require_config()
        if not self._alive("agent"):
            self._terminate("agent")
            self._launch("agent", [self._dirac_script("dirac-agent"), AGENT_COMPONENT])

    def start_service(self) -> None:
        """Start the Calibration service (if not running) and wait until it accepts connections."""
        with self._locked():
            if self._launch_service():
                self._wait_for_port("service", self.service_port)

    def stop_service(self, kill: bool = False) -> None:
        """Stop the service; ``kill=True`` sends SIGKILL at once (a crash, for restart tests)."""
        with self._locked():
            self._terminate("service", kill)

    def start_agent(self) -> None:
        """Start the CalibrationAgent (if not running); it polls on its own from then on."""
        with self._locked():
            self._launch_agent()

    def stop_agent(self, kill: bool = False) -> None:
        """Stop the agent; ``kill=True`` sends SIGKILL at once."""
        with self._locked():
            self._terminate("agent", kill)

    # ------------------------------------------------------------------ whole stack

    def start(self) -> None:
        """Bring up whatever is not running: PKI, MariaDB, database, cfg, service, agent.

        Service and agent boot side by side; an agent that dies while the service boots is
        reported with its log.
        """
        with self._locked():
            for sub in ("etc", "logs", "jobs"):
                (self.workdir / sub).mkdir(parents=True, exist_ok=True)
            ensure_certificates(self.pki.root, list(stack_config.USER_GROUPS))
            server = self._start_mariadb()
            # proxies are made while mariadbd boots
            ensure_proxies(self.pki, stack_config.USER_GROUPS, env=self._server_env())
            server.wait_ready(lambda: self._alive("mariadb"), self.start_timeout,
                              lambda: _tail(self.log_dir / "mariadb.log"))
            server.ensure_database(self.dbname, DB_USER)
            self._write_configs()
            self._write_env_scripts()
            service_launched = self._launch_service()
            self._launch_agent()
            if service_launched:
                self._wait_for_port("service", self.service_port)
            if not self._alive("agent"):
                raise StackError(f"agent exited during start-up. Tail of {self.log_dir / 'agent.log'}:\n"
                                 f"{_tail(self.log_dir / 'agent.log')}")

    def stop(self) -> None:
        """Stop the agent, the worker jobs it started, the service and MariaDB."""
        with self._locked():
            self._terminate("agent")
            self._kill_jobs()
            for name in ("service", "mariadb"):
                self._terminate(name)

    def _kill_jobs(self) -> None:
        """End the local worker jobs, which run in sessions of their own (imported here: the
        backend needs DIRAC, which the rest of the stack does not load)."""
        from ILCDIRAC.CalibrationSystem.JobBackends.LocalJobBackend import LocalJobBackend

        result = LocalJobBackend({"LocalJobDirectory": str(self.workdir / "jobs")}).killAll()
        if not result["OK"]:
            raise StackError(f"Cannot stop the local worker jobs: {result['Message']}")

    def status(self) -> dict:
        """Ports, URL, files and, per process, its pid, whether it runs and its log."""
        self._state = self._load_state()
        processes = {}
        for name in ("mariadb", "service", "agent"):
            record = self._state["processes"].get(name)
            processes[name] = {"running": self._alive(name), "pid": record["pid"] if record else None,
                               "log": str(self.log_dir / f"{name}.log")}
        return {
            "workdir": str(self.workdir),
            "running": all(proc["running"] for proc in processes.values()),
            "service_url": self.service_url if "service_port" in self._state else None,
            "service_port": self._state.get("service_port"),
            "mysql_port": self._state.get("mysql_port"),
            "config": str(self.cfg_file),
            "env": {"alice": str(self.workdir / "env.sh"), "bob": str(self.workdir / "env-bob.sh"),
                    "host": str(self.workdir / "env-host.sh")},
            "processes": processes,
        }
