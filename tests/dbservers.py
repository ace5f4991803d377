# Throwaway PostgreSQL and MariaDB servers for the test suite: each one lives in its own temp
# dir, listens on a free port on 127.0.0.1 only, runs as an unprivileged user, and leaves
# no process or file behind once stopped.
from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

USER = "bridgehead"
PASSWORD = "bh-test-pw"
START_TIMEOUT = 30
STOP_TIMEOUT = 10


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user(os_user: str, argv: list[str]) -> list[str]:
    """Prefix argv with runuser when we are root: initdb, pg_ctl and mariadbd refuse root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", os_user, "--", *argv]
    return argv


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by pid, and pid itself should it lead no group."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether pid runs; zombies count as dead, since an orphan may never be reaped here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _run(
    argv: list[str],
    what: str,
    *,
    cwd: Path,
    timeout: float = START_TIMEOUT,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    stdin: Path | None = None,
) -> str:
    """Run a command to completion with bounded time; output goes through a file, not a pipe,
    so a daemon that inherits it cannot make us hang. Raise RuntimeError on any failure."""
    with tempfile.TemporaryFile() as out, contextlib.ExitStack() as files:
        source = files.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        proc = subprocess.Popen(
            argv,
            stdin=source,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            code = None
        out.seek(0)
        output = out.read().decode(errors="replace").strip()
    if code == 0:
        return output
    status = f"timed out after {timeout:.0f} s" if code is None else f"failed (exit {code})"
    message = f"{what} {status}: {' '.join(argv)}\n{output}"
    if log is not None:
        message += f"\n--- tail of {log} ---\n{_tail(log)}"
    raise RuntimeError(message)


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _which(names: list[str], dirs: list[str]) -> str | None:
    """First of names found in dirs, then on PATH."""
    search = os.pathsep.join([*dirs, os.environ.get("PATH", "")])
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


class DatabaseServer(ABC):
    """Lifecycle shared by the servers: start, stop (removing the temp dir), restart, with."""

    os_user = ""
    label = ""

    def __init__(self) -> None:
        self.port = 0
        self.user = USER
        self.password = PASSWORD
        self._dir: Path | None = None

    @property
    def dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._dir

    def start(self) -> None:
        if self._dir is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._find_binaries()
        self._dir = Path(tempfile.mkdtemp(prefix=f"bh-{self.label}-"))
        self.port = _free_port()
        try:
            self._own(self._dir)
            self._initialise()
            self._launch()
            self._configure()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._dir is None:
            return
        try:
            self._halt()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> None:
        """Stop the server process and start it again on the same port and data dir."""
        self._halt()
        self._launch()

    def pause(self) -> None:
        """Stop the server process, keeping its port and data dir for `resume`."""
        self._halt()

    def resume(self) -> None:
        """Start the server process `pause` stopped, on the same port and data dir."""
        self._launch()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, user=self.os_user)

    @abstractmethod
    def odbc_connection_string(self, database: str) -> str:
        """Connect over TCP to 127.0.0.1 as bridgehead, with its password."""

    @abstractmethod
    def create_database(self, name: str) -> None:
        """Create a UTF-8 database that bridgehead may use."""

    @abstractmethod
    def _find_binaries(self) -> None:
        """Locate the server's programs, raising RuntimeError naming the package if absent."""

    @abstractmethod
    def _initialise(self) -> None:
        """Create the data dir inside self.dir."""

    @abstractmethod
    def _launch(self) -> None:
        """Start the server process and wait until it accepts connections."""

    @abstractmethod
    def _configure(self) -> None:
        """One-off setup after the first launch."""

    @abstractmethod
    def _halt(self) -> None:
        """Stop the server process, cleanly if possible, killing it otherwise; keep the data."""


def _version_key(bindir: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(bindir).parent.name))


