"""Dispatch on the real local backend and a real MLflow store: what the engine itself records beside each trial's
metrics (how many trials ran at once while it ran, its wall time, whether it kept to its budget)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.tracking import MlflowClient

from overnight.backends.local import LocalBackend
from overnight.config import CampaignConfig
from overnight.memory.store import Memory
from overnight.wave import dispatch
from overnight.wave.scope import PlannedTrial

# Trains its whole 1 s budget by its own account, and long enough that trials started together overlap.
TRAIN = "import time\ntime.sleep(1)\nprint('loss: 0.5')\nprint('training_seconds: 1.0')\n"


@pytest.fixture
def campaign(tmp_path, tracking_uri, campaign_name):
    program = tmp_path / "program"
    program.mkdir()
    (program / "train.py").write_text(TRAIN)
    config = CampaignConfig(
        name=campaign_name,
        program=program,
        metric={"name": "loss"},
        trial={"time_budget_s": 1, "timeout_s": 30},
        tracking_uri=tracking_uri,
        state_dir=tmp_path / "state",
    )
    memory = Memory(
        tracking_uri, campaign_name, goal="minimize", metric="loss", artifact_root=tmp_path / "art"
    )
    backend = LocalBackend(program=program, work_root=tmp_path / "work", metric="loss")
    agent = memory.start_agent_run("night", {})
    return config, memory, backend, agent, memory.start_wave(agent, 1)


def plan(memory, agent, wave_run, trial_id, script=TRAIN) -> PlannedTrial:
    files = {"train.py": script}
    run_id = memory.start_trial(
        wave_run_id=wave_run,
        agent_run_id=agent,
        trial_id=trial_id,
        wave=1,
        hypothesis=trial_id,
        rationale="",
        params={},
        files=files,
        diff="",
        fingerprint=trial_id,
        parent_champion="",
        budget_s=1,
    )
    return PlannedTrial(trial_id, run_id, trial_id, files)


def run_and_record(config, memory, backend, trial):
    dispatch.record_result(memory, trial, dispatch.run_trial(config, memory, backend, trial))


def test_each_trial_records_how_many_trials_ran_at_once_while_it_ran(campaign, tracking_uri):
    config, memory, backend, agent, wave_run = campaign
    together = [plan(memory, agent, wave_run, f"together-{i}") for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda trial: run_and_record(config, memory, backend, trial), together))
    alone = plan(memory, agent, wave_run, "alone")
    run_and_record(config, memory, backend, alone)

    client = MlflowClient(tracking_uri)
    metrics = {t.trial_id: client.get_run(t.run_id).data.metrics for t in [*together, alone]}
    assert {trial_id: m["concurrency"] for trial_id, m in metrics.items()} == {
        "together-0": 3,
        "together-1": 3,
        "together-2": 3,
        "alone": 1,
    }
    # The script's own training time and the engine's clock, side by side on the run.
    for m in metrics.values():
        assert m["training_seconds"] == 1.0
        assert 1.0 <= m["wall_s"] <= m["duration_s"]
    records = {t.trial_id: t for t in memory.wave_trials(wave_run)}
    assert records["alone"].metrics["concurrency"] == 1 and records["alone"].outcome.value == "ok"


def test_a_trial_that_trains_past_its_budget_is_over_budget_in_mlflow_and_never_ok(campaign, tracking_uri):
    config, memory, backend, agent, wave_run = campaign
    script = "import time\ntime.sleep(1.5)\nprint('loss: 0.01')\nprint('training_seconds: 1.5')\n"
    trial = plan(memory, agent, wave_run, "slow", script)
    run_and_record(config, memory, backend, trial)

    run = MlflowClient(tracking_uri).get_run(trial.run_id)
    assert run.data.tags["overnight.outcome"] == "over_budget"
    assert run.data.tags["overnight.reason"].startswith(
        "trained 1.5 s (its training_seconds) on a 1 s budget"
    )
    assert run.info.status == "FAILED"
