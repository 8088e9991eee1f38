"""One wave of the research loop: plan -> dispatch N trials concurrently -> evaluate -> reflect."""

from __future__ import annotations

from prefect import flow

from overnight import loop, progress
from overnight.backends import Backend
from overnight.config import CampaignConfig
from overnight.planners import make_planner
from tasks.dispatch import run_trial
from tasks.evaluate import evaluate, screen
from tasks.plan import plan, plan_confirmation
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
) -> dict:
    """Run one wave of `size` trials (wave 0 is the baseline) and return what it decided."""
    memory = loop.open_memory(config)
    planner = make_planner(config)
    wave_run_id = memory.start_wave(agent_run_id, wave, stage="baseline" if wave == 0 else "search")

    try:
        # --- plan ------------------------------------------------------------------------------------------------
        planned_wave = plan(config, memory, planner, agent_run_id, wave_run_id, wave, size, budget_left)
        planned = planned_wave.trials
        progress.emit("wave_started", wave=wave, trials=len(planned), note=planned_wave.note)
        for trial in planned:
            if not trial.valid:
                progress.emit(
                    "trial_finished",
                    trial_id=trial.trial_id,
                    outcome="invalid",
                    metric=None,
                    reason=trial.reason,
                )

        # --- dispatch: one task run per trial, all at once -------------------------------------------------------
        _dispatch(config, memory, backend, planned, deadline_ts)

        # --- evaluate: screen on one run each, confirm the promising ones with new seeds -------------------------
        screening = None
        if wave > 0:
            screening = screen(config, memory, agent_run_id, wave_run_id, wave, planned)
            if screening.promising:
                confirmation = plan_confirmation(config, memory, agent_run_id, wave_run_id, wave, screening)
                progress.emit("confirming", wave=wave, trials=len(confirmation.trials))
                _dispatch(config, memory, backend, confirmation.trials, deadline_ts)
                planned = planned + confirmation.trials
        outcome = evaluate(config, memory, agent_run_id, wave, planned, screening)

        # --- reflect ---------------------------------------------------------------------------------------------
        reflect(config, memory, planner, wave_run_id, outcome, planned_wave.note)
    except BaseException as error:  # nothing may stay RUNNING in MLflow
        why = (
            "interrupted by the user"
            if isinstance(error, KeyboardInterrupt)
            else f"{type(error).__name__}: {error}"
        )
        memory.abandon_wave(wave_run_id, why)
        raise
    return {
        "wave": wave,
        "trials": len(planned),
        "champion_run_id": outcome.champion_after.run_id,
        "champion": outcome.champion_after.metric,
    }


def _dispatch(config, memory, backend, planned, deadline_ts) -> None:
    """One task run per valid trial, all at once; returns when every one has ended."""
    futures = [
        run_trial.submit(config, memory, backend, trial, deadline_ts) for trial in planned if trial.valid
    ]
    for future in futures:
        future.wait()
