"""The campaign's records as plain values, the MLflow tags they are built from, and what `overnight status` shows.

No MLflow import here (nor in `sql.py`): `Memory` builds these records from MLflow, and `overnight status` builds
the same ones from a SQLite store read directly, without paying seconds to import MLflow.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from overnight.trial import Outcome

PREFIX = "overnight."
KIND, STATUS, OUTCOME = PREFIX + "kind", PREFIX + "status", PREFIX + "outcome"
FLOW_RUN = PREFIX + "prefect_flow_run_id"  # the flow run driving an agent run now (a resumed one changes it)
OWNER = PREFIX + "owner"  # "host:pid" of the process running an agent run: a dead owner means resume
CHAMPION_TAG = PREFIX + "champion_run_id"
# On an agent run: its improvement in one line (agent_run.night_text), as the CLI, the report and status show it.
NIGHT = PREFIX + "night"
PARENT_RUN = "mlflow.parentRunId"
SUGGESTION, TAKEN = (
    PREFIX + "suggestion.",
    ".taken",
)  # experiment tags: a person's hypotheses for the next wave
# The holdout (metric.holdout): its value on a champion's run is the metric `holdout_<metric>`, how it went the tag
# `overnight.holdout_status` (ok | failed: reason | unsupported: reason). No TrialRecord carries a `holdout_` metric,
# so no planner (nor the decision policy) ever reads one: only the champion's lineage (a report) does.
HOLDOUT_PREFIX, HOLDOUT_STATUS = "holdout_", PREFIX + "holdout_status"
NOTE = "mlflow.note.content"  # shown as the run's description in the MLflow UI
RUN_NAME = "mlflow.runName"
(
    _TRIAL_ID,
    _AGENT_RUN_ID,
    _WAVE,
    _HYPOTHESIS,
    _FINGERPRINT,
    _PARENT_CHAMPION,
    _DECISION,
    _REASON,
    _WHERE,
    _HARDWARE,
    _ROLE,
    _SEED,
    _BUDGET_S,
    _MEASURES,
    _PINNED,
    _FACTORS,
    _EXPECTED,
    _CHANGE,
) = (
    PREFIX + key
    for key in (
        "trial_id agent_run_id wave hypothesis fingerprint parent_champion decision reason where hardware role "
        "seed budget_s measures pinned factors expected change"
    ).split()
)
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
# A trial's role in its wave. Stores written before the role had its own tag said `overnight.stage` with these values.
ROLES = ("baseline", "candidate", "confirmation", "champion")
_OLD_STAGE, _OLD_ROLES = PREFIX + "stage", {"screen": "candidate", "confirm": "confirmation"}
# The tags a trial record and the champion's lineage are built from: a query reads these, not the long texts
# (rationale, description) that no reader of many runs needs.
READ_TAGS = (
    *(
        PREFIX + key
        for key in (
            "trial_id agent_run_id wave hypothesis fingerprint parent_champion decision reason where hardware "
            "role stage seed budget_s measures pinned factors champion_parent champion_why was_champion "
            "holdout_status expected change"
        ).split()
    ),
    KIND,
    STATUS,
    OUTCOME,
    RUN_NAME,
    NIGHT,
)


@dataclass(frozen=True)
class Run:
    """An MLflow run as the reading queries see it: plain values (tags narrowed to READ_TAGS on a SQL store)."""

    run_id: str
    name: str
    start_time: int | None
    status: str
    artifact_uri: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrialRecord:
    """A trial as the planner and the evaluator see it: plain values, no MLflow objects."""

    run_id: str
    trial_id: str
    agent_run_id: str
    wave: int
    status: str  # running | finished
    outcome: Outcome | None
    metric: float | None
    hypothesis: str
    params: dict[str, str]
    fingerprint: str
    parent_champion: str  # run id of the champion this trial was built on ("" for the first baseline)
    decision: str  # keep | discard | baseline | "" while undecided
    reason: str
    duration_s: float
    started_ms: int
    metrics: dict[str, float] = field(default_factory=dict)
    where: str = ""  # backend, host and folder (or cluster) it ran on
    # The accelerator type it really ran on ("cpu" locally) and the training budget it had: metrics are compared
    # only between runs of the same hardware and budget.
    hardware: str = ""
    budget_s: float = 0.0  # 0 for a proposal that never ran
    # baseline (a copy of the starting point) | candidate (a proposal's screening run) | confirmation (a new-seed run
    # of a promising candidate) | champion (a re-measurement of the champion)
    role: str = "candidate"
    seed: int = 0
    measures: str = ""  # confirm and champion runs: the run id of the trial they measure again
    pinned: str = ""  # the hardware type it must run on ("" = any)
    factors: dict[str, list] = field(
        default_factory=dict
    )  # a grid cell: factor -> [level label, 0 low | 1 high]
    expected: str = ""  # the effect its proposal expected on the metric, in the planner's words
    change: str = ""  # its change from the champion it was built on, in one line (proposals.compact_change)

    @property
    def unbiased(self) -> bool:
        """A run taken as it came (baseline, confirmation, re-measurement), not picked for looking good."""
        return self.role != "candidate"


@dataclass(frozen=True)
class AgentRunRecord:
    """An agent run (one execution of the campaign) as a report and a resumption see it."""

    run_id: str
    name: str
    started_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    owner: str = ""  # "host:pid" of the process that runs it
    flow_run: str = ""  # the Prefect flow run that drives it now ("" if none)
    night: str = ""  # its improvement in one line (tag overnight.night), once it finished


@dataclass(frozen=True)
class ChampionVersion:
    """One version of the champion's files in its lineage: plain values, ready for a report or an export."""

    version: int  # 0: the program as shipped; then one per change crowned
    trial_id: str
    hypothesis: str
    run_id: str
    parent_run_id: str  # the version it was built on ("" for the program as shipped)
    metric: float | None
    confirmed_gain: float | None  # over its parent, metric units, positive = better; None: not recorded
    verdict: str  # why it was crowned (tag overnight.champion_why); "" when not recorded
    files: dict[str, str]  # its editable files
    step_diff: str  # from its parent's files
    cumulative_diff: str  # from the program as shipped
    holdout: float | None = (
        None  # its saved model on the holdout (metric holdout_<metric>); None: not measured
    )
    holdout_status: str = ""  # ok | failed: reason | unsupported: reason; "" when no holdout ran on it
    # Better than its parent on validation but worse on the holdout: its gain may not be real.
    holdout_worse: bool = False


