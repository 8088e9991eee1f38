"""One wave of the research loop: plan -> dispatch N trials concurrently -> evaluate -> reflect."""

from __future__ import annotations

from prefect import flow
from prefect.futures import PrefectFuture, as_completed

from overnight import progress
from overnight.agent_run import open_memory
from overnight.backends import Backend
from overnight.config import CampaignConfig
from overnight.pipeline import Pipeline, PipelineStopped
from overnight.planners import make_planner
from overnight.trial import TrialResult
from overnight.wave.repair import may_repair
from overnight.wave.scope import PlannedTrial, WaveScope
from tasks.dispatch import run_trial
from tasks.evaluate import evaluate, evaluate_baseline, remeasured, screen
from tasks.holdout import holdout
from tasks.plan import plan, plan_baseline, plan_confirmation, plan_remeasure, repair
from tasks.reflect import reflect


@flow(name="wave", flow_run_name="{config.name} wave {wave}", validate_parameters=False)
def wave_flow(
    config: CampaignConfig,
    backend: Backend,
    agent_run_id: str,
    wave: int,
    size: int,
    budget_left: str = "",
    deadline_ts: float | None = None,
    pipeline: Pipeline | None = None,
) -> dict:
    """Run one wave of `size` trials (wave 0 is the baseline) and return what it decided.

    With a pipeline (`pipeline: true`), the wave's trials wait for the campaign's worker slots, and its decisions
    wait for the previous wave's: the campaign plans the next wave while this one runs."""
    memory = open_memory(config)
    planner = make_planner(config)
    scope = WaveScope(config, memory, agent_run_id, memory.start_wave(agent_run_id, wave), wave)

    def dispatch(trials, repairing=None) -> list[PlannedTrial]:
        return _dispatch(config, memory, backend, trials, deadline_ts, pipeline, wave, repairing)

    def repair_crashed(trial: PlannedTrial, result: TrialResult) -> PlannedTrial | None:
        if not may_repair(config, planner, trial, result):
            return None
        return repair(scope, planner, trial, result, budget_left)

    try:
        # --- plan ------------------------------------------------------------------------------------------------
        planned_wave = plan_baseline(scope) if scope.is_baseline else plan(scope, planner, size, budget_left)
        planned = planned_wave.trials
        if pipeline:
            pipeline.planned(wave)
        _announce(wave, planned_wave)

        # --- dispatch: one task run per trial, all at once; a trial that crashed before its first result goes ----
        # back to the planner once, and its repair runs in the wave
        planned = planned + dispatch(planned, repair_crashed)
        if pipeline:
            pipeline.screened(wave)
            pipeline.wait_turn(wave)  # waves decide in order: the champion this wave meets is final

        # --- evaluate: screen on one run each, confirm the promising ones with new seeds -------------------------
        if scope.is_baseline:
            outcome = evaluate_baseline(scope, planned)
        else:
            screening = screen(scope, planned)
            if screening.wanted:
                confirmation = plan_confirmation(scope, screening)
                progress.emit("confirming", wave=wave, trials=len(confirmation.trials))
                dispatch(confirmation.trials)
                planned = planned + confirmation.trials
            outcome = evaluate(scope, planned, screening)
            remeasure = plan_remeasure(
                scope
            )  # a new champion's reference: fresh seeds, not its crowning runs
            if remeasure.trials:
                progress.emit("remeasuring", wave=wave, trials=len(remeasure.trials))
                dispatch(remeasure.trials)
                planned = planned + remeasure.trials
                outcome = remeasured(scope, outcome, remeasure.trials)

        # --- holdout: a new champion's saved model on data no trial received (never shown to a planner) ------------
        if scope.is_baseline or outcome.champion_after.run_id != outcome.champion_before.run_id:
            holdout(scope.config, scope.memory, outcome.champion_after.run_id)

        # --- reflect ---------------------------------------------------------------------------------------------
        reflect(scope, planner, outcome, planned_wave.note)
    except BaseException as error:  # nothing may stay RUNNING in MLflow
        if isinstance(error, KeyboardInterrupt):
            why = "interrupted by the user"
        elif isinstance(error, PipelineStopped):
            why = str(error)
        else:
            why = f"{type(error).__name__}: {error}"
        memory.abandon_wave(scope.wave_run_id, why)
        raise
    return {
        "wave": wave,
        "trials": len(planned),
        "champion_run_id": outcome.champion_after.run_id,
        "champion": outcome.champion_after.metric,
    }


def _announce(wave: int, planned_wave) -> None:
    """Progress events for the CLI: the wave's trials, and the invalid proposals that will never run."""
    progress.emit("wave_started", wave=wave, trials=len(planned_wave.trials), note=planned_wave.note)
    for trial in planned_wave.trials:
        if not trial.valid:
            progress.emit(
                "trial_finished", trial_id=trial.trial_id, outcome="invalid", metric=None, reason=trial.reason
            )


def _dispatch(
    config, memory, backend, planned, deadline_ts, pipeline=None, wave=0, repairing=None
) -> list[PlannedTrial]:
    """One task run per valid trial, all at once; returns when every one has ended, with the repairs that ran too
    (`repairing(trial, result)`: the repair of a trial as soon as it ends, or None). With a pipeline, each trial
    starts as a worker slot frees up."""
    trials = [trial for trial in planned if trial.valid]
    if pipeline is None:
        return _run_all(
            trials, lambda trial: run_trial.submit(config, memory, backend, trial, deadline_ts), repairing
        )
    futures = []

    def submit(trial: PlannedTrial) -> PrefectFuture:
        slot = pipeline.take_slot(wave)
        try:
            future = run_trial.submit(config, memory, backend, trial, deadline_ts, slot)
        except BaseException:
            slot.release()
            raise
        future.add_done_callback(lambda _, slot=slot: slot.release())
        futures.append(future)
        return future

    try:
        repaired = _run_all(trials, submit, repairing)
    finally:  # even when stopping: the trials already started end and are recorded
        for future in futures:
            future.wait()
    if any(future.state.is_crashed() for future in futures):  # Ctrl-C stopped them before the campaign knew
        pipeline.stop("interrupted by the user")
    pipeline.check()  # stopping (Ctrl-C killed these trials, or another wave failed): nothing to judge
    return repaired


def _run_all(trials, submit, repairing=None) -> list[PlannedTrial]:
    """Submit every trial and wait for them all. As each one ends, `repairing` may give its repair, which is
    submitted at once while the others run (and waited for too). Returns the repairs."""
    running = {submit(trial): trial for trial in trials}
    pending, repairs = set(running), []
    while pending:
        for future in as_completed(list(pending)):
            pending.discard(future)
            future.wait()  # its final state, read from the task itself (not from the API, which may lag)
            result = future.result() if repairing and future.state.is_completed() else None
            fix = repairing(running[future], result) if result is not None else None
            if fix is not None:
                repairs.append(fix)
                fixed = submit(fix)
                running[fixed] = fix
                pending.add(fixed)
                break  # wait again, for the repair too
    return repairs
