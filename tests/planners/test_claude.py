"""The Claude planner: the real anthropic client and instructor, over real HTTP, against a local Messages API."""

import json

import pytest
from standins.messages_api import TEST_KEY as KEY
from standins.messages_api import error, text_answer, tool_answer

from overnight.config import load_config
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner, PlannerAuthError
from overnight.pricing import Usage, cost_usd
from overnight.program import read_files
from overnight.proposals import apply_proposal, fingerprint, unified_diff
from overnight.trial import Outcome, TrialResult
from overnight.wave import plan as wave_plan


def experiment(hypothesis, search, replace):
    return {
        "hypothesis": hypothesis,
        "rationale": f"because {hypothesis}",
        "expected_effect": "lower loss",
        "edits": [{"path": "train.py", "search": search, "replace": replace}],
    }


GOOD = {
    "experiments": [
        experiment("X toward 3", "X = 1.0  # best at 3", "X = 2.5  # best at 3"),
        experiment("Y toward -1", "Y = 2  # best at -1", "Y = 0  # best at -1"),
    ]
}
MISSING_ANCHOR = {
    "experiments": [
        experiment("X toward 3", "X = 1.5  # best at 3", "X = 2.5  # best at 3"),  # no such line
        experiment("Y toward -1", "Y = 2  # best at -1", "Y = 0  # best at -1"),
    ]
}


@pytest.fixture
def api(messages_api):
    return messages_api


@pytest.fixture
def setup(quadratic, tracking_uri, campaign_name):
    """A campaign whose baseline ran, plus one trial that crashed (so the prompt has a failure to show)."""
    config = load_config(quadratic / "campaign.yaml", {"planner": {"kind": "claude", "http_retries": 2}})
    config = config.model_copy(update={"name": campaign_name})
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss", artifact_root=quadratic / "artifacts")
    agent = memory.start_agent_run("test", {})
    wave = memory.start_wave(agent, 0)
    files = read_files(config.program, config.editable)
    baseline = record(memory, config, agent, wave, "baseline", files, files, Outcome.OK, 13.0)
    memory.set_champion(baseline, "")
    crashed = {"train.py": files["train.py"].replace("MODE = ", "MODE = 1/0 or ")}
    record(
        memory,
        config,
        agent,
        wave,
        "w1-crashy",
        files,
        crashed,
        Outcome.CRASH,
        None,
        "ZeroDivisionError: oops",
    )
    return config, memory


def record(memory, config, agent, wave, trial_id, before, files, outcome, loss, log="", hypothesis=""):
    run_id = memory.start_trial(
        wave_run_id=wave,
        agent_run_id=agent,
        trial_id=trial_id,
        wave=1,
        hypothesis=hypothesis or f"hypothesis of {trial_id}",
        rationale="",
        params=wave_plan.knob_values(config, files),
        files=files,
        diff=unified_diff(before, files),
        fingerprint=fingerprint(files),
        parent_champion="",
    )
    reason = "" if outcome is Outcome.OK else "exited with status 1"
    metrics = {"loss": loss} if loss is not None else {}
    memory.finish_trial(run_id, TrialResult(trial_id, outcome, metrics, 0.1, 0, log, reason))
    return run_id


def propose(config, memory, n=2):
    context = wave_plan.plan_context(config, memory, 2, n, "3 more waves")
    return ClaudePlanner(config).propose(context), context


def test_a_valid_answer_becomes_the_wave(api, setup):
    config, memory = setup
    api.script("WaveAnswer", tool_answer(GOOD))
    plan, context = propose(config, memory)
    assert [p.hypothesis for p in plan.proposals] == ["X toward 3", "Y toward -1"]
    assert all(p.source == "claude" for p in plan.proposals) and plan.note == ""
    files = apply_proposal(context.champion_files, plan.proposals[0], config.editable)
    assert "X = 2.5  # best at 3" in files["train.py"]
    reported = api.usages()  # a round of the memory conversation, then instructor's call for the answer
    keys = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    tokens = [sum(r[key] for r in reported) for key in keys]
    hour = sum(r["cache_creation"]["ephemeral_1h_input_tokens"] for r in reported)
    expected = Usage(*tokens, len(reported), hour)
    assert len(reported) == 2 and tokens[3] == 0  # nothing to read yet
    assert plan.usage == expected and plan.cost_usd == pytest.approx(cost_usd(config.planner.model, expected))


