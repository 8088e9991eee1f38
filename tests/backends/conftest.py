"""The local Slurm cluster that the SkyPilot tests run on: started once for the session, stopped at its end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def sky_env(tmp_path_factory):
    """A local Slurm cluster SkyPilot can use, and the environment to reach it.

    scripts/slurm/up.sh brings it up (Debian packages, munge, slurmctld/slurmd, a local sshd, SkyPilot's Slurm
    config); it exits 77 with the reason where it cannot run (not root, no packages), and the tests then skip with
    that reason. SkyPilot runs in subprocesses with this HOME, because it keeps its state under ~/.sky.
    """
    pytest.importorskip("sky", reason="SkyPilot is an optional extra: pip install 'overnight[skypilot]'")
    home = tmp_path_factory.mktemp("sky-home")
    up = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm" / "up.sh"), str(home)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if up.returncode == 77:
        pytest.skip(up.stderr.strip().splitlines()[-1])
    assert up.returncode == 0, f"scripts/slurm/up.sh failed:\n{up.stdout}\n{up.stderr}"
    env = {
        **os.environ,
        "HOME": str(home),
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    yield env
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm" / "down.sh"), str(home)],
        env={**os.environ, "OVERNIGHT_SKY_CMD": str(Path(sys.executable).parent / "sky")},
        capture_output=True,
        timeout=300,
    )
