"""Whole campaigns on the SkyPilot backend for real: a cluster pool on the one-node Slurm cluster on localhost.

The cluster (`sky_env`, conftest.py) is shared with test_conformance.py, which runs every way a trial can end on
it. Everything runs in subprocesses with their own HOME, because SkyPilot keeps its state under ~/.sky.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from slurm_trials import INFRA, sky_status

pytest.importorskip("sky", reason="SkyPilot is an optional extra: pip install 'overnight[skypilot]'")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # clusters launch in a minute or two on 2 cores

FIXTURES = Path(__file__).parents[1] / "fixtures"


def slurm_campaign(tmp_path: Path, name: str, **changes) -> Path:
    program = tmp_path / "quadratic"
    shutil.copytree(FIXTURES / "quadratic", program)
    path = program / "campaign.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(
        name=name,
        command="python3 train.py",  # the cluster's own interpreter
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        backend={
            "kind": "skypilot",
            "resources": {"infra": INFRA, "cpus": "1"},
            "pool_size": 2,
            "autostop_minutes": None,
            "teardown": "down",
        },
        budget={"iterations": 1},
        # A job's clock starts at its submission; on a loaded 2-core machine syncing and starting take a while.
        trial={"time_budget_s": 1, "timeout_s": 300},
        **changes,
    )
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_campaign_runs_every_wave_on_the_cluster_pool_and_leaves_no_cluster(sky_env, tmp_path):
    # No change can clear this margin: no confirmation or re-measurement rounds, which test the decisions, not the
    # cluster (tests/flows/test_noise_aware.py), and cost minutes of Slurm jobs here.
    config = slurm_campaign(tmp_path, "slurm-campaign", min_improvement=1000.0)
    done = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        env=sky_env,
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("slurm-campaign")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("overnight.kind") == "trial"]
    assert len(trials) == 4  # two baseline copies and a wave of two
    for trial in trials:
        tags = trial.data.tags
        assert tags["overnight.outcome"] == "ok", tags.get("overnight.reason")
        assert tags["overnight.cluster"] in ("ovn-slurm-campaign-0", "ovn-slurm-campaign-1")
        assert tags["overnight.hardware"] == "cpu" and int(tags["overnight.job_id"]) >= 1
        assert tags["overnight.where"] == f"skypilot {INFRA}"
        log = client.download_artifacts(trial.info.run_id, "log_tail.txt", str(tmp_path))
        assert "loss:" in Path(log).read_text()
    assert all(r.info.status != "RUNNING" for r in runs)
    assert "No existing clusters" in sky_status(sky_env)


def test_ctrl_c_stops_the_jobs_and_takes_the_clusters_down(sky_env, tmp_path):
    config = slurm_campaign(tmp_path, "slurm-interrupted")
    (config.parent / "train.py").write_text(
        (config.parent / "train.py").read_text() + "import time\ntime.sleep(600)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        env=sky_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 600
    running = ""
    while "RUNNING" not in running and time.monotonic() < deadline:  # a baseline job runs on its cluster
        time.sleep(5)
        running = subprocess.run(
            ["sky", "queue", "ovn-slurm-interrupted-0"],
            env=sky_env,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
    assert "RUNNING" in running, running
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 130, output
    assert "stopped 1 running trial(s)" in output or "stopped 2 running trial(s)" in output, output

    assert "No existing clusters" in sky_status(sky_env)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("slurm-interrupted")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert runs and all(r.info.status != "RUNNING" for r in runs)
