"""Reflect: the planner's reflection on a finished wave and the wave's table, stored on the wave run in MLflow."""

from __future__ import annotations

from overnight import progress
from overnight.planners import FinishedWave, Planner, Reflection
from overnight.planners.base import wave_report
from overnight.trial import Outcome
from overnight.wave.plan import plan_context
from overnight.wave.scope import WaveScope


def reflect(
    scope: WaveScope, planner: Planner, outcome: FinishedWave, note: str = ""
) -> tuple[str, list[dict]]:
    """The reflection (markdown) and the wave's table, written to the wave run; the next plan reads them."""
    if scope.is_baseline:  # the baseline teaches nothing a model needs to be paid to say
        result = Reflection(wave_report(outcome))
    else:
        context = (
            plan_context(scope.config, scope.memory, scope.wave, 0)
            if planner.reads_memory_to_reflect
            else None
        )
        result = planner.reflect(outcome, context)
    scope.memory.record_reflection_usage(scope.wave_run_id, result.usage, result.cost_usd)
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
    scope.memory.finish_wave(scope.wave_run_id, metrics, reflection, table)
    progress.emit("wave_finished", wave=outcome.wave, champion=outcome.champion_after.metric)
    return reflection, table


def wave_table(outcome: FinishedWave) -> list[dict]:
    """One row per trial: its change, outcome, metric, gap to the champion and decision, with its MLflow run."""
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
