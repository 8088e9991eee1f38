"""Claude queries the campaign's memory (MLflow) while it plans: the real client against the local Messages API,
the real queries over a real store, and what the wave run records of them."""

import json
import re

import pytest
from mlflow.tracking import MlflowClient
from standins.messages_api import tool_answer, tool_calls

from overnight.config import load_config
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner
from overnight.program import read_files
from overnight.proposals import fingerprint, unified_diff
from overnight.trial import Outcome, TrialResult
from overnight.wave import plan as wave_plan
from overnight.wave.scope import WaveScope


@pytest.fixture
def campaign(quadratic, tracking_uri, campaign_name):
    """A night whose baseline ran (loss 13), then wave 1: a change of Y that was kept and one that crashed."""
    config = load_config(quadratic / "campaign.yaml", {"planner": {"kind": "claude", "http_retries": 0}})
    config = config.model_copy(update={"name": campaign_name})
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss", artifact_root=quadratic / "artifacts")
    agent = memory.start_agent_run("night", {})
    shipped = read_files(config.program, config.editable)
    wave0 = memory.start_wave(agent, 0)
    baseline = record(memory, config, agent, wave0, "n1-baseline", shipped, shipped, 13.0)
    memory.set_champion(baseline, "")
    wave1 = memory.start_wave(agent, 1)
    moved = {"train.py": shipped["train.py"].replace("Y = 2  # best", "Y = 1  # best")}
    hypothesis = "Y 2 -> 1: toward its optimum"
    record(memory, config, agent, wave1, "n1-w1-t0", shipped, moved, 9.0, hypothesis, parent=baseline)
    broken = {"train.py": shipped["train.py"].replace("MODE = ", "MODE = 1/0 or ")}
    record(
        memory,
        config,
        agent,
        wave1,
        "n1-w1-t1",
        shipped,
        broken,
        None,
        "MODE guard",
        "ZeroDivisionError: oops",
        baseline,
    )
    return config, memory, agent


def record(memory, config, agent, wave, trial_id, before, files, loss, hypothesis="", log="", parent=""):
    run_id = memory.start_trial(
        wave_run_id=wave,
        agent_run_id=agent,
        trial_id=trial_id,
        wave=1,
        hypothesis=hypothesis or trial_id,
        rationale="",
        params=wave_plan.knob_values(config, files),
        files=files,
        diff=unified_diff(before, files),
        fingerprint=fingerprint(files),
        parent_champion=parent,
    )
    outcome = Outcome.OK if loss is not None else Outcome.CRASH
    metrics = {"loss": loss} if loss is not None else {}
    reason = "" if loss is not None else "exited with status 1"
    memory.finish_trial(run_id, TrialResult(trial_id, outcome, metrics, 0.1, 0, log, reason))
    return run_id


def experiment(hypothesis, search, replace):
    edit = {"path": "train.py", "search": search, "replace": replace}
    return {"hypothesis": hypothesis, "rationale": "r", "expected_effect": "lower", "edits": [edit]}


