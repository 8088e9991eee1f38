"""The backend contract (run one trial, return its result) and what every backend does the same way: the trial's
folder, its environment, and turning what it saw of a run into a result through the one judge."""

from __future__ import annotations

import shutil
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from overnight.program import copy_program
from overnight.trial import Outcome, TrialFacts, TrialResult, TrialSpec, judge, tail

# Variables a trial may inherit from the orchestrator. Everything else (API keys, cloud credentials) stays out.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "CUDA_VISIBLE_DEVICES",
    "VIRTUAL_ENV",
)


def prepare_trial_folder(program: Path, workdir: Path, files: dict[str, str]) -> str:
    """Make `workdir` a clean copy of the program with the trial's files; a retried or resumed trial's old folder
    is removed first. Returns "" when it is ready, else why not (the reason of an infra error)."""
    try:
        if workdir.exists():
            shutil.rmtree(workdir)
        copy_program(program, workdir, files)
    except OSError as error:
        return f"could not prepare the trial folder {workdir}: {error}"
    return ""


def trial_env(spec: TrialSpec, **engine: str) -> dict[str, str]:
    """The variables a trial runs with on every backend: its own, then the engine's (`engine`, the OVERNIGHT_* ones).

    Nothing of the orchestrator's environment is in it; a backend that must pass some on (PATH) adds them itself.
    """
    env = dict(spec.env)
    env.update(engine)
    env.update(
        OVERNIGHT_TIME_BUDGET=str(spec.time_budget_s),
        OVERNIGHT_SEED=str(spec.seed),
        OVERNIGHT_TRIAL_ID=spec.trial_id,
        PYTHONUNBUFFERED="1",
    )
    return env


def trial_result(
    spec: TrialSpec,
    metric: str,
    facts: TrialFacts,
    started: float,
    placement: dict[str, str],
    cost_usd: float | None = None,
) -> TrialResult:
    """The result of a run the backend saw to its end: the judge's outcome and reason (under the trial's time budget),
    with the run's timing: `duration_s` since `started` (the folder, a cluster's launch), `wall_s` the script's."""
    outcome, reason = judge(metric, facts, spec.budget)
    return TrialResult(
        trial_id=spec.trial_id,
        outcome=outcome,
        metrics=facts.metrics,
        duration_s=time.monotonic() - started,
        exit_code=facts.exit_code,
        log_tail=tail(facts.log),
        reason=reason,
        placement=dict(placement),
        cost_usd=cost_usd,
        wall_s=facts.wall_s,
    )


def infra_error(
    spec: TrialSpec, started: float, reason: str, placement: dict[str, str] | None = None, log_tail: str = ""
) -> TrialResult:
    """The result of a trial the backend could not run (retryable; never the experiment's fault)."""
    return TrialResult(
        trial_id=spec.trial_id,
        outcome=Outcome.INFRA_ERROR,
        metrics={},
        duration_s=time.monotonic() - started,
        exit_code=None,
        log_tail=log_tail,
        reason=reason,
        placement=dict(placement or {}),
    )


class NoSuchHardware(RuntimeError):
    """A trial was pinned to a hardware type that no worker of the pool has."""


@dataclass
class Worker:
    """A place that runs one trial at a time: a cluster of the SkyPilot pool, a simulated GPU of the local one."""

    name: str
    hardware: str = ""  # its accelerator type, "" until known (a cluster not launched yet)
    up: bool = False  # ready for a trial (a cluster launched and set up)
    busy: bool = False
    job_id: int | None = None
    ever_launched: bool = False
    accelerator: str = ""
    hourly_usd: float | None = None


class WorkerPool:
    """Hands each trial an idle worker, ready ones first, of the requested hardware type when one is asked for."""

    def __init__(self, workers: list[Worker]):
        self.workers = workers
        self._free = threading.Condition()

    def acquire(self, hardware: str | None = None) -> Worker:
        with self._free:
            while True:
                if hardware and not any(w.hardware == hardware for w in self.workers):
                    known = sorted({w.hardware for w in self.workers if w.hardware}) or ["none known yet"]
                    raise NoSuchHardware(f"no worker runs on {hardware} (the pool has: {', '.join(known)})")
                idle = [w for w in self.workers if not w.busy and (not hardware or w.hardware == hardware)]
                if idle:
                    worker = next((w for w in idle if w.up), idle[0])
                    worker.busy = True
                    return worker
                self._free.wait()

    def release(self, worker: Worker, healthy: bool = True) -> None:
        with self._free:
            worker.busy, worker.job_id = False, None
            if not healthy:  # a cluster that died under a trial is launched again for its next one
                worker.up = False
            self._free.notify_all()

    def running_jobs(self) -> list[tuple[str, int]]:
        with self._free:
            return [(w.name, w.job_id) for w in self.workers if w.busy and w.job_id is not None]


class TrialInterrupted(KeyboardInterrupt):
    """The campaign was interrupted while this trial ran; it was stopped, and is not a result."""


class Backend(ABC):
    name: str

    @abstractmethod
    def run(self, spec: TrialSpec) -> TrialResult:
        """Run one trial to its outcome. Blocks; safe to call from several threads at once."""

    def where(self, trial_id: str) -> str:
        """Where a trial runs, in words for `overnight status` and MLflow."""
        return self.name

    def interrupt(self) -> int:
        """Ctrl-C: stop every running trial at once (their runs raise TrialInterrupted); returns how many."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release what the backend holds (clusters, processes). Called once at the end of a campaign."""


# The backends of campaigns running in this process, so that Ctrl-C can stop their trials from a signal handler.
_open_backends: list[Backend] = []


def register(backend: Backend) -> Backend:
    _open_backends.append(backend)
    return backend


def unregister(backend: Backend) -> None:
    if backend in _open_backends:
        _open_backends.remove(backend)


def interrupt_all() -> int:
    """Stop the running trials of every open backend; returns how many were running."""
    return sum(backend.interrupt() for backend in list(_open_backends))
