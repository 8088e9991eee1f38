"""Evaluate: the decision policy judges the wave (overnight/policy.py); what it decides is recorded in MLflow here.

The baseline wave crowns the starting point and measures the first noise floor; a search wave is screened, its
promising candidates confirmed with new-seed runs, the best confirmed gain crowned (the others that passed are
runners-up), and a new champion re-measured with fresh seeds before the next wave is judged against it."""

from __future__ import annotations

from overnight import progress
from overnight.agent_run import CampaignError
from overnight.memory.records import TrialRecord
from overnight.planners import FinishedWave
from overnight.policy import Decision, Screening, noise_floor
from overnight.program_checks import check_program, record_program_warnings
from overnight.trial import Outcome, tail
from overnight.wave.scope import PlannedTrial, WaveScope


def evaluate_baseline(scope: WaveScope, planned: list[PlannedTrial]) -> FinishedWave:
    """The baseline becomes the champion the wave's trials are measured against, and its copies give the first noise
    floor; if it fails, the campaign stops."""
    memory = scope.memory
    previous = memory.champion()
    history = scope.history()
    records = {t.run_id: t for t in history}
    record, *repeats = [records[t.run_id] for t in planned]
    if record.outcome is not Outcome.OK:
        raise CampaignError(
            f"the baseline trial failed ({record.outcome.value if record.outcome else 'unfinished'}: {record.reason}); "
            f"there is nothing to improve on. Run the program by hand to see why. Last lines of its log:\n"
            f"{tail(memory.read_artifact(record.run_id, 'log_tail.txt'), 15)}"
        )
    floor = noise_floor(history, scope.policy.screen_budget_s)
    if floor is None:
        failed = [f"{t.trial_id} ({t.outcome.value if t.outcome else 'unfinished'})" for t in repeats]
        raise CampaignError(
            f"the baseline's other copies failed ({', '.join(failed)}), so the seed noise cannot be measured and no "
            "change could be judged against it. Run the program by hand with OVERNIGHT_SEED=1 to see why."
        )
    copies = [records[t.run_id] for t in planned]
    record_program_warnings(memory, scope.agent_run_id, check_program(scope.config, copies))
    reason = "re-measured the champion under this run's conditions" if previous else "the program as shipped"
    decisions = [Decision(record.run_id, record.trial_id, "baseline", reason, None)]
    for repeat in repeats:
        delta = repeat.metric - record.metric if repeat.metric is not None else None
        why = "another seed of the baseline: measures seed noise"
        decisions.append(Decision(repeat.run_id, repeat.trial_id, "baseline_repeat", why, delta))
    _record(scope, decisions)
    if previous is None or previous.run_id != record.run_id:  # (a resumed baseline may already be champion)
        memory.set_champion(record.run_id, previous.run_id if previous else "")
    memory.record_noise_floor(scope.agent_run_id, floor, wave=0)
    progress.emit("noise_floor", sigma=floor.sigma, n=floor.n, dof=floor.dof)
    champion = memory.champion()
    return FinishedWave(
        0,
        scope.config.metric.name,
        scope.config.metric.goal,
        champion,
        champion,
        (champion, *repeats),
        tuple(decisions),
    )


def screen(scope: WaveScope, planned: list[PlannedTrial]) -> Screening:
    """Judge each candidate's screening run against the champion's runs under the same budget and hardware (and a
    factorial grid's effects against the noise floor); the policy says which to confirm, and with which runs."""
    config, memory = scope.config, scope.memory
    history = scope.history()
    run_ids = {t.run_id for t in planned if t.role == "candidate"}
    screened = [t for t in history if t.run_id in run_ids]
    trials_left = None if config.budget.trials is None else config.budget.trials - len(history)
    screening = scope.policy.screen(history, memory.champion(), screened, trials_left)
    if screening.effects:
        memory.record_effects(scope.wave_run_id, list(screening.effects))
    _record(scope, screening.decisions)
    return screening


def evaluate(scope: WaveScope, planned: list[PlannedTrial], screening: Screening) -> FinishedWave:
    """Confirm the promising candidates; crown the one whose confirmed gain clears the rule by the most."""
    memory = scope.memory
    champion = memory.champion()
    decisions = {d.run_id: d for d in screening.decisions}
    if screening.to_confirm:
        # The error control counts every confirmation the campaign has tested, on every night.
        tested = memory.trials()
        crowning = scope.policy.confirm(scope.history(), champion, list(screening.to_confirm), tested)
        _record(scope, crowning.decisions)
        decisions.update({d.run_id: d for d in crowning.decisions})
        if crowning.champion is not None:
            memory.set_champion(
                crowning.champion.run_id, champion.run_id, crowning.verdict.gain, crowning.verdict.reason
            )
    return _label_engine_runs(scope, champion, planned, decisions, screening.effects)


def remeasured(scope: WaveScope, finished: FinishedWave, planned: list[PlannedTrial]) -> FinishedWave:
    """The wave with the fresh runs of its new champion (`planned`, finished) labelled and counted in."""
    decisions = {d.run_id: d for d in finished.decisions}
    return _label_engine_runs(scope, finished.champion_before, planned, decisions, finished.effects, finished)


def _label_engine_runs(
    scope: WaveScope,
    before: TrialRecord,
    planned: list[PlannedTrial],
    decisions: dict[str, Decision],
    effects: tuple[dict, ...],
    so_far: FinishedWave | None = None,
) -> FinishedWave:
    """Label the runs the engine planned, record the noise floor after the wave, and gather the wave's trials."""
    engine_runs = [
        _engine_run_label(trial) for trial in planned if trial.role in ("confirmation", "champion")
    ]
    _record(scope, engine_runs)
    decisions.update({d.run_id: d for d in engine_runs})
    history = scope.history()  # with every decision of the wave recorded
    floor = noise_floor(history, scope.policy.screen_budget_s)
    if floor is not None:
        scope.memory.record_noise_floor(scope.agent_run_id, floor, wave=scope.wave)
    run_ids = {t.run_id for t in planned} | {t.run_id for t in (so_far.trials if so_far else ())}
    trials = [t for t in history if t.run_id in run_ids]
    return _finished(scope, before, trials, decisions, effects)


def _engine_run_label(trial: PlannedTrial) -> Decision:
    """A run the engine planned (not a proposal) is labelled by what it is for, not judged."""
    if trial.role == "confirmation":
        return Decision(
            trial.run_id,
            trial.trial_id,
            "confirmation",
            "a new-seed run that confirms a promising trial",
            None,
        )
    return Decision(trial.run_id, trial.trial_id, "champion_run", trial.hypothesis, None)


def _record(scope: WaveScope, decisions: list[Decision] | tuple[Decision, ...]) -> None:
    for decision in decisions:
        scope.memory.record_decision(decision.run_id, decision.decision, decision.reason, decision.numbers)


def _finished(
    scope: WaveScope,
    before: TrialRecord,
    trials: list[TrialRecord],
    decisions: dict[str, Decision],
    effects: tuple[dict, ...],
) -> FinishedWave:
    return FinishedWave(
        scope.wave,
        scope.config.metric.name,
        scope.config.metric.goal,
        before,
        scope.memory.champion(),
        tuple(trials),
        tuple(decisions[t.run_id] for t in trials if t.run_id in decisions),
        effects,
    )
