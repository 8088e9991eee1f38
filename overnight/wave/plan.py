"""Plan: the planner proposes a wave; each proposal is validated and recorded in MLflow before any trial runs.

Also the runs the engine plans itself: the baseline copies of wave 0, and the new-seed runs the decision policy
wants (confirmations, re-measurements of the champion)."""

from __future__ import annotations

import json
from dataclasses import asdict

from overnight import program
from overnight.config import CampaignConfig
from overnight.memory.queries import MemoryQueries
from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot
from overnight.memory.store import Memory
from overnight.planners import Plan, PlanContext, Planner
from overnight.planners.base import CampaignFacts, ConditionNoise
from overnight.planners.prompts import estimate_tokens
from overnight.policy import DecisionPolicy, RunsWanted, earlier_tests, noise_floor
from overnight.program import read_files
from overnight.proposals import (
    Proposal,
    ProposalError,
    apply_proposal,
    change_as_edits,
    compact_change,
    fingerprint,
    unified_diff,
)
from overnight.trial import Outcome
from overnight.wave.scope import PlannedTrial, PlannedWave, WaveScope


def knob_values(config: CampaignConfig, files: dict[str, str]) -> dict[str, object]:
    """The value of every knob of the editable scripts (`program.knob_values`): the trial's params in MLflow, the
    elements of a tuple as NAME.i (`program.param_name`)."""
    return {program.param_name(name): v for name, v in program.knob_values(config.editable, files).items()}


def plan_context(
    config: CampaignConfig,
    memory: Memory,
    wave: int,
    n: int,
    budget_left: str = "",
    suggestions: tuple = (),
    *,
    agent_run_id: str = "",
    in_wave: tuple[str, ...] = (),
) -> PlanContext:
    """What the planner may read: the champion's files, a frozen snapshot of memory, the program's brief, what the
    campaign knows of its rule (`campaign_facts`, for the agent run named or the newest) and the hypotheses of the
    wave's trials already planned (`in_wave`)."""
    snapshot = memory.snapshot()
    files = memory.champion_files() if snapshot.champion else read_files(config.program, config.editable)
    brief_path = config.program / "program.md"
    brief = brief_path.read_text() if brief_path.is_file() else ""
    lookup = MemoryQueries(memory).lookup  # what Claude may query while it plans
    facts = campaign_facts(DecisionPolicy.from_config(config), snapshot, agent_run_id)
    return PlanContext(
        wave, n, files, snapshot, brief, budget_left, tuple(suggestions), lookup, facts=facts, in_wave=in_wave
    )


def campaign_facts(policy: DecisionPolicy, snapshot: MemorySnapshot, agent_run_id: str = "") -> CampaignFacts:
    """The rule as the planner should know it: the noise floor of each condition the agent run measured (the
    newest agent run's when none is named), the smallest gain a confirmation there can keep at the level the
    campaign's earlier confirmations leave, and how a wave is screened and confirmed."""
    night_id = agent_run_id or (snapshot.trials[-1].agent_run_id if snapshot.trials else "")
    night = [t for t in snapshot.trials if t.agent_run_id == night_id]
    passed = earlier_tests(snapshot.trials)  # every night's confirmations count, as evaluate's do
    measured = {(t.hardware, t.budget_s) for t in night if t.unbiased and t.outcome is Outcome.OK}
    noise = []
    for hardware, budget_s in sorted(measured):
        own = noise_floor(night, budget_s, hardware or None)
        floor = own or noise_floor(night, budget_s)
        if floor is not None:
            smallest = policy.smallest_confirmable_gain(floor, passed)
            noise.append(
                ConditionNoise(hardware, budget_s, floor.sigma, floor.n, floor.dof, own is None, smallest)
            )
    rule, control = policy.rule, policy.error_control
    return CampaignFacts(
        noise=tuple(noise),
        rule=rule.kind,
        k=rule.k,
        screen_k=rule.screen_k,
        min_improvement=rule.margin,
        confirm_top=policy.confirm_top,
        confirm_runs=rule.confirm_runs,
        screen_budget_s=policy.screen_budget_s,
        confirm_budget_s=policy.confirm_budget_s,
        error_control=control.kind,
        alpha=control.alpha,
        level=control.level(passed),
        tests_done=len(passed),
    )


