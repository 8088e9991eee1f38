"""Real servers a test owns, each restartable on the same port and store: a private PostgreSQL, an MLflow tracking
server (on SQLite or on that PostgreSQL), and a Prefect server on that PostgreSQL, as a team would run them.

Each kill is a SIGKILL of the server's whole process group (a crash, an OOM kill); `start` brings it back on the same
port and database, so a client that retries sees the same server come back."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Process:
    """A server process in a process group of its own, its output appended to a log file."""

    process: subprocess.Popen | None = None
    log: Path

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # the child holds it open
            start_new_session=True,  # its own process group: a kill takes its workers too
        )

    def _wait_for(self, url: str, what: str, started: float, wait_s: float) -> float:
        while time.monotonic() - started < wait_s:
            if self.process.poll() is not None:
                pytest.fail(f"{what} exited with {self.process.returncode}; see {self.log}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"{what} did not answer in {wait_s:.0f} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would: no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def postgres_problem() -> str:
    """Why a private PostgreSQL cannot run here, naming what is missing, or "" when it can."""
    if not (POSTGRES_BIN / "initdb").is_file():
        return (
            f"PostgreSQL 15 is not installed ({POSTGRES_BIN}/initdb is missing; apt-get install postgresql)"
        )
    missing = [name for name in ("psycopg", "psycopg2", "asyncpg") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not importable (pip install -e '.[team]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root (initdb refuses root) and there is no 'postgres' user to run it as"
    return ""


class PostgresServer:
    """A private PostgreSQL in a temporary folder: its own port, trust authentication, one user `postgres`.

    As root it runs as the `postgres` OS user (initdb refuses root), in a folder under /tmp that user owns (pytest's
    own temporary folders are private to root)."""

    def __init__(self, databases: tuple[str, ...] = ("mlflow", "prefect")):
        self.root = Path(tempfile.mkdtemp(prefix="overnight-pg-"))
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self.databases = databases

    def _run(self, *command: str, timeout: float = 120) -> None:
        owner = {"user": self.user.pw_uid, "group": self.user.pw_gid} if self.user else {}
        done = subprocess.run(
            [str(POSTGRES_BIN / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            **owner,
        )
        if done.returncode:
            pytest.fail(f"{command[0]} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        for name in self.databases:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class TrackingServer(_Process):
    """A real `mlflow server` on a fixed port and store (SQLite in `root` by default, or `backend_store_uri`), so a
    restart comes back as the same server."""

    def __init__(self, root: Path, backend_store_uri: str | None = None, workers: int = 1):
        self.port = free_port()
        self.root = root
        self.store = backend_store_uri or f"sqlite:///{root / 'server.db'}"
        self.workers = workers
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.restarts = 0

    def start(self, wait_s: float = 90) -> float:
        """Start it and wait until it answers; returns how long that took."""
        started = time.monotonic()
        command = [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            self.store,
            "--artifacts-destination",
            str(self.root / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        self._spawn(command, {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        return self._wait_for(f"{self.uri}/health", "the MLflow server", started, wait_s)


class PrefectServer(_Process):
    """`prefect server start` on a fixed port and database (`postgresql+asyncpg://...`), its home in `root`."""

    def __init__(self, root: Path, database_url: str):
        self.port = free_port()
        self.root = root
        self.database_url = database_url
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = root / "prefect-server.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PREFECT_HOME": str(self.root / "home"),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_UI_ENABLED": "false",
        }

    def start(self, wait_s: float = 180) -> float:
        """Start it (migrations on a new database) and wait until /api/health answers; returns how long it took."""
        started = time.monotonic()
        command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        self._spawn(command, self.env())
        return self._wait_for(f"{self.api_url}/health", "the Prefect server", started, wait_s)
