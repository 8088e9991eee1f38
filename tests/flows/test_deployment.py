"""`overnight serve`: the campaign served on a cron schedule, triggered through Prefect's API like a nightly run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

pytestmark = pytest.mark.slow


def test_a_served_campaign_runs_when_triggered_and_writes_to_mlflow(prefect_api, quadratic, tmp_path):
    from prefect.settings import PREFECT_API_URL

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = configure_campaign(
        quadratic, tracking_uri=uri, state_dir=str(tmp_path / "state"), budget={"waves": 1}
    )
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    command = [
        sys.executable,
        "-m",
        "overnight.cli",
        "serve",
        str(path),
        "--cron",
        "0 1 * * *",
        "--timezone",
        "Europe/Paris",
        "--name",
        "test-nightly",
    ]
    server = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deployment = None
        deadline = time.monotonic() + 90
        with get_client(sync_client=True) as client:
            while deployment is None and time.monotonic() < deadline:
                try:
                    deployment = client.read_deployment_by_name("campaign/test-nightly")
                except Exception:
                    time.sleep(1)
        assert deployment is not None, "the deployment never appeared"
        (schedule,) = deployment.schedules
        assert schedule.schedule.cron == "0 1 * * *" and schedule.schedule.timezone == "Europe/Paris"
        assert deployment.parameters == {"config_path": str(path)}

        flow_run = run_deployment("campaign/test-nightly", timeout=240)
        assert flow_run.state.is_completed(), flow_run.state
        assert flow_run.name == "campaign quadratic"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("quadratic")
    (agent,) = client.search_runs([experiment.experiment_id], "tags.`overnight.kind` = 'agent_run'")
    assert agent.info.status == "FINISHED" and agent.data.params["prefect_flow_run_id"] == str(flow_run.id)


def test_prefect_yaml_deploys_to_a_process_work_pool(prefect_api, quadratic, tmp_path):
    """The commands of deployments/prefect.yaml, as a user runs them from the repository root."""
    from prefect.settings import PREFECT_API_URL

    root = Path(__file__).resolve().parents[2]
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PWD": str(root)}
    env.pop("ANTHROPIC_API_KEY", None)
    pool = subprocess.run(
        [prefect, "work-pool", "create", "overnight", "--type", "process", "--overwrite"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deploy = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    worker = subprocess.Popen(
        [prefect, "worker", "start", "--pool", "overnight"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("campaign/nightly")
        assert deployment.parameters["config_path"] == str(root / "overnight/programs/tiny_gpt/campaign.yaml")
        assert deployment.schedules[0].schedule.cron == "0 1 * * *"
        overrides = {"budget.waves": 1, "state_dir": str(tmp_path / "state"), "tracking_uri": uri}
        flow_run = run_deployment(
            "campaign/nightly",
            parameters={"config_path": str(quadratic / "campaign.yaml"), "overrides": overrides},
            timeout=240,
        )
        assert flow_run.state.is_completed(), flow_run.state
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # by group: a worker may outlive its own SIGTERM otherwise
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    client = MlflowClient(uri)
    (agent,) = client.search_runs(
        [client.get_experiment_by_name("quadratic").experiment_id], "tags.`overnight.kind` = 'agent_run'"
    )
    assert agent.info.status == "FINISHED"
