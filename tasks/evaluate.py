"""Evaluate: screen each trial against the champion, then confirm the promising ones and crown the best."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from overnight import loop
from overnight.config import CampaignConfig
from overnight.memory.store import Memory
from overnight.planners import FinishedWave


@task(name="screen", task_run_name="screen wave {wave}", cache_policy=NONE)
def screen(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    wave_run_id: str,
    wave: int,
    planned: list[loop.PlannedTrial],
) -> loop.Screening:
    """Screening verdicts for the wave's trials (promising ones go on to confirmation), and a grid's effects."""
    return loop.screen(config, memory, agent_run_id, wave_run_id, planned)


@task(name="evaluate", task_run_name="evaluate wave {wave}", cache_policy=NONE)
def evaluate(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    wave: int,
    planned: list[loop.PlannedTrial],
    screening: loop.Screening | None = None,
) -> FinishedWave:
    """Final decisions for every trial of the wave; the baseline wave sets the champion and the noise floor."""
    if wave == 0:
        return loop.evaluate_baseline(config, memory, agent_run_id, planned)
    return loop.evaluate(config, memory, agent_run_id, wave, planned, screening)
