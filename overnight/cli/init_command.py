"""`overnight init`: look at a program (its code, then one or two brief runs), and write a commented campaign.yaml
for it. The findings and the config's text come from the core (overnight.survey, overnight.starter_config); this
module says what it does while it does it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from overnight.cli.common import console
from overnight.config import ConfigError
from overnight.starter_config import (
    Findings,
    budget_findings,
    campaign_yaml,
    found_knobs,
    seed_findings,
)
from overnight.survey import (
    MetricChoice,
    ProbeRun,
    StaticFacts,
    choose_metric,
    metric_candidates,
    metric_goal,
    probe,
    static_facts,
    summary_names,
)

PROBE_BUDGET_S = 10.0  # a brief run of a script that follows OVERNIGHT_TIME_BUDGET


def init(
    program: Annotated[
        Path, typer.Argument(help="The program's folder (default: here).", show_default=False)
    ] = Path("."),
    script: Annotated[str, typer.Option(help="The training script, inside the folder.")] = "train.py",
    command: Annotated[
        str | None,
        typer.Option(
            help="How a trial runs it, any command line (default: uv run SCRIPT in a uv project where uv is "
            "installed, else python SCRIPT)."
        ),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="The printed `name: value` to optimise (default: guessed).")
    ] = None,
    goal: Annotated[
        str | None, typer.Option(help="minimize or maximize (default: from the metric's name).")
    ] = None,
    time_budget: Annotated[
        float, typer.Option(help="Training seconds per trial, for a script that reads OVERNIGHT_TIME_BUDGET.")
    ] = 300.0,
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="Run the script briefly to see what it prints.")
    ] = True,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds a brief run may take before it is stopped.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the config (default: PROGRAM/campaign.yaml).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Look at a training script (its code, then one or two brief runs of it, said before they start) and write
    a commented campaign.yaml: the metric and its goal, the budget, the knobs with their ranges and where each is
    read. Never overwrites a file without --force."""
    program = program.resolve()
    out = (out or program / "campaign.yaml").resolve()
    try:
        _check_paths(program, script, out, force, goal)
        findings = _survey(
            program, script, command or f"python {script}", metric, goal, time_budget, run, timeout
        )
        text = campaign_yaml(findings, out)
    except ConfigError as error:
        console.print(f"[red]overnight init:[/red] {error}")
        raise typer.Exit(2) from None
    out.write_text(text)
    _print_findings(findings, out)


def _default_command(program: Path, script: str) -> str:
    """`uv run SCRIPT` for a uv project (autoresearch's way) where uv is installed, else `python SCRIPT`, python
    being the interpreter overnight runs in."""
    if (program / "uv.lock").is_file() and shutil.which("uv"):
        return f"uv run {script}"
    return f"python {script}"


def _check_paths(program: Path, script: str, out: Path, force: bool, goal: str | None) -> None:
    if not program.is_dir():
        raise ConfigError(f"{program} is not a folder")
    if not (program / script).is_file():
        raise ConfigError(f"{program} has no {script}: name the training script with --script")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; nothing was written (pass --force to overwrite it)")
    if goal not in (None, "minimize", "maximize"):
        raise ConfigError(f"--goal is {goal!r}: use minimize or maximize")


def _survey(
    program: Path,
    script: str,
    command: str,
    metric: str | None,
    goal: str | None,
    time_budget: float,
    run: bool,
    timeout: float | None,
) -> Findings:
    """What the code says, then what the brief runs print, as the findings the config is written from."""
    facts = static_facts(program, [script])
    budget_s, budget_note, warnings = budget_findings(facts, script, time_budget)
    if not run and metric is None:
        raise ConfigError("with --no-run nothing is printed to find the metric in: pass --metric NAME")
    probes = _probe_runs(program, command, facts, budget_s, timeout) if run else []
    printed = list(probes[0].metrics) if probes else []
    summary = summary_names(probes[0].log) if probes else []
    choice = choose_metric(printed, summary, metric, goal) or _ask_metric(printed, summary, metric)
    if probes and choice.name not in probes[0].metrics:
        raise ConfigError(
            f"{script} never printed `{choice.name}: <value>` in its brief run; it printed "
            f"{', '.join(printed) or 'no name: value line'}. Name one with --metric"
        )
    seed_note, seed_warnings = seed_findings(facts, script, probes, choice.name)
    warnings += seed_warnings
    if probes and "training_seconds" not in probes[0].metrics:
        warnings.append(
            f"{script} prints no `training_seconds: <value>`: the engine times the whole run instead, start-up "
            "and evaluation included, to tell whether a trial kept to its budget."
        )
    knobs, left_out = found_knobs(facts, [script])
    return Findings(
        program, script, command, choice, budget_s, knobs, left_out, warnings, budget_note, seed_note
    )


