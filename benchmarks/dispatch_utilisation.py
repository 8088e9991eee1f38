"""Dispatch overhead: how busy the workers are under overnight, against a bare thread pool running the same trials.

    .venv/bin/python benchmarks/dispatch_utilisation.py [--workers 16 64] [--trial-s 30] [--waves 3]
        [--planner-s 3] [--modes synchronous pipelined]

Trials only sleep for `--trial-s` seconds (benchmarks/programs/sleep), so 64 workers fit on two cores. Utilisation =
trial busy time / (workers x wall time), the wall time running from the first trial's start to the last one's end.
A trial's span is its process's: for the bare baseline, around `subprocess.run`; for overnight, from the pid file
the local backend writes as it starts the process to the last write of its log (the metric line, printed as it
ends), in the trial's folder. (MLflow's run times would not do: a pipelined campaign creates the run when it plans
the trial, and ends it after recording the result.) The bare baseline is the limit on this machine: a thread pool
launching the same subprocesses back to back, with no Prefect, no MLflow and no planner.

overnight runs a real campaign (Prefect flow, MLflow store) with the Claude planner, talking through the real
`anthropic` client to a local stand-in of the Messages API (tests/standins) that answers after `--planner-s` seconds,
as a real model call would (default 10% of the trial time); each wave's plan and its reflection are one call each.
Its answers change distinct knobs of the sleep program, whose metric is constant, so no trial is promising and no
confirmation runs: what is measured is planning, dispatch and recording between waves. Each mode runs the campaign
with `pipeline: false` (waves in turn) or `pipeline: true` (the next wave planned while this one runs). All run in
one invocation, so their ratios are comparable on a noisy machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLEEP = ROOT / "benchmarks" / "programs" / "sleep"
KNOBS = 32  # RATE_00 .. RATE_31 in the sleep program


def bare(workers: int, trial_s: float, waves: int) -> float:
    """Utilisation of a thread pool running workers x (waves + 1) sleeping trials, nothing else."""
    env = {**os.environ, "OVERNIGHT_TIME_BUDGET": str(trial_s)}
    spans: list[tuple[float, float]] = []

    def one(_: int) -> None:
        start = time.monotonic()
        subprocess.run([sys.executable, "train.py"], cwd=SLEEP, env=env, capture_output=True, check=True)
        spans.append((start, time.monotonic()))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(workers * (waves + 1))))
    return _utilisation(spans, workers)


def planner_standin(workers: int, delay_s: float):
    """The Messages API stand-in, answering each plan with `workers` distinct one-knob changes after `delay_s`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from standins.messages_api import MessagesAPI, tool_answer

    values = itertools.count(2)  # every proposal a value not tried before, so none repeats a trial

    def wave(body: dict) -> dict:
        time.sleep(delay_s)
        experiments = []
        for index in range(workers):
            knob, value = f"RATE_{index % KNOBS:02d}", next(values)
            experiments.append(
                {
                    "hypothesis": f"{knob} = {value}",
                    "rationale": "a change that does nothing, to measure dispatch",
                    "expected_effect": "none",
                    "edits": [
                        {"path": "train.py", "search": f"{knob} = 1.0", "replace": f"{knob} = {value}.0"}
                    ],
                }
            )
        return {"experiments": experiments}

    def insights(body: dict) -> dict:
        time.sleep(delay_s)
        return {"learned": ["nothing changes the score"], "dead_ends": [], "next_directions": []}

    api = MessagesAPI()
    api.script("WaveAnswer", tool_answer(wave))
    api.script("Insights", tool_answer(insights))
    return api


def campaign(
    workers: int, trial_s: float, waves: int, folder: Path, pipeline: bool, planner_s: float
) -> tuple[float, float]:
    """Utilisation of a real overnight campaign of the same trials; also its whole wall time in seconds."""
    from mlflow.tracking import MlflowClient

    from flows.campaign import campaign_flow

    program = folder / "sleep"
    shutil.copytree(SLEEP, program)
    overrides = {
        "name": f"dispatch-{workers}-{'pipelined' if pipeline else 'synchronous'}",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "state_dir": str(folder / "state"),
        "wave_size": workers,
        "pipeline": pipeline,
        "baseline_repeats": workers,
        "budget.waves": waves,
        "trial.time_budget_s": trial_s,
        "trial.timeout_s": trial_s * 4 + 60,
        "planner.kind": "claude",
    }
    with planner_standin(workers, planner_s) as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.base_url
        os.environ["ANTHROPIC_API_KEY"] = "benchmark-" + "stand-in-key"
        started = time.monotonic()
        summary = campaign_flow(config_path=str(program / "campaign.yaml"), overrides=overrides)
        whole = time.monotonic() - started
    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs([summary.experiment_id], "tags.`overnight.kind` = 'trial'", max_results=10000)
    spans = []
    for run in runs:  # a trial's span: its process's, as the local backend left it in the trial's folder
        folder = Path(run.data.tags["overnight.where"].split(":", 1)[1])
        started = (folder / ".overnight_pid").stat().st_mtime  # written as the process starts
        ended = (folder / "run.log").stat().st_mtime  # its last line, the metric, is printed as it ends
        spans.append((started, ended))
    return _utilisation(spans, workers), whole


def _utilisation(spans: list[tuple[float, float]], workers: int) -> float:
    busy = sum(end - start for start, end in spans)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return busy / (workers * wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--trial-s", type=float, default=30.0)
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument(
        "--planner-s", type=float, default=None, help="each model call's delay (default T/10)"
    )
    parser.add_argument(
        "--modes", nargs="+", choices=["synchronous", "pipelined"], default=["synchronous", "pipelined"]
    )
    args = parser.parse_args()
    planner_s = args.trial_s / 10 if args.planner_s is None else args.planner_s
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for workers in args.workers:
            limit = bare(workers, args.trial_s, args.waves)
            print(f"{workers} workers: bare {limit:.1%}", flush=True)
            for mode in args.modes:
                folder = Path(scratch) / f"{workers}-{mode}"
                ours, whole = campaign(
                    workers, args.trial_s, args.waves, folder, mode == "pipelined", planner_s
                )
                rows.append((workers, mode, limit, ours, whole))
                print(f"{workers} workers, {mode}: overnight {ours:.1%} ({whole:.0f} s in all)", flush=True)
    print(f"\nplanner: {planner_s:g} s per model call (plan and reflection of each wave)")
    print("\n| workers | trial s | waves | mode | bare thread pool | overnight | gap | campaign wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for workers, mode, limit, ours, whole in rows:
        print(
            f"| {workers} | {args.trial_s:g} | {args.waves} + baseline | {mode} | {limit:.1%} | {ours:.1%} "
            f"| {100 * (limit - ours):.1f} points | {whole:.0f} |"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
