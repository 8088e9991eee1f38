"""Shared fixtures: real MLflow stores in temporary folders, one real Prefect API for the whole session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests choose their own stores

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def prefect_api():
    """A real (temporary) Prefect API server for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def quadratic(tmp_path: Path) -> Path:
    """A copy of the quadratic program (metric = known function of its knobs) with its campaign config."""
    target = tmp_path / "quadratic"
    shutil.copytree(FIXTURES / "quadratic", target)
    return target


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One real SQLite store for the session (its migrations cost seconds); tests use their own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def campaign_name(request) -> str:
    return request.node.name.replace("[", "-").replace("]", "")


@pytest.fixture
def messages_api(monkeypatch):
    """The local Messages API stand-in, with the real anthropic client pointed at it by its environment variables.
    Unless a test scripts them, the planner's rounds of memory queries get a plain answer that queries nothing."""
    from standins.messages_api import TEST_KEY, MessagesAPI, text_answer

    with MessagesAPI() as server:
        server.script("search_trials", text_answer("The summary is enough; no query needed."))
        monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL for the session (about 1 s to start), with the databases `mlflow` and `prefect`;
    skipped, naming what is missing, where it cannot run."""
    from servers import PostgresServer, postgres_problem

    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_tracking_server(postgres, tmp_path_factory):
    """An MLflow tracking server on the session's PostgreSQL (about 7 s to start); tests may kill and restart it."""
    from servers import TrackingServer

    server = TrackingServer(tmp_path_factory.mktemp("mlflow-pg"), postgres.url("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_prefect_server(postgres, tmp_path_factory):
    """A Prefect server on the session's PostgreSQL (about 9 s to start); tests may kill and restart it."""
    from servers import PrefectServer

    server = PrefectServer(
        tmp_path_factory.mktemp("prefect-pg"), postgres.url("prefect", "postgresql+asyncpg")
    )
    server.start()
    yield server
    # This process's Prefect log and event workers send what they hold before the server goes (else they retry
    # a server that is gone, at exit, for a minute or more).
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)
    server.stop()
