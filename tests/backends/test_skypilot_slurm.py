"""Whole campaigns on the SkyPilot backend for real: a cluster pool on the one-node Slurm cluster on localhost.

The cluster (`sky_env`, conftest.py) is shared with test_conformance.py, which runs every way a trial can end on
it. Everything runs in subprocesses with their own HOME, because SkyPilot keeps its state under ~/.sky.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import slurm_faults
import yaml
from helpers import write_results
from mlflow.tracking import MlflowClient
from slurm_trials import INFRA, sky_status

pytest.importorskip("sky", reason="SkyPilot is an optional extra: pip install 'overnight[skypilot]'")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # clusters launch in a minute or two on 2 cores

FIXTURES = Path(__file__).parents[1] / "fixtures"
# What Prefect logs (overnight run --verbose) as it retries a trial that ended infra_error, before its reason.
RETRY = r"Task run failed with exception: InfraError\(.*"


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


def test_a_campaign_runs_every_wave_on_the_cluster_pool_through_faults_and_leaves_no_cluster(
    sky_env, tmp_path
):
    """One campaign through the three faults a real cluster has, each at its moment: its first launches fail (the
    login node is unreachable), then the job of a held baseline trial is killed with scancel, then the node goes away
    under the other one and comes back. Each is an infra_error, retried by Prefect with backoff until the cluster
    works again, and every trial ends ok, recorded once."""
    # No change can clear this margin: no confirmation or re-measurement rounds, which test the decisions, not the
    # cluster (tests/flows/test_noise_aware.py), and cost minutes of Slurm jobs here.
    config = slurm_campaign(tmp_path, "slurm-campaign", min_improvement=1000.0)
    # Each trial waits while the hold file exists, in a folder the cluster's user can write to, and leaves its pid
    # there, so the faults find jobs running the script; the hold ends with the faults.
    hold_dir = Path(tempfile.mkdtemp(prefix="overnight-hold-"))
    hold_dir.chmod(0o777)
    hold = hold_dir / "hold"
    hold.touch()
    train = config.parent / "train.py"
    train.write_text(
        f"import os, time\nif os.path.exists({str(hold)!r}):\n"
        f"    open(os.path.join({str(hold_dir)!r}, 'held-%d' % os.getpid()), 'w').close()\n"
        f"while os.path.exists({str(hold)!r}):\n    time.sleep(0.2)\n" + train.read_text()
    )
    faults = {"launch": 0, "scancel": 0, "node_down": 0}
    slurm_faults.login_down()  # before anything launches: the first launches fail
    faults["launch"] += 1
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "overnight.cli", "run", "--verbose", str(config)],  # Prefect's retry lines too
        env={**sky_env, "COLUMNS": "1000"},  # one log line per line: Rich wraps at 80 columns in a pipe
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    output = slurm_faults.Output(process)
    try:
        output.wait_for(RETRY + r"SkyPilot could not launch ovn-slurm-campaign-")
        slurm_faults.restore(sky_env)
        # Both baseline trials launched on the retry and wait on the hold: kill one's job as an admin would.
        steps = slurm_faults.until(
            lambda: len(found := slurm_faults.held_steps(hold_dir)) >= 2 and found,
            600,
            "two held trials on the clusters",
        )
        slurm_faults.scancel(steps[0])
        faults["scancel"] += 1
        output.wait_for(
            RETRY + r"the job ended \w+ on ovn-slurm-campaign-\d before the script finished", timeout_s=180
        )
        # Then the node goes away under the other one, and comes back a while later, as a node that reboots.
        before = len(output.matching(RETRY))
        slurm_faults.node_down("overnight fault test: the node reboots")
        faults["node_down"] += 1
        output.wait_for(RETRY, count=before + 1, timeout_s=180)  # SkyPilot: the cluster is gone ("lost ...")
        time.sleep(15)
        slurm_faults.restore(sky_env)
        hold.unlink()
        text = output.finish(timeout_s=1500)
    finally:
        shutil.rmtree(hold_dir, ignore_errors=True)
        if process.poll() is None:
            process.kill()
        slurm_faults.restore(sky_env)  # a failed test leaves the cluster working for the next ones
    seconds = time.monotonic() - started
    assert process.returncode == 0, text[-6000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("slurm-campaign")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("overnight.kind") == "trial"]
    trial_ids = [t.data.tags["overnight.trial_id"] for t in trials]
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

    # Every infra_error was retried (a retry line each), none ended a trial, no trial crashed.
    retried = output.matching(RETRY)
    starts = [
        tid
        for tid in trial_ids
        for line in output.lines
        if re.search(rf"^\s*{re.escape(tid)} started:", line)
    ]
    crashes = sum(t.data.tags["overnight.outcome"] == "crash" for t in trials) + len(
        output.matching(r": crash\b")
    )
    figures = {
        "faults injected": sum(faults.values()),
        "infra_errors seen": len(retried) + len(output.matching(r": infra_error\b")),
        "retries": len(starts) - len(trial_ids),
        "trials recorded": len(set(trial_ids)),
        "duplicates": len(trial_ids) - len(set(trial_ids)),
        "crashes": crashes,
        "campaign wall s": round(seconds),
    }
    print("faults: " + ", ".join(f"{key} {value}" for key, value in figures.items()))
    print("\n".join(f"  retried: {line.split('InfraError(', 1)[1][:300]}" for line in retried))
    assert figures["retries"] == len(retried) >= 3, "\n".join(
        retried
    )  # each fault: at least one retried trial
    assert figures["duplicates"] == 0 and figures["crashes"] == 0
    # MLflow's record of each trial says how many attempts it took, so the morning shows what the night survived.
    assert sum(int(t.data.tags.get("overnight.attempts", "1")) - 1 for t in trials) == figures["retries"]
    assert not output.matching(r": infra_error\b")  # no trial ended as one: its retries succeeded
    write_fault_results(faults, figures, retried)  # with OVERNIGHT_WRITE_RESULTS=1


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


RESULTS_HEADING = "## 7. Faults on a real Slurm cluster"


def write_fault_results(faults: dict[str, int], figures: dict[str, int], retried: list[str]) -> None:
    """benchmarks/RESULTS.md's section of this test's figures (tests/helpers.py adds the machine, date, command)."""
    reasons = "\n".join(f"- {_retried_reason(line)}" for line in retried)
    body = f"""One campaign (two baseline copies, a wave of two, a pool of two SkyPilot clusters on the one-node Slurm cluster of
scripts/slurm/up.sh, tests/backends/test_skypilot_slurm.py) through three faults a real cluster has, injected by
the test at their moments and put right as the cluster would come back:

