"""Dispatch: one task run per trial. Only infrastructure errors are retried; a crashed experiment is a result."""

from __future__ import annotations

from dataclasses import replace

from prefect import task
from prefect.cache_policies import NONE
from prefect.runtime import task_run

from overnight.backends import Backend
from overnight.config import CampaignConfig
from overnight.memory.store import Memory
from overnight.pipeline import Slot
from overnight.trial import Outcome, TrialResult
from overnight.wave import dispatch as core
from overnight.wave.scope import PlannedTrial

INFRA_RETRIES = 2


class InfraError(RuntimeError):
    """The backend could not run the trial; Prefect retries it with backoff."""


def _only_infra_errors(task, task_run, state) -> bool:
    try:
        state.result()
    except InfraError:
        return True
    except Exception:
        return False
    return False


@task(
    name="run-trial",
    task_run_name="trial {trial.trial_id}",
    cache_policy=NONE,
    retries=INFRA_RETRIES,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=_only_infra_errors,
)
def run_trial(
    config: CampaignConfig,
    memory: Memory,
    backend: Backend,
    trial: PlannedTrial,
    deadline_ts: float | None = None,
    slot: Slot | None = None,
) -> TrialResult:
    """Run one trial on the backend and record its outcome in MLflow (a trial that already ended is not rerun).
    `slot`: the pipelined campaign's worker it holds, freed for the next trial once the process has ended."""
    finished = core.finished_result(memory, trial)
    if finished is not None:  # a resumed wave: it ended before the campaign process died
        return finished
    result = core.run_trial(config, memory, backend, trial, deadline_ts, slot.started if slot else None)
    if result.outcome is Outcome.INFRA_ERROR and task_run.run_count <= INFRA_RETRIES:
        raise InfraError(result.reason)  # retried on the worker it holds
    if task_run.run_count > 1:  # infrastructure errors came first: the record says how many attempts it took
        result = replace(result, placement={**result.placement, "attempts": str(task_run.run_count)})
    if slot is not None:
        slot.release()
        slot.let_others_start()
    core.record_result(memory, trial, result)
    return result
