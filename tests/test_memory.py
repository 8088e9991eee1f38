"""Memory on a real MLflow SQLite store: the layout, the queries, and rebuilding files from artifacts."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import night_in_flight
from mlflow.tracking import MlflowClient

from overnight.memory import lineage
from overnight.memory import sql as store_sql
from overnight.memory.records import Run
from overnight.memory.store import Memory
from overnight.planners.prompts import digest
from overnight.trial import Outcome, TrialResult


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
    text = digest(memory.snapshot())
    assert "Champion: b loss=0.4" in text and "c crash: exited with status 1" in text


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


# --- the narrowed queries read exactly what MLflow's search reads -----------------------------------------------------


def history(memory):
    """Two nights with every kind of trial: ok, crashed, invalid, still running, decided, crowned, a grid cell."""
    nights = []
    for night in (1, 2):
        agent = memory.start_agent_run(f"night {night}", {})
        wave = memory.start_wave(agent, 1)
        ok = add_trial(memory, agent, wave, f"n{night}-ok", 0.5 / night)
        add_trial(memory, agent, wave, f"n{night}-crash", None, Outcome.CRASH)
        memory.record_invalid(
            wave_run_id=wave,
            agent_run_id=agent,
            trial_id=f"n{night}-invalid",
            wave=1,
            hypothesis="an edit that does not apply",
            reason="search text not found",
            proposal_json="{}",
        )
        running = memory.start_trial(
            wave_run_id=wave,
            agent_run_id=agent,
            trial_id=f"n{night}-running",
            wave=1,
            hypothesis="still running",
            rationale="",
            params={"X": 1, "Y": "a"},
            files={"train.py": "X = 1\n"},
            diff="",
            change="X 0.5 -> 1",
            expected="-0.1 loss",
            fingerprint="f",
            parent_champion=ok,
            role="confirmation",
            seed=7,
            budget_s=30,
            measures=ok,
            pinned="H100",
            factors={"X": ("high", 1)},
        )
        memory.record_dispatch(running, "local host /tmp/x")
        memory.record_decision(
            ok, "baseline" if night == 1 else "keep", "why", {"stage": "confirm", "gain": 0.1}
        )
        memory.set_champion(
            ok, nights[-1] if nights else "", gain=0.1 if nights else None, why=f"night {night}"
        )
        nights.append(ok)
    return nights


def by_search(memory, **match):
    """The trials as the search API reads them (the path a store behind a tracking server takes)."""
    tags = {"overnight.kind": "trial", **{f"overnight.{key}": value for key, value in match.items()}}
    return [memory._record(run) for run in memory._runs_by_search(tags)]


def test_trials_read_from_sql_equal_mlflow_search(memory):
    history(memory)
    assert memory._sql_store() is not None  # the SQLite store takes the narrowed queries
    trials = memory.trials()
    assert [t.trial_id for t in trials][:4] == ["n1-ok", "n1-crash", "n1-invalid", "n1-running"]
    assert trials == by_search(memory)
    running = next(t for t in trials if t.trial_id == "n1-running")
    assert running.factors == {"X": ["high", 1]} and running.where == "local host /tmp/x"
    assert (running.change, running.expected) == ("X 0.5 -> 1", "-0.1 loss")  # what a planner's history shows


def test_trials_of_one_agent_run_or_one_decision(memory):
    history(memory)
    everything = memory.trials()
    night = everything[-1].agent_run_id
    assert memory.trials(night) == [t for t in everything if t.agent_run_id == night]
    assert memory.trials(night) == by_search(memory, agent_run_id=night)
    assert len(memory.trials(night)) == 4
    assert memory.trials(decision="baseline") == [t for t in everything if t.decision == "baseline"]
    assert memory.trials("no such agent run") == []


def test_status_counts_only_the_running_agent_run(memory):
    history(memory)
    now = memory.status()
    assert [t.trial_id for t in now.running] == ["n2-running"]
    assert now.finished == 3


def test_status_read_directly_from_sqlite_equals_memorys(memory, campaign_name, tmp_path):
    """`overnight status` reads a SQLite store with sqlite3 alone: what it finds is exactly Memory's status."""
    running = night_in_flight(memory)
    path = store_sql.sqlite_file(memory.tracking_uri)
    now, champion, night = store_sql.read_status(path, campaign_name, "loss")
    assert now == memory.status() and champion is None and night == ""
    assert now.agent_run_name == "night 2" and now.waves == (1,)
    assert [t.trial_id for t in now.running] == running and now.running[
        0
    ].where == "local host /tmp/work/n2-run"
    assert now.finished == 3 and now.trial_hours == pytest.approx(125 / 3600)
    assert now.llm_usd == pytest.approx(0.0123 + 0.0045 + 0.031 + 0.002)  # plans, a reflection, a repair
    assert now.compute_usd == pytest.approx(0.02)

    memory.set_tags(now.agent_run_id, {"overnight.night": "3 -> 2.5: better by 0.5"})
    memory.finish_agent_run(now.agent_run_id, {}, "# Night 2\n")  # nothing runs: the champion and the night
    read = store_sql.read_status(path, campaign_name, "loss")
    assert read == (None, memory.champion(), memory.last_night()) and read[2] == "3 -> 2.5: better by 0.5"
    assert memory.status() is None and memory.champion().trial_id == "n1-base"


