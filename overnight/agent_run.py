"""An agent run (one execution of a campaign, one night): its start, its resumption after a dead process, which
process owns it, its summary, and its end. Also where a campaign keeps its state (memory, trial folders, reports)."""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from overnight.budget import compute_usd
from overnight.config import CampaignConfig, resolve_planner
from overnight.errors import ExpectedError
from overnight.memory.records import NIGHT, PREFIX, TrialRecord
from overnight.memory.store import Memory
from overnight.policy import DecisionPolicy, improvement, measurements, noise_floor, reference_runs
from overnight.proposals import unified_diff


class CampaignError(ExpectedError, RuntimeError):
    """The campaign cannot go on (e.g. the baseline itself fails); the message says why."""


def open_memory(config: CampaignConfig) -> Memory:
    return Memory(
        tracking_uri=config.resolved_tracking_uri(),
        campaign=config.name,
        goal=config.metric.goal,
        metric=config.metric.name,
        artifact_root=config.state_dir.resolve() / "artifacts",
    )


def report_dir(config: CampaignConfig, agent_run_id: str) -> Path:
    return config.state_dir.resolve() / "reports" / config.name / agent_run_id[:8]


def work_root(config: CampaignConfig) -> Path:
    return config.state_dir.resolve() / "work" / config.name


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- start and resume ------------------------------------------------------------------------------------------------


def start_agent_run(config: CampaignConfig, memory: Memory, name: str, orchestrator_run: str = "") -> str:
    """The top-level MLflow run of one execution of the campaign, with its setup as params."""
    planner, why = resolve_planner(config)
    params = {
        "planner": planner,
        "planner_reason": why,
        "model": config.planner.model if planner == "claude" else "-",  # the offline planner uses no model
        "budget_max_usd": config.budget.max_usd or "-",
        "backend": config.backend.kind,
        "wave_size": config.wave_size,
        "budget_waves": config.budget.waves,
        "budget_trials": config.budget.trials or "-",
        "budget_trial_hours": config.budget.trial_hours or "-",
        "time_budget_s": config.trial.time_budget_s,
        "timeout_s": config.trial.timeout_s,
        "min_improvement": config.min_improvement,
        "keep_rule": DecisionPolicy.from_config(config).rule.name,
        "baseline_repeats": config.baseline_repeats,
        "confirm_runs": config.decision.confirm_runs,
        "metric": f"{config.metric.name} ({config.metric.goal})",
        "program": str(config.program),
        "prefect_flow_run_id": orchestrator_run or "-",
    }
    return memory.start_agent_run(
        name, params, description=f"Agent run of campaign {config.name}", owner=this_process()
    )


@dataclass(frozen=True)
class Resumption:
    """An agent run whose process died, picked up where it stopped."""

    agent_run_id: str
    waves_done: int  # waves after the baseline that finished
    baseline_done: bool
    previous_owner: str
    orchestrator_run: str  # the dead process's Prefect flow run id ("" if unknown)


