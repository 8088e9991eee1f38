"""What every command shares: the console, the config argument, the campaign checked before anything starts, and
quiet libraries."""

from __future__ import annotations

import logging
import os
import signal
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from overnight.config import (
    CampaignConfig,
    ConfigError,
    ConfigWarning,
    default_config_path,
    load_config,
    resolve_planner,
)
from overnight.errors import ExpectedError
from overnight.knobs import check_something_to_turn

if TYPE_CHECKING:
    pass

console = Console()

ConfigArg = Annotated[
    Path | None,
    typer.Argument(
        help="Campaign YAML. Default: the bundled tiny-GPT campaign on Shakespeare.", show_default=False
    ),
]


def load_campaign(
    config: Path | None,
    overrides: dict | None = None,
    *,
    planner: bool = False,
    store: bool = False,
    backend: bool = False,
) -> CampaignConfig:
    """The validated campaign, or exit 2 naming the cause: a bad config, `claude` without a key or the offline
    planner with nothing to turn (planner=True),
    an MLflow store that cannot be used (store=True), a backend not installed or bad resources (backend=True).
    Checked before anything starts."""
    try:
        campaign = load_config((config or default_config_path()).resolve(), overrides)
        if planner:
            check_something_to_turn(campaign, resolve_planner(campaign)[0])
        if backend:
            from overnight.backends import check_backend

            check_backend(campaign)
    except ConfigError as error:
        console.print(f"[red]Config error:[/red] {error}")
        raise typer.Exit(2) from None
    problem = tracking_problem(campaign.resolved_tracking_uri()) if store else ""
    if problem:
        console.print(f"[red]MLflow is not usable:[/red] {problem}")
        raise typer.Exit(2)
    return campaign


def tracking_problem(uri: str) -> str:
    """Why the MLflow store cannot be used, or "" when it can: checked before anything starts."""
    if uri.startswith(("http://", "https://")):
        import urllib.request

        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5) as answer:
                answer.read()
        except OSError as error:
            return (
                f"the tracking server {uri} does not answer ({getattr(error, 'reason', error)}). Start it "
                "(mlflow/server.sh), or unset MLFLOW_TRACKING_URI and tracking_uri to use the local SQLite store."
            )
    elif uri.startswith("postgresql"):
        return database_problem(uri)
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return f"cannot create the folder {folder} for the SQLite store: {error}"
    return ""


def database_problem(uri: str) -> str:
    """Why MLflow cannot use the database server at `uri` (no driver, no answer), or "" when it connects."""
    import sqlalchemy

    shown = sqlalchemy.engine.make_url(uri).render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 5})
    except (ModuleNotFoundError, sqlalchemy.exc.NoSuchModuleError) as error:
        return f"the driver for {shown} is not installed ({error}): pip install -e '.[team]'"
    try:
        with engine.connect():
            return ""
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
        return f"the database {shown} does not answer ({reason})."
    finally:
        engine.dispose()


def stop_on_interrupt(signum, frame) -> None:
    """Ctrl-C: stop the running trials (their own process groups never see it), then unwind the campaign."""
    from overnight.backends import interrupt_all

    signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once
    stopped = interrupt_all()
    console.print(
        f"[yellow]Interrupted:[/yellow] stopped {stopped} running trial(s); recording what finished."
    )
    raise KeyboardInterrupt


def prepare_prefect_env(api_url: str | None = None) -> None:
    """Offline-friendly defaults for Prefect's local API, set only where the user has not chosen; with `api_url`
    (the config's prefect_api_url) the campaign reports to that server instead. Set before Prefect is first used:
    exits 2 naming the URL when the server does not answer."""
    url = api_url or os.environ.get("PREFECT_API_URL")
    problem = prefect_problem(url) if url else ""
    if problem:
        console.print(f"[red]Prefect is not usable:[/red] {problem}")
        raise typer.Exit(2)
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def prefect_problem(api_url: str) -> str:
    """Why the Prefect API at `api_url` cannot be used, or "" when its health check answers."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=5) as answer:
            answer.read()
    except (OSError, ValueError) as error:
        return (
            f"the Prefect server {api_url} does not answer ({getattr(error, 'reason', error)}). Start it "
            "(deployments/prefect-server.sh), or unset prefect_api_url and PREFECT_API_URL to use a local one."
        )
    return ""


def quiet_libraries() -> None:
    """MLflow announces its database migrations at INFO; users need none of that."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def quiet_prefect_console(verbose: bool) -> None:
    """The progress bar tells the story; Prefect's INFO lines still reach its API and UI. An expected error
    (overnight.errors) is said once by the CLI: Prefect's console lines about it, with our stack, are left out."""
    if verbose:
        return
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler":
            handler.setLevel(logging.WARNING)
            handler.addFilter(ExpectedErrorFilter())


class ExpectedErrorFilter(logging.Filter):
    """Drops the console records of an expected error: the one carrying it, then each that repeats its message
    (a task's and a flow's final state)."""

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()  # the first line of each expected error seen

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ExpectedError):
            self.said.add(str(error).splitlines()[0][:80] if str(error) else type(error).__name__)
            return False
        message = record.getMessage()
        return not any(said in message for said in self.said)


def silence_shutdown_noise() -> None:
    """Prefect's temporary server logs cancelled event flushes as it stops at exit, after the work is done."""
    logging.getLogger("prefect.server").setLevel(logging.CRITICAL + 1)
    logging.getLogger("prefect").setLevel(logging.WARNING)


def show_config_warnings() -> None:
    """A config warning is one line for the user (`warning: ...`), not Python's file:line report."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, ConfigWarning):
            console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
