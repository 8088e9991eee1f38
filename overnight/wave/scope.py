"""What every stage of a wave works on: the wave's scope, and its trials as planned."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from overnight.config import CampaignConfig
from overnight.memory.records import TrialRecord
from overnight.memory.store import Memory
from overnight.policy import DecisionPolicy
from overnight.pricing import Usage


@dataclass(frozen=True)
class WaveScope:
    """One wave of one agent run: the campaign's config, its memory, and where the wave's records go.

    Wave 0 of every agent run is its baseline (`is_baseline`): it measures the starting point and the noise."""

    config: CampaignConfig
    memory: Memory
    agent_run_id: str
    wave_run_id: str
    wave: int

    @property
    def is_baseline(self) -> bool:
        return self.wave == 0

    @cached_property
    def policy(self) -> DecisionPolicy:
        return DecisionPolicy.from_config(self.config)

    def history(self) -> list[TrialRecord]:
        """This agent run's trials: the champion and the noise are measured anew each night, under its conditions."""
        return self.memory.trials(agent_run_id=self.agent_run_id)

    def trial_id(self, suffix: str) -> str:
        """A stable id (`<agent run>-w<wave>-t<i>`...), so that a resumed wave finds its trials again."""
        return f"{self.agent_run_id[:8]}-{suffix}"


@dataclass(frozen=True)
class PlannedTrial:
    """A proposal turned into a trial: recorded in MLflow, ready to dispatch (or invalid, with the reason)."""

    trial_id: str
    run_id: str
    hypothesis: str
    files: dict[str, str] | None  # None when the proposal is invalid
    reason: str = ""
    seed: int | None = None  # None: the campaign's trial seed
    role: str = (
        "candidate"  # baseline | candidate | confirmation | champion (a re-measurement of the champion)
    )
    stage: str = "screen"  # the stage whose settings it runs with: screen | confirm
    pinned: str | None = None  # the hardware type it must run on (a confirmation pairs runs on one type)

    @property
    def valid(self) -> bool:
        return self.files is not None


@dataclass(frozen=True)
class PlannedWave:
    """The trials of a wave as recorded, plus what planning cost and anything the planner wants people to know."""

    trials: list[PlannedTrial]
    note: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    queries: tuple[str, ...] = ()  # the planner's memory queries, e.g. 'search_trials {"knob": "LR"}'
