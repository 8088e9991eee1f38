"""Shared by the fault tests: a tracking server that can be killed and restarted on the same port and store."""

from __future__ import annotations

import pytest
from servers import TrackingServer


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """One tracking server for the fault tests of the session (it starts in 15-20 s); tests may kill and restart it."""
    server = TrackingServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()
