"""The stages of the research loop as plain functions: plan -> dispatch -> evaluate -> reflect.

`tasks/` wraps each of these as a Prefect task and `flows/` composes them; nothing here knows about Prefect, so the
same loop can be driven by anything. Every object is written to MLflow as it is made.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from overnight import evaluation, progress, stats
from overnight.backends import Backend
from overnight.config import CampaignConfig, resolve_planner
from overnight.evaluation import Decision, improvement
from overnight.memory.records import TrialRecord
from overnight.memory.store import Memory
from overnight.planners import FinishedWave, PlanContext, Planner, Reflection
from overnight.planners.base import wave_report
from overnight.pricing import Usage
from overnight.program import constants, read_files
from overnight.proposals import Proposal, ProposalError, apply_proposal, fingerprint, unified_diff
from overnight.trial import Outcome, TrialResult, TrialSpec, tail

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
    role: str = (
        "candidate"  # baseline | candidate | confirmation | champion (a re-measurement of the champion)
    )
    stage: str = "screen"  # the stage whose settings it runs with: screen | confirm
    hardware: str | None = None  # pinned to this hardware type (confirmation pairs runs on one type)

    @property
    def valid(self) -> bool:
        return self.files is not None


def stage_settings(config: CampaignConfig, phase: str) -> tuple[float, float]:
    """(training budget, hard timeout) of a stage: its own settings, else the campaign's trial settings."""
    stage = config.decision.confirm if phase == "confirm" else config.decision.screen
    budget = stage.time_budget_s or config.trial.time_budget_s
    timeout = stage.timeout_s or max(
        config.trial.timeout_s, budget * config.trial.timeout_s / config.trial.time_budget_s
    )
    return budget, timeout


def budget_key(config: CampaignConfig, phase: str) -> float:
    """The budget as recorded on each run: metrics are compared only between runs with the same one."""
    return stage_settings(config, phase)[0]


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
    compute_usd: float = 0.0
    noise_floor: str = ""  # e.g. "σ = 0.012 (n = 7 runs, 4 dof)"
    rule: str = ""  # the keep rule, e.g. "t_test(alpha=0.05, margin=0)"
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
        "keep_rule": evaluation.rule_for(config).name,
        "baseline_repeats": config.baseline_repeats,
        "confirm_runs": config.decision.confirm_runs,
        "metric": f"{config.metric.name} ({config.metric.goal})",
        "program": str(config.program),
        "prefect_flow_run_id": orchestrator_run or "-",
    }
    return memory.start_agent_run(
        name, params, description=f"Agent run of campaign {config.name}", owner=this_process()
    )


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        trials.append(
            _record_trial(
                config,
                memory,
                agent_run_id,
                wave_run_id,
                0,
                trial_id,
                proposal,
                files,
                files,
                parent,
                role="baseline",
                seed=seed,
            )
        )
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
    """Ask the planner for n proposals, validate each against the champion, record every one in MLflow.

    A wave already planned by a process that died is rebuilt from its records instead: the planner is not asked
    again, so a resumed wave runs exactly the trials it had."""
    recorded = [t for t in memory.wave_trials(wave_run_id) if t.role in ("candidate", "champion")]
    if recorded:
        return PlannedWave(
            [planned_from_record(config, memory, t) for t in recorded],
            note="resumed: the wave as it was planned before the campaign process died",
        )
    pending = memory.pending_suggestions()  # a person's hypotheses: this wave must include them
    context = plan_context(config, memory, wave, n, budget_left, tuple(pending.values()))
    plan = planner.propose(context)
    for key in pending:
        memory.take_suggestion(key, f"wave {wave}" + (f": {plan.note}" if plan.note else ""))
    champion, champion_files = context.champion, context.champion_files
    history = agent_run_trials(memory, agent_run_id)
    # A first night's wave planned while its baseline still runs (`pipeline: true`) changes the program as shipped:
    # the baseline's run is its parent, crowned once it has been measured.
    parent = champion.run_id if champion else next((t.run_id for t in history if t.role == "baseline"), "")
    seen = {t.fingerprint for t in context.history if t.fingerprint}
    planned = []
    for index, proposal in enumerate(plan.proposals[:n]):
        trial_id = f"{agent_run_id[:8]}-w{wave}-t{index}"
        try:
            files = apply_proposal(champion_files, proposal, config.editable)
            if fingerprint(files) in seen and not proposal.factors:  # grid cells may repeat (the low corner)
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
                parent,
            )
        )
    # A champion crowned under another budget (a confirmation stage of its own) is measured at this one first,
    # unless such runs are under way (a pipelined wave planned while the baseline runs).
    history = agent_run_trials(memory, agent_run_id)
    screen_key = budget_key(config, "screen")
    if champion and not _measured_or_under_way(history, champion.fingerprint, screen_key):
        planned += plan_champion_runs(
            config, memory, agent_run_id, wave_run_id, wave, "screen", None, config.baseline_repeats, history
        )
    memory.record_plan(wave_run_id, plan.note, plan.usage, plan.cost_usd, planner.name)
    return PlannedWave(planned, plan.note, plan.usage, plan.cost_usd)


