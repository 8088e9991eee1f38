"""The decision policy: a wave's finished trials, judged against the history, become decisions and the runs wanted next.

One pure object, with no MLflow, Prefect or processes behind it: the campaign (`overnight/wave/evaluate.py`
records what it decides) and any simulator (`benchmarks/search_efficiency.py`, `tests/test_decisions.py`) call the
same code, so what a benchmark measures is what a night does.

How a wave is judged:
- **screen**: each candidate's one run against the champion's runs under the same condition (training budget and
  hardware); the promising ones, best screening gain first, are confirmed, at most `confirm_top` of them;
- **confirm**: each promising candidate gets new-seed runs on the hardware it was screened on, beside enough runs of
  the champion on that hardware; it becomes champion only if the confirmed gain clears the rule (overnight/stats.py),
  and of several, the largest gain wins (one change at a time);
- only unbiased runs measure the champion and the noise: baseline copies, confirmation runs and re-measurements,
  never a screening run that was picked for looking good.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from overnight import stats
from overnight.memory.records import TrialRecord
from overnight.trial import Outcome

if TYPE_CHECKING:  # the config is only read by from_config
    from overnight.config import CampaignConfig


@dataclass(frozen=True)
class Decision:
    """What the policy decided about one trial, why, and the verdict's numbers behind it."""

    run_id: str
    trial_id: str
    # keep | discard | inconclusive | promising | failed | baseline | baseline_repeat | confirmation | champion_run
    decision: str
    reason: str
    delta: (
        float | None
    )  # metric minus the champion's mean under the same condition (negative = better, minimizing)
    numbers: dict[str, float | int | str] = field(default_factory=dict)  # the verdict behind it, for MLflow


@dataclass(frozen=True)
class RunsWanted:
    """New-seed runs of one trial's files that the policy needs before it can decide."""

    role: str  # confirmation (of a promising candidate) | champion (a re-measurement of the champion)
    measures: TrialRecord  # the trial whose files run again
    stage: str  # screen | confirm: the stage whose settings they run with
    hardware: str | None  # pinned to this hardware type; None: any
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Screening:
    """The screening verdicts of a wave, the candidates to confirm (best first) and the runs that confirm them."""

    decisions: tuple[Decision, ...]
    to_confirm: tuple[TrialRecord, ...]
    wanted: tuple[RunsWanted, ...]
    effects: tuple[
        dict, ...
    ] = ()  # a complete two-level grid's effects (stats.Effect.as_dict()), if the wave had one


@dataclass(frozen=True)
class Crowning:
    """The confirmation verdicts of a wave, and the candidate crowned (None when none cleared the rule)."""

    decisions: tuple[Decision, ...]
    champion: TrialRecord | None
    verdict: stats.Verdict | None


def improvement(goal: str, champion: float, candidate: float) -> float:
    """How much better the candidate is, in metric units (positive = better)."""
    return champion - candidate if goal == "minimize" else candidate - champion


def _ok(trial: TrialRecord) -> bool:
    return trial.outcome is Outcome.OK and trial.metric is not None and math.isfinite(trial.metric)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def measurements(
    history: list[TrialRecord], fingerprint: str, budget_s: float, hardware: str | None
) -> list[float]:
    """The unbiased runs of one set of files under one condition (any hardware when `hardware` is None)."""
    return [
        t.metric
        for t in history
        if _ok(t)
        and t.unbiased
        and t.fingerprint == fingerprint
        and t.budget_s == budget_s
        and (hardware is None or t.hardware == hardware)
    ]


def noise_floor(history: list[TrialRecord]) -> stats.NoiseFloor | None:
    """Pooled spread of every group of repeated runs (same files, budget and hardware, different seeds)."""
    groups: dict[tuple[str, float, str], list[float]] = defaultdict(list)
    for t in history:
        if _ok(t) and t.unbiased:
            groups[(t.fingerprint, t.budget_s, t.hardware)].append(t.metric)
    return stats.noise_floor(list(groups.values()))


def grid_effects(screened: list[TrialRecord], floor: stats.NoiseFloor | None) -> tuple[dict, ...]:
    """Main effects and two-way interactions of the wave's two-level grid, if it ran complete; else nothing."""
    cells = [t for t in screened if t.factors and _ok(t)]
    if len(cells) < 4 or floor is None:
        return ()
    levels: dict[str, list[str]] = {}
    for cell in cells:
        for name, (label, index) in cell.factors.items():
            levels.setdefault(name, ["", ""])[int(index)] = label
    factors = {name: (low, high) for name, (low, high) in levels.items()}
    rows = [({name: label for name, (label, _) in cell.factors.items()}, cell.metric) for cell in cells]
    try:
        found = stats.factorial_effects(rows, factors, floor)
    except ValueError:  # a cell failed or is missing: no honest estimate from an incomplete grid
        return ()
    return tuple(effect.as_dict() for effect in found)


