"""The stages of the research loop as plain functions: plan -> dispatch -> evaluate -> reflect.

`tasks/` wraps each of these as a Prefect task and `flows/` composes them; nothing here knows about Prefect, so the
same loop can be driven by anything. Every object is written to MLflow as it is made.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from overnight import progress
from overnight.backends import Backend
from overnight.config import CampaignConfig, resolve_planner
from overnight.evaluation import Decision, evaluate_wave, improvement
from overnight.memory import Memory
from overnight.planners import PlanContext, Planner, Reflection, WaveOutcome
from overnight.planners.base import wave_report
from overnight.pricing import Usage
from overnight.program import constants, read_files
from overnight.proposals import Proposal, ProposalError, apply_proposal, fingerprint, unified_diff
from overnight.results import Outcome, TrialResult, TrialSpec, tail

DEADLINE_MARGIN_S = 5.0  # planning, evaluation and bookkeeping around a wave's trials


class CampaignError(RuntimeError):
    """The campaign cannot go on (e.g. the baseline itself fails); the message says why."""


@dataclass(frozen=True)
class PlannedTrial:
    """A proposal turned into a trial: recorded in MLflow, ready to dispatch (or invalid, with the reason)."""

    trial_id: str
    run_id: str
    hypothesis: str
    files: dict[str, str] | None  # None when the proposal is invalid
    reason: str = ""
    seed: int | None = None  # None: the campaign's trial seed

    @property
    def valid(self) -> bool:
        return self.files is not None


@dataclass(frozen=True)
class CampaignSummary:
    campaign: str
    experiment_id: str
    agent_run_id: str
    metric: str
    goal: str
    baseline: float
    champion: float
    improvement_pct: float
    champion_trial: str
    champion_hypothesis: str
    champion_diff: str
    outcomes: dict[str, int]
    trials: int
    waves: int
    trial_hours: float
    tracking_uri: str
    stopped_by: str
    baseline_copies: list[float] = field(
        default_factory=list
    )  # the metric of each baseline copy (seed, seed+1, ...)
    min_improvement: float = 0.0
    llm_usd: float = 0.0
    lineage: list[str] = field(default_factory=list)


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


def knob_values(config: CampaignConfig, files: dict[str, str]) -> dict[str, object]:
    """The values of every UPPER_CASE constant in the editable scripts: the trial's params in MLflow."""
    values: dict[str, object] = {}
    for path in config.editable:
        if path.endswith(".py") and path in files:
            values.update({name: c.value for name, c in constants(files[path]).items()})
    return values


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
        "budget_iterations": config.budget.iterations,
        "budget_trials": config.budget.trials or "-",
        "budget_trial_hours": config.budget.trial_hours or "-",
        "time_budget_s": config.trial.time_budget_s,
        "timeout_s": config.trial.timeout_s,
        "min_improvement": config.min_improvement,
        "metric": f"{config.metric.name} ({config.metric.goal})",
        "program": str(config.program),
        "prefect_flow_run_id": orchestrator_run or "-",
    }
    return memory.start_agent_run(name, params, description=f"Agent run of campaign {config.name}")


# --- plan ------------------------------------------------------------------------------------------------------------


def plan_baseline(config: CampaignConfig, memory: Memory, agent_run_id: str, wave_run_id: str) -> PlannedWave:
    """The first wave of every agent run measures the starting point: the last champion, or the program as shipped.

    It runs `baseline_repeats` copies at once with seeds seed, seed+1, ...: the copy with the campaign's seed is the
    champion the waves are compared with (same seed, same load of parallel trials); the spread of the copies is the
    seed noise, shown beside the margin.
    """
    previous = memory.champion()
    files = memory.champion_files() if previous else read_files(config.program, config.editable)
    hypothesis = "baseline: the champion as it stands" if previous else "baseline: the program as shipped"
    parent = previous.run_id if previous else ""
    trials = []
    for copy in range(config.baseline_repeats):
        seed = config.trial.seed + copy
        proposal = Proposal(
            hypothesis=hypothesis if copy == 0 else f"{hypothesis} (seed {seed})",
            rationale="measures the starting point of this agent run",
            source="baseline",
        )
        trial_id = f"{agent_run_id[:8]}-baseline" + (f"-s{seed}" if copy else "")
        trial = _record_trial(
            config, memory, agent_run_id, wave_run_id, 0, trial_id, proposal, files, files, parent
        )
        trials.append(PlannedTrial(trial.trial_id, trial.run_id, trial.hypothesis, trial.files, seed=seed))
    return PlannedWave(trials)


