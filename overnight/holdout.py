"""The holdout: a champion's saved model scored by a read-only command, on data the training script never receives.

`metric.holdout` names the command. It runs in a fresh process in the champion's trial folder (where its training
saved the model), in its own process group, with the environment the trial had (none of the orchestrator's secrets)
plus OVERNIGHT_HOLDOUT_DATA, the absolute path of `metric.holdout_data` (outside the program folder, so never in a
trial's folder), and under the trial's hard timeout. Its `<metric>: <value>` line becomes the metric
`holdout_<metric>` on the champion's run; the tag `overnight.holdout_status` says how it went (ok | failed: reason |
unsupported: reason). A holdout that fails is recorded, never raised: the campaign goes on. No planner ever reads
the value (`records.trial_record` drops `holdout_` metrics); the report sets it beside the validation metric.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from overnight.backends.base import INHERITED_ENV, trial_env
from overnight.config import CampaignConfig
from overnight.memory.records import HOLDOUT_PREFIX, HOLDOUT_STATUS, TrialRecord
from overnight.memory.store import Memory
from overnight.secrets import scrub
from overnight.trial import TrialSpec, parse_metrics

HOLDOUT_DATA_ENV = "OVERNIGHT_HOLDOUT_DATA"
LAST_LINES = 5  # of the command's output, in the status of a holdout that failed


@dataclass(frozen=True)
class HoldoutResult:
    """The holdout of one champion run: its value (None unless it went well) and how it went."""

    run_id: str
    value: float | None
    status: str  # ok | failed: reason | unsupported: reason

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def measure_holdout(config: CampaignConfig, memory: Memory, run_id: str) -> HoldoutResult | None:
    """Run the holdout on the champion run `run_id` and record it on that run; None when the campaign has none."""
    if config.metric.holdout is None:
        return None
    trial = memory.find_trial_by_run(run_id)
    folder, why = trial_folder(trial.where if trial else "")
    if folder is None or trial is None:
        result = HoldoutResult(run_id, None, why)
    else:
        result = _measure(config, trial, folder)
    memory.set_tags(run_id, {HOLDOUT_STATUS: result.status})
    if result.value is not None:
        memory.log_metrics(run_id, {HOLDOUT_PREFIX + config.metric.name: result.value})
    return result


def trial_folder(where: str) -> tuple[Path | None, str]:
    """The folder a trial ran in, from its `overnight.where` tag; else None and the status that says why not."""
    backend, _, place = where.partition(" ")
    if backend == "skypilot":
        return None, (
            "unsupported: the holdout runs on the local backend only for now; on SkyPilot the champion's folder "
            "and its saved model stay on the cluster that trained it"
        )
    if backend != "local":
        return None, f"failed: its trial run records no local folder (overnight.where: {where or 'not set'})"
    host, _, path = place.partition(":")
    if host != socket.gethostname():
        return None, f"failed: the trial ran on {host}, and its folder is not on this machine"
    if not Path(path).is_dir():
        return None, f"failed: its trial folder {path} is gone"
    return Path(path), ""


def holdout_env(config: CampaignConfig, trial: TrialRecord) -> dict[str, str]:
    """The trial's own environment (as a backend builds it), plus where the holdout data is."""
    spec = TrialSpec(
        trial_id=trial.trial_id,
        files={},
        seed=trial.seed,
        command=config.metric.holdout or "",
        time_budget_s=trial.budget_s or config.trial.time_budget_s,
        timeout_s=config.trial.timeout_s,
        env=dict(config.trial.env),
    )
    engine = {"PYTHONDONTWRITEBYTECODE": "1"}  # the holdout leaves the trial's folder as training left it
    if config.metric.holdout_data is not None:
        engine[HOLDOUT_DATA_ENV] = str(config.metric.holdout_data)
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.update(trial_env(spec, **engine))
    return env


def _measure(config: CampaignConfig, trial: TrialRecord, folder: Path) -> HoldoutResult:
    """Run the command in the folder and read its metric line; every way it can fail is a status, not an error."""
    command, metric = config.metric.holdout or "", config.metric.name
    try:
        exit_code, output = run_command(command, folder, holdout_env(config, trial), config.trial.timeout_s)
    except (OSError, ValueError) as error:  # no such program, a command shlex cannot split
        return HoldoutResult(trial.run_id, None, f"failed: could not start {command!r}: {error}")
    value = parse_metrics(output).get(metric)
    if exit_code is None:
        why = f"timed out after {config.trial.timeout_s:g} s"
    elif exit_code != 0:
        why = f"{command!r} exited with status {exit_code}"
    elif value is None:
        why = f"{command!r} printed no `{metric}: <value>` line"
    elif not math.isfinite(value):
        why = f"{command!r} printed {metric}: {value}"
    else:
        return HoldoutResult(trial.run_id, value, "ok")
    last = "\n".join(output.strip().splitlines()[-LAST_LINES:])
    return HoldoutResult(trial.run_id, None, f"failed: {why}\n{last}".rstrip())


def run_command(command: str, folder: Path, env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """Run a command in its own process group; (its exit code, or None past the timeout; its output, scrubbed)."""
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter overnight runs in, as for the trial's command
    process = subprocess.Popen(
        argv,
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a timeout kills every child too
        text=True,
        errors="replace",
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
        exit_code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        exit_code = None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what it left behind dies with it
        except (ProcessLookupError, PermissionError):
            pass
    return exit_code, scrub(output)
