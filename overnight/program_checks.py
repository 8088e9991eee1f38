"""What the baseline's copies show of the program itself: whether it follows its seed and its time budget.

The baseline runs the same files several times with seeds seed, seed+1, ... under one budget. A program that gives
the same metric whatever its seed, or trains for a time of its own whatever its budget, breaks an assumption the
decisions rest on; the campaign still runs, and says so once, on the agent run and in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from overnight import progress
from overnight.config import CampaignConfig
from overnight.memory.records import PREFIX, TrialRecord
from overnight.trial import Outcome, TimeBudget

if TYPE_CHECKING:
    from overnight.memory.store import Memory

WARNING_TAG = PREFIX + "warning."  # overnight.warning.seed, overnight.warning.budget on the agent run
TOO_SHORT = 0.5  # a copy that trained less than this fraction of its budget did not follow it


@dataclass(frozen=True)
class ProgramWarning:
    key: str  # seed | budget
    message: str


def check_program(config: CampaignConfig, trials: list[TrialRecord]) -> list[ProgramWarning]:
    """The warnings the baseline copies among `trials` give about the program (none for a program that behaves)."""
    copies = [t for t in trials if t.role == "baseline" and t.outcome in (Outcome.OK, Outcome.OVER_BUDGET)]
    warnings = [seed_warning(config, copies), budget_warning(config, copies)]
    return [warning for warning in warnings if warning is not None]


def seed_warning(config: CampaignConfig, copies: list[TrialRecord]) -> ProgramWarning | None:
    """Copies run with different seeds that gave one identical metric: the program ignores OVERNIGHT_SEED."""
    measured = [t for t in copies if t.metric is not None]
    seeds = sorted({t.seed for t in measured})
    values = {t.metric for t in measured}
    if len(seeds) < 2 or len(values) != 1:
        return None
    return ProgramWarning(
        "seed",
        f"the program ignores its seed: {len(measured)} baseline copies ran with OVERNIGHT_SEED "
        f"{', '.join(map(str, seeds))} and all gave {config.metric.name} = {values.pop():.6g}. No seed noise can be "
        f"measured, so the noise floor is zero and a gain is judged only against min_improvement "
        f"({config.min_improvement:g}); nothing is crowned on statistics alone. Seed the script's randomness "
        "from OVERNIGHT_SEED.",
    )


def budget_warning(config: CampaignConfig, copies: list[TrialRecord]) -> ProgramWarning | None:
    """Every copy trained far less than its budget, or past it: the program does not follow OVERNIGHT_TIME_BUDGET.

    Its training time is its own `training_seconds`, or the engine's wall time where the script prints none.
    """
    timed = [(t, *training_time(t)) for t in copies if t.budget_s > 0]
    timed = [(t, seconds, source) for t, seconds, source in timed if seconds is not None]
    if not timed:
        return None
    short = all(seconds < TOO_SHORT * t.budget_s for t, seconds, _ in timed)
    over = all(seconds > time_limit(config, t.budget_s, source) for t, seconds, source in timed)
    if not (short or over):
        return None
    times = ", ".join(f"{seconds:.3g}" for _, seconds, _ in timed)
    return ProgramWarning(
        "budget",
        f"the program does not follow OVERNIGHT_TIME_BUDGET: its baseline copies took {times} s "
        f"({timed[0][2]}) on a {timed[0][0].budget_s:g} s budget. It likely reads its budget from a constant, so "
        "the fixed budget that makes trials comparable is not enforced by it (a run past it is still recorded "
        "over_budget, never crowned). Make the script train for OVERNIGHT_TIME_BUDGET seconds.",
    )


def time_limit(config: CampaignConfig, budget_s: float, source: str) -> float:
    """The most a run may take of a `source` figure (training_seconds or wall_s) before it is over_budget."""
    budget = TimeBudget(budget_s, config.trial.budget_tolerance, config.trial.overhead_allowance_s)
    return budget.training_limit_s if source == "training_seconds" else budget.wall_limit_s


def training_time(trial: TrialRecord) -> tuple[float | None, str]:
    """How long a copy trained and where that figure comes from: its training_seconds, else the engine's clock."""
    if "training_seconds" in trial.metrics:
        return trial.metrics["training_seconds"], "training_seconds"
    if "wall_s" in trial.metrics:
        return trial.metrics["wall_s"], "wall_s"
    return (trial.duration_s or None), "wall_s"


def record_program_warnings(memory: Memory, agent_run_id: str, warnings: list[ProgramWarning]) -> None:
    """Each warning as a tag on the agent run (overnight.warning.<key>) and a progress event the CLI prints."""
    if warnings:
        memory.set_tags(agent_run_id, {WARNING_TAG + w.key: w.message for w in warnings})
    for warning in warnings:
        progress.emit("program_warning", key=warning.key, message=warning.message)
