"""Dispatch overhead: how busy the workers are under overnight, against a bare thread pool running the same trials.

    .venv/bin/python benchmarks/dispatch_utilisation.py [--workers 16 64] [--trial-s 30] [--waves 3]

Trials only sleep for `--trial-s` seconds (benchmarks/programs/sleep), so 64 workers fit on two cores. Utilisation =
trial busy time / (workers x wall time), the wall time running from the first trial's start to the last one's end.
The bare baseline is the limit on this machine: a thread pool launching the same subprocesses back to back, with no
Prefect, no MLflow and no planner. overnight runs a real campaign (Prefect flow, MLflow store, offline planner); the
sleep program's metric is constant, so no trial is promising and no confirmation runs: what is measured is planning,
dispatch and recording between waves. Both run in one invocation, so their ratio is comparable on a noisy machine.
"""

from __future__ import annotations

import argparse
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


def campaign(workers: int, trial_s: float, waves: int, folder: Path) -> tuple[float, float]:
    """Utilisation of a real overnight campaign of the same trials; also its whole wall time in seconds."""
    from mlflow.tracking import MlflowClient

    from flows.campaign import campaign_flow

    program = folder / "sleep"
    shutil.copytree(SLEEP, program)
    overrides = {
        "name": f"dispatch-{workers}",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "state_dir": str(folder / "state"),
        "wave_size": workers,
        "baseline_repeats": workers,
        "budget.iterations": waves,
        "trial.time_budget_s": trial_s,
        "trial.timeout_s": trial_s * 4 + 60,
    }
    started = time.monotonic()
    summary = campaign_flow(config_path=str(program / "campaign.yaml"), overrides=overrides)
    whole = time.monotonic() - started
    client = MlflowClient(summary.tracking_uri)
    runs = client.search_runs([summary.experiment_id], "tags.`overnight.kind` = 'trial'", max_results=10000)
    spans = []
    for run in runs:  # a trial's span: from its dispatch (run start) to its end, as MLflow recorded them
        spans.append((run.info.start_time / 1000, run.info.end_time / 1000))
    busy = sum(run.data.metrics["duration_s"] for run in runs)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return busy / (workers * wall), whole


def _utilisation(spans: list[tuple[float, float]], workers: int) -> float:
    busy = sum(end - start for start, end in spans)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return busy / (workers * wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--trial-s", type=float, default=30.0)
    parser.add_argument("--waves", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for workers in args.workers:
            limit = bare(workers, args.trial_s, args.waves)
            ours, whole = campaign(workers, args.trial_s, args.waves, Path(scratch) / str(workers))
            rows.append((workers, limit, ours, whole))
            print(
                f"{workers} workers: bare {limit:.1%}, overnight {ours:.1%} ({whole:.0f} s in all)",
                flush=True,
            )
    print("\n| workers | trial s | waves | bare thread pool | overnight | gap | campaign wall s |")
    print("|---|---|---|---|---|---|---|")
    for workers, limit, ours, whole in rows:
        print(
            f"| {workers} | {args.trial_s:g} | {args.waves} + baseline | {limit:.1%} | {ours:.1%} "
            f"| {100 * (limit - ours):.1f} points | {whole:.0f} |"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