@dataclass(frozen=True)
class PlannedWave:
    """The trials of a wave as recorded, plus what planning cost and anything the planner wants people to know."""

    trials: list[PlannedTrial]
    note: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


def plan_context(
    config: CampaignConfig, memory: Memory, wave: int, n: int, budget_left: str = "", suggestions: tuple = ()
) -> PlanContext:
    """What the planner may read: the champion's files, a frozen snapshot of memory, the program's brief."""
    snapshot = memory.snapshot()
    files = memory.champion_files() if snapshot.champion else read_files(config.program, config.editable)
    brief_path = config.program / "program.md"
    brief = brief_path.read_text() if brief_path.is_file() else ""
    return PlanContext(wave, n, files, snapshot, brief, budget_left, tuple(suggestions))


def plan_wave(
    config: CampaignConfig,
    memory: Memory,
    planner: Planner,
    agent_run_id: str,
    wave_run_id: str,
    wave: int,
    n: int,
    budget_left: str = "",
) -> PlannedWave:
    """Ask the planner for n proposals, validate each against the champion, record every one in MLflow."""
    pending = memory.pending_suggestions()  # a person's hypotheses: this wave must include them
    context = plan_context(config, memory, wave, n, budget_left, tuple(pending.values()))
    plan = planner.propose(context)
    for key in pending:
        memory.take_suggestion(key, f"wave {wave}" + (f": {plan.note}" if plan.note else ""))
    champion, champion_files = context.champion, context.champion_files
    seen = {t.fingerprint for t in context.history if t.fingerprint}
    planned = []
    for index, proposal in enumerate(plan.proposals[:n]):
        trial_id = f"{agent_run_id[:8]}-w{wave}-t{index}"
        try:
            files = apply_proposal(champion_files, proposal, config.editable)
            if fingerprint(files) in seen:
                raise ProposalError("it repeats a trial already run (same files)")
        except ProposalError as error:
            run_id = memory.record_invalid(
                wave_run_id=wave_run_id,
                agent_run_id=agent_run_id,
                trial_id=trial_id,
                wave=wave,
                hypothesis=proposal.hypothesis,
                reason=str(error),
                proposal_json=proposal.model_dump_json(indent=2),
            )
            planned.append(PlannedTrial(trial_id, run_id, proposal.hypothesis, None, str(error)))
            continue
        seen.add(fingerprint(files))
        planned.append(
            _record_trial(
                config,
                memory,
                agent_run_id,
                wave_run_id,
                wave,
                trial_id,
                proposal,
                champion_files,
                files,
                champion.run_id,
            )
        )
    memory.record_plan(wave_run_id, plan.note, plan.usage, plan.cost_usd, planner.name)
    return PlannedWave(planned, plan.note, plan.usage, plan.cost_usd)


def plan_markdown(wave: int, planner: str, planned: PlannedWave, memory: Memory) -> str:
    """The wave's proposals for the Prefect UI: hypothesis, rationale and diff of each."""
    lines = [f"# Wave {wave}: {len(planned.trials)} proposals from the {planner} planner", ""]
    if planned.usage.calls:
        lines.append(
            f"Planner usage: {planned.usage.input_tokens} input, {planned.usage.output_tokens} output, "
            f"{planned.usage.cache_read_tokens} cache-read tokens; ${planned.cost_usd:.4f}."
        )
    if planned.note:
        lines.append(f"**Note:** {planned.note}")
    for trial in planned.trials:
        lines += ["", f"## {trial.trial_id}: {trial.hypothesis}"]
        if not trial.valid:
            lines.append(f"Invalid, not run: {trial.reason}")
            continue
        diff = memory.read_artifact(trial.run_id, "diff.patch")
        lines += [f"```diff\n{diff.rstrip()}\n```"]
    return "\n".join(lines) + "\n"


