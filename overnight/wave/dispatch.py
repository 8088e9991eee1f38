"""Dispatch: one planned trial run on the backend, and its result recorded in MLflow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from overnight import progress
from overnight.backends import Backend
from overnight.config import CampaignConfig
from overnight.memory.store import Memory
from overnight.trial import Outcome, TrialResult, TrialSpec
from overnight.wave.scope import PlannedTrial


def trial_spec(config: CampaignConfig, trial: PlannedTrial, deadline_ts: float | None = None) -> TrialSpec:
    """What the backend needs to run one trial, under its stage's settings; past the campaign's deadline it is
    stopped like a timeout."""
    stage = config.stage(trial.stage)
    timeout = stage.timeout_s
    if deadline_ts is not None:
        timeout = max(1.0, min(timeout, deadline_ts - time.time()))
    return TrialSpec(
        trial_id=trial.trial_id,
        files=trial.files,
        seed=config.trial.seed if trial.seed is None else trial.seed,
        command=config.command,
        time_budget_s=stage.budget_s,
        timeout_s=timeout,
        env=dict(config.trial.env),
        pinned=trial.pinned,
        stage=trial.stage,
        max_memory_mb=config.trial.max_memory_mb,
        max_disk_mb=config.trial.max_disk_mb,
        budget_tolerance=config.trial.budget_tolerance,
        overhead_allowance_s=config.trial.overhead_allowance_s,
    )


def run_trial(
    config: CampaignConfig,
    memory: Memory,
    backend: Backend,
    trial: PlannedTrial,
    deadline_ts: float | None = None,
    launching: Callable[[], None] | None = None,
) -> TrialResult:
    """Run one valid trial on the backend. `launching` is called as the backend is handed the trial."""
    progress.emit("trial_started", trial_id=trial.trial_id, hypothesis=trial.hypothesis)
    # Where it runs goes to MLflow beside the run, not before it: at 64 trials starting at once, each waiting for
    # the store in turn would start the last one a second late.
    threading.Thread(
        target=memory.record_dispatch,
        args=(trial.run_id, backend.where(trial.trial_id)),
        name=f"where-{trial.trial_id}",
        daemon=True,
    ).start()
    spec = trial_spec(config, trial, deadline_ts)
    if launching:
        launching()
    try:
        result = backend.run(spec)
    except Exception as error:  # a backend bug must not lose the wave: it becomes this trial's infra_error
        result = TrialResult(
            trial.trial_id, Outcome.INFRA_ERROR, {}, 0.0, None, "", f"backend error: {error!r}"
        )
    if result.outcome is Outcome.TIMEOUT and spec.timeout_s < config.stage(trial.stage).timeout_s:
        result = replace(result, reason="stopped at the campaign's deadline")
    return result


def record_result(memory: Memory, trial: PlannedTrial, result: TrialResult) -> None:
    memory.finish_trial(trial.run_id, result)
    progress.emit(
        "trial_finished",
        trial_id=trial.trial_id,
        outcome=result.outcome.value,
        metric=result.metrics.get(memory.metric),
        reason=result.reason,
    )


def finished_result(memory: Memory, trial: PlannedTrial) -> TrialResult | None:
    """The recorded result of a trial that already ended (a resumed wave never runs a trial twice), else None."""
    record = memory.find_trial_by_run(trial.run_id)
    if record is None or record.status != "finished" or record.outcome is None:
        return None
    return TrialResult(
        record.trial_id, record.outcome, dict(record.metrics), record.duration_s, None, "", record.reason
    )
