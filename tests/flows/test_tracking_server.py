"""The same campaign against a real MLflow tracking server over HTTP instead of the local SQLite file."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient

from flows.campaign import campaign_flow
from overnight.cli.common import tracking_problem

pytestmark = pytest.mark.slow


@pytest.fixture
def tracking_server(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        str(mlflow),
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).read()
            break
        except OSError:
            time.sleep(0.5)
    else:
        pytest.fail("the MLflow server did not start in 90 s")
    yield uri
    os.killpg(server.pid, signal.SIGTERM)  # the whole group: the server forks workers
    server.wait(timeout=30)


def test_a_campaign_against_a_tracking_server(prefect_api, tracking_server, quadratic, tmp_path):
    assert tracking_problem(tracking_server) == ""
    path = configure_campaign(
        quadratic, tracking_uri=tracking_server, state_dir=str(tmp_path / "state"), budget={"waves": 1}
    )
    state = campaign_flow(config_path=str(path), return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    client = MlflowClient(tracking_server)
    trials = client.search_runs([summary.experiment_id], "tags.`overnight.kind` = 'trial'")
    roles = [t.data.tags["overnight.role"] for t in trials]
    assert roles.count("baseline") == 2 and roles.count("candidate") == 2  # plus any confirmation runs
    assert all(t.info.status == "FINISHED" for t in trials)
    champion = client.get_experiment(summary.experiment_id).tags["overnight.champion_run_id"]
    with open(client.download_artifacts(champion, "files/train.py")) as files:
        assert "X = " in files.read()  # artifacts went through the server and come back
