"""The exact prompt Claude gets for the default program, pinned so that a change to a word of it is seen in review.

Refresh the golden file with UPDATE_GOLDEN=1 (as for the `--help` goldens), then read its diff before committing.

The history behind the prompt is written by this test into a real MLflow store, with every value that would vary
from run to run fixed here: trial ids are chosen (not derived from MLflow's random run ids), each run starts on a
later millisecond than the one before (MLflow orders runs of the same millisecond by their random ids), and the
prompt names no path, time or run id.
"""

import os
import time
from pathlib import Path

import anthropic

from overnight.budget import budget_left
from overnight.config import default_config_path, load_config
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner, describe_request
from overnight.policy import DecisionPolicy
from overnight.program import read_files, set_constant
from overnight.proposals import compact_change, fingerprint, unified_diff
from overnight.trial import Outcome, TrialResult
from overnight.wave import plan as wave_plan

GOLDEN = Path(__file__).parent.parent / "golden" / "claude-prompt.txt"
CRASH_LOG = """step 0: loss 5.5452
step 40: loss 3.1207
Traceback (most recent call last):
  File "train.py", line 171, in <module>
    logits = model(x)
RuntimeError: mat1 and mat2 shapes cannot be multiplied (16x96 and 128x96)
"""


def next_millisecond() -> None:
    """Wait until the clock has moved to a new millisecond, so the next run starts strictly later."""
    start = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == start:
        time.sleep(0.0005)


class Night:
    """One agent run of the default campaign, written trial by trial as the engine would: each trial's knobs, change
    and expected effect as planned, its script's measurements and hardware as it finished, and the decision policy's
    own verdicts with their numbers."""

    def __init__(self, memory: Memory, config):
        self.memory, self.config = memory, config
        self.policy = DecisionPolicy.from_config(config)
        self.agent = memory.start_agent_run("night 1", {"planner": "claude"})
        self.wave_runs: dict[int, str] = {}
        self.trial_ids: dict[str, str] = {}  # run id -> trial id

    def wave(self, number: int) -> str:
        next_millisecond()
        self.wave_runs[number] = self.memory.start_wave(self.agent, number)
        return self.wave_runs[number]

    def trial(self, wave, trial_id, hypothesis, files, before, parent="", role="candidate", **fields) -> str:
        next_millisecond()
        run_id = self.memory.start_trial(
            wave_run_id=self.wave_runs[wave],
            agent_run_id=self.agent,
            trial_id=trial_id,
            wave=wave,
            hypothesis=hypothesis,
            rationale="",
            params=wave_plan.knob_values(self.config, files),
            files=files,
            diff=unified_diff(before, files),
            change=compact_change(before, files),
            fingerprint=fingerprint(files),
            parent_champion=parent,
            role=role,
            budget_s=self.config.trial.time_budget_s,
            **fields,
        )
        self.trial_ids[run_id] = trial_id
        return run_id

    def finish(
        self, run_id: str, outcome: Outcome, val_bpb: float | None, steps=0, log="", reason=""
    ) -> None:
        """The trial's end as the local backend reports it, with what the default program prints."""
        metrics = {}
        if val_bpb is not None:
            seconds = 30.1
            metrics = {"val_bpb": val_bpb, "training_seconds": seconds, "num_steps": steps}
            metrics |= {"tokens_seen": steps * 2048, "num_params": 431712, "peak_memory_mb": 212.5}
        code = 0 if outcome is Outcome.OK else 1
        placement = {"hardware": "cpu"}
        result = TrialResult(self.trial_ids[run_id], outcome, metrics, 31.0, code, log, reason, placement)
        self.memory.finish_trial(run_id, result)

    def decide(self, decisions) -> None:
        for decision in decisions:
            self.memory.record_decision(decision.run_id, decision.decision, decision.reason, decision.numbers)

    def screen(self, *run_ids: str):
        """The policy's screening of these candidates against the champion, recorded."""
        history = self.memory.trials(agent_run_id=self.agent)
        screened = [t for t in history if t.run_id in run_ids]
        screening = self.policy.screen(history, self.memory.champion(), screened)
        self.decide(screening.decisions)
        return screening

    def confirm(self, candidate: str):
        """The policy's confirmation of a candidate (its new-seed runs and the champion's have run), recorded."""
        history = self.memory.trials(agent_run_id=self.agent)
        record = next(t for t in history if t.run_id == candidate)
        crowning = self.policy.confirm(history, self.memory.champion(), [record], self.memory.trials())
        self.decide(crowning.decisions)
        return crowning


def with_constant(files: dict[str, str], name: str, value: object) -> dict[str, str]:
    edit = set_constant("train.py", files["train.py"], name, value)
    return {**files, "train.py": files["train.py"].replace(edit.search, edit.replace, 1)}


