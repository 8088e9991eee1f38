"""`overnight suggest`: a person's hypothesis is queued in MLflow and the next wave includes it."""

import os
import subprocess
import sys

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient

from flows.campaign import campaign_flow
from overnight.memory.store import Memory

pytestmark = pytest.mark.slow


def test_the_next_wave_includes_the_suggestions_or_says_why_not(prefect_api, quadratic, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = configure_campaign(
        quadratic, tracking_uri=uri, state_dir=str(tmp_path / "state"), budget={"waves": 1}
    )
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    for text in ("try a lower X", "paint it blue"):
        queued = subprocess.run(
            [sys.executable, "-m", "overnight.cli", "suggest", text, str(path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert queued.returncode == 0 and "Queued for the next wave of quadratic" in queued.stdout, (
            queued.stdout
        )

    summary = campaign_flow(config_path=str(path))
    client = MlflowClient(uri)
    wave_one = "tags.`overnight.wave` = '1'"
    trials = client.search_runs([summary.experiment_id], f"{wave_one} and tags.`overnight.kind` = 'trial'")
    suggested = [t for t in trials if t.data.tags["overnight.proposed_by"] == "suggestion"]
    assert [t.data.tags["overnight.hypothesis"] for t in suggested] == [
        "Suggestion: try a lower X (X 1.0 -> 0.5)"
    ]
    (wave,) = client.search_runs([summary.experiment_id], f"{wave_one} and tags.`overnight.kind` = 'wave'")
    assert "could not act on the suggestion 'paint it blue'" in wave.data.tags["overnight.planner_note"]
    assert Memory(uri, "quadratic", "minimize", "loss").pending_suggestions() == {}  # both taken up
