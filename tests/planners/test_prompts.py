"""What the plan prompt shows of the past, on a real MLflow store: every trial grouped by the knobs it moves, the
near-misses in full, old groups shrunk to counts before anything recent is cut, and the campaign's own rule (the
noise floor, the smallest confirmable gain, the budget left, the trials already in the wave)."""

from datetime import datetime

import anthropic
import pytest

from overnight.config import load_config
from overnight.memory.store import Memory
from overnight.planners import prompts
from overnight.planners.claude import ClaudePlanner
from overnight.policy import DecisionPolicy, condition_floor, earlier_tests
from overnight.program import read_files
from overnight.proposals import compact_change, fingerprint, unified_diff
from overnight.trial import Outcome, TrialResult
from overnight.wave import plan as wave_plan

MEASURED = {"num_steps": 120.0, "tokens_seen": 61440.0, "training_seconds": 1.2, "peak_memory_mb": 42.5}


def screening(gain: float, se: float = 0.1) -> dict:
    """A screening verdict's numbers, as the decision policy records them."""
    return {"stage": "screen", "gain": gain, "se": se, "threshold": 0.05, "p_value": 0.2, "n_champion": 2}


class History:
    """Trials of one agent run on the quadratic program, recorded as the engine records them."""

    def __init__(self, config, memory: Memory):
        self.config, self.memory = config, memory
        self.shipped = read_files(config.program, config.editable)
        self.agent = memory.start_agent_run("night 1", {})
        self.wave_run = memory.start_wave(self.agent, 1)
        self.baseline = self.add("n1-baseline", self.shipped, 13.0, role="baseline", decision="baseline")
        memory.set_champion(self.baseline, "")

    def add(self, trial_id, files, loss, decision="", numbers=None, role="candidate", **fields) -> str:
        run_id = self.memory.start_trial(
            wave_run_id=self.wave_run,
            agent_run_id=self.agent,
            trial_id=trial_id,
            wave=1,
            hypothesis=f"hypothesis of {trial_id}",
            rationale="",
            params=wave_plan.knob_values(self.config, files),
            files=files,
            diff=unified_diff(self.shipped, files),
            change=compact_change(self.shipped, files),
            fingerprint=fingerprint(files),
            parent_champion="" if role == "baseline" else self.baseline,
            role=role,
            budget_s=1.0,
            **fields,
        )
        metrics = {"loss": loss, **MEASURED, "concurrency": 2.0}
        result = TrialResult(trial_id, Outcome.OK, metrics, 0.5, 0, "", placement={"hardware": "cpu"})
        self.memory.finish_trial(run_id, result)
        if decision:
            self.memory.record_decision(run_id, decision, decision, numbers)
        return run_id

    def edit(self, old: str, new: str) -> dict[str, str]:
        return {"train.py": self.shipped["train.py"].replace(old, new)}


@pytest.fixture
def history(quadratic, tracking_uri, campaign_name) -> History:
    config = load_config(quadratic / "campaign.yaml", {"planner": {"kind": "claude"}})
    config = config.model_copy(update={"name": campaign_name})
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss", artifact_root=quadratic / "artifacts")
    return History(config, memory)


def section(text: str, start: str, end: str = "\n- ") -> str:
    """The part of the text from `start` to the next `end` (or its end)."""
    begin = text.index(start)
    stop = text.find(end, begin + len(start))
    return text[begin : stop if stop >= 0 else len(text)]


def test_trials_are_grouped_by_the_knobs_they_move_with_each_groups_best_and_keeps(history):
    history.add("x-1", history.edit("X = 1.0", "X = 2.0"), 2.0, "discard", screening(-0.5))
    history.add("y-1", history.edit("Y = 2", "Y = 0"), 5.0, "keep", screening(8.0))
    history.add("code-1", history.edit("loss = (X", "loss = 0.5 + (X"), 13.5, "discard", screening(-0.5))
    history.add("x-2", history.edit("X = 1.0", "X = 2.5"), 9.25, "discard", screening(-0.1))
    text = prompts.digest(history.memory.snapshot())
    headers = [line for line in text.splitlines() if line.startswith("- ")]
    assert headers == [  # in the order last tried, the newest last
        "- Baselines (the champion as each night began, and its other seeds): 1 run, best loss=13 (n1-baseline):",
        "- Y: 1 trial, best loss=5 (y-1 at Y=0), 1 kept:",
        "- Code changes that move no knob: 1 trial, best loss=13.5 (code-1), 0 kept:",
        "- X: 2 trials, best loss=2 (x-1 at X=2.0), 0 kept:",
    ]
    x = section(text, "- X: ")
    assert "x-1 [ok, discard] loss=2 (+0.5 vs champion) hypothesis of x-1" in x and "x-2 [ok, discard]" in x
    assert "change: X 1.0 -> 2.5" in x  # the compact change, its literals as written
    assert "ran on cpu with a 1 s budget" in x
    assert "measured: num_steps 120 (champion 120), peak_memory_mb 42.5 (champion 42.5)" in x
    assert "tokens/s 51200 (champion 51200)" in x  # tokens_seen / training_seconds: the throughput
    assert "concurrency" not in text  # the engine's bookkeeping is not a measurement


