"""Every screening trial of a wave in flight at once, each a program that only sleeps and reports: every record
reaches MLflow, once, with its metric and outcome. 64 trials on the local SQLite store; 256 through an MLflow
tracking server and a Prefect server, both on PostgreSQL, as a team runs them.

"At once" holds by construction: each screening trial of wave 1 waits at a barrier until all of them have started,
so a slow machine makes the wave slower, never smaller. A trial that waited minutes in vain prints a marker, and the
test fails saying how many were started together: that is the engine not running them at once."""

import os
import subprocess
import sys
import time
from collections import Counter
from types import SimpleNamespace

import pytest
from faultkit import check_books, write_program
from helpers import most_at_once, write_results
from mlflow.tracking import MlflowClient

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow

SLEEP_S = 3
BARRIER_S = 420  # minutes: on 2 cores hundreds of interpreters take long to start, but never this long
GAVE_UP = "BARRIER GAVE UP"


def train(wave: int, knobs: list[str]) -> str:
    """The trial: stdlib `os` and `time` only, so hundreds of them start quickly on two cores."""
    return (
        '"""Waits until every screening trial of wave 1 is up, sleeps, then reports a metric that only the seed\n'
        'moves; writes when it was up and when it ended, to count what overlapped."""\n\n'
        "import os\nimport time\n\n"
        + "".join(f"{name} = 1.0\n" for name in knobs)
        + "\nmarks, me = os.environ['FAULT_MARKS'], os.environ['OVERNIGHT_TRIAL_ID']\n"
        "up = time.time()\n"
        "if '-w1-t' in me and me.rsplit('-t', 1)[1].isdigit():\n"
        "    open(os.path.join(marks, me + '.up'), 'w').close()\n"
        "    go = os.path.join(marks, 'go')\n"
        # The last one up sees them all and opens the barrier for the others, who only look for one file.
        f"    if sum(name.endswith('.up') for name in os.listdir(marks)) >= {wave}:\n"
        "        open(go, 'w').close()\n"
        f"    give_up = time.time() + {BARRIER_S}\n"
        "    while not os.path.exists(go):\n"
        "        if time.time() > give_up:\n"
        "            seen = sum(name.endswith('.up') for name in os.listdir(marks))\n"
        f"            print(f'{GAVE_UP}: {{seen}} of {wave} up')\n"
        "            open(os.path.join(marks, me + '.gave-up'), 'w').write(str(seen))\n"
        "            break\n"
        "        time.sleep(0.5)\n"
        f"time.sleep({SLEEP_S})\n"
        "print(f\"loss: {1.0 + 0.01 * int(os.environ['OVERNIGHT_SEED'])}\")\n"
        "open(os.path.join(marks, me), 'w').write(f'{up} {time.time()}')\n"
    )


