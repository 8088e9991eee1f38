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


class Running:
    """How many trials this process has running at once, and for each the most that ran at once while it did.

    Thread-safe: every trial thread of a wave (and of an overlapping wave) starts and ends its count here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peaks: dict[int, int] = {}  # a running trial -> the most running at once since it started
        self._next = 0

    def start(self) -> int:
        with self._lock:
            token, self._next = self._next, self._next + 1
            self._peaks[token] = 0
            now = len(self._peaks)
            for key, peak in self._peaks.items():
                self._peaks[key] = max(peak, now)
            return token

    def end(self, token: int) -> int:
        """The most trials that ran at once while this one ran (itself included)."""
        with self._lock:
            return self._peaks.pop(token)


_RUNNING = Running()  # this process's trials, of every campaign it runs


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
    token = _RUNNING.start()
    try:
        result = backend.run(spec)
    except Exception as error:  # a backend bug must not lose the wave: it becomes this trial's infra_error
        result = TrialResult(
            trial.trial_id, Outcome.INFRA_ERROR, {}, 0.0, None, "", f"backend error: {error!r}"
        )
    finally:
        concurrency = _RUNNING.end(token)
    # The engine's count wins over a line the script printed of that name, as duration_s does in MLflow.
    result = replace(result, metrics={**result.metrics, "concurrency": float(concurrency)})
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
