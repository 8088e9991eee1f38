"""What a trial is, what a backend saw of its run, and the one place where a run becomes an outcome (`judge`)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import Enum


class Outcome(str, Enum):
    """How a trial ended. One closed set, used in code, MLflow tags, Prefect artifacts and the CLI."""

    OK = "ok"
    CRASH = "crash"  # the script exited non-zero, or its job ended before the script did
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
    pinned: str | None = None  # the hardware type it must run on (a confirmation pairs runs on one type)
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


@dataclass(frozen=True)
class TrialFacts:
    """What a backend observed of one run of the script, before any judgement; `judge` alone makes it an outcome.

    A backend reports only what it saw. Where it cannot know a fact, the fact says nothing happened: a SkyPilot job
    cancelled before its wrapper printed the read-only hashes reports no changed file, and a job that ended before
    the script did reports no exit code.
    """

    exit_code: int | None  # the script's exit status; None where it never reported one
    timed_out: bool = False  # the engine killed it after the hard timeout
    over_limit: str = ""  # why the engine killed it past a memory or disk cap, "" if it did not
    log: str = ""  # the script's output (stdout and stderr), without the engine's own lines
    result_json: str | None = None  # the text of the script's OVERNIGHT_RESULT file, None if it wrote none
    changed_read_only: tuple[str, ...] = ()  # read-only files of the program the run modified or removed
    ended_early: str = ""  # the job state of a job that ended before the script did (SkyPilot), else ""

    @property
    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.log, self.result_json)


def judge(metric: str, facts: TrialFacts) -> tuple[Outcome, str]:
    """The outcome of one run and its reason in words: the one place where a run becomes an outcome, on every backend.

    The first of these that holds decides:

    1. invalid: the run changed or removed a read-only file. Tampering with the data or the metric's code makes the
       metric untrustworthy whatever else happened, and it is the proposal's fault, so it beats every other ending.
    2. over_limit: the engine killed it past its memory or disk cap. The kill explains the timeout, the exit status
       or the missing metric that follow it.
    3. timeout: the engine killed it after the hard timeout; what it printed before is not a finished result.
    4. nan: the metric was NaN or infinite. A script that fails fast on NaN also exits non-zero; the NaN is the cause.
    5. crash: it exited non-zero, or its job ended before the script finished.
    6. no_metric: it exited 0 but never reported the metric.
    7. ok.

    A trial the backend could not run at all (no capacity, a failed setup, a lost cluster) never reaches the judge:
    the backend reports it as infra_error, because the script did not run to any ending of its own.
    """
    if facts.changed_read_only:
        return Outcome.INVALID, f"the run changed read-only files: {', '.join(facts.changed_read_only)}"
    if facts.over_limit:
        return Outcome.OVER_LIMIT, facts.over_limit
    if facts.timed_out:
        return Outcome.TIMEOUT, "killed after the hard timeout"
    value = facts.metrics.get(metric)
    if value is not None and not math.isfinite(value):
        return Outcome.NAN, f"{metric} was {value}"
    if facts.ended_early:
        return Outcome.CRASH, f"the job ended {facts.ended_early} before the script finished"
    if facts.exit_code != 0:
        return Outcome.CRASH, f"exited with status {facts.exit_code}"
    if value is None:
        return Outcome.NO_METRIC, f"the script never printed '{metric}: <value>'"
    return Outcome.OK, ""


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
