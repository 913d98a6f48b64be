"""The local stack: test PKI, private MariaDB, generated dirac.cfg, Calibration service and agent.

Everything lives in one work directory::

    DIR/pki/        CA, host and user certificates, <user>.proxy
    DIR/mysql/      MariaDB data, socket, the DB user's password (0600)
    DIR/etc/        dirac.cfg of the service, the agent and the users (DIRAC_ROOT_PATH=DIR), and
                    openssl.cnf, the service's OpenSSL configuration (config.OPENSSL_CONFIG)
    DIR/host/etc/   the same cfg with UseServerCertificate=yes (DIRAC_ROOT_PATH for host clients)
    DIR/logs/       mariadb.log, service.log, agent.log
    DIR/jobs/       the agent's local job directory
    DIR/stack.json  ports and the identity (pid + kernel start time) of every process started
    DIR/env.sh, env-bob.sh, env-host.sh   source to act as alice, bob or the host

This is the development flavour: no Configuration Server, every process reads the one cfg.
"""

import os
import shlex
import sys
from pathlib import Path

from ILCDIRAC.CalibrationSystem.LocalStack import config as stack_config
from ILCDIRAC.CalibrationSystem.LocalStack.mariadb import MariaDB
from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIPaths, ensure_certificates, ensure_proxies
from ILCDIRAC.CalibrationSystem.LocalStack.processes import (
    FOREIGN_VARS,
    ProcessStack,
    StackError,
    dirac_env,
    port_open,
    tail,
)

SERVICE_COMPONENT = f"{stack_config.SYSTEM}/{stack_config.SERVICE}"
AGENT_COMPONENT = f"{stack_config.SYSTEM}/{stack_config.AGENT}"
DB_USER = "calibration"


class LocalStack(ProcessStack):
    """Start, inspect and stop the local stack living in ``workdir``.

    ``template`` is the ConfigTemplate.cfg the component sections come from; ``overrides`` maps
    absolute cfg paths to values applied last (e.g. a test's agent PollingTime);
    ``session_tickets`` is the number of TLS session tickets the service sends per connection
    (see config.OPENSSL_CONFIG; 2 is OpenSSL's default). ``start()`` is idempotent, and ``stop()``
    works from another process through DIR/stack.json.
    """

    def __init__(self, workdir: str | os.PathLike, template: str | os.PathLike = stack_config.DEFAULT_TEMPLATE,
                 overrides: dict[str, str] | None = None, dbname: str = stack_config.DATABASE,
                 start_timeout: float = 60.0, stop_grace: float = 10.0,
                 session_tickets: int = stack_config.SESSION_TICKETS):
        super().__init__(workdir, start_timeout, stop_grace)
        self.template = Path(template)
        self.overrides = dict(overrides or {})
        self.dbname = dbname
        self.pki = PKIPaths(self.workdir / "pki")
        self.bin_dir = Path(sys.prefix) / "bin"
        self.cfg_file = self.workdir / "etc" / "dirac.cfg"
        self.openssl_config = self.workdir / "etc" / "openssl.cnf"
        self.session_tickets = session_tickets
        self.host_root = self.workdir / "host"

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
        env = dirac_env(root, self.pki.ca_dir, [self.bin_dir])
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
                 f"unset {' '.join(var for var in FOREIGN_VARS if var not in env)}".rstrip()]
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

    # ------------------------------------------------------------------ components

    def _start_mariadb(self) -> MariaDB:
        server = self.mariadb
        if not self._alive("mariadb"):
            self._terminate("mariadb")
            if port_open(server.port):
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
        stack_config.write_openssl_config(self.openssl_config, self.session_tickets)

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

    def set_session_tickets(self, tickets: int) -> None:
        """Change the TLS session tickets the service sends per connection (see
        config.OPENSSL_CONFIG) and rewrite its OpenSSL configuration; a running service keeps the
        old number until it is restarted."""
        with self._locked():
            self.session_tickets = tickets
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
        if port_open(self.service_port):
            raise StackError(f"port {self.service_port} of the Calibration service is taken by another "
                             f"process; stop it, or delete 'service_port' from {self.state_file}")
        self._launch("service", [self._dirac_script("dirac-service"), SERVICE_COMPONENT],
                     dict(self._server_env(), OPENSSL_CONF=str(self.openssl_config)))
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
                              lambda: tail(self.log_dir / "mariadb.log"))
            server.ensure_database(self.dbname, DB_USER)
            self._write_configs()
            self._write_env_scripts()
            service_launched = self._launch_service()
            self._launch_agent()
            if service_launched:
                self._wait_for_port("service", self.service_port)
            if not self._alive("agent"):
                raise StackError(f"agent exited during start-up. Tail of {self.log_dir / 'agent.log'}:\n"
                                 f"{tail(self.log_dir / 'agent.log')}")

    def stop(self) -> None:
        """Stop the agent, the worker jobs it started, the service and MariaDB."""
        self._stop_all([lambda: self._terminate("agent"), self._kill_jobs, lambda: self._terminate("service"),
                        lambda: self._terminate("mariadb")])

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
