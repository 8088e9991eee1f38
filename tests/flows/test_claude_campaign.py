"""A real campaign planned by Claude (the real client over HTTP, against the local Messages API stand-in)."""

import json

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from standins.messages_api import TEST_KEY as KEY
from standins.messages_api import USAGE, as_usage, error, text_answer, tool_answer

from flows.campaign import campaign_flow
from overnight.pricing import Usage, cost_usd

pytestmark = pytest.mark.slow


def experiment(hypothesis, search, replace):
    edit = {"path": "train.py", "search": search, "replace": replace}
    return {
        "hypothesis": hypothesis,
        "rationale": f"why: {hypothesis}",
        "expected_effect": "lower",
        "edits": [edit],
    }


WAVE_1 = {
    "experiments": [
        experiment("X toward 3", "X = 1.0  # best at 3", "X = 2.5  # best at 3"),
        experiment("Y toward -1", "Y = 2  # best at -1", "Y = 0  # best at -1"),
    ]
}
WAVE_2 = {  # built on the champion of wave 1 (Y = 0)
    "experiments": [
        experiment("X all the way", "X = 1.0  # best at 3", "X = 3.0  # best at 3"),
        experiment("Y all the way", "Y = 0  # best at -1", "Y = -1  # best at -1"),
    ]
}
INSIGHTS = {
    "learned": ["INSIGHT-42: moving Y cut the loss from 13 to 5"],
    "dead_ends": [],
    "next_directions": ["X"],
}


@pytest.fixture
def api(messages_api):
    return messages_api


def configure(quadratic, tmp_path, waves=2):
    path = configure_campaign(
        quadratic,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        planner={"kind": "auto", "http_retries": 1},
        budget={"waves": waves},
    )
    return path