def _record_trial(
    config, memory, agent_run_id, wave_run_id, wave, trial_id, proposal: Proposal, before, files, parent
) -> PlannedTrial:
    run_id = memory.start_trial(
        wave_run_id=wave_run_id,
        agent_run_id=agent_run_id,
        trial_id=trial_id,
        wave=wave,
        hypothesis=proposal.hypothesis,
        rationale=proposal.rationale,
        expected=proposal.expected,
        source=proposal.source,
        params=knob_values(config, files),
        files=files,
        diff=unified_diff(before, files),
        fingerprint=fingerprint(files),
        parent_champion=parent,
    )
    return PlannedTrial(trial_id, run_id, proposal.hypothesis, files)


# --- dispatch --------------------------------------------------------------------------------------------------------


def run_trial(
    config: CampaignConfig,
    memory: Memory,
    backend: Backend,
    trial: PlannedTrial,
    deadline_ts: float | None = None,
) -> TrialResult:
    """Run one valid trial on the backend; past the campaign's deadline it is stopped like a timeout."""
    progress.emit("trial_started", trial_id=trial.trial_id, hypothesis=trial.hypothesis)
    memory.record_dispatch(trial.run_id, backend.where(trial.trial_id))
    timeout = config.trial.timeout_s
    if deadline_ts is not None:
        timeout = max(1.0, min(timeout, deadline_ts - time.time()))
    spec = TrialSpec(
        trial_id=trial.trial_id,
        files=trial.files,
        seed=config.trial.seed if trial.seed is None else trial.seed,
        command=config.command,
        time_budget_s=config.trial.time_budget_s,
        timeout_s=timeout,
        env=dict(config.trial.env),
    )
    try:
        result = backend.run(spec)
    except Exception as error:  # a backend bug must not lose the wave: it becomes this trial's infra_error
        result = TrialResult(
            trial.trial_id, Outcome.INFRA_ERROR, {}, 0.0, None, "", f"backend error: {error!r}"
        )
    if result.outcome is Outcome.TIMEOUT and timeout < config.trial.timeout_s:
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


# --- evaluate --------------------------------------------------------------------------------------------------------


def evaluate_baseline(config: CampaignConfig, memory: Memory, planned: list[PlannedTrial]) -> WaveOutcome:
    """The baseline becomes the champion the wave's trials are measured against; if it fails, the campaign stops."""
    previous = memory.champion()
    run_ids = [t.run_id for t in planned]
    records = {t.run_id: t for t in memory.trials() if t.run_id in run_ids}
    record, repeats = records[run_ids[0]], [records[r] for r in run_ids[1:]]
    if record.outcome is not Outcome.OK:
        raise CampaignError(
            f"the baseline trial failed ({record.outcome.value if record.outcome else 'unfinished'}: {record.reason}); "
            f"there is nothing to improve on. Run the program by hand to see why. Last lines of its log:\n"
            f"{tail(memory.read_artifact(record.run_id, 'log_tail.txt'), 15)}"
        )
    reason = "re-measured the champion under this run's conditions" if previous else "the program as shipped"
    memory.record_decision(record.run_id, "baseline", reason)
    decisions = [Decision(record.run_id, record.trial_id, "baseline", reason, None)]
    for repeat in repeats:
        delta = repeat.metric - record.metric if repeat.metric is not None else None
        why = "another seed of the baseline: measures seed noise"
        memory.record_decision(repeat.run_id, "baseline_repeat", why)
        decisions.append(Decision(repeat.run_id, repeat.trial_id, "baseline_repeat", why, delta))
    memory.set_champion(record.run_id, previous.run_id if previous else "")
    champion = memory.champion()
    trials = (champion, *repeats)
    return WaveOutcome(
        0, config.metric.name, config.metric.goal, champion, champion, trials, tuple(decisions)
    )


