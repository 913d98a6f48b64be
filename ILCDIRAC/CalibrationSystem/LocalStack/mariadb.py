"""A private MariaDB server for the local stack: own data directory, socket and loopback port.

It never touches the system's MariaDB service or /etc/mysql (``--no-defaults``). Root is only
reachable over the private unix socket; DIRAC gets a password user on TCP 127.0.0.1 (with
``localhost`` the MySQL driver would go to the system socket instead of ours).
"""

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import MySQLdb

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


class MariaDBError(RuntimeError):
    """The private server could not be initialised, started or configured."""


class MariaDB:
    """Files and commands of one private server living in ``root`` (``DIR/mysql``)."""

    def __init__(self, root: Path, port: int):
        self.root = Path(root)
        self.port = port
        self.datadir = self.root / "data"
        self.pid_file = self.root / "mariadbd.pid"
        self.password_file = self.root / "password"
        self.socket = self._socket_path()

    def _socket_path(self) -> Path:
        """The socket beside the data, or in a short directory of the temp dir if that path is
        too long for a unix socket (derived from the root, so every process finds the same one).
        Root logs in on it without a password: its directory is kept owner-only."""
        socket = self.root / "mariadb.sock"
        if len(str(socket)) <= MAX_SOCKET_PATH:
            return socket
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"ilcdirac-mariadb-{digest}" / "mariadb.sock"

    def _private_dirs(self) -> None:
        for directory in {self.root, self.socket.parent}:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)

    @staticmethod
    def _user_args() -> list[str]:
        """mariadbd refuses to run as root unless told so explicitly."""
        return ["--user=root"] if os.geteuid() == 0 else []

    def is_initialised(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def initialise(self) -> None:
        """Make the private directories and, once, the system tables (about a second); a
        half-made data directory is redone."""
        self._private_dirs()
        if self.is_initialised():
            return
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [INSTALL_DB, "--no-defaults", *self._user_args(), f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not self.is_initialised():
            raise MariaDBError(f"mariadb-install-db failed in {self.datadir}: "
                               f"{(proc.stderr or proc.stdout).strip()[-2000:]}")

    def server_command(self) -> list[str]:
        """The mariadbd command line: loopback TCP only, no binary log, a small buffer pool."""
        return [
            MARIADBD, "--no-defaults", *self._user_args(), f"--datadir={self.datadir}",
            f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
            f"--pid-file={self.pid_file}", "--skip-log-bin", "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M", "--max-connections=200",
        ]

    def _root_connection(self) -> MySQLdb.Connection:
        return MySQLdb.connect(unix_socket=str(self.socket), user="root", connect_timeout=2)

    def wait_ready(self, alive: Callable[[], bool], timeout: float, log: Callable[[], str]) -> None:
        """Wait until the server answers on its socket; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._root_connection().close()
                return
            except MySQLdb.OperationalError as exc:
                last = exc
            if not alive():
                raise MariaDBError(f"mariadbd exited during start-up. Log tail:\n{log()}")
            if time.monotonic() > deadline:
                raise MariaDBError(f"mariadbd did not answer on {self.socket} within {timeout:.0f} s "
                                   f"({last}). Log tail:\n{log()}")
            time.sleep(0.05)

    def password(self, account: str = "") -> str:
        """The password of an account (by default the DB user's): made once, kept in a 0600 file."""
        path = self.password_file.with_name(f"password-{account}") if account else self.password_file
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    @staticmethod
    def _drop_remote_roots(cursor) -> None:
        """mariadb-install-db also makes password-less root accounts for 127.0.0.1, ::1 and the
        host name; they are dropped so that only the socket (owner-only) gives root access."""
        cursor.execute("SELECT Host FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'")
        for (host,) in cursor.fetchall():
            cursor.execute("DROP USER 'root'@%s", (host,))

    def ensure_account(self, user: str, host: str, administrator: bool = False) -> str:
        """A TCP account with its own password (idempotent; the password is re-applied); an
        administrator gets every privilege WITH GRANT OPTION, as DIRAC's installer needs for
        creating databases and granting them. Returns the password.
        """
        password = self.password(user)
        conn = self._root_connection()
        try:
            cursor = conn.cursor()
            self._drop_remote_roots(cursor)
            cursor.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
            cursor.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
            if administrator:
                cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (user, host))
            conn.commit()
        finally:
            conn.close()
        return password

    def ensure_database(self, dbname: str, user: str) -> None:
        """Create the database and its TCP user (idempotent; the password is re-applied)."""
        password = self.password()
        conn = self._root_connection()
        try:
            cursor = conn.cursor()
            self._drop_remote_roots(cursor)
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{dbname}`")
            cursor.execute("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
            cursor.execute("ALTER USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{dbname}`.* TO %s@'127.0.0.1'", (user,))
            conn.commit()
        finally:
            conn.close()
