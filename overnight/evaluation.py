"""Evaluation: results become decisions. A trial is kept only if it beats the champion by more than the margin."""

from __future__ import annotations

from dataclasses import dataclass

from overnight.memory import TrialRecord
from overnight.results import Outcome


@dataclass(frozen=True)
class Decision:
    run_id: str
    trial_id: str
    decision: str  # keep | discard | failed | baseline
    reason: str
    delta: float | None  # metric minus the champion's (negative is better when minimizing)


def improvement(goal: str, champion: float, candidate: float) -> float:
    """How much better the candidate is, in metric units (positive = better)."""
    return champion - candidate if goal == "minimize" else candidate - champion


def evaluate_wave(
    trials: list[TrialRecord], champion: TrialRecord, goal: str, min_improvement: float
) -> tuple[list[Decision], TrialRecord]:
    """Decide every trial of a wave against the champion it was built on; return the decisions and the champion."""
    decisions: list[Decision] = []
    best = champion
    for trial in trials:
        if trial.outcome is not Outcome.OK or trial.metric is None:
            outcome = trial.outcome.value if trial.outcome else "unfinished"
            decisions.append(
                Decision(trial.run_id, trial.trial_id, "failed", f"{outcome}: {trial.reason}", None)
            )
            continue
        gain = improvement(goal, champion.metric, trial.metric)
        delta = trial.metric - champion.metric
        if gain > min_improvement:
            reason = f"beats the champion by {gain:.4g} (> margin {min_improvement:g})"
            if best is champion or improvement(goal, best.metric, trial.metric) > 0:
                best = trial
        elif gain > 0:
            reason = f"better by {gain:.4g}, within the margin {min_improvement:g}: not enough to keep"
        else:
            reason = f"worse than the champion by {-gain:.4g}"
        decisions.append(Decision(trial.run_id, trial.trial_id, "discard", reason, delta))
    # Only the best of the wave is kept; others that also cleared the margin stay discarded (one change at a time).
    decisions = [
        Decision(d.run_id, d.trial_id, "keep", d.reason, d.delta) if d.run_id == best.run_id else d
        for d in decisions
    ]
    return decisions, best