def evaluate(config: CampaignConfig, memory: Memory, wave: int, planned: list[PlannedTrial]) -> WaveOutcome:
    """Decide each trial of the wave against the champion; crown the best one that clears the margin."""
    champion = memory.champion()
    run_ids = {t.run_id for t in planned}
    trials = [t for t in memory.trials() if t.run_id in run_ids]
    decisions, best = evaluate_wave(trials, champion, config.metric.goal, config.min_improvement)
    for decision in decisions:
        memory.record_decision(decision.run_id, decision.decision, decision.reason)
    if best.run_id != champion.run_id:
        memory.set_champion(best.run_id, champion.run_id)
    after = memory.champion()
    trials = [t for t in memory.trials() if t.run_id in run_ids]
    return WaveOutcome(
        wave, config.metric.name, config.metric.goal, champion, after, tuple(trials), tuple(decisions)
    )


# --- reflect ---------------------------------------------------------------------------------------------------------


def reflect(
    config: CampaignConfig,
    memory: Memory,
    planner: Planner,
    wave_run_id: str,
    outcome: WaveOutcome,
    note: str = "",
) -> tuple[str, list[dict]]:
    """The planner's reflection and the wave's table, stored on the wave run in MLflow; the next plan reads it."""
    if outcome.wave == 0:  # the baseline teaches nothing a model needs to be paid to say
        result = Reflection(wave_report(outcome))
    else:
        context = plan_context(config, memory, outcome.wave, 0) if planner.name != "offline" else None
        result = planner.reflect(outcome, context)
    memory.record_reflection_usage(wave_run_id, result.usage, result.cost_usd)
    reflection = result.markdown + (f"\n**Planner note:** {note}\n" if note else "")
    table = wave_table(outcome)
    ok = [t.metric for t in outcome.trials if t.outcome is Outcome.OK and t.metric is not None]
    metrics = {
        "trials": len(outcome.trials),
        "trials_ok": len(ok),
        "champion_" + outcome.metric: outcome.champion_after.metric,
    }
    if ok:
        metrics["best_" + outcome.metric] = min(ok) if outcome.goal == "minimize" else max(ok)
    memory.finish_wave(wave_run_id, metrics, reflection, table)
    progress.emit("wave_finished", wave=outcome.wave, champion=outcome.champion_after.metric)
    return reflection, table


def wave_table(outcome: WaveOutcome) -> list[dict]:
    decisions = {d.run_id: d for d in outcome.decisions}
    rows = []
    for trial in outcome.trials:
        decision = decisions.get(trial.run_id)
        rows.append(
            {
                "trial": trial.trial_id,
                "change": trial.hypothesis,
                "outcome": trial.outcome.value if trial.outcome else "running",
                outcome.metric: None if trial.metric is None else round(trial.metric, 6),
                "vs champion": None if not decision or decision.delta is None else round(decision.delta, 6),
                "decision": decision.decision if decision else "",
                "mlflow run": trial.run_id,
            }
        )
    return rows


# --- budget and summary ----------------------------------------------------------------------------------------------


def trials_left(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    waves_done: int,
    deadline_ts: float | None = None,
) -> tuple[int, str]:
    """How many trials the next wave may have, and which budget ended the campaign when none."""
    if waves_done >= config.budget.iterations:
        return 0, f"iterations ({config.budget.iterations} waves)"
    mine = [t for t in memory.trials() if t.agent_run_id == agent_run_id]
    if deadline_ts is not None:
        # A wave lasts about as long as its slowest trial; with no trial seen yet, assume the hard timeout.
        wave_s = max((t.duration_s for t in mine), default=config.trial.timeout_s) + DEADLINE_MARGIN_S
        if time.time() + wave_s > deadline_ts:
            at = datetime.fromtimestamp(deadline_ts).strftime("%H:%M:%S")
            return 0, f"deadline ({at}; a wave takes about {wave_s:.0f} s)"
    if config.budget.trials is not None and len(mine) >= config.budget.trials:
        return 0, f"trials ({config.budget.trials})"
    hours = sum(t.duration_s for t in mine) / 3600
    if config.budget.trial_hours is not None and hours >= config.budget.trial_hours:
        return 0, f"trial hours ({config.budget.trial_hours})"
    if config.budget.max_usd is not None:
        spent = memory.spend_usd(agent_run_id)
        per_wave = spent / waves_done if waves_done else 0.0  # what a wave has cost so far, on average
        if spent + per_wave > config.budget.max_usd:
            return (
                0,
                f"dollars (${spent:.2f} spent of ${config.budget.max_usd:.2f}; a wave costs about ${per_wave:.2f})",
            )
    n = config.wave_size
    if config.budget.trials is not None:
        n = min(n, config.budget.trials - len(mine))
    return n, ""


