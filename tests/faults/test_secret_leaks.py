"""A campaign run with fake secrets in the orchestrator's environment, and a program that prints everything it can
find: no secret reaches any log, artifact, param, tag or metric name in MLflow or Prefect, and no trial ever sees one.
"""

import json
import secrets
import string
from pathlib import Path

import pytest
from faultkit import write_program
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, LogFilter

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow

TRAIN = '''"""Prints its whole environment and every secret it can lay hands on."""

import json
import os
from pathlib import Path

X = 1.0  # best at 3
MODE = "quiet"  # quiet | crash

Path(os.environ["FAULT_MARKS"], os.environ["OVERNIGHT_TRIAL_ID"]).write_text(json.dumps(dict(os.environ)))
for name, value in sorted(os.environ.items()):
    print(f"env {name}={value}")
found = Path("found_credentials.txt").read_text()  # e.g. a credentials file left in the program folder
print(f"found: {found}")
if MODE == "crash":
    raise RuntimeError(f"could not log in with {found}")
print(f"loss: {(X - 3.0) ** 2}")
'''


def token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def fake_secrets() -> dict[str, str]:
    """Secret-looking variables, and a credential-shaped value under a harmless name; built here, never stored."""
    letters = string.ascii_letters + string.digits
    return {
        "ANTHROPIC_API_KEY": "sk-" + "ant-api03-" + token(letters, 40),
        "AWS_ACCESS_KEY_ID": "AKIA" + token(string.ascii_uppercase + string.digits, 16),
        "AWS_SECRET_ACCESS_KEY": token(letters + "/+", 40),
        "MY_SERVICE_TOKEN": "tok-" + token(letters, 24),
        "DEPLOY_NOTE": "gh" + "p_" + token(letters, 36),  # only its shape gives it away
    }


def test_no_secret_of_the_orchestrator_is_stored_or_seen_by_a_trial(prefect_api, tmp_path, monkeypatch):
    planted = fake_secrets()
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    marks = tmp_path / "marks"
    marks.mkdir()
    state_dir = tmp_path / "state"
    path = write_program(
        tmp_path / "program",
        TRAIN,
        {
            "name": "secrets",
            "metric": {"name": "loss", "goal": "minimize"},
            "trial": {"time_budget_s": 1, "timeout_s": 30, "env": {"FAULT_MARKS": str(marks)}},
            "wave_size": 3,
            "budget": {"waves": 1},
            "baseline_repeats": 2,
            "decision": {"confirm_runs": 1, "confirm_top": 1},
            "planner": {"kind": "offline"},  # the key would otherwise switch the planner to Claude
            "knobs": [
                {"name": "X", "type": "float", "low": 0.1, "high": 10, "log": True},
                {"name": "MODE", "type": "choice", "choices": ["quiet", "crash"]},
            ],
            "tracking_uri": f"sqlite:///{state_dir / 'mlflow.db'}",
            "state_dir": str(state_dir),
        },
    )
    (tmp_path / "program" / "found_credentials.txt").write_text(" ".join(planted.values()))
    state = campaign_flow(config_path=str(path), return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    assert summary.outcomes.get("crash") == 1  # the crash's traceback carries the secrets too

    # The trials never saw the orchestrator's secrets in their environment.
    seen = [json.loads(m.read_text()) for m in marks.iterdir()]
    assert len(seen) == summary.trials
    for environment in seen:
        assert not set(planted) & set(environment)
        assert not set(planted.values()) & set(environment.values())

    # Everything MLflow holds, as text: experiment tags, each run's name, params, tags, metric names, artifacts.
    client = MlflowClient(summary.tracking_uri)
    experiment = client.get_experiment(summary.experiment_id)
    stored = [json.dumps(experiment.tags)]
    runs = client.search_runs([summary.experiment_id], max_results=1000)
    downloads = tmp_path / "downloads"
    for run in runs:
        stored += [run.info.run_name or "", json.dumps(run.data.params), json.dumps(run.data.tags)]
        stored += list(run.data.metrics)
        local = Path(client.download_artifacts(run.info.run_id, "", str(downloads / run.info.run_id)))
        stored += [p.read_text(errors="replace") for p in local.rglob("*") if p.is_file()]
    tails = [
        (downloads / r.info.run_id / "log_tail.txt").read_text()
        for r in runs
        if r.data.tags.get("overnight.kind") == "trial"
    ]
    found = [line for tail in tails for line in tail.splitlines() if line.startswith("found: ")]
    assert len(found) == summary.trials and all(
        line == "found: " + " ".join(["[redacted]"] * len(planted)) for line in found
    )
    assert sum("could not log in with [redacted]" in tail for tail in tails) == 1  # the crash's traceback too
    # What Prefect holds of this campaign: its logs and the artifacts of the session.
    with get_client(sync_client=True) as prefect:
        flow_run_id = state.state_details.flow_run_id
        waves = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
        flow_runs = [flow_run_id, *(w.id for w in waves)]
        stored += [
            log.message for log in prefect.read_logs(log_filter=LogFilter(flow_run_id={"any_": flow_runs}))
        ]
        stored += [json.dumps(a.data) + str(a.description) for a in prefect.read_artifacts()]
    # And the files overnight keeps besides (the SQLite store, artifacts, reports); the trial folders are left out:
    # they hold each run's own unscrubbed output, where the program itself put it.
    files = [p for p in state_dir.rglob("*") if p.is_file() and "work" not in p.relative_to(state_dir).parts]
    stored += [p.read_bytes().decode(errors="replace") for p in files]

    text = "\n".join(stored)
    leaks = {name for name, value in planted.items() if value in text}
    assert leaks == set(), f"secrets stored: {sorted(leaks)}"
    print(f"\nsearched {len(runs)} runs, {len(files)} files, {len(text)} characters: no secret found")
