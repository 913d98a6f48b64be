"""Processes of a stack: started in sessions of their own, recorded, found again and stopped.

A stack lives in one work directory. Its processes run in their own sessions (so a signal to the
group reaches their children) and are recorded with their kernel start time in DIR/stack.json,
so that another process (the CLI, a test) can stop them later. A pid is only signalled if the
process still has the start time recorded, so a stale file never hits an unrelated process.
"""

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import psutil

_LOG_TAIL_LINES = 40
#: Variables that would make a DIRAC process pick other credentials or another configuration.
FOREIGN_VARS = ("GRID_PROXY_FILE", "X509_USER_PROXY", "DIRACSYSCONFIG", "DIRAC_ROOT_PATH",
                "DIRAC_X509_HOST_CERT", "DIRAC_X509_HOST_KEY")


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


def free_port(host: str) -> int:
    """A TCP port free on ``host`` now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def dirac_env(root: Path, ca_dir: Path, path: list[Path]) -> dict[str, str]:
    """This process's environment for a DIRAC process of the installation rooted at ``root``
    (its etc/dirac.cfg), trusting the CAs in ``ca_dir``, with ``path`` first on the PATH."""
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_VARS}
    env["PATH"] = os.pathsep.join([*map(str, path), env.get("PATH", os.defpath)])
    env["DIRAC_ROOT_PATH"] = str(root)
    env["X509_CERT_DIR"] = str(ca_dir)
    return env


def kill_processes_in(directory: Path, timeout: float = 10.0) -> None:
    """SIGKILL every process working in ``directory`` or below it, until none is left (a dying
    parent may still start one). For processes that left the stack's process groups (DIRAC's
    pool CE detaches each job wrapper, the wrapper its payload); this process and its parents
    are spared. StackError if some survive ``timeout`` seconds."""
    spared = {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for process in psutil.process_iter():
            try:
                if process.pid not in spared and Path(process.cwd()).is_relative_to(directory):
                    found.append(process)
            except (psutil.Error, OSError):
                continue
        if not found:
            return
        if time.monotonic() > deadline:
            raise StackError(f"processes working in {directory} survive SIGKILL: "
                             f"{', '.join(str(process.pid) for process in found)}")
        for process in found:
            try:
                process.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(found, timeout=max(0.0, deadline - time.monotonic()))


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last lines of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


class ProcessStack:
    """The process table of a stack in ``workdir``: ports chosen once and kept, processes
    launched with their output in DIR/logs/<name>.log, checked and stopped."""

    def __init__(self, workdir: str | os.PathLike, start_timeout: float = 60.0, stop_grace: float = 10.0):
        self.workdir = Path(workdir).resolve()
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.state_file = self.workdir / "stack.json"
        self.log_dir = self.workdir / "logs"
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
            self._state[name] = free_port(host)
            self._save_state()
        return self._state[name]

    def _server_env(self) -> dict[str, str]:
        """The environment of the stack's processes."""
        raise NotImplementedError

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

    def _launch(self, name: str, command: list[str], env: dict[str, str] | None = None,
                cwd: Path | None = None) -> None:
        """Start a command in its own session, output appended to DIR/logs/<name>.log; by
        default in the work directory with the stack's server environment."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(command)}\n".encode())
            log.flush()
            child = subprocess.Popen(command, cwd=cwd or self.workdir, env=env or self._server_env(),
                                     stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._children[name] = child
        self._state["processes"][name] = {"pid": child.pid, "start_time": _start_time(child.pid),
                                          "command": command, "log": str(log_path)}
        self._save_state()

    def _reap(self, name: str, pid: int) -> None:
        """Collect the exit status if the process is a child of this Python (launched by this
        or another stack instance), so that no zombie is left behind."""
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

    def _stop_all(self, steps: list[Callable[[], None]]) -> None:
        """Run every stop step under the lock, also after one failed, so that a failure leaves
        nothing else running; StackError with every failure at the end."""
        failures = []
        with self._locked():
            for step in steps:
                try:
                    step()
                except (StackError, OSError) as error:
                    failures.append(str(error))
        if failures:
            raise StackError("the stack did not stop cleanly:\n" + "\n".join(failures))

    def _wait_for_port(self, name: str, port: int) -> None:
        """Wait until the process ``name`` accepts connections on ``port``; StackError with the
        tail of its log if it dies or takes longer than the start timeout."""
        deadline = time.monotonic() + self.start_timeout
        while not port_open(port):
            if not self._alive(name):
                raise StackError(f"{name} exited during start-up. Tail of {self.log_dir / name}.log:\n"
                                 f"{tail(self.log_dir / f'{name}.log')}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} did not accept connections on port {port} within "
                                 f"{self.start_timeout:.0f} s. Tail of {self.log_dir / name}.log:\n"
                                 f"{tail(self.log_dir / f'{name}.log')}")
            time.sleep(0.05)
