"""What a trial is, what it produced, and the one place where a run becomes an outcome."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import Enum


class Outcome(str, Enum):
    """How a trial ended. One closed set, used in code, MLflow tags, Prefect artifacts and the CLI."""

    OK = "ok"
    CRASH = "crash"  # the script exited non-zero
    TIMEOUT = "timeout"  # killed after the hard timeout
    NO_METRIC = "no_metric"  # exited 0 but never printed the metric
    NAN = "nan"  # the metric was NaN or infinite
    OVER_LIMIT = "over_limit"  # killed for going past the memory or disk cap
    INFRA_ERROR = "infra_error"  # the backend could not run it (retryable; never the experiment's fault)
    INVALID = "invalid"  # the proposal could not be applied; never dispatched


@dataclass(frozen=True)
class TrialSpec:
    """Everything a backend needs to run one trial."""

    trial_id: str
    files: dict[str, str]  # the editable files of this trial (champion + proposal)
    seed: int
    command: str
    time_budget_s: float
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)
    hardware: str | None = None  # run it on this accelerator type (a confirmation pairs runs on one type)
    stage: str = "screen"  # screen | confirm: a backend may run the stages on different resources
    max_memory_mb: float | None = None  # the trial's processes are killed past these (over_limit)
    max_disk_mb: float | None = None


@dataclass(frozen=True)
class TrialResult:
    """What a backend reports for one trial."""

    trial_id: str
    outcome: Outcome
    metrics: dict[str, float]
    duration_s: float
    exit_code: int | None
    log_tail: str
    reason: str = ""
    # Where it really ran, e.g. {"hardware": "H100", "cluster": "ovn-x-0", "job_id": "3"}; kept as MLflow tags.
    placement: dict[str, str] = field(default_factory=dict)
    cost_usd: float | None = None  # compute cost estimate (hourly price x duration) where the price is known


_LINE = re.compile(r"^\s*([A-Za-z_]\w*):\s*(\S+)\s*$")


def parse_metrics(log: str, result_json: str | None = None) -> dict[str, float]:
    """The script's `name: value` lines (the last one of each name wins), then its OVERNIGHT_RESULT JSON."""
    metrics: dict[str, float] = {}
    for line in log.splitlines():
        match = _LINE.match(line)
        if match:
            try:
                metrics[match.group(1)] = float(match.group(2))
            except ValueError:
                pass  # a `name: text` line, e.g. `device: cpu`: not a metric
    if result_json:
        try:
            data = json.loads(result_json)
        except json.JSONDecodeError:
            data = {}
        for key, value in data.items() if isinstance(data, dict) else ():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = float(value)
    return metrics


def classify(
    metric: str, metrics: dict[str, float], exit_code: int | None, timed_out: bool
) -> tuple[Outcome, str]:
    """The outcome of a finished process, with the reason a person would want to read."""
    if timed_out:
        return Outcome.TIMEOUT, "killed after the hard timeout"
    value = metrics.get(metric)
    if value is not None and not math.isfinite(value):
        return Outcome.NAN, f"{metric} was {value}"
    if exit_code != 0:
        return Outcome.CRASH, f"exited with status {exit_code}"
    if value is None:
        return Outcome.NO_METRIC, f"the script never printed '{metric}: <value>'"
    return Outcome.OK, ""


def read_only_changed(files: list[str]) -> tuple[Outcome, str]:
    """The outcome of a run that changed or removed read-only files of the program (on any backend)."""
    return Outcome.INVALID, f"the run changed read-only files: {', '.join(files)}"


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
