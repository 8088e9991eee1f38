"""The campaign's trials as the plan prompt lays them out: grouped by the knobs each change moves, the near-misses,
each trial's verdict numbers and its script's own measurements. Plain values from frozen records; the words are
`overnight.planners.prompts`'s."""

from __future__ import annotations

from dataclasses import dataclass

from overnight.memory.records import TrialRecord
from overnight.trial import Outcome

# Metrics the engine logs on a trial run beside what its script printed: bookkeeping, not a measurement of the
# change. (The verdict's numbers are the metrics <stage>_<number>, as Memory.record_decision writes them.)
ENGINE_METRICS = frozenset({"concurrency", "wall_s", "duration_s", "compute_usd", "confirmed_gain", "seed"})
VERDICT_STAGES = ("screen", "confirm")
_VERDICT_PREFIXES = tuple(f"{stage}_" for stage in (*VERDICT_STAGES, "verdict"))


@dataclass(frozen=True)
class VerdictNumbers:
    """The numbers of one verdict on a trial (policy.py: a screening or a confirmation), as recorded."""

    stage: str  # screen | confirm
    gain: float  # over the champion, metric units, positive = better
    se: float
    threshold: float | None  # what the gain had to exceed
    p_value: float | None  # t test only
    alpha_t: float | None  # confirmation: the level the error control gave it
    n_candidate: int
    n_champion: int


def verdicts(trial: TrialRecord) -> tuple[VerdictNumbers, ...]:
    """The verdicts recorded on a trial, screening first."""
    found = []
    for stage in VERDICT_STAGES:
        metrics = trial.metrics
        if f"{stage}_gain" not in metrics:
            continue
        found.append(
            VerdictNumbers(
                stage=stage,
                gain=metrics[f"{stage}_gain"],
                se=metrics.get(f"{stage}_se", 0.0),
                threshold=metrics.get(f"{stage}_threshold"),
                p_value=metrics.get(f"{stage}_p_value"),
                alpha_t=metrics.get(f"{stage}_alpha_t"),
                n_candidate=int(metrics.get(f"{stage}_n_candidate", 0)),
                n_champion=int(metrics.get(f"{stage}_n_champion", 0)),
            )
        )
    return tuple(found)


def measurements(trial: TrialRecord, metric: str) -> dict[str, float]:
    """What the trial's script printed besides the campaign's metric (steps, throughput, training seconds, memory,
    any `name: value` line), without the engine's bookkeeping and the verdicts' numbers."""
    return {
        name: value
        for name, value in trial.metrics.items()
        if name != metric and name not in ENGINE_METRICS and not name.startswith(_VERDICT_PREFIXES)
    }


def is_near_miss(trial: TrialRecord) -> bool:
    """Not kept, but close: a runner-up (it passed, another gained more), or a trial whose last verdict measured a
    gain that did not clear the rule."""
    if trial.decision == "runner_up":
        return True
    found = verdicts(trial)
    return trial.decision in ("inconclusive", "discard") and bool(found) and found[-1].gain > 0


@dataclass(frozen=True)
class Group:
    """Trials of one idea: the baseline copies, the changes that move one set of knobs, the code changes that move
    none, or the proposals that never ran."""

    kind: str  # baseline | knobs | code | invalid
    knobs: tuple[str, ...]  # knobs: the UPPER_CASE constants its changes move
    trials: tuple[TrialRecord, ...]  # oldest first


def knobs_moved(trial: TrialRecord, parent: TrialRecord | None) -> tuple[str, ...]:
    """The knobs (UPPER_CASE constants, the trials' params) whose value differs from the champion it was built on."""
    if parent is None:
        return ()
    before = parent.params
    return tuple(sorted(name for name, value in trial.params.items() if before.get(name, value) != value))


def history_groups(trials: tuple[TrialRecord, ...] | list[TrialRecord]) -> list[Group]:
    """Every finished baseline copy and proposal of the campaign (all nights), grouped; the groups in the order
    they were last tried, the newest last. The engine's own runs (confirmations, re-measurements) are left out:
    their numbers are recorded on the trials they measure."""
    by_run = {t.run_id: t for t in trials}
    grouped: dict[tuple[str, tuple[str, ...]], list[TrialRecord]] = {}
    last: dict[tuple[str, tuple[str, ...]], int] = {}
    for index, trial in enumerate(trials):
        if trial.status != "finished" or trial.role not in ("baseline", "candidate"):
            continue
        key = _group_key(trial, by_run)
        grouped.setdefault(key, []).append(trial)
        last[key] = index
    return [Group(*key, tuple(grouped[key])) for key in sorted(grouped, key=last.get)]


def _group_key(trial: TrialRecord, by_run: dict[str, TrialRecord]) -> tuple[str, tuple[str, ...]]:
    if trial.role == "baseline":
        return "baseline", ()
    if trial.outcome is Outcome.INVALID and not trial.budget_s:  # a proposal that never ran
        return "invalid", ()
    moved = knobs_moved(trial, by_run.get(trial.parent_champion))
    return ("knobs", moved) if moved else ("code", ())
