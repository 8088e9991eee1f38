"""A team's servers die (SIGKILL of the process group) while a wave's trials run, and come back on the same port and
PostgreSQL database: the MLflow tracking server in wave 1, the Prefect server in wave 2. The campaign completes,
every trial's record is in MLflow exactly once, and the flow run is in Prefect afterwards."""

import os
import subprocess
import sys
import time

import pytest
from faultkit import check_books, write_program
from helpers import write_results
from mlflow.tracking import MlflowClient
from prefect_books import campaign_runs

pytestmark = pytest.mark.slow

TRAIN = '''"""Sleeps long enough for a server to die and come back, and marks when it starts."""

import os
import time
from pathlib import Path

X = 1.0  # best at 3

Path(os.environ["FAULT_MARKS"], os.environ["OVERNIGHT_TRIAL_ID"]).touch()
time.sleep(4)
print(f"loss: {(X - 3.0) ** 2 + 0.001 * int(os.environ['OVERNIGHT_SEED'])}")
'''


def test_a_campaign_survives_its_servers_restarting(pg_tracking_server, pg_prefect_server, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write_program(
        tmp_path / "program",
        TRAIN,
        {
            "name": "server-restart",
            "metric": {"name": "loss", "goal": "minimize"},
            "trial": {"time_budget_s": 1, "timeout_s": 60, "env": {"FAULT_MARKS": str(marks)}},
            "wave_size": 2,
            "budget": {"waves": 2},
            "baseline_repeats": 2,
            "decision": {"confirm_runs": 1, "confirm_top": 1},
            "planner": {"kind": "offline"},
            "knobs": [{"name": "X", "type": "float", "low": 0.1, "high": 10, "log": True}],
            "tracking_uri": pg_tracking_server.uri,
            "prefect_api_url": pg_prefect_server.api_url,
            "state_dir": str(tmp_path / "state"),
        },
    )

    def restart_in(wave: str, server) -> float:
        """Once a trial of `wave` runs, kill the server and start it again; returns how long it was down."""
        deadline = time.monotonic() + 180
        while not any(f"-w{wave}-" in m.name for m in marks.iterdir()):
            assert campaign.poll() is None and time.monotonic() < deadline, f"wave {wave} never started"
            time.sleep(0.1)
        server.kill()  # the wave's trials are running; they end while the server is down
        killed = time.monotonic()
        time.sleep(2)
        server.start()
        return time.monotonic() - killed

    # `overnight run` in a process of its own, as a team runs it, while the test kills the servers under it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    campaign = subprocess.Popen(
        [sys.executable, "-m", "overnight.cli", "run", str(path)],
        cwd=tmp_path,
        env={**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "200", "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        mlflow_down_s = restart_in("1", pg_tracking_server)
        prefect_down_s = restart_in("2", pg_prefect_server)
        output, _ = campaign.communicate(timeout=300)
    finally:
        if campaign.poll() is None:
            campaign.kill()
    assert campaign.returncode == 0, output[-6000:]
    assert "Traceback" not in output, output[-6000:]

    client = MlflowClient(pg_tracking_server.uri)
    experiment = client.get_experiment_by_name("server-restart").experiment_id
    (agent,) = client.search_runs([experiment], "tags.`overnight.kind` = 'agent_run'")
    books = check_books(client, experiment, agent.info.run_id)
    trials = books["trials"]
    figures = (
        f"MLflow server down {mlflow_down_s:.1f} s in wave 1, Prefect server down {prefect_down_s:.1f} s in wave 2; "
        f"{len(trials)} trials ran, {len(trials)} recorded once, all ok"
    )
    print(f"\n{figures}")
    started = {m.name for m in marks.iterdir()}
    assert set(trials) == started  # every trial that ran has its record, and no record lacks a run
    assert {r.data.tags["overnight.outcome"] for r in trials.values()} == {"ok"}
    for run in trials.values():
        assert "loss" in run.data.metrics and run.data.metrics["duration_s"] >= 4
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"diff.patch", "files", "log_tail.txt"} <= names
    assert len(books["waves"]) == 3 and all(w.info.status == "FINISHED" for w in books["waves"])

    prefect = campaign_runs(pg_prefect_server.api_url, str(path))
    (flow_run,) = prefect["flows"]
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    assert len(prefect["subflows"]) == 3  # the baseline and both waves
    write_results(  # with OVERNIGHT_WRITE_RESULTS=1
        "## 10. A team's servers restarted mid-wave",
        "One `overnight run` (a baseline and two waves of trials that sleep 4 s) reporting to an MLflow server and a "
        "Prefect server, both on one PostgreSQL 15; the test kills each server's process group with SIGKILL while "
        "a wave's trials run (MLflow in wave 1, Prefect in wave 2) and starts it again on the same port and "
        "database (tests/faults/test_mlflow_restart.py). The campaign completes, its flow run is COMPLETED in "
        f"Prefect with its {len(prefect['subflows'])} wave subflows, and every trial that ran has one record with "
        f"its metric and artifacts.\n\n- {figures}",
        "PostgreSQL, both servers and the campaign on the same machine",
    )