def _postgres_bindir() -> Path:
    """Highest /usr/lib/postgresql/*/bin, else the (symlink-resolved) dir of pg_ctl on PATH."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        dirs.append(str(Path(pg_ctl).resolve().parent))
    for bindir in map(Path, dirs):
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found; "
        "install the Debian package postgresql."
    )


# Durability off and small memory: these clusters are for tests and live for seconds.
_POSTGRES_SETTINGS = (
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "shared_buffers = 16MB",
    "max_connections = 40",
    "logging_collector = off",
)


class PostgresServer(DatabaseServer):
    """A PostgreSQL cluster with superuser bridgehead (scram-sha-256 password auth)."""

    os_user = "postgres"
    label = "postgres"

    def __init__(self) -> None:
        super().__init__()
        self._bindir = Path()

    def odbc_connection_string(self, database: str) -> str:
        return (
            "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;"
            f"PORT={self.port};DATABASE={database};UID={self.user};PWD={self.password}"
        )

    def create_database(self, name: str) -> None:
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}
        argv = [str(self._bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port)]
        argv += ["-U", self.user, "-E", "UTF8", "-T", "template0", name]
        _run(argv, f"createdb {name}", cwd=self.dir, env=env)

    def psql(self, database: str, script: Path, timeout: float = 120) -> str:
        """Run an SQL script with this server's own psql as bridgehead, stopping at the
        first error; return psql's output."""
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}
        argv = [str(self._bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port)]
        argv += ["-U", self.user, "-d", database, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        argv += ["-f", str(script)]
        return _run(argv, f"psql -f {script.name}", cwd=self.dir, env=env, timeout=timeout)

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    @property
    def _log(self) -> Path:
        return self.dir / "postgres.log"

    def _find_binaries(self) -> None:
        self._bindir = _postgres_bindir()

    def _pg(self, tool: str, *args: str) -> list[str]:
        return _as_user(self.os_user, [str(self._bindir / tool), *args])

    def _initialise(self) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        options = ["-D", str(self._data), "-U", self.user, f"--pwfile={pwfile}"]
        options += ["-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"]
        _run(self._pg("initdb", *options), "initdb", cwd=self.dir)
        pwfile.unlink()
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.dir}'",
            *_POSTGRES_SETTINGS,
        ]
        with (self._data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{line}\n" for line in settings)

    def _configure(self) -> None:
        """Nothing to do: initdb already created the bridgehead superuser."""

    def _launch(self) -> None:
        options = ["-D", str(self._data), "-l", str(self._log), "-w", "-t", str(START_TIMEOUT)]
        argv = self._pg("pg_ctl", *options, "start")
        _run(argv, "pg_ctl start", cwd=self.dir, timeout=START_TIMEOUT + 5, log=self._log)

    def _halt(self) -> None:
        options = ["-D", str(self._data), "-m", "fast", "-w", "-t", str(STOP_TIMEOUT)]
        argv = self._pg("pg_ctl", *options, "stop")
        try:
            _run(argv, "pg_ctl stop", cwd=self.dir, timeout=STOP_TIMEOUT + 5)
        except RuntimeError:
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        pidfile = self._data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        _kill_group(pid)  # the postmaster leads its own session, backends included
        if not _wait_gone(pid, 5):
            raise RuntimeError(f"could not kill the PostgreSQL postmaster (pid {pid})")
        pidfile.unlink(missing_ok=True)


def _mariadb_binaries() -> tuple[str, str, str]:
    """Paths of the server, the install-db script and the command-line client."""
    server = _which(["mariadbd", "mysqld"], ["/usr/sbin"])
    install = _which(["mariadb-install-db", "mysql_install_db"], ["/usr/bin", "/usr/sbin"])
    if server is None or install is None:
        raise RuntimeError(
            "MariaDB server binaries (mariadbd, mariadb-install-db) were not found; "
            "install the Debian package mariadb-server."
        )
    client = _which(["mariadb", "mysql"], ["/usr/bin"])
    if client is None:
        raise RuntimeError(
            "The MariaDB client (mariadb) was not found; install the Debian package mariadb-client."
        )
    return server, install, client


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# For mariadb-install-db's bootstrap server and the real one alike: small, fast, not durable.
_MARIADB_OPTIONS = (
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-use-native-aio=0",
    "--skip-log-bin",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
)


class MariaDBServer(DatabaseServer):
    """A MariaDB server with user bridgehead (all privileges, from 127.0.0.1 and localhost)."""

    os_user = "mysql"
    label = "mariadb"

    def __init__(self) -> None:
        super().__init__()
        self._server = self._install = self._client = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def odbc_connection_string(self, database: str) -> str:
        return (
            "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;"
            f"PORT={self.port};DATABASE={database};UID={self.user};PWD={self.password}"
        )

    def create_database(self, name: str) -> None:
        self._sql(
            f"CREATE DATABASE {_quote_identifier(name)} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    @property
    def _log(self) -> Path:
        return self.dir / "mariadb.log"

    @property
    def _socket(self) -> Path:
        return self.dir / "mariadb.sock"

    @property
    def _pidfile(self) -> Path:
        return self.dir / "mariadb.pid"

    def _find_binaries(self) -> None:
        self._server, self._install, self._client = _mariadb_binaries()

    def _sql(self, sql: str) -> None:
        """Run SQL as the database root over the temp dir's unix socket."""
        argv = [self._client, "--no-defaults", "--protocol=socket", f"--socket={self._socket}"]
        argv += ["--user=root", "--connect-timeout=10", "--batch", "--execute", sql]
        _run(argv, "mariadb client", cwd=self.dir, log=self._log)

    def source(self, script: Path, timeout: float = 120) -> str:
        """Run an SQL script with the mariadb client as the database root, stopping at the
        first error; return the client's output."""
        argv = [self._client, "--no-defaults", "--protocol=socket", f"--socket={self._socket}"]
        argv += ["--user=root", "--connect-timeout=10", "--batch"]
        what = f"mariadb < {script.name}"
        return _run(argv, what, cwd=self.dir, log=self._log, timeout=timeout, stdin=script)

    def _initialise(self) -> None:
        argv = [self._install, "--no-defaults", f"--datadir={self._data}", "--skip-test-db"]
        argv += ["--auth-root-authentication-method=normal", *_MARIADB_OPTIONS]
        _run(_as_user(self.os_user, argv), "mariadb-install-db", cwd=self.dir)

    def _launch(self) -> None:
        argv = [self._server, "--no-defaults", f"--datadir={self._data}", f"--tmpdir={self.dir}"]
        argv += ["--skip-networking=0", "--bind-address=127.0.0.1", f"--port={self.port}"]
        argv += [f"--socket={self._socket}", f"--pid-file={self._pidfile}"]
        argv += [f"--log-error={self._log}", "--max-connections=40", *_MARIADB_OPTIONS]
        self._pidfile.unlink(missing_ok=True)  # so _halt never signals a stale pid
        null = subprocess.DEVNULL
        proc = subprocess.Popen(
            _as_user(self.os_user, argv),
            stdin=null,
            stdout=null,
            stderr=null,
            cwd=self.dir,
            start_new_session=True,
        )
        self._proc = proc
        self._wait_ready(proc)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for mariadbd's socket file, made after it bound the TCP port (so a stranger
        already on that port cannot fool us), then for the port to accept connections."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited during startup (exit {proc.returncode}):\n{_tail(self._log)}"
                )
            if self._socket.exists() and _accepts_tcp(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"mariadbd did not accept connections on 127.0.0.1:{self.port} "
            f"within {START_TIMEOUT} s:\n{_tail(self._log)}"
        )

    def _configure(self) -> None:
        grants = []
        for host in ("127.0.0.1", "localhost"):
            account = f"'{self.user}'@'{host}'"
            grants.append(f"CREATE USER {account} IDENTIFIED BY '{self.password}';")
            grants.append(f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;")
        self._sql(" ".join(grants))

    def _halt(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            pid = int(self._pidfile.read_text().strip())
        except (OSError, ValueError):
            _kill_group(proc.pid)  # not up yet, so nothing to shut down cleanly
        else:
            # Signal mariadbd itself: runuser answers SIGTERM by SIGKILLing its child after 2 s.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait(5)
