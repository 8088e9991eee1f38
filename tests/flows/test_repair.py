"""Repairs within the wave, in a real campaign planned by Claude (the real client against the Messages API
stand-in): a proposal that crashes at import goes back to Claude with its traceback, and the repair runs in the
same wave."""

import json

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from standins.messages_api import as_usage, tool_answer

from flows.campaign import campaign_flow
from overnight.pricing import Usage, cost_usd

pytestmark = pytest.mark.slow

TRACEBACK = "ModuleNotFoundError: No module named 'not_a_module'"


def experiment(hypothesis, search, replace):
    edit = {"path": "train.py", "search": search, "replace": replace}
    return {"hypothesis": hypothesis, "rationale": "why not", "expected_effect": "lower", "edits": [edit]}


WAVE = {
    "experiments": [
        experiment(
            "X toward 3, through a helper module",
            "X = 1.0  # best at 3",
            "import not_a_module\n\nX = 2.5  # best at 3",
        ),
        experiment("Y toward -1", "Y = 2  # best at -1", "Y = 0  # best at -1"),
    ]
}
FIX = {
    "experiments": [
        experiment("X toward 3, without the helper", "X = 1.0  # best at 3", "X = 2.5  # best at 3")
    ]
}
INSIGHTS = {"learned": ["moving Y helped"], "dead_ends": [], "next_directions": []}


def repair(body):
    """The fix, only for a request that shows the traceback (anything else gets an answer that cannot validate)."""
    return FIX if TRACEBACK in json.dumps(body) else {"experiments": []}


def test_a_proposal_that_crashes_at_import_is_repaired_by_claude_and_runs_in_the_same_wave(
    prefect_api, messages_api, quadratic, tmp_path
):
    messages_api.script("WaveAnswer", tool_answer(WAVE), tool_answer(repair))
    messages_api.script("Insights", tool_answer(INSIGHTS))
    path = configure_campaign(
        quadratic,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        planner={"kind": "claude", "http_retries": 0, "validation_retries": 0},
        budget={"waves": 1},
    )
    summary = campaign_flow(config_path=str(path))

    plan_request, repair_request = messages_api.for_tool("WaveAnswer")
    assert TRACEBACK not in json.dumps(plan_request)
    sent = json.dumps(repair_request)
    assert TRACEBACK in sent and "Traceback (most recent call last)" in sent and "import not_a_module" in sent

    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs([summary.experiment_id], max_results=100)
    trials = {
        r.data.tags["overnight.hypothesis"]: r for r in runs if r.data.tags.get("overnight.kind") == "trial"
    }
    crashed = trials["X toward 3, through a helper module"]
    fixed = trials["X toward 3, without the helper"]
    (wave,) = [
        r
        for r in runs
        if r.data.tags.get("overnight.kind") == "wave" and r.data.tags["overnight.wave"] == "1"
    ]
    assert crashed.data.tags["overnight.outcome"] == "crash"
    # the repair ran in wave 1, as a candidate of its own, judged beside the others (loss (2.5-3)^2 + 3^2)
    assert fixed.data.tags["overnight.trial_id"] == crashed.data.tags["overnight.trial_id"] + "-fix"
    assert (
        fixed.data.tags["overnight.wave"] == "1" and fixed.data.tags["mlflow.parentRunId"] == wave.info.run_id
    )
    assert fixed.data.tags["overnight.outcome"] == "ok" and fixed.data.metrics["loss"] == 9.25
    assert fixed.data.tags["overnight.role"] == "candidate" and fixed.data.tags["overnight.decision"]
    # both are recorded, linked both ways
    assert crashed.data.tags["overnight.repaired_by"] == fixed.info.run_id
    assert fixed.data.tags["overnight.repair_of"] == crashed.info.run_id
    with open(client.download_artifacts(wave.info.run_id, "reflection.md")) as reflection:
        assert "X toward 3, without the helper" in reflection.read()  # the wave's report sees the repair

    # the repair call's usage on the wave run, as the server reported it, and in the campaign's spend
    repaired = as_usage(messages_api.usages("WaveAnswer")[1])
    metrics = wave.data.metrics
    assert metrics["repair_llm_calls"] == 1 and metrics["repair_input_tokens"] == repaired.input_tokens
    assert metrics["repair_output_tokens"] == repaired.output_tokens
    assert metrics["repair_cache_read_tokens"] == repaired.cache_read_tokens
    assert metrics["repair_usd"] == pytest.approx(cost_usd("claude-sonnet-4-5", repaired))
    every_call = sum((as_usage(u) for u in messages_api.usages()), Usage())  # plan, repair, reflection
    assert summary.llm_usd == pytest.approx(cost_usd("claude-sonnet-4-5", every_call))
