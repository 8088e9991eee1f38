"""Repairs within the wave: a proposal whose trial crashed before its first result (an import error, a shape error)
goes back to its planner once, with its traceback, and the repaired version runs in the same wave.

The repair is a new trial of the wave (`<crashed id>-fix`), built on the files the crashed trial was built on; the
two are linked both ways in MLflow (`overnight.repaired_by` on the crashed trial, `overnight.repair_of` on the
repair), and the repair call's tokens and dollars go on the wave run as `repair_*` metrics. A crashed trial whose
`repaired_by` is set was handled (repaired, or no repair came), so a resumed wave never asks twice."""

from __future__ import annotations

from dataclasses import replace

from overnight import progress
from overnight.config import CampaignConfig
from overnight.memory.records import TrialRecord
from overnight.planners import Plan, Planner
from overnight.planners.base import CrashedTrial
from overnight.proposals import Proposal, ProposalError, apply_proposal, change_as_edits
from overnight.secrets import scrub
from overnight.trial import TrialResult, crashed_before_first_result, tail
from overnight.wave.plan import plan_context, record_trial
from overnight.wave.scope import PlannedTrial, WaveScope

REPAIR_SUFFIX = "-fix"  # the repair of trial <id> is trial <id>-fix


def may_repair(config: CampaignConfig, planner: Planner, trial: PlannedTrial, result: TrialResult) -> bool:
    """What the wave knows without asking memory: a candidate that crashed before its first result, under a planner
    that repairs, with `planner.repair_crashes` on (never an engine run: a baseline, a confirmation, a champion)."""
    return (
        config.planner.repair_crashes
        and planner.repairs_crashes
        and trial.role == "candidate"
        and crashed_before_first_result(result)
    )


def repair_crash(
    scope: WaveScope, planner: Planner, trial: PlannedTrial, result: TrialResult, budget_left: str = ""
) -> PlannedTrial | None:
    """Ask the planner once to repair a crashed trial, and record the repair as a trial of the wave, ready to run.

    None when there is nothing new to run: the trial is not the planner's own proposal, is a repair itself, was
    handled before (a resumed wave), or no repair came (the reason is a line of the wave run's repair note)."""
    memory = scope.memory
    if not may_repair(scope.config, planner, trial, result) or not _unhandled(scope, planner, trial):
        return None
    record = memory.find_trial_by_run(trial.run_id)
    context = plan_context(scope.config, memory, scope.wave, 1, budget_left)
    before = memory.trial_files(record.parent_champion) if record.parent_champion else context.champion_files
    crashed = crashed_trial(scope, trial, record, result, before)
    # Built on the files the crashed trial was built on: the champion it was planned against, even if a pipelined
    # campaign has crowned another since.
    plan = planner.repair(replace(context, champion_files=before), crashed)
    memory.record_repair_usage(scope.wave_run_id, plan.usage, plan.cost_usd)
    try:
        repaired = _record_repair(scope, trial, record, plan, before)
    except ProposalError as error:
        repaired, note = None, f"the repair of {trial.trial_id} cannot apply: {error}"
    else:
        note = (
            "" if repaired else plan.note or f"the {planner.name} planner gave no repair of {trial.trial_id}"
        )
    if repaired is None:
        memory.record_no_repair(scope.wave_run_id, trial.run_id, note)
    progress.emit(
        "trial_repaired",
        trial_id=trial.trial_id,
        repair_id=repaired.trial_id if repaired else "",
        hypothesis=repaired.hypothesis if repaired else "",
        note=note,
    )
    return repaired


def _unhandled(scope: WaveScope, planner: Planner, trial: PlannedTrial) -> bool:
    """The planner's own proposal, not a repair, and not handled before. A repair recorded by a process that died
    before linking it is linked now and runs as the resumed wave planned it."""
    links = scope.memory.repair_links(trial.run_id)
    if links["proposed_by"] != planner.name or links["repair_of"] or links["repaired_by"]:
        return False
    recorded = scope.memory.find_trial(scope.agent_run_id, trial.trial_id + REPAIR_SUFFIX)
    if recorded is not None:
        scope.memory.link_repair(trial.run_id, recorded.run_id)
        return False
    return True


def crashed_trial(
    scope: WaveScope, trial: PlannedTrial, record: TrialRecord, result: TrialResult, before: dict[str, str]
) -> CrashedTrial:
    """The crashed proposal as it was (its change as edits of the files it was built on), why it ended, and the end
    of its log (a resumed wave reads it from the run's log_tail.txt)."""
    proposal = Proposal(hypothesis=record.hypothesis, edits=change_as_edits(before, trial.files))
    log = scrub(result.log_tail) or scope.memory.read_artifact(trial.run_id, "log_tail.txt")
    return CrashedTrial(trial.trial_id, proposal, result.reason or record.reason, tail(log))


def _record_repair(
    scope: WaveScope, crashed: PlannedTrial, record: TrialRecord, plan: Plan, before: dict[str, str]
) -> PlannedTrial | None:
    """The planner's repair applied to the files the crashed trial was built on, recorded as a trial of the wave
    (same seed and stage) and linked to the crashed one; None when the plan holds none."""
    if not plan.proposals:
        return None
    proposal = plan.proposals[0]
    files = apply_proposal(before, proposal, scope.config.editable)
    repaired = record_trial(
        scope,
        crashed.trial_id + REPAIR_SUFFIX,
        proposal,
        before,
        files,
        record.parent_champion,
        stage=crashed.stage,
        seed=crashed.seed,
        pinned=crashed.pinned,
    )
    scope.memory.link_repair(crashed.run_id, repaired.run_id)
    return repaired
