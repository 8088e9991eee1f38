"""Backends run one trial to an outcome. `make_backend` picks one from the campaign config."""

from __future__ import annotations

from pathlib import Path

from overnight.backends.base import Backend
from overnight.config import CampaignConfig


def make_backend(config: CampaignConfig, work_root: Path) -> Backend:
    if config.backend.kind == "local":
        from overnight.backends.local import LocalBackend

        return LocalBackend(program=config.program, work_root=work_root, metric=config.metric.name)
    raise ValueError(f"backend.kind: unknown backend {config.backend.kind!r}")


__all__ = ["Backend", "make_backend"]