def test_claude_plans_and_reflects_a_campaign(prefect_api, api, quadratic, tmp_path):
    api.script("WaveAnswer", tool_answer(WAVE_1), tool_answer(WAVE_2))
    api.script("Insights", tool_answer(INSIGHTS))
    state = campaign_flow(config_path=str(configure(quadratic, tmp_path)), return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    # wave 1 keeps Y = 0 (loss 13 -> 5); wave 2 keeps X = 3 on top of it (loss 1): Claude's edits, one per wave
    assert summary.champion == 1.0 and summary.champion_hypothesis == "X all the way"

    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs([summary.experiment_id], max_results=100)
    trials = {
        r.data.tags["overnight.hypothesis"]: r for r in runs if r.data.tags.get("overnight.kind") == "trial"
    }
    x = trials["X toward 3"]
    assert x.data.tags["overnight.rationale"] == "why: X toward 3"
    assert x.data.tags["overnight.proposed_by"] == "claude"
    with open(client.download_artifacts(x.info.run_id, "diff.patch")) as diff:
        assert "-X = 1.0  # best at 3\n+X = 2.5  # best at 3" in diff.read()

    # tokens and dollars per wave, as the server reported them
    waves = sorted(
        (r for r in runs if r.data.tags.get("overnight.kind") == "wave"), key=lambda r: r.info.start_time
    )

    # each plan: a round of memory queries, then the answer
    queried = [as_usage(u) for u in api.usages("search_trials")]
    plans = [query + as_usage(u) for query, u in zip(queried, api.usages("WaveAnswer"), strict=True)]
    reflections = [as_usage(u) for u in api.usages("Insights")]
    for wave, plan, reflection in zip(waves[1:], plans, reflections, strict=True):
        metrics = wave.data.metrics
        assert metrics["plan_input_tokens"] == plan.input_tokens
        assert metrics["plan_output_tokens"] == plan.output_tokens
        assert metrics["plan_cache_read_tokens"] == plan.cache_read_tokens
        assert metrics["plan_cache_creation_tokens"] == plan.cache_creation_tokens
        assert metrics["plan_usd"] == pytest.approx(cost_usd("claude-sonnet-4-5", plan))
        assert metrics["reflect_usd"] == pytest.approx(cost_usd("claude-sonnet-4-5", reflection))
    agent = next(r for r in runs if r.data.tags.get("overnight.kind") == "agent_run")
    assert agent.data.params["planner"] == "claude" and agent.data.params["model"] == "claude-sonnet-4-5"
    spent = sum(cost_usd("claude-sonnet-4-5", u) for u in plans + reflections)
    assert agent.data.metrics["llm_usd"] == pytest.approx(spent)

    # the reflection is stored, and the next plan reads it
    with open(client.download_artifacts(waves[1].info.run_id, "reflection.md")) as reflection:
        assert "INSIGHT-42" in reflection.read()
    first_plan, second_plan = api.for_tool("WaveAnswer")
    assert "INSIGHT-42" not in json.dumps(first_plan) and "INSIGHT-42" in json.dumps(second_plan)
    budget = "<budget_left>1 more waves after this one; each trial trains for 1 s (stopped past 30 s)</budget_left>"
    assert budget in json.dumps(first_plan)

    # the key is nowhere in what was recorded
    recorded = json.dumps([[r.data.params, r.data.tags] for r in runs])
    assert KEY not in recorded
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts()
    plans = [a for a in artifacts if a.key == "quadratic-wave-plan"]
    assert any("X toward 3" in str(a.data) for a in plans)
    assert all(KEY not in str(a.data) for a in artifacts)


def test_a_rejected_key_stops_the_campaign_and_keeps_the_baseline(prefect_api, api, quadratic, tmp_path):
    api.script("WaveAnswer", error(401, "authentication_error", "invalid x-api-key"))
    state = campaign_flow(config_path=str(configure(quadratic, tmp_path)), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="rejected the key .*check ANTHROPIC_API_KEY"):
        state.result()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quadratic")
    runs = client.search_runs([experiment.experiment_id])
    (agent,) = [r for r in runs if r.data.tags.get("overnight.kind") == "agent_run"]
    assert agent.info.status == "FAILED"
    baselines = [r for r in runs if r.data.tags.get("overnight.kind") == "trial"]
    assert len(baselines) == 2  # the baseline's two copies, kept
    assert all(b.data.tags["overnight.outcome"] == "ok" and b.data.metrics["loss"] == 13.0 for b in baselines)
    assert all(r.info.status != "RUNNING" for r in runs)


def test_a_wave_that_would_pass_the_dollar_budget_is_not_planned(prefect_api, api, quadratic, tmp_path):
    api.script("WaveAnswer", tool_answer(WAVE_1, usage=USAGE), tool_answer(WAVE_2, usage=USAGE))
    api.script("Insights", tool_answer(INSIGHTS, usage=USAGE))  # a known cost per wave
    api.script("search_trials", text_answer("No query needed.", usage=USAGE))
    path = configure(quadratic, tmp_path, waves=5)
    # a round of memory queries, a plan and a reflection
    one_wave = 3 * cost_usd("claude-sonnet-4-5", Usage(1200, 300, 50, 100, 1))
    state = campaign_flow(
        config_path=str(path), overrides={"budget.max_usd": 1.5 * one_wave}, return_state=True
    )
    summary = state.result()
    assert summary.waves == 1  # a second wave would cost about as much again: past the budget
    assert summary.stopped_by.startswith("dollars")
    assert summary.llm_usd == pytest.approx(one_wave)


def test_a_wave_filled_by_the_offline_planner_is_recorded_as_such(prefect_api, api, quadratic, tmp_path):
    api.script("WaveAnswer", text_answer("no tools today"))
    api.script("Insights", tool_answer(INSIGHTS))
    state = campaign_flow(config_path=str(configure(quadratic, tmp_path, waves=1)), return_state=True)
    summary = state.result()
    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs(
        [summary.experiment_id], "tags.`overnight.kind` = 'wave' and tags.`overnight.wave` = '1'"
    )
    (wave,) = runs
    assert wave.data.tags["overnight.planner_fallback"] == "true"
    assert "filled by the offline planner" in wave.data.tags["overnight.planner_note"]
    with open(client.download_artifacts(wave.info.run_id, "reflection.md")) as reflection:
        assert "**Planner note:** Claude's answer failed validation 3 times" in reflection.read()
    trials = client.search_runs(
        [summary.experiment_id],
        "tags.`overnight.wave` = '1' and tags.`overnight.kind` = 'trial' and tags.`overnight.role` = 'candidate'",
    )
    assert len(trials) == 2 and {t.data.tags["overnight.proposed_by"] for t in trials} == {"offline"}


def test_the_next_night_starts_from_the_champion_and_reads_the_first_nights_insights(
    prefect_api, api, quadratic, tmp_path
):
    api.script("WaveAnswer", tool_answer(WAVE_1), tool_answer(WAVE_2))
    api.script("Insights", tool_answer(INSIGHTS))
    path = configure(quadratic, tmp_path, waves=1)
    first = campaign_flow(config_path=str(path))
    assert first.champion == 5.0  # Y = 0 kept
    second = campaign_flow(config_path=str(path))
    assert second.experiment_id == first.experiment_id and second.agent_run_id != first.agent_run_id
    assert second.baseline == first.champion  # night two measured night one's champion first
    night_two_plan = api.for_tool("WaveAnswer")[-1]
    assert "INSIGHT-42" in json.dumps(night_two_plan)  # and its planner read night one's reflection
    assert "Y = 0  # best at -1" in json.dumps(night_two_plan)  # on the champion's code
    client = MlflowClient(second.tracking_uri)
    agents = client.search_runs([second.experiment_id], "tags.`overnight.kind` = 'agent_run'")
    assert len(agents) == 2 and all("mlflow.parentRunId" not in a.data.tags for a in agents)  # side by side