def test_the_request_carries_code_results_and_failures_but_never_the_key(api, setup):
    config, memory = setup
    api.script("WaveAnswer", tool_answer(GOOD))
    propose(config, memory)
    (request,) = [r for r in api.requests if r["body"].get("tool_choice", {}).get("name") == "WaveAnswer"]
    prompt = json.dumps(request["body"])
    assert "X = 1.0  # best at 3" in prompt  # the champion's code
    assert "baseline" in prompt and "loss=13" in prompt  # earlier results
    assert (
        "w1-crashy crash: exited with status 1" in prompt and "ZeroDivisionError: oops" in prompt
    )  # why it failed
    assert "3 more waves" in prompt  # the budget left
    assert KEY not in prompt  # the key travels in the auth header only
    headers = request["headers"]
    assert KEY in headers.get("x-api-key", "") + headers.get("authorization", "")


def test_a_missing_anchor_is_sent_back_and_the_correction_used(api, setup):
    config, memory = setup
    api.script("WaveAnswer", tool_answer(MISSING_ANCHOR), tool_answer(GOOD))
    plan, _ = propose(config, memory)
    assert [p.hypothesis for p in plan.proposals] == ["X toward 3", "Y toward -1"]
    assert plan.proposals[0].edits[0].search == "X = 1.0  # best at 3"
    first, retry = api.for_tool("WaveAnswer")
    assert "search text was not found" not in json.dumps(first)
    assert "experiment 1 (X toward 3): edit 1 to train.py: the search text was not found" in json.dumps(retry)
    assert plan.usage.calls == 3 and plan.usage.input_tokens == sum(
        u["input_tokens"] for u in api.usages()
    )  # retries are paid too (and the round of memory queries before them)


def test_repeating_a_past_trial_is_refused(api, setup):
    config, memory = setup
    repeat = {"experiments": [experiment("crash again", "MODE = ", "MODE = 1/0 or "), GOOD["experiments"][1]]}
    api.script("WaveAnswer", tool_answer(repeat), tool_answer(GOOD))
    plan, _ = propose(config, memory)
    assert [p.hypothesis for p in plan.proposals] == ["X toward 3", "Y toward -1"]
    assert "same files as trial w1-crashy, already run" in json.dumps(api.for_tool("WaveAnswer")[1])


def test_garbage_every_time_is_filled_by_the_offline_planner(api, setup):
    config, memory = setup
    api.script("WaveAnswer", text_answer("I would rather write a poem."))
    plan, context = propose(config, memory)
    assert len(plan.proposals) == 2 and all(p.source == "offline" for p in plan.proposals)
    assert (
        "failed validation 3 times" in plan.note
        and "2 of 2 proposals filled by the offline planner" in plan.note
    )
    assert len(api.for_tool("WaveAnswer")) == config.planner.validation_retries + 1
    for proposal in plan.proposals:
        apply_proposal(context.champion_files, proposal, config.editable)  # valid


def test_valid_experiments_of_a_bad_answer_are_kept(api, setup):
    config, memory = setup
    api.script("WaveAnswer", tool_answer(MISSING_ANCHOR))
    plan, _ = propose(config, memory)
    assert [p.source for p in plan.proposals] == ["claude", "offline"]
    assert plan.proposals[0].hypothesis == "Y toward -1"
    assert "1 of 2 proposals filled by the offline planner" in plan.note