def plan_baseline(scope: WaveScope) -> PlannedWave:
    """The first wave of every agent run measures the starting point: the last champion, or the program as shipped.

    It runs `baseline_repeats` copies (at most wave_size at once) with seeds seed, seed+1, ...: the copy with the
    campaign's seed is the champion the waves are compared with (same seed, same load of parallel trials); the spread
    of the copies is the seed noise, shown beside the margin.
    """
    config, memory = scope.config, scope.memory
    previous = memory.champion()
    files = memory.champion_files() if previous else read_files(config.program, config.editable)
    hypothesis = "baseline: the champion as it stands" if previous else "baseline: the program as shipped"
    trials = []
    for copy in range(config.baseline_repeats):
        seed = config.trial.seed + copy
        proposal = Proposal(
            hypothesis=hypothesis if copy == 0 else f"{hypothesis} (seed {seed})",
            rationale="measures the starting point of this agent run",
            source="baseline",
        )
        trial_id = scope.trial_id("baseline" + (f"-s{seed}" if copy else ""))
        parent = previous.run_id if previous else ""
        trials.append(
            record_trial(scope, trial_id, proposal, files, files, parent, role="baseline", seed=seed)
        )
    return PlannedWave(trials)


def plan_wave(scope: WaveScope, planner: Planner, n: int, budget_left: str = "") -> PlannedWave:
    """Ask the planner for n proposals, validate each against the champion, record every one in MLflow.

    A wave already planned by a process that died is rebuilt from its records instead: the planner is not asked
    again, so a resumed wave runs exactly the trials it had."""
    memory = scope.memory
    recorded = [t for t in memory.wave_trials(scope.wave_run_id) if t.role in ("candidate", "champion")]
    if recorded:
        return PlannedWave(
            [planned_from_record(scope, t) for t in recorded],
            note="resumed: the wave as it was planned before the campaign process died",
        )
    retests = plan_retests(scope, n)  # runners-up of the last crowning, re-applied on top of the new champion
    n -= len(retests)
    pending = memory.pending_suggestions()  # a person's hypotheses: this wave must include them
    context = plan_context(
        scope.config,
        memory,
        scope.wave,
        n,
        budget_left,
        tuple(pending.values()),
        agent_run_id=scope.agent_run_id,
        in_wave=tuple(t.hypothesis for t in retests if t.valid),
    )
    plan = planner.propose(context) if n else Plan([], note="every trial of the wave re-tests a runner-up")
    for key in pending:
        memory.take_suggestion(key, f"wave {scope.wave}" + (f": {plan.note}" if plan.note else ""))
    planned = retests + _record_proposals(scope, context, plan.proposals[:n])
    # A champion crowned under another budget is measured at this one first (policy.remeasure_champion).
    champion = context.champion
    if champion:
        wanted = scope.policy.remeasure_champion(scope.history(), champion)
        planned += plan_wanted_runs(scope, [wanted] if wanted else [])
    memory.record_plan(scope.wave_run_id, plan.note, plan.usage, plan.cost_usd, planner.name)
    if plan.queries:
        queries = [
            {**asdict(query), "answer_tokens": estimate_tokens(query.answer)} for query in plan.queries
        ]
        memory.record_memory_queries(scope.wave_run_id, queries, plan.query_usage, plan.query_cost_usd)
    asked = tuple(f"{q.tool} {json.dumps(q.arguments, sort_keys=True)}" for q in plan.queries)
    return PlannedWave(planned, plan.note, plan.usage, plan.cost_usd, asked)


def plan_retests(scope: WaveScope, n: int) -> list[PlannedTrial]:
    """At most n runners-up of the wave that crowned the champion (they passed confirmation against the previous
    champion), their change re-applied to the champion's files, as candidates of this wave. A change that no longer
    applies is recorded as invalid, with the reason."""
    memory, champion = scope.memory, scope.memory.champion()
    if champion is None:
        return []
    history = scope.history()
    champion_files = memory.champion_files()
    planned = []
    for number, runner_up in enumerate(scope.policy.retests(history, champion)[:n]):
        trial_id = scope.trial_id(f"w{scope.wave}-r{number}")
        proposal = Proposal(
            hypothesis=f"{runner_up.hypothesis} (re-tested on top of {champion.trial_id})",
            rationale=f"{runner_up.trial_id} passed its confirmation but {champion.trial_id} gained more; "
            "does it still help on top of it?",
            edits=change_as_edits(
                memory.trial_files(runner_up.parent_champion), memory.trial_files(runner_up.run_id)
            ),
            source="engine",
        )
        try:
            files = apply_proposal(champion_files, proposal, scope.config.editable)
        except ProposalError as error:
            why = f"the runner-up no longer applies on top of the champion: {error}"
            planned.append(_record_invalid(scope, trial_id, proposal, why))
            continue
        trial = record_trial(
            scope, trial_id, proposal, champion_files, files, champion.run_id, measures=runner_up.run_id
        )
        planned.append(trial)
    return planned


