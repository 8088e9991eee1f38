"""Backends run one trial to an outcome. `make_backend` picks one from the campaign config."""

from __future__ import annotations

from pathlib import Path

from overnight.backends.base import Backend, interrupt_all, register, unregister
from overnight.backends.box import Box, make_box
from overnight.config import CampaignConfig, ConfigError


def make_backend(config: CampaignConfig, work_root: Path) -> Backend:
    """The campaign's backend, registered so that Ctrl-C can stop its trials. Bad settings raise ConfigError."""
    if config.backend.kind == "local":
        from overnight.backends.local import LocalBackend

        backend: Backend = LocalBackend(
            program=config.program,
            work_root=work_root,
            metric=config.metric.name,
            simulate_hardware=config.backend.simulate_hardware,
            box=trial_box(config),
        )
    elif config.backend.kind == "skypilot":
        from overnight.backends.skypilot import SkyPilotBackend

        _no_box_on_clusters(config)
        backend = SkyPilotBackend(config, work_root)
    else:
        raise ValueError(f"backend.kind: unknown backend {config.backend.kind!r}")
    return register(backend)


def trial_box(config: CampaignConfig) -> Box:
    """The box local trials run in (overnight/backends/box.py); ConfigError when the config asks for one that
    cannot be had here."""
    return make_box(config.trial.sandbox, config.trial.network, config.trial.writable_paths)


def _no_box_on_clusters(config: CampaignConfig) -> None:
    if not config.trial.network or config.trial.sandbox == "bubblewrap":
        raise ConfigError(
            "trial.network: false and trial.sandbox: bubblewrap box local trials; a SkyPilot trial runs alone on "
            "its cluster (set backend.kind: local, or remove them)"
        )


def check_backend(config: CampaignConfig) -> None:
    """Fail before anything starts when the backend cannot work: not installed, a box that cannot be had, or bad
    resources (ConfigError)."""
    if config.backend.kind == "local":
        trial_box(config)
    if config.backend.kind == "skypilot":
        from overnight.backends.skypilot import check_resources, stage_resources

        _no_box_on_clusters(config)
        check_resources(stage_resources(config))


def close_backend(backend: Backend) -> None:
    """Release what the backend holds (clusters, processes); once, at the end of the campaign."""
    try:
        backend.close()
    finally:
        unregister(backend)


__all__ = ["Backend", "check_backend", "close_backend", "interrupt_all", "make_backend"]