def _measured_or_under_way(history: list[TrialRecord], fingerprint_: str, budget: str) -> bool:
    """Whether these files have an unbiased run under this budget, finished or still running."""
    running = any(
        t.status == "running" and t.unbiased and t.fingerprint == fingerprint_ and t.budget_s == budget
        for t in history
    )
    return running or bool(evaluation.measurements(history, fingerprint_, budget, None))


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
    config,
    memory,
    agent_run_id,
    wave_run_id,
    wave,
    trial_id,
    proposal: Proposal,
    before,
    files,
    parent,
    *,
    role: str = "candidate",
    stage: str = "screen",
    seed: int | None = None,
    hardware: str | None = None,
    measures: str = "",
) -> PlannedTrial:
    phase = stage
    seed = config.trial.seed if seed is None else seed
    existing = memory.find_trial(agent_run_id, trial_id)
    if existing is not None:  # a resumed agent run: the trial was recorded before the process died
        return planned_from_record(config, memory, existing)
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
        role=role,
        seed=seed,
        budget_s=stage_settings(config, phase)[0],
        measures=measures,
        pinned=hardware or "",
        factors=proposal.factors,
    )
    return PlannedTrial(
        trial_id,
        run_id,
        proposal.hypothesis,
        files,
        seed=seed,
        role=role,
        stage=phase,
        hardware=hardware,
    )


def planned_from_record(config: CampaignConfig, memory: Memory, record: TrialRecord) -> PlannedTrial:
    """A recorded trial as the wave dispatches it: how a resumed agent run picks up what it had planned."""
    if record.outcome is Outcome.INVALID and not record.budget_s:  # a proposal that never ran (no files)
        return PlannedTrial(record.trial_id, record.run_id, record.hypothesis, None, record.reason)
    confirm_only = budget_key(config, "confirm") != budget_key(config, "screen")
    phase = (
        "confirm"
        if record.role == "confirmation"
        or (confirm_only and record.role == "champion" and record.budget_s == budget_key(config, "confirm"))
        else "screen"
    )
    return PlannedTrial(
        record.trial_id,
        record.run_id,
        record.hypothesis,
        memory.trial_files(record.run_id),
        seed=record.seed,
        role=record.role,
        stage=phase,
        hardware=record.pinned or None,
    )


def finished_result(memory: Memory, trial: PlannedTrial) -> TrialResult | None:
    """The recorded result of a trial that already ended (a resumed wave never runs a trial twice), else None."""
    record = memory.find_trial_by_run(trial.run_id)
    if record is None or record.status != "finished" or record.outcome is None:
        return None
    return TrialResult(
        record.trial_id, record.outcome, dict(record.metrics), record.duration_s, None, "", record.reason
    )


def agent_run_trials(memory: Memory, agent_run_id: str) -> list[TrialRecord]:
    """This agent run's trials: the champion and the noise are measured anew each night, under its conditions."""
    return memory.trials(agent_run_id=agent_run_id)


def _fresh_seeds(config: CampaignConfig, history: list[TrialRecord], fingerprint_: str, n: int) -> list[int]:
    """n seeds not yet used by runs of these files, so that every repeat is a new draw of the noise."""
    used = {t.seed for t in history if t.fingerprint == fingerprint_}
    seeds, seed = [], config.trial.seed
    while len(seeds) < n:
        seed += 1
        if seed not in used:
            seeds.append(seed)
    return seeds


