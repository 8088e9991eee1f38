"""Plan: the planner proposes a wave; each proposal is validated and recorded before any trial runs."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from overnight import loop
from overnight.config import CampaignConfig
from overnight.memory.store import Memory
from overnight.planners import Planner
from tasks.reflect import artifact_key


@task(name="plan", task_run_name="plan wave {wave}", cache_policy=NONE)
def plan(
    config: CampaignConfig,
    memory: Memory,
    planner: Planner,
    agent_run_id: str,
    wave_run_id: str,
    wave: int,
    n: int,
    budget_left: str = "",
) -> loop.PlannedWave:
    """Propose n trials for this wave and record them (invalid ones with their reason)."""
    if wave == 0:
        return loop.plan_baseline(config, memory, agent_run_id, wave_run_id)
    planned = loop.plan_wave(config, memory, planner, agent_run_id, wave_run_id, wave, n, budget_left)
    create_markdown_artifact(
        markdown=loop.plan_markdown(wave, planner.name, planned, memory),
        key=artifact_key(config.name, "wave-plan"),
        description=f"Proposals of wave {wave} of campaign {config.name}",
    )
    return planned


@task(name="plan-confirmation", task_run_name="confirmations for wave {wave}", cache_policy=NONE)
def plan_confirmation(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    wave_run_id: str,
    wave: int,
    screening: loop.Screening,
) -> loop.PlannedWave:
    """New-seed runs of the promising trials and of the champion, on the same hardware, recorded before they run."""
    return loop.plan_confirmation(config, memory, agent_run_id, wave_run_id, wave, list(screening.promising))