def load_campaign(tmp_path, wave: int, store: str, uri: str, prefect_api_url: str = ""):
    """A campaign whose first wave screens wave/2 knobs up and down: `wave` trials at once; with a Prefect API URL,
    through `overnight run` in a process of its own (as a team runs it: one process, one Prefect server). Returns
    its summary, the trials' (up, end) spans by trial id, the campaign's seconds and its config's path."""
    knobs = [f"K{i:03d}" for i in range(wave // 2)]
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write_program(
        tmp_path / "program",
        train(wave, knobs),
        {
            "name": f"load-{wave}-{store}",
            "metric": {"name": "loss", "goal": "minimize"},
            "trial": {"time_budget_s": 1, "timeout_s": BARRIER_S + 120, "env": {"FAULT_MARKS": str(marks)}},
            "wave_size": wave,
            "budget": {"waves": 1},
            "baseline_repeats": 2,
            "decision": {"confirm_runs": 1, "confirm_top": 1},
            "planner": {"kind": "offline"},
            "knobs": [{"name": k, "type": "float", "low": 0.1, "high": 10, "log": True} for k in knobs],
            "tracking_uri": uri,
            "state_dir": str(tmp_path / "state"),
            **({"prefect_api_url": prefect_api_url} if prefect_api_url else {}),
        },
    )
    started = time.monotonic()
    if prefect_api_url:
        summary, state = run_cli(path, tmp_path, uri), None
    else:
        state = campaign_flow(config_path=str(path), return_state=True)
    elapsed = time.monotonic() - started
    gave_up = {m.stem: int(m.read_text()) for m in marks.glob("*.gave-up")}
    if gave_up:
        pytest.fail(
            f"only {max(gave_up.values())} of {wave} trials were started at once — the engine did not run "
            f"them together ({len(gave_up)} waited {BARRIER_S} s at the barrier)"
        )
    if state is not None:
        assert state.is_completed(), state
        summary = state.result()
    spans = {
        m.name: tuple(map(float, m.read_text().split()))
        for m in marks.iterdir()
        if m.suffix not in (".up", ".gave-up") and m.name != "go"
    }
    return summary, spans, elapsed, path


def run_cli(path, cwd, uri: str) -> SimpleNamespace:
    """`overnight run` to its end; what the test needs of its summary, read back from MLflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    done = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "run", str(path)],
        cwd=cwd,
        env={**env, "PREFECT_HOME": str(cwd / "prefect-home"), "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=2 * BARRIER_S + 300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return campaign_summary(MlflowClient(uri), path)


def campaign_summary(client: MlflowClient, path) -> SimpleNamespace:
    """The experiment and the (one) agent run of the campaign at `path`."""
    import yaml

    name = yaml.safe_load(path.read_text())["name"]
    experiment = client.get_experiment_by_name(name).experiment_id
    (agent,) = client.search_runs([experiment], "tags.`overnight.kind` = 'agent_run'")
    return SimpleNamespace(experiment_id=experiment, agent_run_id=agent.info.run_id)


def check_load(uri: str, wave: int, store: str, summary, spans: dict, elapsed: float) -> str:
    """No record lost or doubled; the figures in one line, printed and returned."""
    client = MlflowClient(uri)
    runs = client.search_runs(
        [summary.experiment_id],
        f"tags.`overnight.kind` = 'trial' and tags.`overnight.agent_run_id` = '{summary.agent_run_id}'",
        max_results=5000,
    )
    recorded = Counter(r.data.tags["overnight.trial_id"] for r in runs)
    lost = sorted(set(spans) - set(recorded))  # ran, but has no record
    unran = sorted(set(recorded) - set(spans))  # a record, but never ran
    duplicated = sum(n - 1 for n in recorded.values())
    wave_1 = [r for r in runs if r.data.tags["overnight.role"] == "candidate"]
    (wave_run,) = client.search_runs(
        [summary.experiment_id],
        f"tags.`mlflow.parentRunId` = '{summary.agent_run_id}' and tags.`overnight.wave` = '1'",
    )
    wave_s = (wave_run.info.end_time - wave_run.info.start_time) / 1000
    at_once = most_at_once(
        [spans[i] for i in {r.data.tags["overnight.trial_id"] for r in wave_1} if i in spans]
    )
    figures = (
        f"{store}: {at_once} of {wave} trials in flight at once; records lost {len(lost)}, duplicated "
        f"{duplicated}, without a run {len(unran)}; wave 1 {wave_s:.1f} s for trials of {SLEEP_S} s; "
        f"campaign {elapsed:.1f} s"
    )
    print(f"\n{figures}")
    books = check_books(
        client, summary.experiment_id, summary.agent_run_id
    )  # once each, ended, counts add up
    trials = books["trials"]
    wave_1 = {i: r for i, r in trials.items() if r.data.tags["overnight.role"] == "candidate"}
    others = Counter(r.data.tags["overnight.role"] for i, r in trials.items() if i not in wave_1)
    assert lost == [] and unran == [], (
        lost[:5],
        unran[:5],
    )  # every trial that ran has its record, and vice versa
    assert len(wave_1) == wave and others["baseline"] == 2  # (a promising trial may add confirmation runs)
    assert all(
        r.data.tags["overnight.outcome"] == "ok" and r.data.metrics["loss"] == 1.0 for r in wave_1.values()
    )
    assert len({r.data.params["K000"] + r.data.tags["overnight.hypothesis"] for r in wave_1.values()}) == wave
    assert at_once == wave
    return figures


def test_64_trials_in_flight_on_sqlite_all_reach_mlflow(prefect_api, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary, spans, elapsed, _ = load_campaign(tmp_path, 64, "sqlite", uri)
    check_load(uri, 64, "sqlite", summary, spans, elapsed)


def test_256_trials_in_flight_through_team_servers_all_reach_mlflow_and_prefect(
    pg_tracking_server, pg_prefect_server, tmp_path
):
    from prefect_books import campaign_runs

    summary, spans, elapsed, path = load_campaign(
        tmp_path, 256, "postgresql", pg_tracking_server.uri, pg_prefect_server.api_url
    )
    figures = check_load(pg_tracking_server.uri, 256, "postgresql", summary, spans, elapsed)
    prefect = campaign_runs(pg_prefect_server.api_url, str(path))
    (flow_run,) = prefect["flows"]
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    trial_tasks = Counter(t["state_type"] for t in prefect["tasks"] if t["task_key"].startswith("run_trial"))
    assert trial_tasks == {"COMPLETED": len(spans)}
    write_results(  # with OVERNIGHT_WRITE_RESULTS=1
        "## 9. Trials in flight at once through a team's servers",
        "One `overnight run` whose first wave screens 128 knobs up and down: 256 trials that sleep, each held at a "
        'barrier until all 256 have started (so "at once" is true by construction; a trial that waits in vain '
        "fails the test), reporting to an MLflow server and a Prefect server, both on one PostgreSQL 15 "
        "(tests/faults/test_load.py). Lost: a trial that ran without a record; duplicated: a trial recorded "
        f"twice; Prefect: every trial's task run COMPLETED ({trial_tasks['COMPLETED']}).\n\n- {figures}",
        "PostgreSQL, both servers, the campaign and its 256 trials on the same machine",
    )
