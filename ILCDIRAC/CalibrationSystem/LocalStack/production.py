"""A production-like DIRAC installation on this machine, as an administrator finds it before
installing the CalibrationSystem with the administrator guide.

It is what a DIRAC 9 installation made with pip has, on three "hosts" that share this machine
(each with its own DIRAC root and certificate, all answering as localhost):

- the central server: a private MariaDB with an administrator account, a master Configuration
  Server holding the Registry, Operations and Resources, the Framework services the installer
  tools need (ComponentMonitoring, ProxyManager), the WMS a job needs (JobManager, the
  optimizers, Matcher, JobMonitoring, JobStateUpdate, SandboxStore, OptimizationMind) with
  ResourceStatus, a file catalogue and a storage element; its databases installed with DIRAC's
  own installer. No OpenSearch: job parameters are lost (see ``production_config``);
- a worker node, where pilots (JobAgents with a one-slot pool CE) pull the jobs, replaced when
  they end as a site director would send new ones;
- the host the CalibrationSystem goes to: DIRAC installed, runit supervising its
  ``$DIRAC/startup``, not yet registered in the CS. The administrator guide does the rest.

Everything lives in one work directory::

    DIR/pki/          CA, host and user certificates; users' proxies (made by dirac-proxy-init)
    DIR/mysql/        MariaDB
    DIR/dirac/        the central server's DIRAC root: etc/dirac.cfg, etc/Production.cfg (the master CS)
    DIR/calibration/  the CalibrationSystem host's DIRAC root ($DIRAC in the guide): etc/,
                      bashrc, bin/ (for runit's wrappers), runit/, startup/
    DIR/workernode/   the worker node's DIRAC root (its pilots' and the jobs' directories)
    DIR/clients/<u>/  a user's client installation (etc/dirac.cfg)
    DIR/storage/      sandboxes and the storage element's files
    DIR/logs/         the logs of the processes started here (the runit components log in
                      $DIRAC/runit/<System>/<Component>/log/current)
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from ILCDIRAC.CalibrationSystem.LocalStack import config as stack_config
from ILCDIRAC.CalibrationSystem.LocalStack import production_config as prod
from ILCDIRAC.CalibrationSystem.LocalStack.config import write_config
from ILCDIRAC.CalibrationSystem.LocalStack.mariadb import MariaDB
from ILCDIRAC.CalibrationSystem.LocalStack.pki import PKIPaths, ensure_certificates, host_dn
from ILCDIRAC.CalibrationSystem.LocalStack.processes import (
    ProcessStack,
    StackError,
    dirac_env,
    kill_processes_in,
    port_open,
    tail,
)

DB_ADMIN = "dirac_admin"
DB_USER = "Dirac"
#: The port of the Calibration service in ConfigTemplate.cfg, where dirac-install-component puts it
CALIBRATION_PORT = 9187
#: The processes started here, in the order they start (stopped in the reverse order)
PROCESSES = ("mariadb", "cs", "services", "optimizers", "runsvdir", "pilots")
#: Pilots on the worker node at a time: enough for the jobs a test runs at once (a job waits
#: in the task queue for a free pilot)
PILOTS = 4
#: PILOTS pilots, each replaced by another one when it ends (as a site director sends them).
#: Each has one slot: a pilot that stops for lack of work waits in its CE's shutdown for the jobs
#: it runs and matches nothing meanwhile, so one pilot with many slots could leave a resubmitted
#: job waiting for ever beside the workers that wait for it; a busy one-slot pilot does not count
#: failed matches and does not stop.
PILOT_LOOPS = (f"for pilot in $(seq {PILOTS}); do (while :; do dirac-agent WorkloadManagement/JobAgent; "
               "sleep 1; done) & done; wait")
#: What makes the interpreter behind the venv, which DIRAC's JobWrapper runs, see the venv's
#: packages (a bare PYTHONPATH would skip their .pth files and lose editable installs)
SITECUSTOMIZE = "import site\nsite.addsitedir({site_packages!r})\n"
#: Installs DIRAC databases with DIRAC's own installer, as dirac-setup-site does
INSTALL_DATABASES = """
import sys
from DIRAC.FrameworkSystem.Client.ComponentInstaller import gComponentInstaller
for name in sys.argv[1:]:
    result = gComponentInstaller.installDatabase(name)
    if not result["OK"]:
        sys.exit(f"{name}: {result['Message']}")
