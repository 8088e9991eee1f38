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
    OVER_BUDGET = "over_budget"  # trained, or ran, longer than its time budget allows: never comparable
    INFRA_ERROR = "infra_error"  # the backend could not run it (retryable; never the experiment's fault)
    INVALID = "invalid"  # the proposal could not be applied; never dispatched


@dataclass(frozen=True)
class TimeBudget:
    """The training time every trial is given, and how far past it a run may go and still be compared.

    The script's own `training_seconds` may exceed `seconds` by the fraction `tolerance`; the whole run, as the engine
    times it, may also take `allowance_s` more (starting, loading, evaluating), whatever the script prints.
    """

    seconds: float
    tolerance: float = 0.1
    allowance_s: float = 120.0

    @property
    def training_limit_s(self) -> float:
        return self.seconds * (1 + self.tolerance)

    @property
    def wall_limit_s(self) -> float:
        return self.training_limit_s + self.allowance_s

    def overrun(self, training_s: float | None, wall_s: float | None) -> str:
        """Why a run broke its budget, in words; "" if it kept to it (or nothing is known of its time)."""
        if training_s is not None and training_s > self.training_limit_s:
            return (
                f"trained {training_s:.4g} s (its training_seconds) on a {self.seconds:g} s budget, past "
                f"{self.training_limit_s:.4g} s (budget_tolerance {self.tolerance:g})"
            )
        if wall_s is not None and wall_s > self.wall_limit_s:
            return (
                f"ran {wall_s:.4g} s by the engine's clock (wall_s) on a {self.seconds:g} s budget, past "
                f"{self.wall_limit_s:.4g} s (budget_tolerance {self.tolerance:g}, overhead_allowance_s "
                f"{self.allowance_s:g})"
            )
        return ""


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
    budget_tolerance: float = 0.1  # how far past its budget a run may go before it is over_budget
    overhead_allowance_s: float = 120.0

    @property
    def budget(self) -> TimeBudget:
        return TimeBudget(self.time_budget_s, self.budget_tolerance, self.overhead_allowance_s)


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
    wall_s: float | None = None  # the script's run as the engine timed it (duration_s also counts the setup)


# The metrics the engine records of every run, whatever the script printed: the trials running at once (dispatch), its
# times and compute cost (MLflow, read back by a resumed wave).
ENGINE_METRICS = frozenset({"concurrency", "duration_s", "wall_s", "compute_usd"})


def crashed_before_first_result(result: TrialResult) -> bool:
    """A crash before the script printed any `name: value` line (an import error, a shape error): a bug in the
    change, caught in its first seconds, rather than a change that ran and failed late."""
    return result.outcome is Outcome.CRASH and not set(result.metrics) - ENGINE_METRICS


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
    wall_s: float | None = None  # the script's start to its end by the engine's clock; None if unknown

    @property
    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.log, self.result_json)


def judge(metric: str, facts: TrialFacts, budget: TimeBudget | None = None) -> tuple[Outcome, str]:
    """The outcome of one run and its reason in words: the one place where a run becomes an outcome, on every backend.

    The first of these that holds decides:

    1. invalid: the run changed or removed a read-only file. Tampering with the data or the metric's code makes the
       metric untrustworthy whatever else happened, and it is the proposal's fault, so it beats every other ending.
    2. over_limit: the engine killed it past its memory or disk cap. The kill explains the timeout, the exit status
       or the missing metric that follow it.
    3. timeout: the engine killed it after the hard timeout; what it printed before is not a finished result.
    4. over_budget: its own `training_seconds`, or the engine's clock, went past what `budget` allows. The fixed
       budget is what makes trials comparable: a run that broke it used time no other trial had, so whatever it
       ended with (a metric, a NaN, a crash) says first that the change costs more time than the campaign gives,
       which is what the planner must learn. Only an engine kill (1-3) explains more.
    5. nan: the metric was NaN or infinite. A script that fails fast on NaN also exits non-zero; the NaN is the cause.
    6. crash: it exited non-zero, or its job ended before the script finished.
    7. no_metric: it exited 0 but never reported the metric.
    8. ok.

    Without a `budget` nothing is over_budget. A trial the backend could not run at all (no capacity, a failed setup,
    a lost cluster) never reaches the judge: the backend reports it as infra_error, because the script did not run
    to any ending of its own.
    """
    if facts.changed_read_only:
        return Outcome.INVALID, f"the run changed read-only files: {', '.join(facts.changed_read_only)}"
    if facts.over_limit:
        return Outcome.OVER_LIMIT, facts.over_limit
    if facts.timed_out:
        return Outcome.TIMEOUT, "killed after the hard timeout"
    metrics = facts.metrics
    if budget is not None and (overrun := budget.overrun(metrics.get("training_seconds"), facts.wall_s)):
        return Outcome.OVER_BUDGET, overrun
    value = metrics.get(metric)
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