def plan_champion_runs(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    wave_run_id: str,
    wave: int,
    phase: str,
    hardware: str | None,
    needed: int,
    history: list[TrialRecord],
    label: str = "",
) -> list[PlannedTrial]:
    """Re-measure the champion with new seeds until it has `needed` unbiased runs under a condition."""
    champion = memory.champion()
    have = evaluation.measurements(history, champion.fingerprint, budget_key(config, phase), hardware)
    missing = needed - len(have)
    if missing <= 0:
        return []
    files = memory.champion_files()
    where = f" on {hardware}" if hardware else ""
    planned = []
    for number, seed in enumerate(_fresh_seeds(config, history, champion.fingerprint, missing)):
        proposal = Proposal(
            hypothesis=f"champion {champion.trial_id} re-measured (seed {seed}{where})",
            rationale="the champion's metric under this stage's condition, to compare with",
            source="engine",
        )
        trial_id = f"{agent_run_id[:8]}-w{wave}-champion{label}-{number}"
        planned.append(
            _record_trial(
                config,
                memory,
                agent_run_id,
                wave_run_id,
                wave,
                trial_id,
                proposal,
                files,
                files,
                champion.run_id,
                role="champion",
                stage=phase,
                seed=seed,
                hardware=hardware,
                measures=champion.run_id,
            )
        )
    return planned


def plan_confirmation(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    wave_run_id: str,
    wave: int,
    promising: list[TrialRecord],
) -> PlannedWave:
    """New-seed runs of the most promising trials, each on the hardware it was screened on, and enough runs of the
    champion on that hardware (and budget) to compare them with."""
    history = agent_run_trials(memory, agent_run_id)
    champion = memory.champion()
    champion_files = memory.champion_files()
    planned: list[PlannedTrial] = []
    topped_up: set[str] = set()
    runs = config.decision.confirm_runs
    for candidate in promising[: config.decision.confirm_top]:
        files = memory.trial_files(candidate.run_id)
        for number, seed in enumerate(_fresh_seeds(config, history, candidate.fingerprint, runs)):
            proposal = Proposal(
                hypothesis=f"{candidate.hypothesis} (confirmation, seed {seed})",
                rationale=f"confirms {candidate.trial_id} with a new seed on {candidate.hardware}",
                source="engine",
            )
            planned.append(
                _record_trial(
                    config,
                    memory,
                    agent_run_id,
                    wave_run_id,
                    wave,
                    f"{candidate.trial_id}-c{number}",
                    proposal,
                    champion_files,
                    files,
                    champion.run_id,
                    role="confirmation",
                    stage="confirm",
                    seed=seed,
                    hardware=candidate.hardware or None,
                    measures=candidate.run_id,
                )
            )
        if candidate.hardware not in topped_up:
            topped_up.add(candidate.hardware)
            label = f"-{candidate.hardware}" if candidate.hardware else ""
            added = plan_champion_runs(
                config,
                memory,
                agent_run_id,
                wave_run_id,
                wave,
                "confirm",
                candidate.hardware or None,
                runs,
                history,
                label,
            )
            planned += added
            # Seeds now taken by the champion, so the next hardware type's runs draw new ones.
            history = history + [replace(champion, seed=t.seed, outcome=None, role="champion") for t in added]
    return PlannedWave(planned)


# --- dispatch --------------------------------------------------------------------------------------------------------


def run_trial(
    config: CampaignConfig,
    memory: Memory,
    backend: Backend,
    trial: PlannedTrial,
    deadline_ts: float | None = None,
    launching: Callable[[], None] | None = None,
) -> TrialResult:
    """Run one valid trial on the backend; past the campaign's deadline it is stopped like a timeout.
    `launching` is called as the backend is handed the trial."""
    progress.emit("trial_started", trial_id=trial.trial_id, hypothesis=trial.hypothesis)
    # Where it runs goes to MLflow beside the run, not before it: at 64 trials starting at once, each waiting for
    # the store in turn would start the last one a second late.
    threading.Thread(
        target=memory.record_dispatch,
        args=(trial.run_id, backend.where(trial.trial_id)),
        name=f"where-{trial.trial_id}",
        daemon=True,
    ).start()
    budget, stage_timeout = stage_settings(config, trial.stage)
    timeout = stage_timeout
    if deadline_ts is not None:
        timeout = max(1.0, min(timeout, deadline_ts - time.time()))
    spec = TrialSpec(
        trial_id=trial.trial_id,
        files=trial.files,
        seed=config.trial.seed if trial.seed is None else trial.seed,
        command=config.command,
        time_budget_s=budget,
        timeout_s=timeout,
        env=dict(config.trial.env),
        hardware=trial.hardware,
        stage=trial.stage,
        max_memory_mb=config.trial.max_memory_mb,
        max_disk_mb=config.trial.max_disk_mb,
    )
    if launching:
        launching()
    try:
        result = backend.run(spec)
    except Exception as error:  # a backend bug must not lose the wave: it becomes this trial's infra_error
        result = TrialResult(
            trial.trial_id, Outcome.INFRA_ERROR, {}, 0.0, None, "", f"backend error: {error!r}"
        )
    if result.outcome is Outcome.TIMEOUT and timeout < stage_timeout:
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


