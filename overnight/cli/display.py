"""What `overnight run` shows: the progress bar fed by the campaign's progress events, and the summary at the end."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.syntax import Syntax
from rich.table import Table

if TYPE_CHECKING:
    pass

from overnight.cli.common import console


class ProgressDisplay:
    """A rich progress bar fed by the loop's progress events."""

    def __init__(self, waves: int, wave_size: int, pipelined: bool = False):
        self.pipelined = pipelined  # waves overlap: one bar counts the trials of every wave planned so far
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.waves = self.progress.add_task("waves", total=waves + 1, visible=False)
        self.trials = self.progress.add_task("trials", total=0 if pipelined else wave_size, visible=False)

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_event(self, event: str, **data) -> None:
        if event == "wave_started":
            name = "baseline" if data["wave"] == 0 else f"wave {data['wave']}"
            self.progress.update(self.waves, visible=True, description="waves (baseline first)")
            if self.pipelined:
                self._add_trials(data["trials"], "trials of the waves planned")
                self.progress.console.print(f"  [dim]{name} planned: {data['trials']} trials[/dim]")
            else:
                self.progress.reset(
                    self.trials, total=data["trials"], visible=True, description=f"{name} trials"
                )
            if data.get("note"):
                self.progress.console.print(f"[yellow]  planner note:[/yellow] {data['note']}")
        elif event == "trial_finished":
            self.progress.advance(self.trials)
            metric = f" {data['metric']:.6g}" if data.get("metric") is not None else ""
            reason = f" ({data['reason']})" if data.get("reason") and data["outcome"] != "ok" else ""
            self.progress.console.print(f"  {data['trial_id']}: {data['outcome']}{metric}{reason}")
        elif event == "trial_started":
            self.progress.console.print(f"  [dim]{data['trial_id']} started: {data['hypothesis']}[/dim]")
        elif event == "trial_repaired":
            self._repaired(data)
        elif event == "confirming":
            self._engine_runs(data, "confirmation runs", "confirming", "the promising trials", "new-seed")
        elif event == "remeasuring":
            self._engine_runs(data, "re-measurement", "re-measuring", "the new champion", "fresh-seed")
        elif event == "resumed":
            self.progress.console.print(
                f"[yellow]Resuming[/yellow] agent run {data['agent_run_id']} after {data['waves_done']} finished "
                "wave(s): its process had died; trials that ended are not run again"
            )
        elif event == "noise_floor":
            self.progress.console.print(
                f"  noise floor: σ = {data['sigma']:.4g} from {data['n']} runs ({data['dof']} dof)"
            )
        elif event == "program_warning":
            self.progress.console.print(
                f"[yellow]warning:[/yellow] {data['message']}", highlight=False, soft_wrap=True
            )
        elif event == "wave_finished":
            self.progress.advance(self.waves)
            self.progress.console.print(
                f"[bold]wave {data['wave']} done[/bold]: champion {data['champion']:.6g}"
            )

    def _engine_runs(self, data: dict, label: str, doing: str, what: str, seeds: str) -> None:
        """The runs the engine adds to a wave (confirmations, a new champion's re-measurement): counted and said."""
        if self.pipelined:
            self._add_trials(data["trials"], "trials of the waves planned")
        else:
            self.progress.reset(self.trials, total=data["trials"], description=f"wave {data['wave']} {label}")
        self.progress.console.print(f"  [cyan]{doing}[/cyan] {what} with {data['trials']} {seeds} runs")

    def _repaired(self, data: dict) -> None:
        """One line: a trial that crashed before its first result, and the repair that runs in its place (counted)."""
        if not data["repair_id"]:
            self.progress.console.print(f"  [yellow]not repaired[/yellow] {data['trial_id']}: {data['note']}")
            return
        total = self.progress.tasks[self.trials].total or 0
        self.progress.update(self.trials, total=total + 1)
        self.progress.console.print(
            f"  [cyan]repaired[/cyan] {data['trial_id']} (crashed before its first result) as "
            f"{data['repair_id']}: {data['hypothesis']}"
        )

    def _add_trials(self, count: int, description: str) -> None:
        total = self.progress.tasks[self.trials].total or 0
        self.progress.update(self.trials, total=total + count, visible=True, description=description)


def print_summary(summary, flow_run_id: str) -> None:
    better = "lower" if summary.goal == "minimize" else "higher"
    lines = [
        f"this night: {summary.metric} {summary.night} ({better} is better)",
        f"champion trial: {summary.champion_trial}: {summary.champion_hypothesis}",
        f"baseline copies (one per seed): {', '.join(f'{v:.6g}' for v in summary.baseline_copies)}",
        f"noise floor: {summary.noise_floor}; keep rule: {summary.rule}",
        f"crowns: {summary.error_control}",
        f"{summary.trials} trials in {summary.waves} waves, {summary.trial_hours * 60:.1f} trial-minutes; "
        f"stopped by the {summary.stopped_by} budget",
    ]
    console.print(Panel("\n".join(lines), title=f"Campaign {summary.campaign}", expand=False))
    table = Table("outcome", "trials")
    for outcome, count in sorted(summary.outcomes.items()):
        table.add_row(outcome, str(count))
    console.print(table)
    if len(summary.lineage) > 1:
        console.print("Champion lineage (newest first):", highlight=False)
        for step in summary.lineage:
            console.print(f"  {step}", highlight=False, markup=False)
    if summary.champion_diff:
        console.print("Champion's change from this run's baseline:")
        console.print(Syntax(summary.champion_diff, "diff", theme="ansi_dark"))
    else:
        console.print("The champion is the baseline: no change was confirmed better under the keep rule.")
    console.print("\nOpen what just ran:")
    for line in ui_commands(summary.tracking_uri, summary.experiment_id, flow_run_id):
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


def ui_commands(tracking_uri: str, experiment_id: str, flow_run_id: str) -> list[str]:
    """The exact commands that open both UIs on this campaign."""
    runs = f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    tools = Path(sys.executable).parent  # the mlflow and prefect commands installed beside this interpreter
    if tracking_uri.startswith(("http://", "https://")):
        mlflow_lines = [f"MLflow UI:  {tracking_uri.rstrip('/')}/{runs}"]
    else:
        mlflow_lines = [
            f"MLflow UI:  {tools / 'mlflow'} ui --backend-store-uri {tracking_uri} --port 5000",
            f"            then open http://127.0.0.1:5000/{runs}",
        ]
    api = os.environ.get("PREFECT_API_URL")
    if api:
        prefect_lines = [f"Prefect UI: {api.removesuffix('/api')}/runs/flow-run/{flow_run_id}"]
    else:
        prefect_lines = [
            f"Prefect UI: {tools / 'prefect'} server start",
            f"            then open http://127.0.0.1:4200/runs/flow-run/{flow_run_id}",
        ]
    return mlflow_lines + prefect_lines