@dataclass(frozen=True)
class DecisionPolicy:
    """Screen, confirm, crown: the rule and the numbers of runs, with the budget of each stage."""

    goal: str
    rule: stats.Rule
    confirm_top: int  # promising candidates confirmed per wave at most
    screen_budget_s: float
    confirm_budget_s: float
    first_seed: int = 0  # the campaign's trial seed; new-seed runs draw the next unused ones

    @classmethod
    def from_config(cls, config: CampaignConfig) -> DecisionPolicy:
        d = config.decision
        rule = stats.Rule(
            kind=d.rule,
            k=d.k,
            alpha=d.alpha,
            margin=config.min_improvement,
            screen_k=d.screen_k,
            baseline_runs=config.baseline_repeats,
            confirm_runs=d.confirm_runs,
        )
        screen, confirm = config.stage("screen"), config.stage("confirm")
        return cls(
            config.metric.goal, rule, d.confirm_top, screen.budget_s, confirm.budget_s, config.trial.seed
        )

    def budget_s(self, stage: str) -> float:
        return self.confirm_budget_s if stage == "confirm" else self.screen_budget_s

    # --- screen ------------------------------------------------------------------------------------------------

    def screen(
        self,
        history: list[TrialRecord],
        champion: TrialRecord,
        screened: list[TrialRecord],
        trials_left: int | None = None,
    ) -> Screening:
        """Screening verdicts for a wave's candidates, the promising ones to confirm (as many as `trials_left`, the
        trial budget left, has room for) and the runs that confirm them; a grid's effects against the noise floor."""
        floor = noise_floor(history)
        decisions, promising = [], []
        for trial in screened:
            decision, gain = self._screen_one(history, champion, trial, floor)
            decisions.append(decision)
            if decision.decision == "promising":
                promising.append((gain, trial))
        promising.sort(key=lambda pair: -pair[0])
        room = self.confirm_top
        if trials_left is not None:  # confirmation runs are trials too: never past the trial budget
            # A resumed wave had planned (and counted) the confirmations of its candidates already.
            planned = {t.measures for t in history if t.role == "confirmation"}
            already = sum(1 for _, trial in promising if trial.run_id in planned)
            room = min(room, already or trials_left // (2 * self.rule.confirm_runs))
        to_confirm = tuple(trial for _, trial in promising[:room])
        why = (
            f"{self.confirm_top} trials with larger screening gains were confirmed first"
            if room == self.confirm_top
            else "the trial budget has no room left for its confirmation runs"
        )
        waiting = {trial.run_id for _, trial in promising[room:]}
        decisions = [
            replace(d, decision="inconclusive", reason=f"{d.reason}; promising, but {why}")
            if d.run_id in waiting
            else d
            for d in decisions
        ]
        wanted = self.confirmation_runs(history, champion, to_confirm)
        return Screening(tuple(decisions), to_confirm, wanted, grid_effects(screened, floor))

    def _screen_one(
        self,
        history: list[TrialRecord],
        champion: TrialRecord,
        trial: TrialRecord,
        floor: stats.NoiseFloor | None,
    ) -> tuple[Decision, float]:
        if not _ok(trial):
            outcome = trial.outcome.value if trial.outcome else "unfinished"
            return Decision(trial.run_id, trial.trial_id, "failed", f"{outcome}: {trial.reason}", None), 0.0
        champ = measurements(history, champion.fingerprint, trial.budget_s, trial.hardware)
        note = ""
        if not champ:  # screening only filters: confirmation is always paired on the trial's own hardware
            champ = measurements(history, champion.fingerprint, trial.budget_s, None)
            note = f" (no champion run on {trial.hardware} yet: screened across hardware; confirmed on {trial.hardware})"
        if not champ or floor is None:
            why = (
                "no noise floor yet"
                if floor is None
                else f"no champion run with a {trial.budget_s:g} s budget"
            )
            return Decision(trial.run_id, trial.trial_id, "inconclusive", why, None), 0.0
        verdict = stats.screen(champ, trial.metric, self.goal, floor, self.rule)
        decision = Decision(
            trial.run_id,
            trial.trial_id,
            verdict.decision,
            f"screening: {verdict.reason}{note}",
            trial.metric - _mean(champ),
            verdict.as_dict(),
        )
        return decision, verdict.gain

    def confirmation_runs(
        self, history: list[TrialRecord], champion: TrialRecord, to_confirm: tuple[TrialRecord, ...]
    ) -> tuple[RunsWanted, ...]:
        """New-seed runs of each candidate on the hardware it was screened on, and the champion topped up to as many
        runs on each of those hardware types."""
        wanted: list[RunsWanted] = []
        taken: set[int] = set()  # seeds the champion's runs on an earlier hardware type already draw
        hardware_done: set[str] = set()
        n = self.rule.confirm_runs
        for candidate in to_confirm:
            seeds = self.fresh_seeds(history, candidate.fingerprint, n)
            wanted.append(RunsWanted("confirmation", candidate, "confirm", candidate.hardware or None, seeds))
            if candidate.hardware in hardware_done:
                continue
            hardware_done.add(candidate.hardware)
            top_up = self.champion_runs(history, champion, "confirm", candidate.hardware or None, n, taken)
            if top_up is not None:
                wanted.append(top_up)
                taken |= set(top_up.seeds)
        return tuple(wanted)

    # --- the champion's runs -----------------------------------------------------------------------------------

    def champion_runs(
        self,
        history: list[TrialRecord],
        champion: TrialRecord,
        stage: str,
        hardware: str | None,
        needed: int,
        taken: Collection[int] = (),
    ) -> RunsWanted | None:
        """New-seed runs of the champion until it has `needed` unbiased runs under a condition; None if it has."""
        have = measurements(history, champion.fingerprint, self.budget_s(stage), hardware)
        missing = needed - len(have)
        if missing <= 0:
            return None
        seeds = self.fresh_seeds(history, champion.fingerprint, missing, taken)
        return RunsWanted("champion", champion, stage, hardware, seeds)

    def remeasure_champion(self, history: list[TrialRecord], champion: TrialRecord) -> RunsWanted | None:
        """A champion crowned under another budget (a confirmation stage of its own) is measured at the screening
        budget before candidates are screened against it, unless such runs have finished or are under way."""
        budget = self.screen_budget_s
        under_way = any(
            t.status == "running"
            and t.unbiased
            and t.fingerprint == champion.fingerprint
            and t.budget_s == budget
            for t in history
        )
        if under_way or measurements(history, champion.fingerprint, budget, None):
            return None
        return self.champion_runs(history, champion, "screen", None, self.rule.baseline_runs)

    def fresh_seeds(
        self, history: list[TrialRecord], fingerprint: str, n: int, taken: Collection[int] = ()
    ) -> tuple[int, ...]:
        """n seeds not yet used by runs of these files, so that every repeat is a new draw of the noise."""
        used = {t.seed for t in history if t.fingerprint == fingerprint} | set(taken)
        seeds, seed = [], self.first_seed
        while len(seeds) < n:
            seed += 1
            if seed not in used:
                seeds.append(seed)
        return tuple(seeds)

    # --- confirm and crown -------------------------------------------------------------------------------------

    def confirm(
        self, history: list[TrialRecord], champion: TrialRecord, candidates: list[TrialRecord]
    ) -> Crowning:
        """Confirmation verdicts, each candidate's new-seed runs against the champion's runs on the same hardware;
        the one crowned is the largest confirmed gain."""
        floor = noise_floor(history)
        decisions, kept = [], []
        for candidate in candidates:
            decision, verdict = self._confirm_one(history, champion, candidate, floor)
            decisions.append(decision)
            if verdict is not None and verdict.decision == "keep":
                kept.append((verdict, candidate))
        if not kept:
            return Crowning(tuple(decisions), None, None)
        kept.sort(key=lambda item: -item[0].gain)
        best_verdict, best = kept[0]
        # One change at a time: the others that also cleared the rule wait for a later wave, built on the new champion.
        runners_up = {c.run_id for _, c in kept[1:]}
        decisions = [
            replace(
                d,
                decision="discard",
                reason=f"{d.reason}; but {best.trial_id} gained more (one change at a time)",
            )
            if d.run_id in runners_up
            else d
            for d in decisions
        ]
        return Crowning(tuple(decisions), best, best_verdict)

    def _confirm_one(
        self,
        history: list[TrialRecord],
        champion: TrialRecord,
        candidate: TrialRecord,
        floor: stats.NoiseFloor | None,
    ) -> tuple[Decision, stats.Verdict | None]:
        budget = self.confirm_budget_s
        confirmations = [t for t in history if t.role == "confirmation" and t.measures == candidate.run_id]
        runs = [t.metric for t in confirmations if _ok(t) and t.budget_s == budget]
        hardware = confirmations[0].hardware if confirmations else candidate.hardware
        champ = measurements(history, champion.fingerprint, budget, hardware)
        if not runs or not champ or floor is None:
            missing = (
                "its confirmation runs" if not runs else "the champion's runs" if not champ else "a floor"
            )
            why = f"could not confirm: {missing} on {hardware} failed"
            return Decision(candidate.run_id, candidate.trial_id, "inconclusive", why, None), None
        verdict = stats.compare(champ, runs, self.goal, floor, self.rule)
        decision = Decision(
            candidate.run_id,
            candidate.trial_id,
            verdict.decision,
            f"confirmed with {len(runs)} new-seed runs vs {len(champ)} champion runs on {hardware}: {verdict.reason}",
            _mean(runs) - _mean(champ),
            verdict.as_dict(),
        )
        return decision, verdict
