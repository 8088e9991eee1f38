"""Trials that crash, hang past their timeout, print NaN or print no metric: the campaign goes on and records each
with its outcome and reason, exactly once, and the hung trial's whole process group is gone."""

import time

import pytest
from faultkit import check_books, write_program
from helpers import processes_with
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow

# The offline planner's first wave screens each knob a step up and a step down, in the order declared: X moves twice
# (both fine), FAULT becomes crash and hang, OUTPUT becomes nan and silent. Six trials, four of them faults.
TRAIN = '''"""Fails on demand: the fault knobs pick how."""

import os
import signal
import subprocess
import sys
import time

X = 1.0  # best at 3
FAULT = "none"  # none | crash | hang
OUTPUT = "normal"  # normal | nan | silent

loss = (X - 3.0) ** 2
if FAULT == "crash":
    raise RuntimeError("boom: the fault program crashed on purpose")
if FAULT == "hang":
    # A child in the same process group, and a parent deaf to SIGTERM: only the group's SIGKILL ends them.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open("pids.txt", "w") as pids:
        pids.write(f"{os.getpid()} {child.pid}\\n")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("hanging", flush=True)
    time.sleep(600)
if OUTPUT == "nan":
    loss = float("nan")
if OUTPUT != "silent":
    print(f"loss: {loss}")
print("done")
'''

CONFIG = {
    "name": "trial-faults",
    "command": "python train.py",
    "metric": {"name": "loss", "goal": "minimize"},
    "trial": {"time_budget_s": 1, "timeout_s": 3},
    "wave_size": 6,
    "budget": {"waves": 1},
    "baseline_repeats": 2,
    "decision": {"confirm_runs": 1, "confirm_top": 1},
    "planner": {"kind": "offline"},
    "knobs": [
        {"name": "X", "type": "float", "low": 0.1, "high": 10, "log": True},
        {"name": "FAULT", "type": "choice", "choices": ["none", "crash", "hang"]},
        {"name": "OUTPUT", "type": "choice", "choices": ["normal", "nan", "silent"]},
    ],
}

REASONS = {
    "crash": "exited with status 1",
    "timeout": "killed after the hard timeout",
    "nan": "loss was nan",
    "no_metric": "the script never printed 'loss: <value>'",
}


def test_faulty_trials_end_in_named_outcomes_with_their_reasons(prefect_api, tmp_path):
    path = write_program(
        tmp_path / "program",
        TRAIN,
        {
            **CONFIG,
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "state_dir": str(tmp_path / "state"),
        },
    )
    started = time.monotonic()
    state = campaign_flow(config_path=str(path), return_state=True)
    elapsed = time.monotonic() - started
    assert state.is_completed(), state
    summary = state.result()

    client = MlflowClient(summary.tracking_uri)
    books = check_books(client, summary.experiment_id, summary.agent_run_id)
    trials = books["trials"]
    by_change = {t.data.tags["overnight.hypothesis"]: t for t in trials.values()}
    expected = {
        "FAULT 'none' -> 'crash'": "crash",
        "FAULT 'none' -> 'hang'": "timeout",
        "OUTPUT 'normal' -> 'nan'": "nan",
        "OUTPUT 'normal' -> 'silent'": "no_metric",
    }
    for change, outcome in expected.items():
        run = by_change[change]
        assert run.data.tags["overnight.outcome"] == outcome, change
        assert run.data.tags["overnight.reason"] == REASONS[outcome], change
        assert "loss" not in run.data.metrics  # a NaN never reaches MLflow as a number
    crashed = by_change["FAULT 'none' -> 'crash'"]
    with open(client.download_artifacts(crashed.info.run_id, "log_tail.txt")) as log:
        assert "RuntimeError: boom" in log.read()  # the why, for a person and for the next plan
    assert summary.outcomes["ok"] >= 4  # two baseline copies, both moves of X (and any confirmation)
    assert sum(summary.outcomes.values()) == len(trials) == summary.trials
    print(f"\n{len(trials)} trials, outcomes {summary.outcomes}, campaign {elapsed:.1f} s")

    # The hung trial: killed after its timeout (plus the grace a deaf SIGTERM costs), its child with it.
    hung = by_change["FAULT 'none' -> 'hang'"]
    assert 3 <= hung.data.metrics["duration_s"] < 3 + 5 + 5
    workdir = tmp_path / "state" / "work" / "trial-faults" / hung.data.tags["overnight.trial_id"]
    assert len((workdir / "pids.txt").read_text().split()) == 2  # it had a child (pids as its box saw them)
    assert processes_with(f"OVERNIGHT_TRIAL_ID={hung.data.tags['overnight.trial_id']}\0") == []

    # One Prefect task run per trial, none retried: a faulty experiment is a result, not an infrastructure error.
    with get_client(sync_client=True) as prefect:
        waves = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [w.id for w in waves]}))
    runs = [t for t in tasks if t.name.startswith("trial ")]
    assert sorted(t.name.removeprefix("trial ") for t in runs) == sorted(trials)
    assert all(t.run_count == 1 and t.state.is_completed() for t in runs)