@pytest.mark.parametrize(
    "status, kind", [(429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")]
)
def test_rate_limits_and_server_errors_are_retried(api, setup, status, kind):
    config, memory = setup
    api.script("WaveAnswer", error(status, kind), tool_answer(GOOD))
    plan, _ = propose(config, memory)
    assert [p.source for p in plan.proposals] == ["claude", "claude"]
    assert len(api.for_tool("WaveAnswer")) == 2


def test_an_api_that_stays_down_hands_the_wave_to_the_offline_planner(api, setup):
    config, memory = setup
    api.script("WaveAnswer", error(503, "api_error"))
    plan, _ = propose(config, memory)
    assert all(p.source == "offline" for p in plan.proposals)
    assert "Claude was unavailable (HTTP 503" in plan.note
    assert len(api.for_tool("WaveAnswer")) == config.planner.http_retries + 1


def test_a_rejected_key_stops_with_a_clear_message(api, setup):
    config, memory = setup
    api.script("WaveAnswer", error(401, "authentication_error", "invalid x-api-key"))
    with pytest.raises(PlannerAuthError, match=r"rejected the key \(HTTP 401.*check ANTHROPIC_API_KEY"):
        propose(config, memory)
    assert len(api.for_tool("WaveAnswer")) == 1  # not retried


def test_the_prompt_shrinks_older_history_to_fit(api, setup):
    config, memory = setup
    agent = memory.start_agent_run("history", {})
    wave = memory.start_wave(agent, 1)
    files = read_files(config.program, config.editable)
    for i in range(40):
        text = {"train.py": files["train.py"].replace("X = 1.0", f"X = {1 + i / 100}")}
        wordy = "a long-winded hypothesis about the learning dynamics of this program " * 4
        record(
            memory, config, agent, wave, f"old-{i:02d}", files, text, Outcome.OK, 12.0 - i / 100, "", wordy
        )
    roomy = ClaudePlanner(config).prompt(wave_plan.plan_context(config, memory, 2, 2)).text
    small = config.model_copy(
        update={"planner": config.planner.model_copy(update={"max_prompt_tokens": 2000})}
    )
    tight = ClaudePlanner(small).prompt(wave_plan.plan_context(small, memory, 2, 2)).text
    assert len(roomy) // 4 > 2000 >= len(tight) // 4  # it had to shrink, and it fits
    assert "old-10 " in roomy and "old-10 " not in tight  # the oldest records went first, whole
    assert "older trials not listed" in tight  # and are still counted
    assert "old-39" in tight  # the newest stayed
    assert "X = 1.0  # best at 3" in tight  # the champion's code is never dropped


def test_a_factorial_grid_expands_into_trials(api, setup):
    config, memory = setup

    def level(label, search=None, replace=None):
        edits = [{"path": "train.py", "search": search, "replace": replace}] if search else []
        return {"label": label, "edits": edits}

    grid = {
        "experiments": [],
        "factorial": {
            "hypothesis": "X and Y interact?",
            "rationale": "a 2x2 grid separates main effects from the interaction",
            "factors": [
                {
                    "name": "X",
                    "levels": [
                        level("1.0", None, None),
                        level("2.5", "X = 1.0  # best at 3", "X = 2.5  # best at 3"),
                    ],
                },
                {
                    "name": "Y",
                    "levels": [
                        level("0", "Y = 2  # best at -1", "Y = 0  # best at -1"),
                        level("-1", "Y = 2  # best at -1", "Y = -1  # best at -1"),
                    ],
                },
            ],
        },
    }
    api.script("WaveAnswer", tool_answer(grid))
    plan, context = propose(config, memory, n=4)
    assert [p.hypothesis for p in plan.proposals] == [
        "X and Y interact? [X=1.0, Y=0]",
        "X and Y interact? [X=1.0, Y=-1]",
        "X and Y interact? [X=2.5, Y=0]",
        "X and Y interact? [X=2.5, Y=-1]",
    ]
    last = apply_proposal(context.champion_files, plan.proposals[3], config.editable)["train.py"]
    assert "X = 2.5  # best at 3" in last and "Y = -1  # best at -1" in last


def test_a_grid_larger_than_the_wave_is_refused_by_counting_its_cells(api, setup):
    config, memory = setup
    same = [{"label": "as is", "edits": []}, {"label": "as is too", "edits": []}]
    factors = [{"name": f"F{i}", "levels": same} for i in range(18)]  # 2^18 = 262,144 cells
    huge = {"experiments": [], "factorial": {"hypothesis": "h", "rationale": "r", "factors": factors}}
    api.script("WaveAnswer", tool_answer(huge), tool_answer(GOOD))
    plan, _ = propose(config, memory)
    assert [p.hypothesis for p in plan.proposals] == ["X toward 3", "Y toward -1"]
    feedback = json.dumps(api.for_tool("WaveAnswer")[1])
    assert "the wave has 262144 experiments (factorial combinations included); give exactly 2" in feedback
    assert "is identical to" not in feedback  # refused before its cells were expanded and compared


def test_a_handled_validation_failure_is_one_line_in_the_note_and_nothing_on_the_console(api, setup, caplog):
    config, memory = setup
    api.script("WaveAnswer", tool_answer(MISSING_ANCHOR))
    with caplog.at_level("DEBUG"):
        plan, _ = propose(config, memory)
    assert "failed validation 3 times" in plan.note and len(plan.note.splitlines()) == 1
    assert [r.getMessage() for r in caplog.records if r.name.startswith("instructor")] == []


def test_a_human_suggestion_must_be_in_the_wave(api, setup):
    config, memory = setup
    suggested = {
        "experiments": [
            {**GOOD["experiments"][0], "hypothesis": "Suggestion: X toward 3"},
            GOOD["experiments"][1],
        ]
    }
    api.script("WaveAnswer", tool_answer(GOOD), tool_answer(suggested))
    context = wave_plan.plan_context(config, memory, 2, 2, "", ("try X near 3",))
    plan = ClaudePlanner(config).propose(context)
    assert plan.proposals[0].hypothesis == "Suggestion: X toward 3"
    first, retry = api.for_tool("WaveAnswer")
    assert "<human_suggestions>\\n- try X near 3\\n</human_suggestions>" in json.dumps(first)
    assert "1 human suggestions need an experiment each" in json.dumps(retry)
