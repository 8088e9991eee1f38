"""What is left of every budget of an agent run (waves, trials, trial-hours, dollars, the deadline), and the spend.

The planner reads it in words (`budget_left`, worded by overnight.planners.prompts.budget_text)."""

from __future__ import annotations

import time
from datetime import datetime

from overnight.config import CampaignConfig, deadline_after
from overnight.memory.records import TrialRecord
from overnight.memory.store import Memory
from overnight.planners import prompts

DEADLINE_MARGIN_S = 5.0  # planning, evaluation and bookkeeping around a wave's trials


def compute_usd(trials: list[TrialRecord]) -> float:
    """The compute cost estimate of these trials (hourly price x duration, where the backend knows the price)."""
    return sum(t.metrics.get("compute_usd", 0.0) for t in trials)


def spent_usd(memory: Memory, agent_run_id: str, trials: list[TrialRecord]) -> float:
    """Dollars spent so far: language-model calls and compute."""
    return memory.spend_usd(agent_run_id) + compute_usd(trials)


def trials_left(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    waves_done: int,
    deadline_ts: float | None = None,
    waves_ahead: int = 0,
) -> tuple[int, str]:
    """How many trials the next wave may have, and which budget ended the campaign when none. `waves_ahead`: waves
    whose trials run or wait for workers now (a pipelined campaign), which the next wave's trials will follow."""
    budget = config.budget
    if waves_done >= budget.waves:
        return 0, f"waves ({budget.waves})"
    mine = memory.trials(agent_run_id=agent_run_id)
    if deadline_ts is not None:
        # A wave lasts about as long as its slowest trial; with no trial seen yet, assume the hard timeout.
        wave_s = max((t.duration_s for t in mine), default=config.trial.timeout_s) + DEADLINE_MARGIN_S
        if time.time() + wave_s * (1 + waves_ahead) > deadline_ts:
            at = datetime.fromtimestamp(deadline_ts).strftime("%H:%M:%S")
            return 0, f"deadline ({at}; a wave takes about {wave_s:.0f} s)"
    if budget.trials is not None and len(mine) >= budget.trials:
        return 0, f"trials ({budget.trials})"
    hours = sum(t.duration_s for t in mine) / 3600
    if budget.trial_hours is not None and hours >= budget.trial_hours:
        return 0, f"trial hours ({budget.trial_hours})"
    if budget.max_usd is not None:
        spent = spent_usd(memory, agent_run_id, mine)
        per_wave = spent / waves_done if waves_done else 0.0  # what a wave has cost so far, on average
        if spent + per_wave > budget.max_usd:
            return (
                0,
                f"dollars (${spent:.2f} spent of ${budget.max_usd:.2f}; a wave costs about ${per_wave:.2f})",
            )
    n = config.wave_size
    if budget.trials is not None:
        n = min(n, budget.trials - len(mine))
    return n, ""


def budget_left(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    waves_done: int,
    deadline_ts: float | None = None,
) -> str:
    """Every budget left after the wave being planned (waves, trials, trial-hours, dollars, the time to the
    deadline) and the seconds each trial trains, in words for the planner. `agent_run_id` "" for an agent run not
    started yet (nothing spent)."""
    budget = config.budget
    mine = memory.trials(agent_run_id=agent_run_id) if agent_run_id else []
    hours = sum(t.duration_s for t in mine) / 3600
    spent = spent_usd(memory, agent_run_id, mine) if agent_run_id and budget.max_usd is not None else 0.0
    screen, confirm = config.stage("screen"), config.stage("confirm")
    return prompts.budget_text(
        waves=budget.waves - waves_done - 1,
        trials=None if budget.trials is None else budget.trials - len(mine),
        trial_hours=None if budget.trial_hours is None else budget.trial_hours - hours,
        usd=None if budget.max_usd is None else budget.max_usd - spent,
        deadline=None if deadline_ts is None else datetime.fromtimestamp(deadline_ts),
        now=datetime.now(),
        screen_s=screen.budget_s,
        confirm_s=confirm.budget_s,
        timeout_s=max(screen.timeout_s, confirm.timeout_s),
    )


def next_wave(config: CampaignConfig, memory: Memory) -> tuple[str, int, str]:
    """Where the campaign would plan its next wave, for `overnight plan`: the agent run ("" for a night not started
    yet), the wave's number, and the budget left it would tell the planner (`budget_left`, as the campaign flow
    calls it). An unfinished agent run goes on from its last wave; otherwise a new night plans its first wave."""
    unfinished = memory.unfinished_agent_run()
    deadline = config.budget.deadline
    if unfinished is None:
        deadline_ts = deadline_after(datetime.now(), deadline).timestamp() if deadline else None
        return "", 1, budget_left(config, memory, "", 0, deadline_ts)
    waves_done = max((t.wave for t in memory.trials(agent_run_id=unfinished.run_id)), default=0)
    started = datetime.fromtimestamp(unfinished.started_ms / 1000)
    deadline_ts = deadline_after(started, deadline).timestamp() if deadline else None
    left = budget_left(config, memory, unfinished.run_id, waves_done, deadline_ts)
    return unfinished.run_id, waves_done + 1, left
