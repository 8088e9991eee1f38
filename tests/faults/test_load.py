"""64 trials in flight at once, each a program that only sleeps and reports: every record reaches MLflow, once, with
its metric and outcome, on the local SQLite store and through a tracking server."""

import time
from collections import Counter

import pytest
from faultkit import check_books, write_program
from helpers import most_at_once
from mlflow.tracking import MlflowClient

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow

WAVE = 64
KNOBS = [f"K{i:02d}" for i in range(WAVE // 2)]  # the first wave screens each knob up and down: 64 proposals
SLEEP_S = 3

BARRIER_S = 90  # how long a trial of wave 1 waits for all of them to be up (never, if they run at once)

TRAIN = (
    '"""Waits until every trial of wave 1 is up, sleeps, then reports a metric that only the seed moves; writes when\n'
    'it ran, to count what overlapped."""\n\n'
    "import os\nimport re\nimport time\nfrom pathlib import Path\n\n"
    + "".join(f"{name} = 1.0\n" for name in KNOBS)
    + "\nmarks, me = Path(os.environ['FAULT_MARKS']), os.environ['OVERNIGHT_TRIAL_ID']\n"
    # Only the screening trials of wave 1 wait for one another: on 2 cores, 64 interpreters take longer to start
    # than a trial sleeps, so without the wait "all at once" would measure the machine, not the engine.
    "if re.search(r'-w1-t\\d+$', me):\n"
    "    (marks / f'{me}.up').touch()\n"
    f"    give_up = time.time() + {BARRIER_S}\n"
    f"    while len(list(marks.glob('*.up'))) < {WAVE} and time.time() < give_up:\n"
    "        time.sleep(0.2)\n"
    f"started = time.time()\ntime.sleep({SLEEP_S})\n"
    "print(f\"loss: {1.0 + 0.01 * int(os.environ['OVERNIGHT_SEED'])}\")\n"
    "(marks / me).write_text(f'{started} {time.time()}')\n"
)


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_64_trials_in_flight_all_reach_mlflow(prefect_api, request, tmp_path, store):
    uri = (
        f"sqlite:///{tmp_path / 'mlflow.db'}"
        if store == "sqlite"
        else request.getfixturevalue("tracking_server").uri
    )
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write_program(
        tmp_path / "program",
        TRAIN,
        {
            "name": f"load-{WAVE}-{store}",
            "metric": {"name": "loss", "goal": "minimize"},
            "trial": {"time_budget_s": 1, "timeout_s": BARRIER_S + 60, "env": {"FAULT_MARKS": str(marks)}},
            "wave_size": WAVE,
            "budget": {"waves": 1},
            "baseline_repeats": 2,
            "decision": {"confirm_runs": 1, "confirm_top": 1},
            "planner": {"kind": "offline"},
            "knobs": [{"name": k, "type": "float", "low": 0.1, "high": 10, "log": True} for k in KNOBS],
            "tracking_uri": uri,
            "state_dir": str(tmp_path / "state"),
        },
    )
    started = time.monotonic()
    state = campaign_flow(config_path=str(path), return_state=True)
    elapsed = time.monotonic() - started
    assert state.is_completed(), state
    summary = state.result()

    client = MlflowClient(uri)
    books = check_books(client, summary.experiment_id, summary.agent_run_id)
    trials = books["trials"]
    wave_1 = {i: r for i, r in trials.items() if r.data.tags["overnight.role"] == "candidate"}
    others = Counter(r.data.tags["overnight.role"] for i, r in trials.items() if i not in wave_1)
    assert len(wave_1) == WAVE and others["baseline"] == 2  # (a promising trial may add confirmation runs)
    assert all(
        r.data.tags["overnight.outcome"] == "ok" and r.data.metrics["loss"] == 1.0 for r in wave_1.values()
    )
    assert len({r.data.params["K00"] + r.data.tags["overnight.hypothesis"] for r in wave_1.values()}) == WAVE

    spans = {m.name: tuple(map(float, m.read_text().split())) for m in marks.iterdir() if m.suffix != ".up"}
    assert set(spans) == set(trials)  # every trial that ran has its record, and no record lacks a run
    assert most_at_once([spans[i] for i in wave_1]) == WAVE
    (wave,) = [w for w in books["waves"] if w.data.tags["overnight.wave"] == "1"]
    wave_s = (wave.info.end_time - wave.info.start_time) / 1000
    running_s = max(spans[i][1] for i in wave_1) - min(spans[i][0] for i in wave_1)
    print(
        f"\n{store}: wave of {WAVE} trials of {SLEEP_S} s took {wave_s:.1f} s in MLflow "
        f"(first start to last end {running_s:.1f} s); campaign {elapsed:.1f} s"
    )
