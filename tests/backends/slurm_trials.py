"""Run every ending of endings.py through the SkyPilot backend on a real cluster; print the results as JSON.

    HOME=<sky home> python tests/backends/slurm_trials.py <infra> <workdir>

Run by test_conformance.py (through `run_every_ending`) in its own process, because SkyPilot reads HOME (its state
and ~/.slurm/config) when it is imported. One cluster: the first trial launches it, the others are queued onto it
with `exec`; at the end it is torn down by the backend's close(), as a campaign would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from endings import ENDINGS, METRIC, SECRET, run_ending, write_program

from overnight.backends import close_backend, make_backend
from overnight.config import CampaignConfig

INFRA = "slurm/localslurm"
# A job's clock starts once it is submitted; it need not have started the script to show that a timeout is one.
SHORT_TIMEOUT_S = 12


def run_every_ending(sky_env: dict[str, str], workdir: Path) -> dict[str, dict]:
    """Every ending's result on one cluster of the local Slurm cluster, by name."""
    done = subprocess.run(
        [sys.executable, __file__, INFRA, str(workdir)],
        env={**sky_env, SECRET[0]: SECRET[1]},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stderr[-2000:])  # each ending's outcome and time, shown by pytest -s or on a failure
    return json.loads(done.stdout.strip().splitlines()[-1])


def sky_status(sky_env: dict[str, str]) -> str:
    return subprocess.run(["sky", "status"], env=sky_env, capture_output=True, text=True, timeout=300).stdout


def main() -> None:
    infra, workdir = sys.argv[1], Path(sys.argv[2])
    config = CampaignConfig(
        name="conformance",
        program=write_program(workdir / "program"),
        metric={"name": METRIC},
        command="python3 train.py",  # the cluster's own interpreter
        backend={
            "kind": "skypilot",
            "resources": {"infra": infra, "cpus": "1"},
            "pool_size": 1,
            "autostop_minutes": None,
        },
    )
    backend = make_backend(config, workdir / "work")
    results = {}
    try:
        for name in ENDINGS:
            results[name] = result = run_ending(backend, name, config.command, SHORT_TIMEOUT_S)
            print(f"{name}: {result['outcome']} in {result['seconds']} s", file=sys.stderr, flush=True)
    finally:
        close_backend(backend)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