def evaluate_baseline(
    config: CampaignConfig, memory: Memory, agent_run_id: str, planned: list[PlannedTrial]
) -> FinishedWave:
    """The baseline becomes the champion the wave's trials are measured against, and its copies give the first noise
    floor; if it fails, the campaign stops."""
    previous = memory.champion()
    run_ids = [t.run_id for t in planned]
    history = agent_run_trials(memory, agent_run_id)
    records = {t.run_id: t for t in history if t.run_id in run_ids}
    record, repeats = records[run_ids[0]], [records[r] for r in run_ids[1:]]
    if record.outcome is not Outcome.OK:
        raise CampaignError(
            f"the baseline trial failed ({record.outcome.value if record.outcome else 'unfinished'}: {record.reason}); "
            f"there is nothing to improve on. Run the program by hand to see why. Last lines of its log:\n"
            f"{tail(memory.read_artifact(record.run_id, 'log_tail.txt'), 15)}"
        )
    floor = evaluation.noise_floor(history)
    if floor is None:
        failed = [f"{t.trial_id} ({t.outcome.value if t.outcome else 'unfinished'})" for t in repeats]
        raise CampaignError(
            f"the baseline's other copies failed ({', '.join(failed)}), so the seed noise cannot be measured and no "
            "change could be judged against it. Run the program by hand with OVERNIGHT_SEED=1 to see why."
        )
    reason = "re-measured the champion under this run's conditions" if previous else "the program as shipped"
    memory.record_decision(record.run_id, "baseline", reason)
    decisions = [Decision(record.run_id, record.trial_id, "baseline", reason, None)]
    for repeat in repeats:
        delta = repeat.metric - record.metric if repeat.metric is not None else None
        why = "another seed of the baseline: measures seed noise"
        memory.record_decision(repeat.run_id, "baseline_repeat", why)
        decisions.append(Decision(repeat.run_id, repeat.trial_id, "baseline_repeat", why, delta))
    if previous is None or previous.run_id != record.run_id:  # (a resumed baseline may already be champion)
        memory.set_champion(record.run_id, previous.run_id if previous else "")
    memory.record_noise_floor(agent_run_id, floor, wave=0)
    progress.emit("noise_floor", sigma=floor.sigma, n=floor.n, dof=floor.dof)
    champion = memory.champion()
    trials = (champion, *repeats)
    return FinishedWave(
        0, config.metric.name, config.metric.goal, champion, champion, trials, tuple(decisions)
    )


@dataclass(frozen=True)
class Screening:
    """The screening verdicts of a wave, the trials to confirm (best first), and a factorial grid's effects."""

    decisions: tuple[Decision, ...]
    promising: tuple[TrialRecord, ...]
    effects: tuple[dict, ...] = ()


