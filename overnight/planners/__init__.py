"""Planners propose a wave of trials from the campaign's memory and reflect on a finished wave."""

from __future__ import annotations

from overnight.config import CampaignConfig, resolve_planner
from overnight.planners.base import CrashedTrial, FinishedWave, Plan, PlanContext, Planner, Reflection


def make_planner(config: CampaignConfig) -> Planner:
    """The planner the config asks for (`auto`: Claude when ANTHROPIC_API_KEY is set, else offline)."""
    kind, _ = resolve_planner(config)
    if kind == "claude":
        from overnight.planners.claude import ClaudePlanner  # imports anthropic only when it is used

        return ClaudePlanner(config)
    from overnight.planners.offline import OfflinePlanner

    return OfflinePlanner(config)


__all__ = ["CrashedTrial", "Plan", "PlanContext", "Planner", "Reflection", "FinishedWave", "make_planner"]
