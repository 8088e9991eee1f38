"""Evaluate: decide each trial against the champion and crown a new one if it clears the margin."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from overnight import loop
from overnight.config import CampaignConfig
from overnight.memory import Memory
from overnight.planners import WaveOutcome


@task(name="evaluate", task_run_name="evaluate wave {wave}", cache_policy=NONE)
def evaluate(
    config: CampaignConfig, memory: Memory, wave: int, planned: list[loop.PlannedTrial]
) -> WaveOutcome:
    """Decisions for every trial of the wave; the baseline wave sets the champion."""
    if wave == 0:
        return loop.evaluate_baseline(config, memory, planned)
    return loop.evaluate(config, memory, wave, planned)