@dataclass(frozen=True)
class CampaignStatus:
    """An agent run in progress, as `overnight status` shows it."""

    agent_run_id: str
    agent_run_name: str
    started_ms: int
    waves: tuple[int, ...]  # waves running now
    running: tuple[TrialRecord, ...]
    finished: int  # trials finished so far
    trial_hours: float  # of the finished trials
    llm_usd: float
    compute_usd: float = 0.0  # where the backend knows the price


def trial_record(run: Run, metric: str) -> TrialRecord:
    """The trial a run records; `metric` is the campaign's metric."""
    get, metrics = run.tags.get, run.metrics  # ten thousand records per full read: keep this lean
    outcome, factors = get(OUTCOME), get(_FACTORS)
    return TrialRecord(
        run_id=run.run_id,
        trial_id=get(_TRIAL_ID, run.name or ""),
        agent_run_id=get(_AGENT_RUN_ID, ""),
        wave=int(get(_WAVE, "0")),
        status=get(STATUS, "running"),
        outcome=(_OUTCOMES.get(outcome) or Outcome(outcome)) if outcome else None,
        metric=metrics.get(metric),
        hypothesis=get(_HYPOTHESIS, ""),
        params=dict(run.params),
        fingerprint=get(_FINGERPRINT, ""),
        parent_champion=get(_PARENT_CHAMPION, ""),
        decision=get(_DECISION, ""),
        reason=get(_REASON, ""),
        duration_s=metrics.get("duration_s", 0.0),
        started_ms=run.start_time or int(time.time() * 1000),
        metrics={k: v for k, v in metrics.items() if not k.startswith(HOLDOUT_PREFIX)},  # never a planner's
        where=get(_WHERE, ""),
        hardware=get(_HARDWARE, ""),
        role=get(_ROLE) or _OLD_ROLES.get(get(_OLD_STAGE, ""), get(_OLD_STAGE, "candidate")),
        seed=int(get(_SEED, "0") or 0),
        budget_s=float(get(_BUDGET_S) or 0),
        measures=get(_MEASURES, ""),
        pinned=get(_PINNED, ""),
        factors=json.loads(factors) if factors and factors != "{}" else {},
        expected=get(_EXPECTED, ""),
        change=get(_CHANGE, ""),
    )


def llm_totals(waves: list[Run]) -> dict[str, float]:
    """Tokens and dollars of the planner calls recorded on these wave runs (plans, reflections, repairs):
    input_tokens, output_tokens, ..., usd."""
    totals: dict[str, float] = Counter()
    for wave in waves:
        for key in sorted(wave.metrics):  # one order, whatever order the store returned them in
            call, _, what = key.partition("_")
            if call in ("plan", "reflect", "repair") and what:
                totals[what] += wave.metrics[key]
    return dict(totals)


def campaign_status(runs: Callable[[dict[str, str]], list[Run]], metric: str) -> CampaignStatus | None:
    """What runs now, from `runs(tags)` (the campaign's active runs carrying these tags, oldest first): the newest
    agent run MLflow marks RUNNING, its running waves, its trials, its spend so far; None when none runs."""
    agents = [run for run in runs({KIND: "agent_run"}) if run.status == "RUNNING"]
    if not agents:
        return None
    agent = max(agents, key=lambda run: run.start_time or 0)  # the first of equals, as MLflow's search orders
    waves = runs({KIND: "wave", PARENT_RUN: agent.run_id})
    mine = [trial_record(run, metric) for run in runs({KIND: "trial", _AGENT_RUN_ID: agent.run_id})]
    return CampaignStatus(
        agent_run_id=agent.run_id,
        agent_run_name=agent.name,
        started_ms=agent.start_time or 0,
        waves=tuple(int(wave.tags.get(_WAVE, "0")) for wave in waves if wave.status == "RUNNING"),
        running=tuple(t for t in mine if t.status == "running"),
        finished=sum(1 for t in mine if t.status == "finished"),
        trial_hours=sum(t.duration_s for t in mine) / 3600,
        llm_usd=llm_totals(waves).get("usd", 0.0),
        compute_usd=sum(t.metrics.get("compute_usd", 0.0) for t in mine),
    )


def last_night(runs: Callable[[dict[str, str]], list[Run]]) -> str:
    """The newest finished agent run's improvement line (tag overnight.night), from `runs(tags)`; "" if none."""
    nights = [run for run in runs({KIND: "agent_run"}) if run.tags.get(NIGHT)]
    return max(nights, key=lambda run: run.start_time or 0).tags[NIGHT] if nights else ""
