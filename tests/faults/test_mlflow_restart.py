"""The tracking server dies (SIGKILL of its process group) while a wave's trials run, and comes back on the same port
and store: the campaign completes, and every trial's record is there exactly once."""

import contextvars
import threading
import time

import pytest
from faultkit import check_books, write_program
from mlflow.tracking import MlflowClient

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow

TRAIN = '''"""Sleeps long enough for the tracking server to die and come back, and marks when it starts."""

import os
import time
from pathlib import Path

X = 1.0  # best at 3

Path(os.environ["FAULT_MARKS"], os.environ["OVERNIGHT_TRIAL_ID"]).touch()
time.sleep(4)
print(f"loss: {(X - 3.0) ** 2 + 0.001 * int(os.environ['OVERNIGHT_SEED'])}")
'''


def test_a_campaign_survives_its_tracking_server_restarting(prefect_api, tracking_server, tmp_path):
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
            "tracking_uri": tracking_server.uri,
            "state_dir": str(tmp_path / "state"),
        },
    )
    outcome: dict = {}

    def run() -> None:
        outcome["state"] = campaign_flow(config_path=str(path), return_state=True)

    # The flow runs in a thread of its own (with this test's Prefect settings) while the test kills the server.
    campaign = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    campaign.start()
    deadline = time.monotonic() + 120
    while not any("-w1-" in m.name for m in marks.iterdir()):
        assert campaign.is_alive() and time.monotonic() < deadline, "wave 1 never started"
        time.sleep(0.1)
    tracking_server.kill()  # wave 1's trials are running; they end while the server is down
    killed = time.monotonic()
    time.sleep(2)
    tracking_server.start()
    down_s = time.monotonic() - killed
    campaign.join(timeout=300)
    assert not campaign.is_alive(), "the campaign hung after the server came back"
    state = outcome["state"]
    assert state.is_completed(), state
    summary = state.result()
    print(f"\nserver down {down_s:.1f} s; {summary.trials} trials, outcomes {summary.outcomes}")

    client = MlflowClient(tracking_server.uri)
    books = check_books(client, summary.experiment_id, summary.agent_run_id)
    trials = books["trials"]
    started = {m.name for m in marks.iterdir()}
    assert set(trials) == started  # every trial that ran has its record, and no record lacks a run
    assert summary.outcomes == {"ok": len(trials)}
    for run in trials.values():
        assert "loss" in run.data.metrics and run.data.metrics["duration_s"] >= 4
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"diff.patch", "files", "log_tail.txt"} <= names
    assert len(books["waves"]) == 3 and all(w.info.status == "FINISHED" for w in books["waves"])
