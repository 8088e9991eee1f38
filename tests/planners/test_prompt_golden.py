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

from overnight.config import default_config_path, load_config
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner
from overnight.planners.prompts import SYSTEM
from overnight.program import read_files, set_constant
from overnight.proposals import fingerprint, unified_diff
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
    """One agent run of the default campaign, written trial by trial as the engine would."""

    def __init__(self, memory: Memory, shipped: dict[str, str]):
        self.memory, self.shipped = memory, shipped
        self.agent = memory.start_agent_run("night 1", {"planner": "claude"})
        self.wave_runs: dict[int, str] = {}
        self.trial_ids: dict[str, str] = {}  # run id -> trial id

    def wave(self, number: int) -> str:
        next_millisecond()
        self.wave_runs[number] = self.memory.start_wave(self.agent, number)
        return self.wave_runs[number]

    def trial(
        self, wave: int, trial_id: str, hypothesis: str, files: dict[str, str], role="candidate"
    ) -> str:
        next_millisecond()
        run_id = self.memory.start_trial(
            wave_run_id=self.wave_runs[wave],
            agent_run_id=self.agent,
            trial_id=trial_id,
            wave=wave,
            hypothesis=hypothesis,
            rationale="",
            params={},
            files=files,
            diff=unified_diff(self.shipped, files),
            fingerprint=fingerprint(files),
            parent_champion="",
            role=role,
        )
        self.trial_ids[run_id] = trial_id
        return run_id

    def finish(
        self, run_id: str, outcome: Outcome, val_bpb: float | None, decision: str, reason="", log=""
    ) -> None:
        metrics = {"val_bpb": val_bpb} if val_bpb is not None else {}
        code = 0 if outcome is Outcome.OK else 1
        result = TrialResult(self.trial_ids[run_id], outcome, metrics, 31.0, code, log, reason)
        self.memory.finish_trial(run_id, result)
        if decision:
            self.memory.record_decision(run_id, decision, reason or decision)


def with_constant(files: dict[str, str], name: str, value: object) -> dict[str, str]:
    edit = set_constant("train.py", files["train.py"], name, value)
    return {**files, "train.py": files["train.py"].replace(edit.search, edit.replace, 1)}


def golden_prompt(memory: Memory) -> str:
    """What `overnight plan --show-prompt` prints for the third wave of a night on the default program."""
    config = load_config(default_config_path())
    shipped = read_files(config.program, config.editable)
    night = Night(memory, shipped)

    night.wave(0)
    baseline = night.trial(0, "n1-baseline", "baseline: the program as shipped", shipped, role="baseline")
    night.finish(baseline, Outcome.OK, 3.0561, "baseline")
    repeat = night.trial(
        0, "n1-baseline-s1", "baseline: the program as shipped (seed 1)", shipped, role="baseline"
    )
    night.finish(repeat, Outcome.OK, 3.0683, "baseline_repeat")
    memory.set_champion(baseline, "", why="the program as shipped")
    memory.finish_wave(night.wave_runs[0], {}, "Baseline: val_bpb 3.0561 and 3.0683 (seeds 0 and 1).", [])

    night.wave(1)
    faster = with_constant(shipped, "LEARNING_RATE", 3e-3)
    kept = night.trial(
        1, "n1-w1-t0", "LEARNING_RATE 1e-3 -> 3e-3: the loss still falls fast at the end", faster
    )
    night.finish(kept, Outcome.OK, 2.9012, "keep", "beats the champion by 0.155 (p = 0.004)")
    wider = with_constant(shipped, "WIDTH", 128)
    crashed = night.trial(1, "n1-w1-t1", "WIDTH 96 -> 128: more capacity per layer", wider)
    night.finish(crashed, Outcome.CRASH, None, "discard", "exited with status 1", CRASH_LOG)
    memory.set_champion(kept, baseline, gain=0.1549, why="confirmed by 2 new-seed runs (p = 0.004)")
    memory.finish_wave(
        night.wave_runs[1],
        {},
        "## Wave 1\n\n- A higher learning rate helped: val_bpb 3.056 -> 2.901.\n"
        "- WIDTH 128 crashed: HEAD_DIM must divide it (a shape error, not a dead end).",
        [],
    )

    night.wave(2)
    deeper = with_constant(faster, "DEPTH", 4)
    discarded = night.trial(2, "n1-w2-t0", "DEPTH 3 -> 4: a deeper model at the faster learning rate", deeper)
    night.finish(discarded, Outcome.OK, 2.9387, "discard", "worse than the champion by 0.0375")
    night.trial(2, "n1-w2-t1", "WARMDOWN_FRAC 0.3 -> 0.5", with_constant(faster, "WARMDOWN_FRAC", 0.5))

    context = wave_plan.plan_context(
        config,
        memory,
        3,
        config.wave_size,
        "4 more waves after this one",
        ("try a cosine learning-rate schedule",),
    )
    planner = ClaudePlanner(config, client=anthropic.Anthropic(api_key="unused: nothing is sent"))
    return f"--- system ---\n{SYSTEM}\n--- user ---\n{planner.prompt(context).text}\n"


def test_the_prompt_for_the_default_program_is_pinned(tmp_path, tracking_uri, campaign_name):
    memory = Memory(tracking_uri, campaign_name, "minimize", "val_bpb", artifact_root=tmp_path / "artifacts")
    prompt = golden_prompt(memory)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(prompt)
    assert prompt == GOLDEN.read_text(), (
        f"the prompt Claude gets changed; if that is meant, refresh {GOLDEN.name} with UPDATE_GOLDEN=1 and review "
        "its diff"
    )
