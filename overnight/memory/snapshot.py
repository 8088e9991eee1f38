"""The campaign's memory at one moment, as a planner reads it: frozen records, no MLflow.

`Memory.snapshot()` reads it from MLflow; the text a model reads of it is `overnight.planners.prompts.digest`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from overnight.memory.records import TrialRecord
from overnight.trial import Outcome


@dataclass(frozen=True)
class MemorySnapshot:
    """Everything a planner may know of the past: every trial, the champion and its lineage, the insights of the
    last waves and the log tails of the last failed trials."""

    metric: str
    goal: str  # minimize | maximize
    trials: tuple[TrialRecord, ...]  # oldest first
    champion: TrialRecord | None
    lineage: tuple[TrialRecord, ...]  # the champion and its predecessors, newest first
    insights: tuple[str, ...]  # reflections of the last waves, oldest first
    failure_logs: dict[str, str]  # run id -> log tail, for the last failed trials

    def best(self, n: int) -> list[TrialRecord]:
        return rank(self.trials, self.goal)[:n]

    @property
    def finished(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "finished"]

    @property
    def running(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "running"]


def rank(trials: Iterable[TrialRecord], goal: str) -> list[TrialRecord]:
    """The ok trials, best first."""
    ok = [t for t in trials if t.outcome is Outcome.OK and t.metric is not None]
    return sorted(ok, key=lambda t: t.metric if goal == "minimize" else -t.metric)


def failures(trials: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The trials that ended in any outcome but ok (invalid proposals included), in their order."""
    return [t for t in trials if t.outcome not in (None, Outcome.OK)]