def _record_proposals(
    scope: WaveScope, context: PlanContext, proposals: list[Proposal]
) -> list[PlannedTrial]:
    """Each proposal applied to the champion's files and recorded; one that cannot apply, or repeats a trial
    already run, is recorded as invalid with the reason and never runs."""
    champion, champion_files = context.champion, context.champion_files
    # A first night's wave planned while its baseline still runs (`pipeline: true`) changes the program as shipped:
    # the baseline's run is its parent, crowned once it has been measured.
    history = scope.history()
    parent = champion.run_id if champion else next((t.run_id for t in history if t.role == "baseline"), "")
    seen = {t.fingerprint for t in context.history if t.fingerprint}
    planned = []
    for index, proposal in enumerate(proposals):
        trial_id = scope.trial_id(f"w{scope.wave}-t{index}")
        try:
            files = apply_proposal(champion_files, proposal, scope.config.editable)
            if fingerprint(files) in seen and not proposal.factors:  # grid cells may repeat (the low corner)
                raise ProposalError("it repeats a trial already run (same files)")
        except ProposalError as error:
            planned.append(_record_invalid(scope, trial_id, proposal, str(error)))
            continue
        seen.add(fingerprint(files))
        planned.append(record_trial(scope, trial_id, proposal, champion_files, files, parent))
    return planned


def _record_invalid(scope: WaveScope, trial_id: str, proposal: Proposal, reason: str) -> PlannedTrial:
    """A proposal that cannot apply, recorded as invalid with the reason; it never runs."""
    run_id = scope.memory.record_invalid(
        wave_run_id=scope.wave_run_id,
        agent_run_id=scope.agent_run_id,
        trial_id=trial_id,
        wave=scope.wave,
        hypothesis=proposal.hypothesis,
        reason=reason,
        proposal_json=proposal.model_dump_json(indent=2),
    )
    return PlannedTrial(trial_id, run_id, proposal.hypothesis, None, reason)


def plan_remeasure(scope: WaveScope) -> PlannedWave:
    """Fresh runs of a champion crowned in this wave, as many as the baseline has copies and under its conditions
    (the screening budget, at most wave_size at once): its reference from now on, and the night's measure of it."""
    wanted = scope.policy.remeasure_champion(scope.history(), scope.memory.champion())
    return PlannedWave(plan_wanted_runs(scope, [wanted] if wanted else []))


def plan_wanted_runs(scope: WaveScope, wanted: list[RunsWanted]) -> list[PlannedTrial]:
    """The new-seed runs the decision policy wants (confirmations, re-measurements of the champion), recorded."""
    memory = scope.memory
    champion = memory.champion()
    champion_files = memory.champion_files()
    files = {runs.measures.run_id: memory.trial_files(runs.measures.run_id) for runs in wanted}
    # Round-robin over the groups (candidate 1's first run, the champion's first run, candidate 2's first...): the
    # runs compared with each other share the host's load over time, not one group after another.
    order = [(number, runs) for runs in wanted for number in range(len(runs.seeds))]
    order.sort(key=lambda item: item[0])
    planned = []
    for number, runs in order:
        seed = runs.seeds[number]
        trial_id, proposal = _wanted_run(scope, runs, number, seed)
        planned.append(
            record_trial(
                scope,
                trial_id,
                proposal,
                champion_files,
                files[runs.measures.run_id],
                champion.run_id,
                role=runs.role,
                stage=runs.stage,
                seed=seed,
                pinned=runs.hardware,
                measures=runs.measures.run_id,
            )
        )
    return planned


