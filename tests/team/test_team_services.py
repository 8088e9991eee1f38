"""A team's services: `overnight run` with only `tracking_uri` and `prefect_api_url` in its config reports to an
MLflow tracking server and a Prefect server, both on PostgreSQL."""

import os
import subprocess
import sys

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from prefect_books import campaign_runs

pytestmark = pytest.mark.slow


def overnight(*args: str, cwd, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "overnight.cli", *args]
    environment = {**env, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def test_overnight_run_reports_to_the_team_servers(
    postgres, pg_tracking_server, pg_prefect_server, quadratic, tmp_path
):
    path = configure_campaign(
        quadratic,
        tracking_uri=pg_tracking_server.uri,
        prefect_api_url=pg_prefect_server.api_url,
        state_dir=str(tmp_path / "state"),
        budget={"waves": 1},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_TRACKING"))}
    done = overnight(
        "run", str(path), cwd=tmp_path, env={**env, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Prefect: {pg_prefect_server.api_url}" in done.stdout

    client = MlflowClient(pg_tracking_server.uri)
    experiment = client.get_experiment_by_name("quadratic")
    trials = client.search_runs([experiment.experiment_id], "tags.`overnight.kind` = 'trial'")
    roles = [t.data.tags["overnight.role"] for t in trials]
    assert roles.count("baseline") == 2 and roles.count("candidate") == 2  # plus any confirmation runs
    assert all(t.info.status == "FINISHED" and "loss" in t.data.metrics for t in trials)

    prefect = campaign_runs(pg_prefect_server.api_url, str(path))
    (flow_run,) = prefect["flows"]
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    assert str(flow_run["id"]) in done.stdout  # the run the CLI names is the one in the team's Prefect
    trial_tasks = [t for t in prefect["tasks"] if t["task_key"].startswith("run_trial")]
    assert len(trial_tasks) == len(trials)
    assert all(t["state_type"] == "COMPLETED" for t in prefect["tasks"])

    # `overnight status` reads the same records through the server, and straight from the database.
    for uri in (pg_tracking_server.uri, postgres.url("mlflow")):
        configure_campaign(quadratic, tracking_uri=uri)
        shown = overnight("status", str(path), cwd=tmp_path, env=env, timeout=120)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "Campaign quadratic: nothing running; champion " in shown.stdout, shown.stdout


def test_an_unreachable_prefect_server_is_one_clear_message(quadratic, tmp_path):
    path = configure_campaign(
        quadratic, prefect_api_url="http://127.0.0.1:9/api", state_dir=str(tmp_path / "state")
    )
    done = overnight("run", str(path), cwd=tmp_path, env=dict(os.environ), timeout=120)
    assert done.returncode == 2
    assert "the Prefect server http://127.0.0.1:9/api does not answer" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
