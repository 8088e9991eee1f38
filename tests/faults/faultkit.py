"""Helpers of the fault tests: write a small program, and check that what a campaign left in MLflow adds up."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

TERMINAL = {"FINISHED", "FAILED", "KILLED"}


def write_program(folder: Path, train: str, config: dict) -> Path:
    """A program folder with its train.py and campaign.yaml; returns the config's path. A trial may write its
    marks (`trial.env`'s FAULT_MARKS folder) from inside its box: that folder is one of its writable paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(train)
    trial = config.get("trial", {})
    if "FAULT_MARKS" in trial.get("env", {}):
        config = {**config, "trial": {"writable_paths": [trial["env"]["FAULT_MARKS"]], **trial}}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump({"program": ".", "editable": ["train.py"], **config}, sort_keys=False))
    return path


def check_books(client: MlflowClient, experiment_id: str, agent_run_id: str | None = None) -> dict:
    """What every faulty campaign must leave: each trial ended once, nothing RUNNING, and the counts add up.

    Returns the trial runs of the agent run (by trial id) and its agent run, for more specific checks."""
    runs = client.search_runs([experiment_id], max_results=5000)
    assert runs, "nothing reached MLflow"
    assert [r.info.run_id for r in runs if r.info.status not in TERMINAL] == [], "runs left RUNNING"
    agents = [r for r in runs if r.data.tags.get("overnight.kind") == "agent_run"]
    agent = next(a for a in agents if a.info.run_id == agent_run_id) if agent_run_id else agents[0]
    trials = [
        r
        for r in runs
        if r.data.tags.get("overnight.kind") == "trial"
        and r.data.tags.get("overnight.agent_run_id") == agent.info.run_id
    ]
    ids = Counter(r.data.tags["overnight.trial_id"] for r in trials)
    assert [i for i, n in ids.items() if n > 1] == [], "trials recorded twice"
    for run in trials:
        tags = run.data.tags
        assert tags.get("overnight.status") == "finished", (
            tags["overnight.trial_id"],
            tags.get("overnight.status"),
        )
        assert tags.get("overnight.outcome"), f"{tags['overnight.trial_id']} has no outcome"
        expected = "FINISHED" if tags["overnight.outcome"] == "ok" else "FAILED"
        assert run.info.status == expected, (tags["overnight.trial_id"], run.info.status)
        if tags["overnight.outcome"] != "ok":
            assert tags.get("overnight.reason"), f"{tags['overnight.trial_id']} failed without a reason"
    outcomes = Counter(r.data.tags["overnight.outcome"] for r in trials)
    metrics = agent.data.metrics
    assert metrics["trials"] == len(trials)
    assert {k.removeprefix("trials_"): v for k, v in metrics.items() if k.startswith("trials_")} == outcomes
    waves = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == agent.info.run_id]
    assert sum(w.data.metrics.get("trials", 0) for w in waves) == len(trials), "a wave's count is off"
    return {"agent": agent, "trials": {r.data.tags["overnight.trial_id"]: r for r in trials}, "waves": waves}
