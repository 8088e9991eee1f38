"""Shared by the fault tests: a tracking server that can be killed and restarted on the same port and store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


class TrackingServer:
    """A real `mlflow server` on a fixed port and store, so a restart comes back as the same server."""

    def __init__(self, root: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root = root
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self, wait_s: float = 90) -> float:
        """Start it and wait until it answers; returns how long that took."""
        started = time.monotonic()
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'server.db'}",
            "--artifacts-destination",
            str(self.root / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "ab"),  # the child holds it open
            start_new_session=True,  # its own process group: a kill takes the workers too
        )
        while time.monotonic() - started < wait_s:
            if self.process.poll() is not None:
                pytest.fail(
                    f"the MLflow server exited with {self.process.returncode}; see {self.root}/server.log"
                )
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2).read()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"the MLflow server did not answer in {wait_s:.0f} s")

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


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """One tracking server for the fault tests of the session (it starts in 15-20 s); tests may kill and restart it."""
    server = TrackingServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()