def test_status_read_directly_before_a_campaign_exists(memory, tmp_path):
    """No store file or no such campaign yet: nothing runs, and nothing is created; a file that is not an MLflow
    store is left to MLflow (the caller falls back to Memory)."""
    absent = tmp_path / "absent" / "mlflow.db"
    assert (
        store_sql.read_status(absent, "quadratic", "loss") == (None, None, "") and not absent.parent.exists()
    )
    path = store_sql.sqlite_file(memory.tracking_uri)
    assert store_sql.read_status(path, "no such campaign", "loss") == (None, None, "")
    other = tmp_path / "other.db"
    other.write_text("not a database")
    with pytest.raises(sqlite3.Error):
        store_sql.read_status(other, "quadratic", "loss")
    assert store_sql.sqlite_file("http://127.0.0.1:5000") is None
    assert store_sql.sqlite_file("sqlite:///relative/mlflow.db?timeout=20") is None


def test_lineage_walks_past_a_deleted_champion(memory):
    first, second = history(memory)
    assert [t.trial_id for t in memory.lineage()] == ["n2-ok", "n1-ok"]
    MlflowClient(memory.tracking_uri).delete_run(first)  # gone from searches, still readable by id
    assert [t.run_id for t in memory.lineage()] == [second, first]
    versions = memory.champion_versions()
    assert [(v.trial_id, v.confirmed_gain, v.verdict) for v in versions] == [
        ("n1-ok", None, "night 1"),
        ("n2-ok", 0.1, "night 2"),
    ]


def crowned_run(run_id: str, parent: str, loss: float, gain: float | None = None) -> Run:
    tags = {lineage.CROWNED: "true", lineage.PARENT: parent, lineage.WHY: f"why {run_id}"}
    tags["overnight.trial_id"] = run_id
    metrics = {"loss": loss, **({"confirmed_gain": gain} if gain is not None else {})}
    return Run(run_id, run_id, 0, "FINISHED", "", tags, {}, metrics)


def test_the_lineage_is_assembled_from_plain_runs():
    """No store: the walk and the versions are functions of the runs; a run missing from the crowned ones is read
    by id, and a re-measurement of the same files is folded into the version it measured."""
    shipped, remeasured, better = (
        crowned_run("a", "", 0.9),
        crowned_run("b", "a", 0.88),
        crowned_run("c", "b", 0.5, gain=0.4),
    )
    read = []
    chain = lineage.chain("c", {"c": better, "b": remeasured}, lambda run_id: read.append(run_id) or shipped)
    assert [run.run_id for run in chain] == ["c", "b", "a"] and read == ["a"]
    files = {"a": {"train.py": "X = 1\n"}, "b": {"train.py": "X = 1\n"}, "c": {"train.py": "X = 2\n"}}
    versions = lineage.versions(chain, files, "loss", "minimize")
    assert [(v.version, v.trial_id, v.parent_run_id, v.confirmed_gain) for v in versions] == [
        (0, "a", "", None),
        (1, "c", "a", 0.4),
    ]
    assert versions[1].verdict == "why c" and "+X = 2" in versions[1].step_diff
    assert versions[1].cumulative_diff == versions[1].step_diff  # its parent is the program as shipped
    assert lineage.chain("", {}, read.append) == [] and lineage.versions([], {}, "loss", "minimize") == []


def test_artifacts_are_read_in_place_or_not_at_all(memory):
    first, _ = history(memory)
    assert memory.read_artifact(first, "log_tail.txt") == "log of n1-ok"
    assert memory.read_artifact(first, "no such file") == ""
    assert memory.read_artifact(first, "files") == ""  # a folder is not a text
    assert memory.read_artifact("no-such-run", "log_tail.txt") == ""
    assert memory.trial_files(first) == {"train.py": "X = 0.5\n"}


def test_a_campaign_is_a_model_training_experiment_in_mlflow(memory, tracking_uri, campaign_name):
    client = MlflowClient(tracking_uri)
    kind = "mlflow.experimentKind"
    assert client.get_experiment(memory.experiment_id).tags[kind] == "custom_model_development"
    client.delete_experiment_tag(memory.experiment_id, kind)  # a campaign created before the tag was set
    Memory(tracking_uri, campaign_name, "minimize", "loss")  # ...resumed
    assert client.get_experiment(memory.experiment_id).tags[kind] == "custom_model_development"
    client.set_experiment_tag(memory.experiment_id, kind, "genai_development")  # the user's own choice stays
    Memory(tracking_uri, campaign_name, "minimize", "loss")
    assert client.get_experiment(memory.experiment_id).tags[kind] == "genai_development"
    trial_page = f"http://h:5/#/experiments/{memory.experiment_id}/runs/abc?workflowType=machine_learning"
    assert memory.ui_url("http://h:5", "abc") == trial_page


def test_a_trial_recorded_while_the_trials_are_read_is_left_for_the_next_read(memory):
    """Pipelined waves record trials while another wave's planner reads them: each of the four queries of a read
    chooses the runs anew, so a run recorded between them is chosen by the later ones only (a KeyError before)."""
    agent = memory.start_agent_run("night 1", {"planner": "offline", "wave_size": 2})
    wave = memory.start_wave(agent, 1)
    add_trial(memory, agent, wave, "t0", 0.5)
    path = store_sql.sqlite_file(memory.tracking_uri)
    queries = []

    def rows(query: str, values: dict) -> list:
        with sqlite3.connect(path) as db:
            found = db.execute(query, values).fetchall()
        queries.append(query)
        if len(queries) == 1:  # another wave records its trial between the first query and the next
            add_trial(memory, agent, wave, "t1", 0.4)
        return found

    (read,) = store_sql.read_runs(rows, memory.experiment_id, {"overnight.kind": "trial"}, sqlite=True)
    assert read.tags["overnight.trial_id"] == "t0" and read.metrics["loss"] == 0.5
    assert [t.trial_id for t in memory.trials()] == ["t0", "t1"]  # the next read has both