def golden_prompt(memory: Memory) -> str:
    """What `overnight plan --show-prompt` prints for the third wave of a night on the default program."""
    config = load_config(default_config_path())
    shipped = read_files(config.program, config.editable)
    night = Night(memory, config)

    night.wave(0)
    baseline = night.trial(
        0, "n1-baseline", "baseline: the program as shipped", shipped, shipped, role="baseline"
    )
    night.finish(baseline, Outcome.OK, 3.0561, steps=801)
    repeat = night.trial(
        0,
        "n1-baseline-s1",
        "baseline: the program as shipped (seed 1)",
        shipped,
        shipped,
        role="baseline",
        seed=1,
    )
    night.finish(repeat, Outcome.OK, 3.0683, steps=797)
    memory.record_decision(baseline, "baseline", "the program as shipped")
    memory.record_decision(repeat, "baseline_repeat", "another seed of the baseline: measures seed noise")
    memory.set_champion(baseline, "", why="the program as shipped")
    memory.finish_wave(night.wave_runs[0], {}, "Baseline: val_bpb 3.0561 and 3.0683 (seeds 0 and 1).", [])

    night.wave(1)
    faster = with_constant(shipped, "LEARNING_RATE", 3e-3)
    kept = night.trial(
        1,
        "n1-w1-t0",
        "LEARNING_RATE 1e-3 -> 3e-3: the loss still falls fast at the end",
        faster,
        shipped,
        baseline,
        expected="-0.05 val_bpb",
    )
    night.finish(kept, Outcome.OK, 2.9012, steps=806)
    wider = with_constant(shipped, "WIDTH", 128)
    crashed = night.trial(
        1, "n1-w1-t1", "WIDTH 96 -> 128: more capacity per layer", wider, shipped, baseline, expected="-0.03"
    )
    night.finish(crashed, Outcome.CRASH, None, log=CRASH_LOG, reason="exited with status 1")
    night.screen(kept, crashed)
    for number, (seed, bpb, champion_bpb) in enumerate([(1, 2.9046, 3.0622), (2, 2.8981, 3.0577)]):
        run = night.trial(
            1,
            f"n1-w1-t0-c{number}",
            "confirmation",
            faster,
            shipped,
            baseline,
            "confirmation",
            seed=seed,
            measures=kept,
        )
        night.finish(run, Outcome.OK, bpb, steps=804)
        run = night.trial(
            1,
            f"n1-w1-champion-{number}",
            "champion re-measured",
            shipped,
            shipped,
            baseline,
            "champion",
            seed=seed + 1,
            measures=baseline,
        )
        night.finish(run, Outcome.OK, champion_bpb, steps=799)
    crowning = night.confirm(kept)
    memory.set_champion(kept, baseline, gain=crowning.verdict.gain, why=crowning.verdict.reason)
    for number, (seed, bpb) in enumerate([(3, 2.9071), (4, 2.9003)]):
        run = night.trial(
            1,
            f"n1-w1-fresh-{number}",
            "champion re-measured",
            faster,
            faster,
            kept,
            "champion",
            seed=seed,
            measures=kept,
        )
        night.finish(run, Outcome.OK, bpb, steps=805)
    memory.finish_wave(
        night.wave_runs[1],
        {},
        "## Wave 1\n\n- A higher learning rate helped: val_bpb 3.056 -> 2.901.\n"
        "- WIDTH 128 crashed: HEAD_DIM must divide it (a shape error, not a dead end).",
        [],
    )

    night.wave(2)
    deeper = with_constant(faster, "DEPTH", 4)
    discarded = night.trial(
        2, "n1-w2-t0", "DEPTH 3 -> 4: a deeper model at the faster learning rate", deeper, faster, kept
    )
    night.finish(discarded, Outcome.OK, 2.9387, steps=611)
    clipped = with_constant(faster, "GRAD_CLIP", 0.5)
    close = night.trial(
        2,
        "n1-w2-t1",
        "GRAD_CLIP 1.0 -> 0.5: steadier steps at the higher rate",
        clipped,
        faster,
        kept,
        expected="-0.01 val_bpb",
    )
    night.finish(close, Outcome.OK, 2.8991, steps=803)
    night.screen(discarded, close)
    night.trial(
        2, "n1-w2-t2", "WARMDOWN_FRAC 0.3 -> 0.5", with_constant(faster, "WARMDOWN_FRAC", 0.5), faster, kept
    )

    context = wave_plan.plan_context(
        config,
        memory,
        3,
        config.wave_size,
        budget_left(config, memory, night.agent, 2),
        ("try a cosine learning-rate schedule",),
        agent_run_id=night.agent,
    )
    planner = ClaudePlanner(config, client=anthropic.Anthropic(api_key="unused: nothing is sent"))
    return describe_request(planner.first_request(context)) + "\n"


def test_the_prompt_for_the_default_program_is_pinned(tmp_path, tracking_uri, campaign_name):
    memory = Memory(tracking_uri, campaign_name, "minimize", "val_bpb", artifact_root=tmp_path / "artifacts")
    prompt = golden_prompt(memory)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(prompt)
    assert prompt == GOLDEN.read_text(), (
        f"the prompt Claude gets changed; if that is meant, refresh {GOLDEN.name} with UPDATE_GOLDEN=1 and review "
        "its diff"
    )
