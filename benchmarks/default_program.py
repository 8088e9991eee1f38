"""The default program's speed: tokens per second and val_bpb after the default budget, on this machine.

    .venv/bin/python benchmarks/default_program.py [--budget 30] [--threads 1 2]

Runs overnight/programs/tiny_gpt/train.py as a trial would (its own folder, OVERNIGHT_TIME_BUDGET, OVERNIGHT_SEED=0),
once per thread count, one at a time, and prints a markdown table. On a GPU it runs there (bf16 autocast); this
machine has none.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from overnight.results import parse_metrics

PROGRAM = Path(__file__).resolve().parents[1] / "overnight" / "programs" / "tiny_gpt"


def run(budget: float, threads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "tiny_gpt"
        shutil.copytree(PROGRAM, folder, ignore=shutil.ignore_patterns("__pycache__"))
        env = {
            **os.environ,
            "OVERNIGHT_TIME_BUDGET": str(budget),
            "OVERNIGHT_SEED": "0",
            "OMP_NUM_THREADS": str(threads),
        }
        done = subprocess.run(
            [sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True, check=True
        )
    return parse_metrics(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print("\n| threads | budget s | steps | tokens/s | val_bpb | peak memory MB |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        m = run(args.budget, threads)
        rate = m["tokens_seen"] / m["training_seconds"]
        print(
            f"| {threads} | {args.budget:g} | {m['num_steps']:.0f} | {rate:,.0f} | {m['val_bpb']:.3f} "
            f"| {m['peak_memory_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