def resumable_agent_run(memory: Memory) -> Resumption | None:
    """The campaign's agent run left running by a process that died (kill -9, a reboot), or None.

    Raises CampaignError when that run's process is still alive, here or on another host: two processes must never
    drive one agent run."""
    unfinished = memory.unfinished_agent_run()
    if unfinished is None:
        return None
    host, _, pid = unfinished.owner.rpartition(":")
    if host != socket.gethostname():
        raise CampaignError(
            f"agent run {unfinished.run_id} of this campaign is marked running by {unfinished.owner or 'an unknown process'}"
            " on another machine; run the campaign there to resume it, or mark that MLflow run finished to start anew"
        )
    if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
        raise CampaignError(
            f"the campaign is already running (agent run {unfinished.run_id}, process {pid}); "
            "`overnight status` shows what it does"
        )
    waves_done = 0
    while True:
        wave = memory.wave_run(unfinished.run_id, waves_done + 1)
        if wave is None or wave[1] != "FINISHED":
            break
        waves_done += 1
    baseline = memory.wave_run(unfinished.run_id, 0)
    return Resumption(
        unfinished.run_id,
        waves_done,
        baseline is not None and baseline[1] == "FINISHED",
        unfinished.owner,
        unfinished.flow_run,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# --- summary and end -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignSummary:
    campaign: str
    experiment_id: str
    agent_run_id: str
    metric: str
    goal: str
    baseline: float  # the mean of the baseline's copies at the screening budget
    champion: float  # the mean of the champion's fresh runs there (never the runs that crowned it)
    improvement_pct: float  # `improvement` as a share of the baseline
    champion_trial: str
    champion_hypothesis: str
    champion_diff: str
    outcomes: dict[str, int]
    trials: int
    waves: int
    trial_hours: float
    tracking_uri: str
    stopped_by: str
    baseline_copies: list[float] = field(default_factory=list)  # the metric of each copy (seed, seed+1, ...)
    min_improvement: float = 0.0
    compute_usd: float = 0.0
    noise_floor: str = ""  # e.g. "σ = 0.012 (n = 7 runs, 4 dof)"
    rule: str = ""  # the keep rule, e.g. "t_test(alpha=0.05, margin=0)"
    llm_usd: float = 0.0
    lineage: list[str] = field(default_factory=list)
    improvement: float = (
        0.0  # the night's improvement in metric units, positive = better (`night_improvement`)
    )
    interval: tuple[float, float] | None = None  # its 95% interval; None when nothing was crowned or measured
    improvement_runs: str = ""  # what it compares, e.g. "3 fresh champion runs vs 3 baseline copies"
    error_control: str = ""  # the procedure behind the crowns and its guarantee (overnight/fdr.py)

    @property
    def night(self) -> str:
        """The night's improvement in one line, as the CLI, report.md, the MLflow agent run and `status` show it."""
        return night_text(
            self.baseline, self.champion, self.improvement, self.interval, self.improvement_runs
        )


def night_text(
    baseline: float, champion: float, gain: float, interval: tuple[float, float] | None, runs: str = ""
) -> str:
    """`2.95 -> 2.90: better by 0.05 (1.7%; 95% interval 0.03 to 0.07), 3 fresh champion runs vs 3 baseline copies`."""
    scale = 100 / abs(baseline) if baseline else 0.0
    text = f"{baseline:.6g} -> {champion:.6g}: better by {gain:.4g} ({gain * scale:+.2f}%"
    if interval is None:
        text += "; no change crowned)" if gain == 0 else "; no interval: no seed noise measured)"
    else:
        low, high = interval
        text += f"; 95% interval {low:.4g} to {high:.4g}, {low * scale:+.2f}% to {high * scale:+.2f}%)"
    return f"{text}, {runs}" if runs else text


def summarise(
    config: CampaignConfig, memory: Memory, agent_run_id: str, waves: int, stopped_by: str
) -> CampaignSummary:
    """The agent run in numbers. The night's improvement is the champion's fresh runs against the baseline's copies
    at the screening budget, with its 95% interval (`DecisionPolicy.night_improvement`): defined here once."""
    mine = memory.trials(agent_run_id=agent_run_id)
    baseline = next(t for t in mine if t.decision == "baseline")
    champion = memory.champion()
    policy = DecisionPolicy.from_config(config)
    budget = policy.screen_budget_s

    def mean_of(runs: list[float], record: TrialRecord) -> float:
        return sum(runs) / len(runs) if runs else record.metric

    before = measurements([t for t in mine if t.role == "baseline"], baseline.fingerprint, budget, None)
    baseline_value = mean_of(before, baseline)
    if champion.fingerprint == baseline.fingerprint:  # nothing crowned tonight: no change, no interval
        after, champion_value, night, gain = before, baseline_value, None, 0.0
    else:
        after = reference_runs(mine, champion, budget, None)
        champion_value = mean_of(after, champion)
        night = policy.night_improvement(mine, baseline, champion)
        gain = night.estimate if night else improvement(config.metric.goal, baseline_value, champion_value)
    floor = noise_floor(mine, budget)
    return CampaignSummary(
        campaign=config.name,
        experiment_id=memory.experiment_id,
        agent_run_id=agent_run_id,
        metric=config.metric.name,
        goal=config.metric.goal,
        baseline=baseline_value,
        champion=champion_value,
        improvement_pct=100.0 * gain / abs(baseline_value) if baseline_value else 0.0,
        improvement=gain,
        interval=(night.low, night.high) if night else None,
        improvement_runs=f"{len(after)} fresh champion runs vs {len(before)} baseline copies"
        if night
        else "",
        error_control=policy.error_control.name,
        champion_trial=champion.trial_id,
        champion_hypothesis=champion.hypothesis,
        champion_diff=unified_diff(memory.trial_files(baseline.run_id), memory.champion_files()),
        outcomes=dict(Counter(t.outcome.value if t.outcome else "running" for t in mine)),
        trials=len(mine),
        waves=waves,
        trial_hours=sum(t.duration_s for t in mine) / 3600,
        tracking_uri=memory.tracking_uri,
        stopped_by=stopped_by,
        baseline_copies=[
            t.metric for t in mine if t.decision in ("baseline", "baseline_repeat") and t.metric is not None
        ],
        min_improvement=config.min_improvement,
        noise_floor=str(floor) if floor else "not measured",
        rule=policy.rule.name,
        compute_usd=compute_usd(mine),
        llm_usd=memory.spend_usd(agent_run_id),
        lineage=[f"{t.trial_id}: {t.hypothesis}" for t in memory.lineage()],
    )


def finish_agent_run(memory: Memory, summary: CampaignSummary) -> None:
    """The agent run's summary metrics and description in MLflow; the run ends FINISHED."""
    metrics = {
        "llm_usd": summary.llm_usd,
        "compute_usd": summary.compute_usd,
        "baseline_" + summary.metric: summary.baseline,
        "champion_" + summary.metric: summary.champion,
        "improvement_pct": summary.improvement_pct,
        "improvement": summary.improvement,
        "trials": summary.trials,
        "waves": summary.waves,
        "trial_hours": summary.trial_hours,
    }
    if summary.interval is not None:
        metrics["improvement_low"], metrics["improvement_high"] = summary.interval
    metrics.update({f"trials_{outcome}": count for outcome, count in summary.outcomes.items()})
    text = (
        f"# Agent run {summary.agent_run_id}\n\n{summary.metric}: {summary.night}\n\n"
        f"{summary.trials} trials in {summary.waves} waves; stopped by "
        f"{summary.stopped_by}.\n\nChampion {summary.champion_trial}: {summary.champion_hypothesis}\n\n"
        f"```diff\n{summary.champion_diff}```\n\nCrowns: {summary.error_control}\n"
    )
    memory.set_tags(
        summary.agent_run_id, {NIGHT: summary.night, PREFIX + "error_control": summary.error_control}
    )
    memory.finish_agent_run(summary.agent_run_id, metrics, text)
