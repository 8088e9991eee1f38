"""`pipeline: true`: the next wave is planned while the current one runs; workers never exceed the wave size."""

from __future__ import annotations

import pytest
from helpers import most_at_once, processes_with, start_campaign, trial_span
from mlflow.tracking import MlflowClient

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow


def test_the_next_wave_is_planned_while_the_current_one_runs(prefect_api, tracking_uri, quadratic):
    script = (
        quadratic / "train.py"
    )  # the quadratic program, but each trial takes its time budget, as training does
    script.write_text(
        script.read_text().replace(
            "import os\n",
            "import os\nimport time\n\ntime.sleep(float(os.environ['OVERNIGHT_TIME_BUDGET']))\n",
            1,
        )
    )
    overrides = {
        "name": "pipelined",
        "tracking_uri": tracking_uri,
        "state_dir": str(quadratic.parent / "state"),
        "pipeline": True,
        "wave_size": 2,
        "budget.waves": 3,  # (each wave that crowns adds confirmation and re-measurement rounds of 4 s)
        "trial.time_budget_s": 4,
    }
    state = campaign_flow(
        config_path=str(quadratic / "campaign.yaml"), overrides=overrides, return_state=True
    )
    assert state.is_completed(), state
    summary = state.result()

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([summary.experiment_id], max_results=1000)
    (agent,) = [r for r in runs if r.data.tags["overnight.kind"] == "agent_run"]
    assert agent.info.status == "FINISHED"
    waves = {int(r.data.tags["overnight.wave"]): r for r in runs if r.data.tags["overnight.kind"] == "wave"}
    assert sorted(waves) == [0, 1, 2, 3]
    assert all(w.info.status == "FINISHED" for w in waves.values())
    trials = [r for r in runs if r.data.tags["overnight.kind"] == "trial"]
    assert all(t.info.status == "FINISHED" for t in trials)
    by_wave = {
        n: [t for t in trials if t.data.tags["mlflow.parentRunId"] == w.info.run_id] for n, w in waves.items()
    }

    # Never more trials at once than workers: later waves queued for the slots.
    assert most_at_once([trial_span(t) for t in trials]) <= 2

    for wave in range(1, 4):  # wave 1 too: it is planned while the baseline runs
        previous = [
            trial_span(t)
            for t in by_wave[wave - 1]
            if t.data.tags["overnight.role"] in ("candidate", "baseline")
        ]
        planned_at = waves[wave].info.start_time / 1000
        # Planned while the previous wave's trials still ran: they were pending for the planner.
        assert planned_at < max(end for _, end in previous), wave
        # Decisions in wave order: a wave finishes after the one before it.
        assert waves[wave].info.end_time >= waves[wave - 1].info.end_time

    # The planner did not repeat the trials it saw running.
    fingerprints = [
        t.data.tags["overnight.fingerprint"] for t in trials if t.data.tags["overnight.role"] == "candidate"
    ]
    assert len(fingerprints) == len(set(fingerprints))
    assert summary.champion <= summary.baseline
    assert summary.waves == 3


def test_ctrl_c_stops_every_wave_in_flight_and_leaves_nothing_running(prefect_api, quadratic, tmp_path):
    """Interrupted while wave 1 runs and wave 2 waits for workers: both stop, nothing stays RUNNING in MLflow."""
    import os
    import signal
    import time

    from prefect.settings import PREFECT_API_URL

    script = (
        quadratic / "train.py"
    )  # the baseline is quick; wave 1's trials record their pid and work a long time
    script.write_text(
        script.read_text()
        + "\nif '-w1-' in os.environ['OVERNIGHT_TRIAL_ID']:\n"
        + "    import time\n    open('pid', 'w').write(str(os.getpid()))\n    time.sleep(120)\n"
    )
    config = quadratic / "campaign.yaml"
    config.write_text(config.read_text().replace("timeout_s: 30", "timeout_s: 300") + "pipeline: true\n")
    env = {
        **{k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "COLUMNS": "100",
    }
    process = start_campaign(config, tmp_path, env)
    client = MlflowClient(f"sqlite:///{tmp_path / '.overnight' / 'mlflow.db'}")
    deadline = time.monotonic() + 180
    pid_files, waiting = [], []
    while time.monotonic() < deadline and not (len(pid_files) == 2 and waiting):
        time.sleep(0.5)
        pid_files = list((tmp_path / ".overnight" / "work").glob("*/*-w1-*/pid"))
        experiment = client.get_experiment_by_name("quadratic") if pid_files else None
        if experiment:  # wave 2 is planned: its trials wait for a worker
            waiting = client.search_runs(
                [experiment.experiment_id], "tags.`overnight.wave` = '2' and tags.`overnight.kind` = 'trial'"
            )
    assert len(pid_files) == 2 and waiting, "wave 1 never ran with wave 2 planned behind it"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "The campaign was interrupted" in output
    time.sleep(0.5)
    assert [processes_with(f"OVERNIGHT_TRIAL_ID={p.parent.name}\0") for p in pid_files] == [[], []]

    runs = client.search_runs([client.get_experiment_by_name("quadratic").experiment_id], max_results=1000)
    assert all(r.info.status != "RUNNING" for r in runs)
    for trial in runs:
        tags = trial.data.tags
        if tags.get("overnight.kind") == "trial" and tags["overnight.wave"] in ("1", "2"):
            assert trial.info.status == "KILLED" and "interrupt" in tags["overnight.reason"].lower(), tags
    # Nothing of wave 2 ever ran: it was queued behind wave 1.
    assert not list((tmp_path / ".overnight" / "work").glob("*/*-w2-*/run.log"))
