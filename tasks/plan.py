"""Plan: the planner proposes a wave; each proposal is validated and recorded before any trial runs."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from overnight.planners import Planner
from overnight.policy import Screening
from overnight.trial import TrialResult
from overnight.wave import plan as core
from overnight.wave import repair as repairs
from overnight.wave.scope import PlannedTrial, PlannedWave, WaveScope
from tasks.reflect import artifact_key


@task(name="plan-baseline", task_run_name="plan the baseline", cache_policy=NONE)
def plan_baseline(scope: WaveScope) -> PlannedWave:
    """Copies of the starting point (the champion, or the program as shipped), each with its own seed."""
    return core.plan_baseline(scope)


@task(name="plan", task_run_name="plan wave {scope.wave}", cache_policy=NONE)
def plan(scope: WaveScope, planner: Planner, n: int, budget_left: str = "") -> PlannedWave:
    """Propose n trials for this wave and record them (invalid ones with their reason)."""
    planned = core.plan_wave(scope, planner, n, budget_left)
    create_markdown_artifact(
        markdown=core.plan_markdown(scope, planner.name, planned),
        key=artifact_key(scope.config.name, "wave-plan"),
        description=f"Proposals of wave {scope.wave} of campaign {scope.config.name}",
    )
    return planned


@task(name="repair", task_run_name="repair {trial.trial_id}", cache_policy=NONE)
def repair(
    scope: WaveScope, planner: Planner, trial: PlannedTrial, result: TrialResult, budget_left: str = ""
) -> PlannedTrial | None:
    """A trial that crashed before its first result, sent back to the planner once: its repair, recorded and ready
    to run in this wave, or None (not the planner's to repair, handled before, or no repair came)."""
    return repairs.repair_crash(scope, planner, trial, result, budget_left)


@task(name="plan-confirmation", task_run_name="confirmations for wave {scope.wave}", cache_policy=NONE)
def plan_confirmation(scope: WaveScope, screening: Screening) -> PlannedWave:
    """New-seed runs of the promising trials and of the champion, on the same hardware, recorded before they run."""
    return PlannedWave(core.plan_wanted_runs(scope, list(screening.wanted)))


@task(name="plan-remeasure", task_run_name="re-measure the champion of wave {scope.wave}", cache_policy=NONE)
def plan_remeasure(scope: WaveScope) -> PlannedWave:
    """Fresh runs of a champion crowned in this wave (none if it was not), recorded before they run."""
    return core.plan_remeasure(scope)
