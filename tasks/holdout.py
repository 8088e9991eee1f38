"""Holdout: a champion's saved model scored on data the training script never receives, recorded on its run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from overnight.config import CampaignConfig
from overnight.holdout import HoldoutResult, measure_holdout
from overnight.memory.store import Memory


@task(name="holdout", task_run_name="holdout of {run_id}", cache_policy=NONE)
def holdout(config: CampaignConfig, memory: Memory, run_id: str) -> HoldoutResult | None:
    """Run metric.holdout on the champion run `run_id`; a holdout that fails is recorded and logged, never raised."""
    result = measure_holdout(config, memory, run_id)
    if result is not None:
        log = get_run_logger()
        if result.ok:
            log.info("holdout of %s: holdout_%s %.6g", run_id, config.metric.name, result.value)
        else:
            log.warning("holdout of %s: %s", run_id, result.status.splitlines()[0])
    return result
