"""End to end: a real campaign flow on the real default program, read back from MLflow and from Prefect's API."""

import shutil
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

from flows.campaign import campaign_flow
from overnight.config import default_config_path

pytestmark = pytest.mark.slow


def read_prefect(flow_run_id):
    with get_client(sync_client=True) as client:
        campaign = client.read_flow_run(flow_run_id)
        waves = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
        ids = [flow_run_id] + [w.id for w in waves]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        artifacts = client.read_artifacts()
    return campaign, waves, tasks, artifacts


def test_a_tiny_campaign_on_the_default_program(prefect_api, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = {
        "name": "e2e-tiny-gpt",
        "tracking_uri": uri,
        "state_dir": str(tmp_path / "state"),
        "trial.time_budget_s": 3,
        "trial.timeout_s": 120,
        "budget.waves": 2,
        "wave_size": 2,
    }
    state = campaign_flow(config_path=str(default_config_path()), overrides=overrides, return_state=True)
    assert state.is_completed(), state
    summary = state.result()

    # --- MLflow: experiment > agent run > wave runs > trial runs -----------------------------------------------------
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e-tiny-gpt")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    by_kind = {
        kind: [r for r in runs if r.data.tags.get("overnight.kind") == kind]
        for kind in ("agent_run", "wave", "trial")
    }
    (agent,) = by_kind["agent_run"]
    assert "mlflow.parentRunId" not in agent.data.tags
    assert agent.data.params["planner"] == "offline" and agent.data.params["wave_size"] == "2"
    for key in ("baseline_val_bpb", "champion_val_bpb", "improvement_pct", "trials", "trial_hours"):
        assert key in agent.data.metrics
    assert agent.info.status == "FINISHED"

    waves = by_kind["wave"]
    assert len(waves) == 3  # baseline + 2 waves
    assert all(w.data.tags["mlflow.parentRunId"] == agent.info.run_id for w in waves)
    assert all("reflection.md" in {a.path for a in client.list_artifacts(w.info.run_id)} for w in waves)

    trials = by_kind["trial"]
    roles = Counter(t.data.tags["overnight.role"] for t in trials)
    assert (
        roles["baseline"] == 2 and roles["candidate"] == 4
    )  # two baseline copies (seeds 0 and 1) + 2 waves x 2
    assert roles["confirmation"] % 2 == 0 and set(roles) <= {
        "baseline",
        "candidate",
        "confirmation",
        "champion",
    }
    decisions = Counter(t.data.tags.get("overnight.decision") for t in trials)
    assert decisions["baseline"] == 1 and decisions["baseline_repeat"] == 1
    for trial in trials:  # every screening run has its verdict; confirmation runs are labelled as such
        expected = {
            "candidate": {"keep", "discard", "inconclusive", "failed"},
            "confirmation": {"confirmation"},
        }
        if trial.data.tags["overnight.role"] in expected:
            assert trial.data.tags["overnight.decision"] in expected[trial.data.tags["overnight.role"]]
    wave_ids = {w.info.run_id for w in waves}
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] in wave_ids
        assert trial.data.tags["overnight.hypothesis"]
        assert "diff.patch" in {a.path for a in client.list_artifacts(trial.info.run_id)}
        if trial.data.tags["overnight.outcome"] == "ok":
            assert trial.data.metrics["val_bpb"] > 0
            assert "LEARNING_RATE" in trial.data.params
    outcomes = Counter(t.data.tags["overnight.outcome"] for t in trials)
    assert outcomes["ok"] >= 3, outcomes
    # Each trial ran in the box where bubblewrap is installed (trial.sandbox: auto), and the program never needed
    # to write outside its folder.
    box = "bubblewrap" if shutil.which("bwrap") else "none"
    assert {t.data.tags["overnight.sandbox"] for t in trials} == {box}
    assert [
        t.data.tags["overnight.refused_writes"] for t in trials if "overnight.refused_writes" in t.data.tags
    ] == []

    # The night's one number: the champion's fresh runs against the baseline's copies, the same in MLflow.
    assert agent.data.metrics["improvement"] == pytest.approx(summary.improvement)
    assert agent.data.tags["overnight.night"] == summary.night
    copies = [t.data.metrics["val_bpb"] for t in trials if t.data.tags["overnight.role"] == "baseline"]
    assert summary.baseline == pytest.approx(sum(copies) / len(copies))
    nothing_crowned = summary.champion_trial.endswith("-baseline")
    if nothing_crowned:  # no change, whatever later runs measured
        assert summary.improvement == 0 and summary.champion == summary.baseline and summary.interval is None
    report = Path(client.download_artifacts(agent.info.run_id, "report/report.md", str(tmp_path))).read_text()
    assert f"- This night: val_bpb {summary.night}\n" in report
    # The hidden holdout: every champion version scored on the held-out play, beside its validation metric.
    champion = client.get_run(
        client.get_experiment(experiment.experiment_id).tags["overnight.champion_run_id"]
    )
    assert champion.data.tags["overnight.holdout_status"] == "ok"
    assert 0 < champion.data.metrics["holdout_val_bpb"] < 10
    assert "| holdout val_bpb |" in report and f"{champion.data.metrics['holdout_val_bpb']:.6g}" in report

    # --- Prefect: the campaign flow run, a subflow per wave, the task runs ---------------------------------------------
    campaign, wave_runs, task_runs, artifacts = read_prefect(state.state_details.flow_run_id)
    assert campaign.state.is_completed()
    assert len(wave_runs) == 3 and all(w.state.is_completed() for w in wave_runs)
    names = Counter(t.name.split(" ")[0] for t in task_runs)
    assert names["plan"] == 3 and names["evaluate"] == 3 and names["reflect"] == 3 and names["screen"] == 2
    assert names["trial"] == len(trials)  # one task run per trial
    assert all(t.state.is_completed() for t in task_runs)
    keys = {a.key for a in artifacts}
    assert {"e2e-tiny-gpt-wave-trials", "e2e-tiny-gpt-wave-reflection"} <= keys