"""


class ProductionStack(ProcessStack):
    """Start, inspect and stop the production-like installation living in ``workdir``."""

    def __init__(self, workdir: str | os.PathLike, start_timeout: float = 120.0, stop_grace: float = 10.0):
        super().__init__(workdir, start_timeout, stop_grace)
        self.pki = PKIPaths(self.workdir / "pki")
        self.bin_dir = Path(sys.prefix) / "bin"
        self.instance = self.workdir / "dirac"
        self.calibration_host = self.workdir / "calibration"
        self.worker_node = self.workdir / "workernode"
        self.storage = self.workdir / "storage"

    @property
    def mariadb(self) -> MariaDB:
        return MariaDB(self.workdir / "mysql", self._port("mysql_port", "127.0.0.1"))

    # ------------------------------------------------------------------ layout

    @property
    def layout(self) -> prod.Layout:
        ports = {service: self._port(f"port_{service[0]}_{service[1]}", "") for service in prod.SERVICES}
        return prod.Layout(instance=self.instance, calibration_host=self.calibration_host, worker_node=self.worker_node,
                           storage=self.storage, pki=self.pki, cs_port=self._port("cs_port", ""), service_ports=ports,
                           db_port=self.mariadb.port, db_user=DB_USER, db_password=self.mariadb.password(DB_USER))

    def client_root(self, user: str) -> Path:
        return self.workdir / "clients" / user

    # ------------------------------------------------------------------ environments

    def _env(self, root: Path, extra_path: tuple[Path, ...] = ()) -> dict[str, str]:
        return dirac_env(root, self.pki.ca_dir, [*extra_path, self.bin_dir])

    def _server_env(self) -> dict[str, str]:
        """The central server's processes: its DIRAC root, the host certificate (its dirac.cfg says so)."""
        return self._env(self.instance)

    def calibration_host_env(self) -> dict[str, str]:
        """Processes on the CalibrationSystem's host (runit and what it runs)."""
        return self._env(self.calibration_host, (self.calibration_host / "bin",))

    def admin_env(self) -> dict[str, str]:
        """The administrator's shell on the CalibrationSystem's host, with the administrator's
        certificate (see ``_credentials``) and the variables the administrator guide uses:
        DIRAC, HOST, HOST_DN and the MySQL server's DB_HOST, DB_PORT, DB_ROOT_USER,
        DB_ROOT_PASSWORD, DB_USER, DB_PASSWORD."""
        return dict(self.calibration_host_env(), **self._credentials(prod.ADMIN_USER),
                    DIRAC=str(self.calibration_host), HOST=stack_config.HOST, HOST_DN=host_dn(prod.CALIBRATION_HOST),
                    DB_HOST="127.0.0.1", DB_PORT=str(self.mariadb.port), DB_ROOT_USER=DB_ADMIN,
                    DB_ROOT_PASSWORD=self.mariadb.password(DB_ADMIN), DB_USER=DB_USER,
                    DB_PASSWORD=self.mariadb.password(DB_USER))

    def user_env(self, user: str = "alice") -> dict[str, str]:
        """A user's shell on a client installation: the proxy is made by dirac-proxy-init."""
        if user not in stack_config.USER_GROUPS:
            raise StackError(f"unknown user {user!r}; the installation has {sorted(stack_config.USER_GROUPS)}")
        return dict(self._env(self.client_root(user)), **self._credentials(user))

    def _credentials(self, user: str) -> dict[str, str]:
        """A home whose ~/.globus holds the user's certificate and key, where dirac-proxy-init
        looks for them, and where the proxy goes (X509_USER_PROXY). (X509_USER_CERT would make
        every DIRAC client try the certificate itself first.)"""
        home = self.workdir / "homes" / user
        globus = home / ".globus"
        if not globus.is_dir():
            globus.mkdir(parents=True, mode=0o700)
            for link, target in (("usercert.pem", self.pki.user_cert(user)), ("userkey.pem", self.pki.user_key(user))):
                (globus / link).symlink_to(target)
        return {"HOME": str(home), "X509_USER_PROXY": str(self.pki.proxy(user))}

    def _worker_node_env(self) -> dict[str, str]:
        env = self._env(self.worker_node)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.worker_node / "python"), env.get("PYTHONPATH")]))
        return env

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Bring up whatever is not running; the Configuration Server first, then the services,
        the optimizers, runit and the worker node."""
        with self._locked():
            if port_open(CALIBRATION_PORT) and not self._alive("runsvdir"):
                raise StackError(f"port {CALIBRATION_PORT}, where dirac-install-component puts the Calibration "
                                 "service, is taken by another process")
            for directory in (self.instance / "etc", self.calibration_host / "bin", self.calibration_host / "startup",
                              self.worker_node / "etc", self.worker_node / "python", self.storage, self.log_dir):
                directory.mkdir(parents=True, exist_ok=True)
            ensure_certificates(self.pki.root, [*stack_config.USER_GROUPS, prod.ADMIN_USER],
                                (prod.CENTRAL_HOST, prod.CALIBRATION_HOST))
            self._start_mariadb()
            layout = self.layout
            self._write_configs(layout)
            if not self._alive("cs"):
                self._launch("cs", [self._script("dirac-service"), "Configuration/Server"])
            self._wait_for_port("cs", layout.cs_port)
            services = [f"{system}/{name}" for system, name in prod.SERVICES]
            if not self._alive("services"):
                self._launch("services", [self._script("dirac-service"), *services])
            for service in prod.SERVICES:
                self._wait_for_port("services", layout.service_ports[service])
            self._run("rss", [self._script("dirac-rss-sync"), "--element=all", "--defaultStatus=Active"])
            if not self._alive("optimizers"):
                self._launch("optimizers", [self._script("dirac-executor"), "WorkloadManagement/Optimizers"])
            if not self._alive("runsvdir"):
                self._launch("runsvdir", ["runsvdir", str(self.calibration_host / "startup")],
                             env=self.calibration_host_env(), cwd=self.calibration_host)
            if not self._alive("pilots"):
                self._launch("pilots", ["bash", "-c", PILOT_LOOPS], env=self._worker_node_env(),
                             cwd=self.worker_node)

    def _script(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.exists():
            raise StackError(f"{path} not found: install DIRAC into the Python environment at {sys.prefix}")
        return str(path)

    def _start_mariadb(self) -> None:
        """The private MariaDB with the accounts of a DIRAC installation and its databases."""
        server = self.mariadb
        if not self._alive("mariadb"):
            self._terminate("mariadb")
            server.initialise()
            self._launch("mariadb", server.server_command())
        server.wait_ready(lambda: self._alive("mariadb"), self.start_timeout, lambda: tail(self.log_dir / "mariadb.log"))
        server.ensure_account(DB_ADMIN, "127.0.0.1", administrator=True)
        server.ensure_account(DB_USER, "%")
        if not (self.workdir / ".databases-installed").exists():
            self._install_databases()
            (self.workdir / ".databases-installed").touch()

    def _install_databases(self) -> None:
        """DIRAC's installer, given the MySQL server in /LocalInstallation/Database of its own cfg."""
        root = self.workdir / "installer"
        cfg = prod.CFG()
        database = {"Host": "127.0.0.1", "Port": self.mariadb.port, "User": DB_USER,
                    "Password": self.mariadb.password(DB_USER), "RootUser": DB_ADMIN,
                    "RootPwd": self.mariadb.password(DB_ADMIN)}
        for option, value in database.items():
            stack_config.set_option(cfg, f"LocalInstallation/Database/{option}", value)
        write_config(cfg, root / "etc" / "dirac.cfg")
        self._run("install-databases", [sys.executable, "-c", INSTALL_DATABASES,
                                        *(name for _, name in prod.DATABASES)], env=self._env(root))

    def _run(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Run a command to its end, output in DIR/logs/<name>.log; StackError if it fails."""
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.run(command, env=env or self._server_env(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=self.start_timeout, check=False)
        if proc.returncode != 0:
            raise StackError(f"{shlex.join(command[:3])} failed (exit code {proc.returncode}). "
                             f"Tail of {log_path}:\n{tail(log_path)}")

    def _write_configs(self, layout: prod.Layout) -> None:
        """The CS, every host's dirac.cfg and bashrc; the master CS only once (the Configuration
        Server owns it from then on)."""
        master = self.instance / "etc" / f"{prod.CS_NAME}.cfg"
        if not master.exists():
            write_config(prod.master_cs(layout), master)
        write_config(prod.server_cfg(layout), self.instance / "etc" / "dirac.cfg")
        calibration_cfg = self.calibration_host / "etc" / "dirac.cfg"
        if not calibration_cfg.exists():  # the administrator guide adds to it
            write_config(prod.calibration_host_cfg(layout), calibration_cfg)
        write_config(prod.worker_node_cfg(layout), self.worker_node / "etc" / "dirac.cfg")
        for user in stack_config.USER_GROUPS:
            write_config(prod.client_cfg(layout, self.client_root(user)), self.client_root(user) / "etc" / "dirac.cfg")
        site_packages = next(Path(sys.prefix).glob("lib/python*/site-packages"))
        (self.worker_node / "python" / "sitecustomize.py").write_text(
            SITECUSTOMIZE.format(site_packages=str(site_packages)))
        env = self.calibration_host_env()
        (self.calibration_host / "bashrc").write_text(
            "# The environment of this DIRAC installation's components (runit's run scripts source it)\n"
            + "".join(f"export {var}={shlex.quote(env[var])}\n" for var in ("DIRAC_ROOT_PATH", "X509_CERT_DIR", "PATH")))

    # ------------------------------------------------------------------ stop and status

    def stop(self) -> None:
        """Stop everything started here, also what left its process group: the worker node, then
        every job it started (the processes working in its directory), runit and whatever still
        works in the components' runit directories, the services and MariaDB."""
        left_behind = {"pilots": self.worker_node, "runsvdir": self.calibration_host / "runit"}
        steps = []
        for name in reversed(PROCESSES):
            steps.append(lambda name=name: self._terminate(name))
            if name in left_behind:
                steps.append(lambda directory=left_behind[name]: kill_processes_in(directory))
        self._stop_all(steps)

    def status(self) -> dict:
        """Per process started here: its pid and whether it runs."""
        self._state = self._load_state()
        processes = {}
        for name in PROCESSES:
            record = self._state["processes"].get(name)
            processes[name] = {"running": self._alive(name), "pid": record["pid"] if record else None,
                               "log": str(self.log_dir / f"{name}.log")}
        return {"workdir": str(self.workdir), "running": all(p["running"] for p in processes.values()),
                "processes": processes}