def _probe_runs(
    program: Path, command: str, facts: StaticFacts, budget_s: float, timeout: float | None
) -> list[ProbeRun]:
    """One brief run; a second with another seed where the script reads OVERNIGHT_SEED (does it change the
    metric?). Each is said before it starts, with how long it should take."""
    brief = min(PROBE_BUDGET_S, budget_s) if facts.reads_budget else budget_s
    limit = timeout or max(120.0, 3 * brief + 60)
    seeds = [0, 1] if facts.reads_seed else [0]
    runs = []
    for seed in seeds:
        expected = f"about {brief:g} s of training" if facts.reads_budget else _own_time(facts)
        console.print(
            f"Running `{command}` in a scratch copy of {program.name} (OVERNIGHT_SEED={seed}, "
            f"OVERNIGHT_TIME_BUDGET={brief:g}; {expected}; stopped after {limit:g} s) to see what it prints..."
        )
        result = probe(program, command, seed, brief, limit)
        if not result.finished:
            raise ConfigError(
                f"the brief run of `{command}` ended {result.outcome.value} (exit code {result.exit_code}) after "
                f"{result.wall_s:.3g} s. Its last lines:\n{result.last_lines()}\nFix the script (or raise "
                "--timeout), or write the config from the code alone with --no-run --metric NAME"
            )
        console.print(
            f"  done in {result.wall_s:.3g} s; it printed {', '.join(result.metrics) or 'no metric'}"
        )
        runs.append(result)
    return runs


def _own_time(facts: StaticFacts) -> str:
    fixed = facts.fixed_budget
    if fixed is None:
        return "it keeps no budget, so as long as it takes"
    return f"it trains for its own {fixed.name} = {fixed.seconds:g} s ({fixed.path})"


def _ask_metric(printed: list[str], summary: list[str], metric: str | None) -> MetricChoice:
    """Ask on a terminal which printed name is the metric and which way is better; elsewhere, say what to pass."""
    if not console.is_terminal:
        names = ", ".join(printed) or "no `name: value` line"
        raise ConfigError(
            f"cannot tell the metric{f' {metric!r}' if metric else ''} and its goal from the names (it printed "
            f"{names}): pass --metric NAME --goal minimize|maximize"
        )
    name = metric or typer.prompt(f"Which printed value is the metric? ({', '.join(printed)})")
    goal = metric_goal(name) or typer.prompt("minimize or maximize?", default="minimize")
    return MetricChoice(name, goal, "given at the prompt", tuple(metric_candidates(printed, summary)))


def _print_findings(findings: Findings, out: Path) -> None:
    metric = findings.metric
    console.print(f"Metric: [bold]{metric.name}[/bold] ({metric.goal}): {metric.why}.")
    if metric.others:
        console.print(f"  also printed: {', '.join(metric.others)} (--metric to choose another)")
    console.print(f"Budget: {findings.time_budget_s:g} s per trial: {findings.budget_note}.")
    console.print(f"Seed: {findings.seed_note}.")
    for warning in findings.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"Knobs the offline planner will turn ({len(findings.knobs)}):")
    for turned in findings.knobs:
        knob = turned.knob
        span = f"{knob.choices}" if knob.type == "choice" else f"{knob.low:g} .. {knob.high:g}"
        scale = " powers of two" if knob.powers_of_two else " log" if knob.log else ""
        console.print(f"  {knob.name} = {turned.current!r}: {span}{scale}; {turned.where}", highlight=False)
    if findings.left_out:
        console.print("Left out:")
        for name, why in findings.left_out:
            console.print(f"  {name}: {why}", highlight=False)
    shown = os.path.relpath(out) if out.is_relative_to(Path.cwd()) else str(out)
    console.print(
        f"Wrote {out}. Prune the knobs, then: overnight show-config {shown}; overnight run {shown} --waves 1"
    )
