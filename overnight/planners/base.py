"""The planner contract. Planners read frozen records, never live MLflow objects, and never run trials."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot
from overnight.policy import Decision, improvement
from overnight.pricing import Usage
from overnight.proposals import Proposal
from overnight.trial import Outcome


@dataclass(frozen=True)
class ConditionNoise:
    """The seed noise measured under one condition (training budget and hardware) on the agent run's unbiased
    repeated runs, and the smallest gain a confirmation under it can keep."""

    hardware: str
    budget_s: float
    sigma: float  # the noise floor: the spread of one run's metric between seeds
    runs: int
    dof: int
    pooled: bool  # no repeated runs on this hardware yet: the spread within each type, pooled over the types
    smallest_gain: float  # DecisionPolicy.smallest_confirmable_gain under it; math.inf: nothing can be kept


@dataclass(frozen=True)
class CampaignFacts:
    """What the campaign knows of its own rule, as plain values for a planner: the noise per condition, the
    smallest gain the next confirmation can keep, and how a wave is judged (overnight/policy.py)."""

    noise: tuple[ConditionNoise, ...]
    rule: str  # t_test | k_sigma
    k: float  # k_sigma: standard errors a confirmed gain must clear
    screen_k: float  # a screening run is promising past min_improvement + screen_k standard errors
    min_improvement: float
    confirm_top: int  # promising candidates confirmed per wave at most
    confirm_runs: int  # new-seed runs of each, and as many of the champion beside them
    screen_budget_s: float
    confirm_budget_s: float
    error_control: str  # lord | per_candidate
    alpha: float
    level: float  # the level α_t of the campaign's next confirmation
    tests_done: int  # confirmations the campaign has tested so far (all nights)


@dataclass(frozen=True)
class PlanContext:
    """What a planner may know when it plans wave `wave`."""

    wave: int
    n: int  # proposals wanted
    champion_files: dict[str, str]
    memory: MemorySnapshot
    brief: str = ""  # the program's program.md
    budget_left: str = ""
    suggestions: tuple[str, ...] = ()  # a person's hypotheses that this wave must include
    # The memory a planner may query while it plans: lookup(tool name, arguments) -> text (overnight.memory.queries,
    # over MLflow). None where nothing can be queried (a planner under test, `overnight plan` without a store).
    lookup: Callable[[str, dict], str] | None = None
    facts: CampaignFacts | None = None  # the noise floor, the smallest confirmable gain, how a wave is judged
    in_wave: tuple[str, ...] = ()  # hypotheses of the wave's trials already planned (runners-up re-tested)

    @property
    def history(self) -> tuple[TrialRecord, ...]:
        return self.memory.trials

    @property
    def champion(self) -> TrialRecord | None:
        return self.memory.champion


@dataclass(frozen=True)
class MemoryQuery:
    """One query a planner made of the campaign's memory while planning, and what it returned."""

    tool: str
    arguments: dict
    answer: str
    error: bool = False  # the query could not be answered as asked (the answer says why)


@dataclass(frozen=True)
class Plan:
    """A planner's answer: the proposals, what producing them cost, and anything a person should know."""

    proposals: list[Proposal]
    usage: Usage = field(default_factory=Usage)  # every call, the memory queries' included
    cost_usd: float = 0.0
    note: str = ""  # e.g. why part of the wave came from the offline planner
    prompt: str = ""  # the exact prompt sent, for `overnight plan --show-prompt` (empty offline)
    queries: tuple[MemoryQuery, ...] = ()  # the memory queries made before answering, in order
    query_usage: Usage = field(default_factory=Usage)  # the part of `usage` spent on the calls that queried
    query_cost_usd: float = 0.0  # the part of `cost_usd` they cost


@dataclass(frozen=True)
class CrashedTrial:
    """A proposal whose trial crashed before its first result (an import error, a shape error): what a planner
    needs to repair it within the wave."""

    trial_id: str
    proposal: Proposal  # as it was proposed, against the champion's files
    reason: str  # the outcome's reason, e.g. "exited with status 1"
    log_tail: str  # the end of its log: the traceback


@dataclass(frozen=True)
class Reflection:
    markdown: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


@dataclass(frozen=True)
class FinishedWave:
    """A finished wave as the planner reflects on it."""

    wave: int
    metric: str
    goal: str
    champion_before: TrialRecord
    champion_after: TrialRecord
    trials: tuple[TrialRecord, ...]
    decisions: tuple[Decision, ...]
    effects: tuple[dict, ...] = ()  # a factorial grid's effects (overnight.stats.Effect.as_dict()), if any


class Planner(ABC):
    name: str
    reads_memory_to_reflect: bool = (
        False  # reflect() is handed a PlanContext (a snapshot of memory) when True
    )
    repairs_crashes: bool = False  # repair() can fix a crashed trial from its traceback: the wave asks it

    @abstractmethod
    def propose(self, context: PlanContext) -> Plan:
        """Up to `context.n` proposals, none a repeat of a trial in the history."""

    def repair(self, context: PlanContext, crashed: CrashedTrial) -> Plan:
        """At most one proposal that fixes the crash (edits against the champion's files, as every proposal is);
        none from a planner that cannot read a traceback."""
        return Plan([], note=f"the {self.name} planner does not repair crashed trials")

    @abstractmethod
    def reflect(self, outcome: FinishedWave, context: PlanContext | None = None) -> Reflection:
        """Markdown: what the wave taught (numbers included), for people and for the next plan."""


def wave_report(outcome: FinishedWave) -> str:
    """The wave as a markdown table: each change, its effect against the champion, outcomes and failures."""
    metric = outcome.metric
    before, after = outcome.champion_before, outcome.champion_after
    by_run = {d.run_id: d for d in outcome.decisions}
    lines = [f"## Wave {outcome.wave}", ""]
    if after.run_id != before.run_id:
        gain = improvement(outcome.goal, before.metric, after.metric)
        lines.append(
            f"New champion **{after.trial_id}**: {metric} {before.metric:.6g} -> {after.metric:.6g} "
            f"(better by {gain:.4g}). Change: {after.hypothesis}"
        )
    else:
        lines.append(f"No trial beat the champion {before.trial_id} ({metric} {before.metric:.6g}).")
    lines += [
        "",
        f"| trial | change | outcome | {metric} | vs champion | decision |",
        "|---|---|---|---|---|---|",
    ]
    for trial in outcome.trials:
        decision = by_run.get(trial.run_id)
        value = f"{trial.metric:.6g}" if trial.metric is not None else "-"
        delta = f"{decision.delta:+.4g}" if decision and decision.delta is not None else "-"
        verdict = decision.decision if decision else ""
        result = trial.outcome.value if trial.outcome else "running"
        lines.append(f"| {trial.trial_id} | {trial.hypothesis} | {result} | {value} | {delta} | {verdict} |")
    if outcome.effects:
        lines += [
            "",
            f"Factorial grid (2-level; effect = mean at the high level minus at the low, in {metric}):",
            "",
            "| effect | estimate | 95% interval | clear of zero |",
            "|---|---|---|---|",
        ]
        for effect in outcome.effects:
            lines.append(
                f"| {effect['name']} | {effect['estimate']:+.4g} | [{effect['low']:+.4g}, {effect['high']:+.4g}] "
                f"| {'yes' if effect['significant'] else 'no'} |"
            )
    failures = [t for t in outcome.trials if t.outcome not in (None, Outcome.OK)]
    if failures:
        lines += ["", "Failures:"]
        lines += [f"- {t.trial_id} ({t.outcome.value}): {t.reason}" for t in failures]
    return "\n".join(lines) + "\n"
