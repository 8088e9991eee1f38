"""The default program's speed: tokens per second and val_bpb after the default budget, on this machine.

    .venv/bin/python benchmarks/default_program.py [--budget 30] [--threads 1 2] [--peak-tflops X]

Runs overnight/programs/tiny_gpt/train.py as a trial would (its own folder, OVERNIGHT_TIME_BUDGET, OVERNIGHT_SEED=0),
once per thread count, one at a time, and prints a markdown table. On a GPU it runs there (bf16 autocast).

Model FLOPs per token are the usual estimate for a decoder-only transformer: 6 x parameters (forward and backward
through every weight) + 12 x depth x context x width (attention scores and their use), from the program's own
constants. Achieved TFLOP/s = that x tokens/s; model FLOPs utilisation (MFU) = achieved / the device's peak, which
is looked up for known GPUs (bf16 dense) or given with --peak-tflops.
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

from overnight.program import constants
from overnight.trial import parse_metrics

PROGRAM = Path(__file__).resolve().parents[1] / "overnight" / "programs" / "tiny_gpt"
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0}  # dense, per GPU


def flops_per_token(num_params: float) -> float:
    """Training FLOPs per token of the default program (see the module's docstring)."""
    found = {name: c.value for name, c in constants((PROGRAM / "train.py").read_text()).items()}
    context = constants((PROGRAM / "prepare.py").read_text())["SEQ_LEN"].value
    return 6 * num_params + 12 * found["DEPTH"] * context * found["WIDTH"]


def device_peak_tflops() -> tuple[str, float | None]:
    """This machine's accelerator and its bf16 peak, when it is one we know."""
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return name, next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


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
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    args = parser.parse_args()
    device, peak = device_peak_tflops()
    peak = args.peak_tflops or peak
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"device {device}" + (f" (peak {peak:g} TFLOP/s)" if peak else "")
    )
    print("\n| threads | budget s | steps | tokens/s | model TFLOP/s | MFU | val_bpb | peak memory MB |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        m = run(args.budget, threads)
        rate = m["tokens_seen"] / m["training_seconds"]
        achieved = flops_per_token(m["num_params"]) * rate / 1e12
        mfu = f"{achieved / peak:.1%}" if peak else "n/a"
        print(
            f"| {threads} | {args.budget:g} | {m['num_steps']:.0f} | {rate:,.0f} | {achieved:.3f} | {mfu} "
            f"| {m['val_bpb']:.3f} | {m['peak_memory_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