def last_tool_results(body: dict) -> str:
    """The text of the tool results the request carries back to Claude (its last user turn)."""
    blocks = body["messages"][-1]["content"]
    return "\n".join(b["content"] for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result")


def plan_wave(config, memory, agent, n=1):
    wave_run = memory.start_wave(agent, 2)
    scope = WaveScope(config, memory, agent, wave_run, 2)
    return wave_plan.plan_wave(scope, ClaudePlanner(config), n), wave_run


def test_claude_queries_the_memory_and_plans_from_what_it_returned(messages_api, campaign):
    config, memory, agent = campaign

    def read_what_search_found(body):  # round 2: read the trial that the search of round 1 listed
        (trial_id,) = re.findall(r"^(n1-w1-t\d) ", last_tool_results(body), re.M)
        return [("read_trial", {"trial_id": trial_id})]

    def from_the_diff(body):  # the answer takes Y one step further than the diff read_trial returned
        text = json.dumps(body["messages"])
        (value,) = re.findall(r"\+Y = (-?\d+)  # best", text)
        search = "Y = 2  # best at -1"
        return {"experiments": [experiment("Y further", search, f"Y = {int(value) - 1}  # best at -1")]}

    messages_api.script(
        "search_trials",  # the conversation's rounds (they force no tool: the stand-in routes them here)
        tool_calls(("search_trials", {"knob": "Y"})),
        tool_calls(read_what_search_found),
        tool_calls(lambda body: [("WaveAnswer", from_the_diff(body))]),
    )
    planned, wave_run = plan_wave(config, memory, agent)

    assert [t.hypothesis for t in planned.trials if t.role == "candidate"] == ["Y further"]
    assert "Y = 0  # best at -1" in planned.trials[0].files["train.py"]  # 1, from the diff, minus 1
    rounds = messages_api.for_tool("search_trials")
    assert len(rounds) == 3  # two rounds of queries, then the answer in the same conversation
    assert {t["name"] for t in rounds[0]["tools"]} == {"search_trials", "read_trial", "lineage", "WaveAnswer"}
    assert "n1-w1-t0 w1 [ok] loss=9 Y 2 -> 1;" in last_tool_results(rounds[1])  # MLflow's records
    assert "+Y = 1  # best at -1" in last_tool_results(rounds[2])  # the diff artifact
    assert messages_api.for_tool("WaveAnswer") == []  # a valid answer there needs no call of its own
    # from the second round on, each round marks the conversation so far for the cache: the next reads it back
    reads = [u["cache_read_input_tokens"] for u in messages_api.usages("search_trials")]
    writes = [u["cache_creation"]["ephemeral_5m_input_tokens"] for u in messages_api.usages("search_trials")]
    assert reads[0] == writes[0] == 0 and writes[1] > 0 and reads[2] >= writes[1]

    run = MlflowClient(memory.tracking_uri).get_run(wave_run)
    assert run.data.metrics["plan_memory_queries"] == 2
    assert run.data.metrics["plan_query_llm_calls"] == run.data.metrics["plan_llm_calls"] == 3
    assert run.data.metrics["plan_query_usd"] == run.data.metrics["plan_usd"] > 0
    logged = json.loads(memory.read_artifact(wave_run, "memory_queries.json"))
    assert [(q["tool"], q["arguments"]) for q in logged] == [
        ("search_trials", {"knob": "Y"}),
        ("read_trial", {"trial_id": "n1-w1-t0"}),
    ]
    assert all(q["answer_tokens"] > 0 and not q["error"] for q in logged)
    # the wave's plan as the Prefect UI shows it
    shown = wave_plan.plan_markdown(WaveScope(config, memory, agent, wave_run, 2), "claude", planned)
    assert 'The planner queried the memory 2 times:\n- `search_trials {"knob": "Y"}`' in shown


def test_queries_stop_at_the_configured_number_and_bad_ones_are_answered_as_errors(messages_api, campaign):
    config, memory, agent = campaign
    config = config.model_copy(update={"planner": config.planner.model_copy(update={"memory_tool_calls": 2})})
    calls = [
        ("read_trial", {"trial_id": "no-such-trial"}),
        ("lineage", {}),
        ("search_trials", {"text": "MODE"}),
    ]
    messages_api.script("search_trials", tool_calls(*calls))  # it would query forever
    messages_api.script(
        "WaveAnswer", tool_answer({"experiments": [experiment("X up", "X = 1.0  # best", "X = 2.0  # best")]})
    )
    planned, _ = plan_wave(config, memory, agent)

    assert [t.hypothesis for t in planned.trials if t.role == "candidate"] == ["X up"]
    # the limit was reached in the first round; the second still queried, so instructor asked for the wave
    assert len(messages_api.for_tool("search_trials")) == 2
    (answer,) = messages_api.for_tool("WaveAnswer")
    sent = json.dumps(answer)
    assert "no trial has the id" in sent  # the bad query's error went back, planning went on
    assert "v0 n1-baseline: loss=13" in sent  # the lineage's answer
    assert "MODE guard" not in sent.split("<memory_queries>")[1]  # the third query was never answered


def test_an_answer_that_cannot_run_goes_to_instructor_with_the_reason(messages_api, campaign):
    config, memory, agent = campaign
    bad = {"experiments": [experiment("X up", "X = 1.5  # best", "X = 2.0  # best")]}  # no such line
    good = {"experiments": [experiment("X up", "X = 1.0  # best", "X = 2.0  # best")]}
    messages_api.script("search_trials", tool_calls(("WaveAnswer", bad)))
    messages_api.script("WaveAnswer", tool_answer(good))
    planned, _ = plan_wave(config, memory, agent)
    assert [t.hypothesis for t in planned.trials if t.role == "candidate"] == ["X up"]
    (asked,) = messages_api.for_tool("WaveAnswer")
    failed = json.dumps(asked).split("<last_answer_failed>")[1]
    assert "experiment 1 (X up): edit 1 to train.py: the search text was not found" in failed


def test_no_queries_when_the_setting_is_zero(messages_api, campaign):
    config, memory, agent = campaign
    config = config.model_copy(update={"planner": config.planner.model_copy(update={"memory_tool_calls": 0})})
    messages_api.script(
        "WaveAnswer", tool_answer({"experiments": [experiment("X up", "X = 1.0  # best", "X = 2.0  # best")]})
    )
    plan_wave(config, memory, agent)
    assert messages_api.for_tool("search_trials") == [] and len(messages_api.requests) == 1
