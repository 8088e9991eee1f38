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


class Backend(ABC):
    name: str

    @abstractmethod
    def run(self, spec: TrialSpec) -> TrialResult:
        """Run one trial to its outcome. Blocks; safe to call from several threads at once."""

    def where(self, trial_id: str) -> str:
        """Where a trial runs, in words for `overnight status` and MLflow."""
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release what the backend holds (clusters, processes). Called once at the end of a campaign."""
