"""Evaluate: screen each trial against the champion, then confirm the promising ones and crown the best."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from overnight.planners import FinishedWave
from overnight.policy import Screening
from overnight.wave import evaluate as core
from overnight.wave.scope import PlannedTrial, WaveScope


@task(name="evaluate-baseline", task_run_name="evaluate the baseline", cache_policy=NONE)
def evaluate_baseline(scope: WaveScope, planned: list[PlannedTrial]) -> FinishedWave:
    """The baseline becomes the champion and its copies measure the first noise floor; a failed baseline stops."""
    return core.evaluate_baseline(scope, planned)


@task(name="screen", task_run_name="screen wave {scope.wave}", cache_policy=NONE)
def screen(scope: WaveScope, planned: list[PlannedTrial]) -> Screening:
    """Screening verdicts for the wave's trials (promising ones go on to confirmation), and a grid's effects."""
    return core.screen(scope, planned)


@task(name="evaluate", task_run_name="evaluate wave {scope.wave}", cache_policy=NONE)
def evaluate(scope: WaveScope, planned: list[PlannedTrial], screening: Screening) -> FinishedWave:
    """Final decisions for every trial of the wave: confirmed, crowned or not."""
    return core.evaluate(scope, planned, screening)


@task(name="remeasured", task_run_name="the re-measured champion of wave {scope.wave}", cache_policy=NONE)
def remeasured(scope: WaveScope, finished: FinishedWave, planned: list[PlannedTrial]) -> FinishedWave:
    """The wave with its new champion's fresh runs labelled and counted in."""
    return core.remeasured(scope, finished, planned)
