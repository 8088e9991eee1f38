"""The `overnight` commands. They compose the Prefect flows, so this is the one module of the core that reaches
Prefect, and only lazily (importing Prefect costs seconds, which `--help` should not pay)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from overnight import progress
from overnight.config import (
    CampaignConfig,
    default_config_path,
    resolve_planner,
)

if TYPE_CHECKING:
    from overnight.memory.records import CampaignStatus, TrialRecord

from overnight.cli.common import (
    ConfigArg,
    console,
    load_campaign,
    prepare_prefect_env,
    quiet_libraries,
    quiet_prefect_console,
    show_config_warnings,
    silence_shutdown_noise,
    stop_on_interrupt,
)
from overnight.cli.display import ProgressDisplay, print_summary
from overnight.cli.init_command import init

app = typer.Typer(
    name="overnight",
    help="Autonomous ML research while you sleep: plan a wave of experiments, run them in parallel, keep what "
    "truly helps, repeat. Prefect runs the loop; MLflow remembers every trial.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.command(name="init")(init)


@app.command()
def run(
    config: ConfigArg = None,
    waves: Annotated[
        int | None, typer.Option(help="Waves after the baseline (overrides budget.waves).")
    ] = None,
    wave_size: Annotated[
        int | None, typer.Option(help="Trials per wave, run at once (overrides wave_size).")
    ] = None,
    time_budget: Annotated[
        float | None, typer.Option(help="Training seconds per trial (overrides trial.time_budget_s).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's own log lines.")] = False,
) -> None:
    """Run a campaign: a baseline, then waves of trials until a budget ends; print what was found."""
    path = (config or default_config_path()).resolve()
    overrides: dict[str, object] = {}
    if waves is not None:
        overrides["budget.waves"] = waves
    if wave_size is not None:
        overrides["wave_size"] = wave_size
    if time_budget is not None:
        overrides["trial.time_budget_s"] = time_budget
    campaign = load_campaign(
        path, overrides, planner=True, store=True, backend=True
    )  # fail before anything starts
    planner, why = resolve_planner(campaign)
    console.print(
        f"Campaign [bold]{campaign.name}[/bold]: program {campaign.program}, metric {campaign.metric.name} "
        f"({campaign.metric.goal}), {campaign.budget.waves} waves x {campaign.wave_size} trials, "
        f"{campaign.trial.time_budget_s:g} s per trial."
    )
    model = f" ({campaign.planner.model})" if planner == "claude" else ""
    console.print(f"Planner: {planner}{model}, because {why}.")
    console.print(f"Backend: {campaign.backend.kind}. MLflow: {campaign.resolved_tracking_uri()}")
    prepare_prefect_env(campaign.prefect_api_url)
    prefect_api = os.environ.get("PREFECT_API_URL")
    console.print(
        f"Prefect: {prefect_api}"
        if prefect_api
        else "[dim]Starting Prefect (a local API on first use takes ~15-30 s)...[/dim]"
    )
    from flows.campaign import campaign_flow

    quiet_libraries()  # after the import: MLflow sets its own log level when it loads

    quiet_prefect_console(verbose)
    signal.signal(signal.SIGINT, stop_on_interrupt)
    with ProgressDisplay(campaign.budget.waves, campaign.wave_size, campaign.pipeline) as display:
        progress.subscribe(display.on_event)
        try:
            state = campaign_flow(config_path=str(path), overrides=overrides, return_state=True)
        except KeyboardInterrupt:
            state = None
        finally:
            progress.unsubscribe(display.on_event)
    silence_shutdown_noise()
    if state is None or state.is_crashed():
        console.print(
            "[yellow]The campaign was interrupted.[/yellow] What finished is in MLflow; the trials that were "
            "running are marked killed, with the reason."
        )
        raise typer.Exit(130)
    if state.is_failed():
        try:
            state.result()
        except Exception as error:
            console.print(f"[red]The campaign failed:[/red] {error}")
        raise typer.Exit(1)
    summary = state.result()
    print_summary(summary, str(state.state_details.flow_run_id))


@app.command()
def serve(
    config: ConfigArg = None,
    cron: Annotated[
        str, typer.Option(help="When to run, as cron (default: 01:00 every night).")
    ] = "0 1 * * *",
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the cron, e.g. Europe/Paris (default: UTC).")
    ] = None,
    name: Annotated[str, typer.Option(help="Deployment name, shown in the Prefect UI.")] = "nightly",
) -> None:
    """Serve the campaign on a schedule from this machine, no work pool needed (Ctrl-C stops serving)."""
    path = (config or default_config_path()).resolve()
    campaign = load_campaign(path, planner=True, store=True, backend=True)
    prepare_prefect_env(campaign.prefect_api_url)
    from prefect.schedules import Cron

    from flows.campaign import campaign_flow

    console.print(
        f"Serving campaign {campaign.name} as deployment 'campaign/{name}' on '{cron}' {timezone or 'UTC'}."
    )
    campaign_flow.serve(
        name=name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters={"config_path": str(path)},
        description=f"Nightly campaign {campaign.name} ({path})",
        tags=["overnight", campaign.name],
    )


@app.command()
def plan(
    config: ConfigArg = None,
    show_prompt: Annotated[
        bool,
        typer.Option(
            "--show-prompt",
            help="Print exactly what the next call would send Claude (system text, tools, prompt), and call nothing.",
        ),
    ] = False,
) -> None:
    """Print the next wave's proposals (hypothesis, rationale, diff) without running or recording them."""
    from overnight import agent_run
    from overnight.budget import next_wave
    from overnight.planners import make_planner
    from overnight.proposals import apply_proposal, unified_diff
    from overnight.wave.plan import plan_context

    campaign = load_campaign(config, planner=True, store=True)
    kind, why = resolve_planner(campaign)
    memory = agent_run.open_memory(campaign)
    quiet_libraries()
    agent_run_id, wave, left = next_wave(campaign, memory)  # as the campaign would plan it, budget text too
    suggestions = tuple(memory.pending_suggestions().values())
    context = plan_context(
        campaign, memory, wave, campaign.wave_size, left, suggestions, agent_run_id=agent_run_id
    )
    planner = make_planner(campaign)
    if show_prompt:
        if kind != "claude":
            console.print(f"The offline planner sends no prompt ({why}).")
            return
        from overnight.planners.claude import describe_request

        console.print(describe_request(planner.first_request(context)), markup=False, highlight=False)
        return
    console.print(f"Planner: {kind}, because {why}. Next wave: {context.wave}, {context.n} proposals.")
    try:
        proposed = planner.propose(context)
    except Exception as error:  # e.g. a rejected API key: say it plainly
        console.print(f"[red]The planner failed:[/red] {error}")
        raise typer.Exit(1) from None
    for number, proposal in enumerate(proposed.proposals, start=1):
        diff = unified_diff(
            context.champion_files, apply_proposal(context.champion_files, proposal, campaign.editable)
        )
        console.print(
            Panel(
                f"{proposal.rationale}\nexpected: {proposal.expected or '-'}",
                title=f"{number}. {proposal.hypothesis}",
                expand=False,
            )
        )
        console.print(Syntax(diff, "diff", theme="ansi_dark"))
    if proposed.note:
        console.print(f"Note: {proposed.note}")
    if proposed.usage.calls:
        console.print(
            f"Planner usage: {proposed.usage.input_tokens} input / {proposed.usage.output_tokens} output "
            f"tokens ({proposed.usage.cache_read_tokens} read from the cache, "
            f"{proposed.usage.cache_creation_tokens} written to it), {len(proposed.queries)} memory queries, "
            f"${proposed.cost_usd:.4f}."
        )


