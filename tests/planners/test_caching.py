"""Prompt caching, priced: the real Claude planner against the stand-in, which keeps a prompt cache the way the
Messages API does (tests/standins/messages_api.py), on the default program's prompt (long enough to be cached)."""

import pytest
from standins.messages_api import Clock, tool_calls

from overnight.config import default_config_path, load_config
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner
from overnight.pricing import Usage, cost_usd
from overnight.program import read_files, set_constant
from overnight.proposals import fingerprint, unified_diff
from overnight.trial import Outcome, TrialResult
from overnight.wave import plan as wave_plan

# Sonnet 4.5's published prices, $ per million tokens: input, output, 5-minute write, 1-hour write, read
SONNET = {"input": 3.0, "output": 15.0, "write_5m": 3.75, "write_1h": 6.0, "read": 0.30}


def answer(config, files):
    """Two valid experiments on the default program: two of its knobs moved."""
    experiments = []
    for name, value in (("LEARNING_RATE", 2e-3), ("DEPTH", 4)):
        edit = set_constant("train.py", files["train.py"], name, value)
        experiments.append(
            {
                "hypothesis": f"{name} -> {value}",
                "rationale": "a knob moved",
                "expected_effect": "-0.01 val_bpb",
                "edits": [{"path": "train.py", "search": edit.search, "replace": edit.replace}],
            }
        )
    return {"experiments": experiments}


@pytest.fixture
def setup(messages_api, tracking_uri, campaign_name, tmp_path):
    """The default campaign with its baseline recorded, and the stand-in on a clock that moves when told."""
    config = load_config(default_config_path(), {"planner": {"kind": "claude"}})
    config = config.model_copy(update={"name": campaign_name})
    memory = Memory(tracking_uri, campaign_name, "minimize", "val_bpb", artifact_root=tmp_path / "artifacts")
    files = read_files(config.program, config.editable)
    crown(memory, "baseline", files, files, 3.05, role="baseline")
    clock = Clock()
    messages_api.clock = clock
    # Claude answers in the conversation's first round, beside the memory tools (routed to their queue)
    messages_api.script("search_trials", tool_calls(("WaveAnswer", answer(config, files))))
    return config, memory, messages_api, clock


def crown(memory, trial_id, before, files, val_bpb, role="candidate"):
    """Record a trial of `files` as the engine does, and crown it."""
    agent = memory.start_agent_run(f"night of {trial_id}", {})
    run_id = memory.start_trial(
        wave_run_id=memory.start_wave(agent, 0),
        agent_run_id=agent,
        trial_id=trial_id,
        wave=0,
        hypothesis=trial_id,
        rationale="",
        params={},
        files=files,
        diff=unified_diff(before, files),
        fingerprint=fingerprint(files),
        parent_champion="",
        role=role,
    )
    memory.finish_trial(run_id, TrialResult(trial_id, Outcome.OK, {"val_bpb": val_bpb}, 30.0, 0, ""))
    memory.set_champion(run_id, "")


def plan(config, memory, cache):
    """One plan of the same first wave, by a planner whose prompt is cached for `cache` (off, 5m or 1h)."""
    config = config.model_copy(update={"planner": config.planner.model_copy(update={"cache": cache})})
    context = wave_plan.plan_context(config, memory, 1, 2, "9 more waves after this one")
    result = ClaudePlanner(config).propose(context)
    assert [p.source for p in result.proposals] == ["claude", "claude"]
    return result


def dollars(usage: Usage) -> float:
    """Sonnet 4.5's price of `usage`, from the published table, not from overnight.pricing."""
    written_5m = usage.cache_creation_tokens - usage.cache_creation_1h_tokens
    return (
        usage.input_tokens * SONNET["input"]
        + usage.output_tokens * SONNET["output"]
        + written_5m * SONNET["write_5m"]
        + usage.cache_creation_1h_tokens * SONNET["write_1h"]
        + usage.cache_read_tokens * SONNET["read"]
    ) / 1e6


def test_the_second_plan_reads_what_the_first_wrote(setup):
    config, memory, api, clock = setup
    first = plan(config, memory, "1h")
    clock.advance(15 * 60)  # a wave later
    second = plan(config, memory, "1h")
    written = first.usage.cache_creation_tokens  # every call's, however many the plan made
    # the tools, the system text, the brief and the champion's files: past Sonnet's minimum, written for an hour
    assert written == first.usage.cache_creation_1h_tokens >= 1024 and first.usage.cache_read_tokens == 0
    assert (second.usage.cache_read_tokens, second.usage.cache_creation_tokens) == (written, 0)
    same = ("input_tokens", "output_tokens", "calls", "prompt_tokens")  # the same prompts, billed otherwise
    assert [getattr(second.usage, key) for key in same] == [getattr(first.usage, key) for key in same]
    for result in (first, second):
        assert config.planner.model == "claude-sonnet-4-5"
        assert result.cost_usd == pytest.approx(dollars(result.usage))
        assert result.cost_usd == pytest.approx(cost_usd(config.planner.model, result.usage))
    assert second.cost_usd < first.cost_usd / 2
    answered = api.usages("search_trials")[0]["cache_creation"]  # the conversation's one round: the answer
    assert answered["ephemeral_5m_input_tokens"] == 0 and answered["ephemeral_1h_input_tokens"] == written


def test_no_cache_control_reads_and_writes_nothing(setup):
    config, memory, api, _ = setup
    first, second = plan(config, memory, "off"), plan(config, memory, "off")
    for result in (first, second):
        assert result.usage.cache_creation_tokens == result.usage.cache_read_tokens == 0
        assert result.cost_usd == pytest.approx(dollars(result.usage))
    assert first.usage.input_tokens == second.usage.input_tokens > 1024
    assert "cache_control" not in "".join(api.bodies())


@pytest.mark.parametrize("cache, read", [("5m", False), ("1h", True)])
def test_an_entry_lives_for_its_lifetime(setup, cache, read):
    config, memory, _, clock = setup
    first = plan(config, memory, cache)
    clock.advance(6 * 60)
    second = plan(config, memory, cache)
    written = first.usage.cache_creation_tokens
    assert written > 0 and first.usage.cache_creation_1h_tokens == (written if cache == "1h" else 0)
    if read:
        assert (second.usage.cache_read_tokens, second.usage.cache_creation_tokens) == (written, 0)
    else:  # gone: written again
        assert (second.usage.cache_read_tokens, second.usage.cache_creation_tokens) == (0, written)
    assert second.cost_usd == pytest.approx(dollars(second.usage))


def test_a_new_champion_rewrites_only_its_files(setup):
    config, memory, api, clock = setup
    first = plan(config, memory, "1h")
    files = memory.champion_files()
    faster = {"train.py": files["train.py"].replace(*_moved(files, "LEARNING_RATE", 3e-3))}
    crown(memory, "faster", files, faster, 2.9)
    api.script("search_trials", tool_calls(("WaveAnswer", answer(config, faster))))
    clock.advance(15 * 60)
    second = plan(config, memory, "1h")
    # the tools, the system text and the brief are read back; the new champion's files are written
    assert 1024 <= second.usage.cache_read_tokens < first.usage.cache_creation_tokens
    assert 0 < second.usage.cache_creation_tokens < first.usage.cache_creation_tokens


def _moved(files, name, value):
    edit = set_constant("train.py", files["train.py"], name, value)
    return edit.search, edit.replace
