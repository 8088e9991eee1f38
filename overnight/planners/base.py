"""The planner contract. Planners read frozen records, never live MLflow objects, and never run trials."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from overnight.evaluation import Decision
from overnight.memory import TrialRecord
from overnight.proposals import Proposal


@dataclass(frozen=True)
class PlanContext:
    """What a planner may know when it plans wave `wave`."""

    wave: int
    n: int  # proposals wanted
    champion: TrialRecord
    champion_files: dict[str, str]
    history: tuple[TrialRecord, ...]  # every trial of the campaign, oldest first
    digest: str  # the memory as compact text (for language-model planners)


@dataclass(frozen=True)
class WaveOutcome:
    """A finished wave as the planner reflects on it."""

    wave: int
    metric: str
    goal: str
    champion_before: TrialRecord
    champion_after: TrialRecord
    trials: tuple[TrialRecord, ...]
    decisions: tuple[Decision, ...]


class Planner(ABC):
    name: str

    @abstractmethod
    def propose(self, context: PlanContext) -> list[Proposal]:
        """Up to `context.n` proposals, none a repeat of a trial in the history."""

    @abstractmethod
    def reflect(self, outcome: WaveOutcome) -> str:
        """Markdown: what the wave taught (numbers included), for people and for the next plan."""
