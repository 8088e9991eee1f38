"""A campaign process killed with SIGKILL mid-wave is resumed by running the same command again."""

import os
import random
import signal
import time
from collections import Counter

import pytest
from helpers import alive, configure_campaign, start_campaign
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("seed", "pipeline"), [(1, False), (2, False), (3, False), (4, True)])
def test_sigkill_at_a_random_point_then_the_same_command_resumes(
    prefect_api, quadratic, tmp_path, seed, pipeline
):
    from prefect.settings import PREFECT_API_URL

    train = quadratic / "train.py"  # each trial works a little, so the kill lands inside a wave
    train.write_text(train.read_text() + "import time\ntime.sleep(3)\n")
    name = f"resume-{seed}"
    config = configure_campaign(
        quadratic,
        name=name,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        budget={"waves": 3},
        pipeline=pipeline,  # with overlapping waves, two may be cut short at once
    )
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "100"}
    env.pop("ANTHROPIC_API_KEY", None)

    first = start_campaign(config, tmp_path, env)
    draw = random.Random(seed)
    # Kill after this many trials started: the baseline's two, then waves of two plus confirmations.
    kill_after = draw.randint(1, 9)
    killed_output, started = "", 0
    deadline = time.monotonic() + 300
    while started < kill_after and time.monotonic() < deadline:
        line = first.stdout.readline()
        killed_output += line
        started += " started: " in line
    time.sleep(draw.uniform(0, 3))  # somewhere inside that trial
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    killed_output += first.stdout.read()
    assert started == kill_after, killed_output

    second = start_campaign(config, tmp_path, env)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, killed_output + "\n----\n" + output

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert all(r.info.status != "RUNNING" for r in runs), [
        r.info.run_name for r in runs if r.info.status == "RUNNING"
    ]
    agents = [r for r in runs if r.data.tags.get("overnight.kind") == "agent_run"]
    # The kill came inside a wave: the same agent run went on, and says so.
    assert "Resuming agent run" in output, output
    (agent,) = agents
    assert agent.info.status == "FINISHED" and "had died" in agent.data.tags["overnight.resumed"]
    trials = [
        r
        for r in runs
        if r.data.tags.get("overnight.kind") == "trial"
        and r.data.tags["overnight.agent_run_id"] == agent.info.run_id
    ]
    ids = Counter(t.data.tags["overnight.trial_id"] for t in trials)
    assert all(count == 1 for count in ids.values()), ids  # no trial recorded twice
    assert all(t.data.tags.get("overnight.outcome") for t in trials)  # each has exactly one final outcome
    assert agent.data.metrics["trials"] == len(trials)
    waves = Counter(
        r.data.tags["overnight.wave"]
        for r in runs
        if r.data.tags.get("overnight.kind") == "wave"
        and r.data.tags["mlflow.parentRunId"] == agent.info.run_id
    )
    assert waves == Counter({"0": 1, "1": 1, "2": 1, "3": 1})
    # No trial process of the killed campaign is left running.
    for pid_file in (tmp_path / "state" / "work").rglob(".overnight_pid"):
        assert not alive(int(pid_file.read_text()))
    # Prefect: the killed process's flow run is not left Running.
    with get_client(sync_client=True) as prefect:
        flow_runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"campaign {name}"]))
        )
    assert flow_runs and all(r.state.is_final() for r in flow_runs), [
        (r.name, r.state.type) for r in flow_runs
    ]