- the login node unreachable for the first launches (its sshd and open ssh sessions killed; up again after the first
  failed launch): {faults["launch"]};
- the job step running a held baseline trial killed with `scancel <allocation>.<step>`: {faults["scancel"]};
- the node set DOWN and its slurmd stopped under the other held trial (every cluster's allocation gone), back 15 s
  later: {faults["node_down"]}.

Each ends the trials it hits as infra_error, never crash; Prefect retries them with backoff (retry_delay_seconds
[5, 30] in tasks/dispatch.py) on a relaunched cluster, and every trial ends ok, recorded once in MLflow.

| faults injected | infra_errors seen | retries | trials recorded | duplicates | crashes | campaign wall s |
|---|---|---|---|---|---|---|
| {" | ".join(str(figures[key]) for key in figures)} |

The retried attempts' reasons, as Prefect logged them:

{reasons}
"""
    write_results(RESULTS_HEADING, body, "Slurm and SkyPilot on the same machine")


def _retried_reason(line: str) -> str:
    """The infra_error's reason and Prefect's delay, from its retry line."""
    reason, _, retry = line.split("InfraError(", 1)[1].partition(") - Retry ")
    delay = retry.split(" will start ", 1)[-1].removesuffix(" from now")
    return f"`{reason.strip(chr(39) + chr(34))[:200]}` (retry {retry.split()[0]} after {delay})"