def _wanted_run(scope: WaveScope, runs: RunsWanted, number: int, seed: int) -> tuple[str, Proposal]:
    """The trial id and the words of one run the policy wants."""
    measured = runs.measures
    if runs.role == "confirmation":
        proposal = Proposal(
            hypothesis=f"{measured.hypothesis} (confirmation, seed {seed})",
            rationale=f"confirms {measured.trial_id} with a new seed on {measured.hardware}",
            source="engine",
        )
        return f"{measured.trial_id}-c{number}", proposal
    where = f" on {runs.hardware}" if runs.hardware else ""
    proposal = Proposal(
        hypothesis=f"champion {measured.trial_id} re-measured (seed {seed}{where})",
        rationale="the champion's metric under this stage's condition, to compare with",
        source="engine",
    )
    label = f"-{runs.hardware}" if runs.stage == "confirm" and runs.hardware else ""
    return scope.trial_id(f"w{scope.wave}-champion{label}-{number}"), proposal


def record_trial(
    scope: WaveScope,
    trial_id: str,
    proposal: Proposal,
    before: dict[str, str],
    files: dict[str, str],
    parent: str,
    *,
    role: str = "candidate",
    stage: str = "screen",
    seed: int | None = None,
    pinned: str | None = None,
    measures: str = "",
) -> PlannedTrial:
    """Record a trial in MLflow as it is planned (its files, diff, knobs, role and stage); a trial a resumed agent
    run had recorded before its process died is taken as it was."""
    config, memory = scope.config, scope.memory
    seed = config.trial.seed if seed is None else seed
    existing = memory.find_trial(scope.agent_run_id, trial_id)
    if existing is not None:
        return planned_from_record(scope, existing)
    run_id = memory.start_trial(
        wave_run_id=scope.wave_run_id,
        agent_run_id=scope.agent_run_id,
        trial_id=trial_id,
        wave=scope.wave,
        hypothesis=proposal.hypothesis,
        rationale=proposal.rationale,
        expected=proposal.expected,
        source=proposal.source,
        params=knob_values(config, files),
        files=files,
        diff=unified_diff(before, files),
        change=compact_change(before, files),
        fingerprint=fingerprint(files),
        parent_champion=parent,
        role=role,
        seed=seed,
        budget_s=config.stage(stage).budget_s,
        measures=measures,
        pinned=pinned or "",
        factors=proposal.factors,
    )
    return PlannedTrial(trial_id, run_id, proposal.hypothesis, files, "", seed, role, stage, pinned)


def planned_from_record(scope: WaveScope, record: TrialRecord) -> PlannedTrial:
    """A recorded trial as the wave dispatches it: how a resumed agent run picks up what it had planned."""
    if record.outcome is Outcome.INVALID and not record.budget_s:  # a proposal that never ran (no files)
        return PlannedTrial(record.trial_id, record.run_id, record.hypothesis, None, record.reason)
    screen, confirm = scope.config.stage("screen"), scope.config.stage("confirm")
    confirm_only = confirm.budget_s != screen.budget_s
    in_confirm = record.role == "confirmation" or (
        confirm_only and record.role == "champion" and record.budget_s == confirm.budget_s
    )
    return PlannedTrial(
        record.trial_id,
        record.run_id,
        record.hypothesis,
        scope.memory.trial_files(record.run_id),
        seed=record.seed,
        role=record.role,
        stage="confirm" if in_confirm else "screen",
        pinned=record.pinned or None,
    )


def plan_markdown(scope: WaveScope, planner: str, planned: PlannedWave) -> str:
    """The wave's proposals for the Prefect UI: hypothesis, rationale and diff of each."""
    lines = [f"# Wave {scope.wave}: {len(planned.trials)} proposals from the {planner} planner", ""]
    if planned.usage.calls:
        lines.append(
            f"Planner usage: {planned.usage.input_tokens} input, {planned.usage.output_tokens} output, "
            f"{planned.usage.cache_read_tokens} cache-read, {planned.usage.cache_creation_tokens} cache-write "
            f"tokens; ${planned.cost_usd:.4f}."
        )
    if planned.queries:
        lines.append(f"The planner queried the memory {len(planned.queries)} times:")
        lines += [f"- `{query}`" for query in planned.queries]
    if planned.note:
        lines.append(f"**Note:** {planned.note}")
    for trial in planned.trials:
        lines += ["", f"## {trial.trial_id}: {trial.hypothesis}"]
        if not trial.valid:
            lines.append(f"Invalid, not run: {trial.reason}")
            continue
        diff = scope.memory.read_artifact(trial.run_id, "diff.patch")
        lines += [f"```diff\n{diff.rstrip()}\n```"]
    return "\n".join(lines) + "\n"