def test_near_misses_are_shown_in_full_when_other_trials_are_one_line(history):
    history.add(
        "close", history.edit("X = 1.0", "X = 1.2"), 12.0, "inconclusive", screening(0.04), expected="-1"
    )
    history.add("runner", history.edit("Y = 2", "Y = 1"), 10.0, "runner_up", screening(3.0))
    history.add("worse", history.edit('MODE = "plain"', 'MODE = "shifted"'), 14.0, "discard", screening(-1.0))
    level = prompts.DigestLevel(
        groups=None, listed=None, full=0, near_misses=5, failed=0, insights=0, log_lines=0
    )
    text = prompts.digest(history.memory.snapshot(), level)
    close = section(text, "  close [")
    assert "decision inconclusive: screening gain 0.04 ± 0.1 se, p 0.2, needed > 0.05" in close
    assert "expected: -1; measured: -0.04 loss" in close  # what it expected beside what it did
    assert "decision runner_up: screening gain 3" in section(text, "  runner [")
    worse = section(text, "  worse [")
    assert "worse [ok, discard] loss=14 (+1 vs champion)" in worse and "decision" not in worse  # one line


def test_old_groups_shrink_to_counts_before_anything_recent_is_cut(history):
    for name, old, new in [("A", "X = 1.0", "X = 1.5"), ("B", "Y = 2", "Y = 1"), ("C", "X = 1.0", "X = 2.0")]:
        history.add(f"{name}-0", history.edit(old, new), 9.0, "discard", screening(-0.2))
    for number in range(6):  # the newest ideas: six code changes and a MODE change
        history.add(f"code-{number}", history.edit("loss = (X", f"loss = {number} + (X"), 14.0, "discard")
    history.add("mode", history.edit('MODE = "plain"', 'MODE = "shifted"'), 14.0, "discard", screening(-1.0))
    config, memory = history.config, history.memory
    context = wave_plan.plan_context(config, memory, 2, 2)
    roomy = ClaudePlanner(config, client=anthropic.Anthropic(api_key="unused")).prompt(context).text
    assert "- X: 2 trials" in roomy and "- Y: 1 trial" in roomy and "(not listed)" not in roomy
    limit = prompts.estimate_tokens(prompts.SYSTEM + roomy) - 1  # one token less: the first step down
    tight = config.model_copy(
        update={"planner": config.planner.model_copy(update={"max_prompt_tokens": limit})}
    )
    shrunk = ClaudePlanner(tight, client=anthropic.Anthropic(api_key="unused")).prompt(context).text
    assert "- Baselines (the champion as each night began, and its other seeds): 1 run" in shrunk
    assert (
        "- Y: 1 trial, best loss=9 (B-0 at Y=1), 0 kept (not listed)" in shrunk
    )  # the oldest groups: counts
    assert "B-0 [" not in shrunk and "A-0 [" in shrunk  # X was tried again later (C-0): still listed
    for number in range(6):  # everything recent is still there, whole
        assert f"code-{number} [ok, discard] loss=14 hypothesis of code-{number}" in shrunk
    assert 'change: MODE "plain" -> "shifted"' in section(shrunk, "  mode [")
    assert "X = 1.0  # best at 3" in shrunk  # and the champion's files are never cut


def test_the_facts_give_the_noise_floor_and_the_smallest_gain_the_policys_confirmation_keeps(history):
    for seed, loss in [(1, 13.02), (2, 12.97)]:
        history.add(f"n1-baseline-s{seed}", history.shipped, loss, role="baseline", seed=seed)
    config, memory = history.config, history.memory
    context = wave_plan.plan_context(config, memory, 1, 2, agent_run_id=history.agent)
    night = memory.trials(agent_run_id=history.agent)
    floor = condition_floor(night, 1.0, "cpu")
    smallest = DecisionPolicy.from_config(config).smallest_confirmable_gain(floor, earlier_tests(night))
    (condition,) = context.facts.noise
    assert (condition.sigma, condition.dof, condition.smallest_gain) == (floor.sigma, floor.dof, smallest)
    text = prompts.facts_text(context.facts, "loss")
    assert (
        f"- cpu, 1 s budget: σ = {floor.sigma:.4g} (3 runs, 2 dof); smallest confirmable gain {smallest:.4g} loss"
        in text
    )
    assert "t test passes at level α_t = 0.00039" in text and "on 2 new-seed runs against 2 new runs" in text
    assert "The most promising (at most 1 per wave) are confirmed" in text


def test_the_plan_prompt_says_what_the_wave_already_tests_and_every_budget_left(history):
    context = wave_plan.plan_context(
        history.config, history.memory, 2, 1, "BUDGET", in_wave=("Y 2 -> 0 (re-tested on top of w1-t3)",)
    )
    text = ClaudePlanner(history.config, client=anthropic.Anthropic(api_key="unused")).prompt(context).text
    assert "<this_wave>\nThe wave already holds these trials" in text
    assert "- Y 2 -> 0 (re-tested on top of w1-t3)\n</this_wave>" in text
    assert "<budget_left>BUDGET</budget_left>" in text and "at least one bolder change to the code" in text
    words = prompts.budget_text(
        waves=3,
        trials=40,
        trial_hours=1.5,
        usd=2.25,
        deadline=datetime(2026, 1, 2, 7, 0),
        now=datetime(2026, 1, 2, 5, 30),
        screen_s=60,
        confirm_s=300,
        timeout_s=600,
    )
    assert words == (
        "3 more waves after this one; 40 trials; 1.50 trial-hours; $2.25 of spend (language model and compute); "
        "the deadline at 07:00, 90 minutes from now; a screening run trains for 60 s, a confirmation run for "
        "300 s (stopped past 600 s)"
    )