def budget_left(config: CampaignConfig, memory: Memory, agent_run_id: str, waves_done: int) -> str:
    """The budget left after the wave being planned, in words for the planner."""
    parts = [f"{config.budget.iterations - waves_done - 1} more waves after this one"]
    if config.budget.trials is not None:
        used = sum(1 for t in memory.trials() if t.agent_run_id == agent_run_id)
        parts.append(f"{config.budget.trials - used} trials")
    if config.budget.max_usd is not None:
        parts.append(f"${config.budget.max_usd - memory.spend_usd(agent_run_id):.2f} of language-model spend")
    return "; ".join(parts)


def summarise(
    config: CampaignConfig, memory: Memory, agent_run_id: str, waves: int, stopped_by: str
) -> CampaignSummary:
    mine = [t for t in memory.trials() if t.agent_run_id == agent_run_id]
    baseline = next(t for t in mine if t.decision == "baseline")
    champion = memory.champion()
    gain = improvement(config.metric.goal, baseline.metric, champion.metric)
    champion_files = memory.champion_files()
    baseline_files = memory.trial_files(baseline.run_id)
    outcomes = Counter(t.outcome.value if t.outcome else "running" for t in mine)
    return CampaignSummary(
        campaign=config.name,
        experiment_id=memory.experiment_id,
        agent_run_id=agent_run_id,
        metric=config.metric.name,
        goal=config.metric.goal,
        baseline=baseline.metric,
        champion=champion.metric,
        improvement_pct=100.0 * gain / abs(baseline.metric) if baseline.metric else 0.0,
        champion_trial=champion.trial_id,
        champion_hypothesis=champion.hypothesis,
        champion_diff=unified_diff(baseline_files, champion_files),
        outcomes=dict(outcomes),
        trials=len(mine),
        waves=waves,
        trial_hours=sum(t.duration_s for t in mine) / 3600,
        tracking_uri=memory.tracking_uri,
        stopped_by=stopped_by,
        baseline_copies=[
            t.metric for t in mine if t.decision in ("baseline", "baseline_repeat") and t.metric is not None
        ],
        min_improvement=config.min_improvement,
        llm_usd=memory.spend_usd(agent_run_id),
        lineage=[f"{t.trial_id}: {t.hypothesis}" for t in memory.lineage()],
    )


def finish_agent_run(memory: Memory, summary: CampaignSummary) -> None:
    metrics = {
        "llm_usd": summary.llm_usd,
        "baseline_" + summary.metric: summary.baseline,
        "champion_" + summary.metric: summary.champion,
        "improvement_pct": summary.improvement_pct,
        "trials": summary.trials,
        "waves": summary.waves,
        "trial_hours": summary.trial_hours,
    }
    metrics.update({f"trials_{outcome}": count for outcome, count in summary.outcomes.items()})
    text = (
        f"# Agent run {summary.agent_run_id}\n\n{summary.metric}: {summary.baseline:.6g} -> {summary.champion:.6g} "
        f"({summary.improvement_pct:+.2f}%), {summary.trials} trials in {summary.waves} waves; stopped by "
        f"{summary.stopped_by}.\n\nChampion {summary.champion_trial}: {summary.champion_hypothesis}\n\n"
        f"```diff\n{summary.champion_diff}```\n"
    )
    memory.finish_agent_run(summary.agent_run_id, metrics, text)
