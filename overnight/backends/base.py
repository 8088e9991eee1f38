"""The backend contract: run one trial, return its result. Exceptions never escape as outcomes elsewhere."""

from __future__ import annotations

from abc import ABC, abstractmethod

from overnight.results import TrialResult, TrialSpec

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
