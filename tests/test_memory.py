"""Memory on a real MLflow SQLite store: the layout, the queries, and rebuilding files from artifacts."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.tracking import MlflowClient

from overnight.memory import Memory
from overnight.results import Outcome, TrialResult


@pytest.fixture
def memory(tmp_path, tracking_uri, campaign_name) -> Memory:
    return Memory(
        tracking_uri, campaign_name, goal="minimize", metric="loss", artifact_root=tmp_path / "artifacts"
    )


def add_trial(memory, agent, wave_run, name, loss, outcome=Outcome.OK, text=None, wave=1):
    files = {"train.py": text or f"X = {loss}\n"}
    run_id = memory.start_trial(
        wave_run_id=wave_run,
        agent_run_id=agent,
        trial_id=name,
        wave=wave,
        hypothesis=f"try {name}",
        rationale="because",
        params={"X": loss},
        files=files,
        diff=f"-X\n+X = {loss}\n",
        fingerprint=name,
        parent_champion="",
    )
    metrics = {"loss": loss} if loss is not None else {}
    memory.finish_trial(
        run_id,
        TrialResult(
            name,
            outcome,
            metrics,
            1.5,
            0 if outcome is Outcome.OK else 1,
            f"log of {name}",
            "" if outcome is Outcome.OK else "exited with status 1",
        ),
    )
    return run_id


def test_runs_nest_agent_run_wave_trial(memory, tracking_uri):
    agent = memory.start_agent_run("night 1", {"planner": "offline", "wave_size": 2})
    wave = memory.start_wave(agent, 1)
    trial = add_trial(memory, agent, wave, "t0", 0.5)
    client = MlflowClient(tracking_uri)
    assert client.get_experiment(memory.experiment_id).name == "test_runs_nest_agent_run_wave_trial"
    assert client.get_run(wave).data.tags["mlflow.parentRunId"] == agent
    run = client.get_run(trial)
    assert run.data.tags["mlflow.parentRunId"] == wave
    assert run.data.params["X"] == "0.5" and run.data.metrics["loss"] == 0.5
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(trial)}
    assert {"diff.patch", "files", "log_tail.txt"} <= artifacts
    assert client.get_run(agent).data.params["planner"] == "offline"


def test_queries_champion_best_failed_and_digest(memory):
    agent = memory.start_agent_run("night 1", {})
    wave = memory.start_wave(agent, 1)
    a = add_trial(memory, agent, wave, "a", 0.9)
    b = add_trial(memory, agent, wave, "b", 0.4)
    add_trial(memory, agent, wave, "c", None, Outcome.CRASH)
    add_trial(memory, agent, wave, "d", 0.6)
    memory.set_champion(a, "")
    memory.set_champion(b, a)
    assert memory.champion().trial_id == "b"
    assert [t.trial_id for t in memory.lineage()] == ["b", "a"]
    assert [t.trial_id for t in memory.best(2)] == ["b", "d"]
    failed = memory.failed()
    assert [(t.trial_id, t.outcome) for t in failed] == [("c", Outcome.CRASH)]
    assert failed[0].reason == "exited with status 1"
    digest = memory.digest()
    assert "Champion: b loss=0.4" in digest and "c crash: exited with status 1" in digest


def test_the_champion_files_are_rebuilt_from_artifacts_alone(memory, tmp_path):
    agent = memory.start_agent_run("night 1", {})
    wave = memory.start_wave(agent, 1)
    text = "X = 3\n# the champion's own file\n"
    run_id = add_trial(memory, agent, wave, "a", 0.1, text=text)
    memory.set_champion(run_id, "")
    reopened = Memory(
        memory.tracking_uri, "test_the_champion_files_are_rebuilt_from_artifacts_alone", "minimize", "loss"
    )  # a new process, nothing in memory
    assert reopened.champion_files() == {"train.py": text}


def test_many_trials_finishing_at_once_lose_nothing(memory):
    agent = memory.start_agent_run("night 1", {})
    wave = memory.start_wave(agent, 1)
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda i: add_trial(memory, agent, wave, f"t{i}", i / 100), range(32)))
    trials = memory.trials()
    assert len(trials) == 32
    assert all(t.outcome is Outcome.OK and t.metric is not None for t in trials)
