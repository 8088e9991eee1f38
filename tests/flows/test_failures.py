"""Failures in a real campaign: a crashing trial is a result, not a retry; a crashing baseline stops cleanly."""

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow


def configure(quadratic, tmp_path, **changes):
    path = configure_campaign(
        quadratic,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        **changes,
    )
    return path


def test_a_crashing_trial_is_recorded_and_not_retried(prefect_api, quadratic, tmp_path):
    train = quadratic / "train.py"
    train.write_text(
        train.read_text() + "if X > 1.5:\n    raise RuntimeError('X too large for this program')\n"
    )
    path = configure(quadratic, tmp_path, budget={"waves": 1})
    state = campaign_flow(config_path=str(path), return_state=True)
    assert state.is_completed()
    summary = state.result()
    # two baseline copies; X 1.0 -> 2.0 crashes; X 1.0 -> 0.5 runs (worse: nothing to confirm)
    assert summary.outcomes == {"ok": 3, "crash": 1}
    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs([summary.experiment_id], "tags.`overnight.outcome` = 'crash'")
    (crashed,) = runs
    assert crashed.data.tags["overnight.reason"] == "exited with status 1"
    with open(client.download_artifacts(crashed.info.run_id, "log_tail.txt")) as log:
        assert "RuntimeError: X too large for this program" in log.read()
    with get_client(sync_client=True) as prefect:
        waves = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [w.id for w in waves]}))
    trial_tasks = [t for t in tasks if t.name.startswith("trial")]
    assert len(trial_tasks) == 4 and all(t.run_count == 1 for t in trial_tasks)  # never retried


@pytest.mark.parametrize("pipeline", [False, True])
def test_a_crashing_baseline_stops_the_campaign_with_the_reason(prefect_api, quadratic, tmp_path, pipeline):
    (quadratic / "train.py").write_text("X = 1.0\nY = 2\nMODE = 'plain'\nimport missing_module_xyz\n")
    path = configure(quadratic, tmp_path, pipeline=pipeline)
    state = campaign_flow(config_path=str(path), return_state=True)
    assert state.is_failed()
    with pytest.raises(
        Exception, match=r"the baseline trial failed \(crash: exited with status 1\)"
    ) as error:
        state.result()
    assert "missing_module_xyz" in str(error.value)  # the log tail says why
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quadratic")
    (agent,) = client.search_runs([experiment.experiment_id], "tags.`overnight.kind` = 'agent_run'")
    assert agent.info.status == "FAILED"
    trials = client.search_runs([experiment.experiment_id], "tags.`overnight.kind` = 'trial'")
    baselines = [t for t in trials if t.data.tags["overnight.role"] == "baseline"]
    assert len(baselines) == 2 and {b.data.tags["overnight.outcome"] for b in baselines} == {"crash"}
    assert all(r.info.status != "RUNNING" for r in client.search_runs([experiment.experiment_id]))
    if not pipeline:
        assert len(trials) == 2
    for trial in trials:  # pipelined: wave 1, planned while the baseline ran, stopped and says why
        if trial.data.tags["overnight.role"] != "baseline" and trial.info.status == "KILLED":
            assert "wave 0 failed: the baseline trial failed" in trial.data.tags["overnight.reason"]


def test_a_deadline_stops_starting_waves_and_the_run_still_reports(prefect_api, quadratic, tmp_path):
    import time

    train = quadratic / "train.py"  # each trial takes about a second
    train.write_text(train.read_text().replace("import os\n", "import os\nimport time\ntime.sleep(1)\n", 1))
    path = configure(quadratic, tmp_path, budget={"waves": 1000, "deadline": "25s"})
    started = time.monotonic()
    state = campaign_flow(config_path=str(path), return_state=True)
    elapsed = time.monotonic() - started
    assert state.is_completed(), state
    summary = state.result()
    assert summary.stopped_by.startswith("deadline")
    assert 1 <= summary.waves < 1000
    assert elapsed < 25 + 15  # it stopped at the deadline, give or take the closing bookkeeping
    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs([summary.experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    agent = next(r for r in runs if r.data.tags.get("overnight.kind") == "agent_run")
    assert agent.data.metrics["waves"] == summary.waves  # the summary was written
    assert {a.path for a in client.list_artifacts(agent.info.run_id, "report")} == {
        "report/report.md",
        "report/progress.png",
    }  # and so was the morning report