def screen(
    config: CampaignConfig, memory: Memory, agent_run_id: str, wave_run_id: str, planned: list[PlannedTrial]
) -> Screening:
    """Judge each screening run against the champion's runs under the same budget and hardware; if the wave holds
    a factorial grid, estimate its main effects and interactions against the noise floor."""
    history = agent_run_trials(memory, agent_run_id)
    run_ids = {t.run_id for t in planned if t.role == "candidate"}
    screened = [t for t in history if t.run_id in run_ids]
    effects = grid_effects(screened, evaluation.noise_floor(history))
    if effects:
        memory.record_effects(wave_run_id, list(effects))
    decisions, promising = evaluation.screen_wave(
        screened, history, memory.champion(), config.metric.goal, evaluation.rule_for(config)
    )
    room = config.decision.confirm_top
    if config.budget.trials is not None:  # confirmation runs are trials too: never past the trial budget
        resumed = {t.measures for t in history if t.role == "confirmation"}  # a resumed wave had planned them
        already = sum(1 for t in promising if t.run_id in resumed)
        room = min(
            room, already or (config.budget.trials - len(history)) // (2 * config.decision.confirm_runs)
        )
    to_confirm = tuple(promising[:room])
    waiting = {t.run_id for t in promising[room:]}
    why = (
        f"{config.decision.confirm_top} trials with larger screening gains were confirmed first"
        if room == config.decision.confirm_top
        else f"the trial budget ({config.budget.trials}) has no room left for its confirmation runs"
    )
    decisions = [
        replace(d, decision="inconclusive", reason=f"{d.reason}; promising, but {why}")
        if d.run_id in waiting
        else d
        for d in decisions
    ]
    for decision in decisions:
        memory.record_decision(decision.run_id, decision.decision, decision.reason, decision.numbers)
    return Screening(tuple(decisions), to_confirm, effects)


def grid_effects(screened: list[TrialRecord], floor: stats.NoiseFloor | None) -> tuple[dict, ...]:
    """Main effects and two-way interactions of the wave's two-level grid, if it ran complete; else nothing."""
    cells = [t for t in screened if t.factors and t.outcome is Outcome.OK and t.metric is not None]
    if len(cells) < 4 or floor is None:
        return ()
    levels: dict[str, list[str]] = {}
    for cell in cells:
        for name, (label, index) in cell.factors.items():
            levels.setdefault(name, ["", ""])[int(index)] = label
    factors = {name: (low, high) for name, (low, high) in levels.items()}
    rows = [({name: label for name, (label, _) in cell.factors.items()}, cell.metric) for cell in cells]
    try:
        found = stats.factorial_effects(rows, factors, floor)
    except ValueError:  # a cell failed or is missing: no honest estimate from an incomplete grid
        return ()
    return tuple(effect.as_dict() for effect in found)


def evaluate(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    wave: int,
    planned: list[PlannedTrial],
    screening: Screening,
) -> FinishedWave:
    """Confirm the promising trials; crown the one whose confirmed gain clears the rule by the most."""
    champion = memory.champion()
    history = agent_run_trials(memory, agent_run_id)
    decisions = {d.run_id: d for d in screening.decisions}
    if screening.promising:
        confirmed, best, verdict = evaluation.confirm_candidates(
            list(screening.promising),
            history,
            champion,
            config.metric.goal,
            evaluation.rule_for(config),
            budget_key(config, "confirm"),
        )
        for decision in confirmed:
            memory.record_decision(decision.run_id, decision.decision, decision.reason, decision.numbers)
            decisions[decision.run_id] = decision
        if best is not None:
            memory.set_champion(best.run_id, champion.run_id, verdict.gain, verdict.reason)
    for trial in planned:
        if trial.role in ("confirmation", "champion"):
            label = "confirmation" if trial.role == "confirmation" else "champion_run"
            why = (
                "a new-seed run that confirms a promising trial"
                if label == "confirmation"
                else trial.hypothesis
            )
            memory.record_decision(trial.run_id, label, why)
            decisions[trial.run_id] = Decision(trial.run_id, trial.trial_id, label, why, None)
    floor = evaluation.noise_floor(agent_run_trials(memory, agent_run_id))
    if floor is not None:
        memory.record_noise_floor(agent_run_id, floor, wave=wave)
    after = memory.champion()
    run_ids = {t.run_id for t in planned}
    trials = [t for t in memory.trials(agent_run_id=agent_run_id) if t.run_id in run_ids]
    return FinishedWave(
        wave,
        config.metric.name,
        config.metric.goal,
        champion,
        after,
        tuple(trials),
        tuple(decisions[t.run_id] for t in trials if t.run_id in decisions),
        screening.effects if screening else (),
    )


# --- reflect ---------------------------------------------------------------------------------------------------------