@app.command()
def report(
    config: ConfigArg = None,
    night: Annotated[
        str | None, typer.Option(help="Date of the night (YYYY-MM-DD); default: the newest agent run.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for report.md and progress.png.")] = None,
) -> None:
    """Write the morning report: the progress chart, improvements, outcomes, top changes, spend, links."""
    from datetime import date

    from overnight import agent_run
    from overnight.report import write_report

    try:
        day = date.fromisoformat(night) if night else None
    except ValueError:
        console.print(f"[red]--night:[/red] {night!r} is not a date like 2026-11-27")
        raise typer.Exit(2) from None
    campaign = load_campaign(config, store=True)
    memory = agent_run.open_memory(campaign)
    quiet_libraries()
    try:
        agent = memory.agent_run_on(day)
        written = write_report(memory, out or agent_run.report_dir(campaign, agent.run_id), day)
    except LookupError as error:
        console.print(f"[red]No report:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(written.markdown, markup=False, highlight=False)
    console.print(f"Written to {written.chart.parent} and to the agent run in MLflow.")


@app.command()
def export(
    config: ConfigArg = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the champion's files, LINEAGE.md and champion.patch (created)."),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(
            help="Instead: a new git branch from HEAD, one commit per champion version, in the repository "
            "holding the program (your working tree and current branch stay as they are)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into --out even if it is not empty.")] = False,
) -> None:
    """Write the champion for review: its files, lineage and patch to a folder, or its lineage as a git branch."""
    from overnight import agent_run
    from overnight.export import ExportError, check_folder, git_target

    if (out is None) == (branch is None):
        console.print("[red]export:[/red] give one of --out DIR or --branch NAME")
        raise typer.Exit(2)
    campaign = load_campaign(config, store=True)
    try:  # refuse before reading MLflow
        if out is not None:
            check_folder(out, force)
        else:
            git_target(campaign.program, branch)
    except ExportError as error:
        console.print(f"[red]Not exported:[/red] {error}", highlight=False)
        raise typer.Exit(2) from None
    memory = agent_run.open_memory(campaign)
    quiet_libraries()
    versions = memory.champion_versions()
    if not versions:
        console.print(f"Campaign {campaign.name}: no champion yet: run a campaign first.")
        raise typer.Exit(1)
    champion = versions[-1]
    metric = campaign.metric.name
    value = f"{champion.metric:.6g}" if champion.metric is not None else "-"
    console.print(
        f"Champion of {campaign.name}: {champion.trial_id} ({metric}={value}), "
        f"{len(versions) - 1} change(s) on the program as shipped.",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    try:
        if out is not None:
            next_steps = _export_to_folder(versions, out, campaign.program, metric, force)
        else:
            next_steps = _export_to_branch(versions, campaign.program, branch, metric)
    except (ExportError, OSError) as error:
        console.print(f"[red]Not exported:[/red] {error}", highlight=False)
        raise typer.Exit(2) from None
    for line in next_steps:
        console.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


def _export_to_folder(versions, out: Path, program: Path, metric: str, force: bool) -> list[str]:
    """The champion's files, LINEAGE.md and champion.patch in a folder; returns the commands to run next."""
    from overnight.export import export_folder

    export_folder(versions, out, metric, force)
    target = out.resolve()
    console.print(
        f"Written to {target}: {', '.join(sorted(versions[-1].files))}, LINEAGE.md, champion.patch",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    console.print("Next: read the lineage, then apply the champion to your program if you agree:")
    return [f"less {target / 'LINEAGE.md'}", f"patch -p1 -d {program} < {target / 'champion.patch'}"]


def _export_to_branch(versions, program: Path, branch: str, metric: str) -> list[str]:
    """One commit per champion version on a new branch from HEAD; returns the commands to run next."""
    from overnight.export import export_branch

    made = export_branch(versions, program, branch, metric)
    console.print(
        f"Branch {made.branch} created in {made.repository} with {len(made.commits)} commit(s) on "
        f"{made.base[:12]}; your working tree and current branch are unchanged.",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    console.print("Next: review one commit per version, then merge the branch if you agree:")
    return [
        f"git -C {made.repository} log -p --reverse {made.base[:12]}..{made.branch}",
        f"git -C {made.repository} merge {made.branch}",
    ]


@app.command()
def suggest(
    hypothesis: Annotated[str, typer.Argument(help='What to try, e.g. "a lower LEARNING_RATE".')],
    config: ConfigArg = None,
) -> None:
    """Queue a hypothesis of yours: the next wave includes it (Claude turns it into edits; offline, named knobs)."""
    from overnight import agent_run

    campaign = load_campaign(config, store=True)
    memory = agent_run.open_memory(campaign)
    memory.add_suggestion(hypothesis)
    pending = len(memory.pending_suggestions())
    console.print(
        f"Queued for the next wave of {campaign.name} ({pending} suggestion(s) waiting): {hypothesis}"
    )


@app.command()
def status(config: ConfigArg = None) -> None:
    """Show what runs now: the wave, its trials, where, for how long, and the spend so far."""
    import time

    campaign = load_campaign(config, store=True)
    now, champion, night = _read_status(campaign)
    if now is None:
        best = (
            f"; champion {champion.trial_id} {campaign.metric.name}={champion.metric:.6g}" if champion else ""
        )
        console.print(f"Campaign {campaign.name}: nothing running{best}.", highlight=False)
        if night:
            console.print(f"Last night: {campaign.metric.name} {night}", highlight=False)
        return
    minutes = (time.time() * 1000 - now.started_ms) / 60000
    waves = ", ".join(str(w) for w in now.waves) or "between waves"
    console.print(
        f"Campaign {campaign.name}: agent run {now.agent_run_name} running for {minutes:.1f} min; wave {waves}; "
        f"{now.finished} trials finished, {len(now.running)} running; spend so far {now.trial_hours:.3f} trial-hours, "
        f"${now.llm_usd:.2f} of language-model calls, ${now.compute_usd:.2f} of compute (where priced).",
        highlight=False,
    )
    table = Table("trial", "change", "where", "running for")
    for trial in now.running:
        table.add_row(
            trial.trial_id,
            trial.hypothesis,
            trial.where or "(starting)",
            f"{(time.time() * 1000 - trial.started_ms) / 1000:.0f} s",
        )
    console.print(table)


def _read_status(campaign: CampaignConfig) -> tuple[CampaignStatus | None, TrialRecord | None, str]:
    """What runs now, and the champion and the last night's improvement when nothing runs. A SQLite store is read directly, read-only, with the
    stdlib, and a PostgreSQL store with SQLAlchemy alone: importing MLflow and opening the store through it cost
    about 2 s, ten times the queries."""
    import sqlite3

    from overnight.memory import sql as store_sql

    path = store_sql.sqlite_file(campaign.resolved_tracking_uri())
    if path is not None:
        try:
            return store_sql.read_status(path, campaign.name, campaign.metric.name)
        except sqlite3.Error:
            pass  # not a store these queries know (e.g. one MLflow has yet to upgrade): MLflow reads it below
    uri = campaign.resolved_tracking_uri()
    # A team's PostgreSQL: read with SQLAlchemy alone, as the SQLite file above.
    if uri.startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri)
        try:
            with engine.connect() as db:
                return store_sql.status_of(
                    lambda query, values: db.execute(sqlalchemy.text(query), values).all(),
                    campaign.name,
                    campaign.metric.name,
                    sqlite=False,
                )
        except sqlalchemy.exc.ProgrammingError:
            pass  # not a store these queries know (e.g. one MLflow has yet to create): MLflow reads it below
        finally:
            engine.dispose()
    from overnight import agent_run

    memory = agent_run.open_memory(campaign)
    quiet_libraries()
    now = memory.status()
    if now is not None:
        return now, None, ""
    return None, memory.champion(), memory.last_night()


@app.command()
def show_config(config: ConfigArg = None) -> None:
    """Validate a campaign config and print it with every default filled in, the knobs the offline planner will
    turn (declared or guessed) with their ranges and current values, and the constants it leaves out, with why."""
    from overnight.knobs import knob_table, knobs_left_out

    campaign = load_campaign(config)
    shown = json.loads(campaign.model_dump_json())
    shown["knobs_turned"] = knob_table(campaign)
    shown["knobs_left_out"] = knobs_left_out(campaign)
    console.print_json(json.dumps(shown, default=str))


def main() -> None:
    show_config_warnings()
    try:
        app(prog_name="overnight")
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/yellow] Finished trials are in MLflow.")
        sys.exit(130)
