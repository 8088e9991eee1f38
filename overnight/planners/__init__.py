"""Planners propose a wave of trials from the campaign's memory and reflect on a finished wave."""

from __future__ import annotations

from overnight.config import CampaignConfig
from overnight.planners.base import PlanContext, Planner, WaveOutcome


def make_planner(config: CampaignConfig) -> Planner:
    if config.planner.kind == "offline":
        from overnight.planners.offline import OfflinePlanner

        return OfflinePlanner(config)
    raise ValueError(f"planner.kind: unknown planner {config.planner.kind!r}")


__all__ = ["PlanContext", "Planner", "WaveOutcome", "make_planner"]