def reflect(
    config: CampaignConfig,
    memory: Memory,
    planner: Planner,
    wave_run_id: str,
    outcome: FinishedWave,
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


def wave_table(outcome: FinishedWave) -> list[dict]:
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
    waves_ahead: int = 0,
) -> tuple[int, str]:
    """How many trials the next wave may have, and which budget ended the campaign when none. `waves_ahead`: waves
    whose trials run or wait for workers now (a pipelined campaign), which the next wave's trials will follow."""
    if waves_done >= config.budget.iterations:
        return 0, f"iterations ({config.budget.iterations} waves)"
    mine = memory.trials(agent_run_id=agent_run_id)
    if deadline_ts is not None:
        # A wave lasts about as long as its slowest trial; with no trial seen yet, assume the hard timeout.
        wave_s = max((t.duration_s for t in mine), default=config.trial.timeout_s) + DEADLINE_MARGIN_S
        if time.time() + wave_s * (1 + waves_ahead) > deadline_ts:
            at = datetime.fromtimestamp(deadline_ts).strftime("%H:%M:%S")
            return 0, f"deadline ({at}; a wave takes about {wave_s:.0f} s)"
    if config.budget.trials is not None and len(mine) >= config.budget.trials:
        return 0, f"trials ({config.budget.trials})"
    hours = sum(t.duration_s for t in mine) / 3600
    if config.budget.trial_hours is not None and hours >= config.budget.trial_hours:
        return 0, f"trial hours ({config.budget.trial_hours})"
    if config.budget.max_usd is not None:
        spent = memory.spend_usd(agent_run_id) + compute_usd(mine)  # language-model calls and compute
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


def compute_usd(trials: list[TrialRecord]) -> float:
    """The compute cost estimate of these trials (hourly price x duration, where the backend knows the price)."""
    return sum(t.metrics.get("compute_usd", 0.0) for t in trials)


def budget_left(config: CampaignConfig, memory: Memory, agent_run_id: str, waves_done: int) -> str:
    """The budget left after the wave being planned, in words for the planner."""
    parts = [f"{config.budget.iterations - waves_done - 1} more waves after this one"]
    if config.budget.trials is not None:
        used = len(memory.trials(agent_run_id=agent_run_id))
        parts.append(f"{config.budget.trials - used} trials")
    if config.budget.max_usd is not None:
        spent = memory.spend_usd(agent_run_id) + compute_usd(agent_run_trials(memory, agent_run_id))
        parts.append(f"${config.budget.max_usd - spent:.2f} of spend (language model and compute)")
    return "; ".join(parts)


def summarise(
    config: CampaignConfig, memory: Memory, agent_run_id: str, waves: int, stopped_by: str
) -> CampaignSummary:
    """The agent run in numbers. Baseline and champion are the means of their unbiased runs at the screening budget
    (one screening run may have been lucky; the repeats are not)."""
    mine = agent_run_trials(memory, agent_run_id)
    baseline = next(t for t in mine if t.decision == "baseline")
    champion = memory.champion()
    budget = budget_key(config, "screen")

    def mean_of(record: TrialRecord) -> float:
        runs = evaluation.measurements(mine, record.fingerprint, budget, None)
        return sum(runs) / len(runs) if runs else record.metric

    baseline_value, champion_value = mean_of(baseline), mean_of(champion)
    gain = improvement(config.metric.goal, baseline_value, champion_value)
    champion_files = memory.champion_files()
    baseline_files = memory.trial_files(baseline.run_id)
    outcomes = Counter(t.outcome.value if t.outcome else "running" for t in mine)
    floor = evaluation.noise_floor(mine)
    return CampaignSummary(
        campaign=config.name,
        experiment_id=memory.experiment_id,
        agent_run_id=agent_run_id,
        metric=config.metric.name,
        goal=config.metric.goal,
        baseline=baseline_value,
        champion=champion_value,
        improvement_pct=100.0 * gain / abs(baseline_value) if baseline_value else 0.0,
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
        noise_floor=str(floor) if floor else "not measured",
        rule=evaluation.rule_for(config).name,
        compute_usd=compute_usd(mine),
        llm_usd=memory.spend_usd(agent_run_id),
        lineage=[f"{t.trial_id}: {t.hypothesis}" for t in memory.lineage()],
    )


def finish_agent_run(memory: Memory, summary: CampaignSummary) -> None:
    metrics = {
        "llm_usd": summary.llm_usd,
        "compute_usd": summary.compute_usd,
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
