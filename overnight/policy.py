"""The decision policy: a wave's finished trials, judged against the history, become decisions and the runs wanted next.

One pure object, with no MLflow, Prefect or processes behind it: the campaign (`overnight/wave/evaluate.py`
records what it decides) and any simulator (`benchmarks/search_efficiency.py`, `tests/test_decisions.py`) call the
same code, so what a benchmark measures is what a night does.

How a wave is judged:
- **screen**: each candidate's one run against the champion's runs under the same condition (training budget and
  hardware); the promising ones, best screening gain first, are confirmed, at most `confirm_top` of them;
- **confirm**: each promising candidate gets new-seed runs on the hardware it was screened on, beside as many new
  runs of the champion in the same batch (same hardware, budget and time on the host); it passes only if the
  confirmed gain clears the rule (overnight/stats.py) at the level the campaign's error control gives that
  confirmation (overnight/fdr.py: LORD++ by default), and of several that pass, the largest gain is crowned (one
  change at a time): the others are runners-up, re-tested on top of the new champion in the next wave;
- **re-measure**: a newly crowned champion is measured again with fresh seeds before anything is judged against it;
  the runs that crowned it were picked for looking good and never serve as its reference;
- only unbiased runs measure the champion and the noise: baseline copies, confirmation runs and re-measurements,
  never a screening run. The noise is pooled within one condition (budget and hardware), never across budgets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from overnight import stats
from overnight.fdr import ErrorControl
from overnight.memory.records import TrialRecord
from overnight.trial import Outcome

if TYPE_CHECKING:  # the config is only read by from_config
    from overnight.config import CampaignConfig


@dataclass(frozen=True)
class Decision:
    """What the policy decided about one trial, why, and the verdict's numbers behind it."""

    run_id: str
    trial_id: str
    # keep | runner_up | discard | inconclusive | promising | failed | baseline | baseline_repeat | confirmation |
    # champion_run
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


def _crowned_it(trial: TrialRecord, champion: TrialRecord) -> bool:
    """A confirmation run of the champion itself: one of the runs that crowned it, picked for looking good."""
    return trial.role == "confirmation" and trial.measures == champion.run_id


def reference_runs(
    history: list[TrialRecord], champion: TrialRecord, budget_s: float, hardware: str | None
) -> list[float]:
    """The champion's runs a candidate is judged against: its unbiased runs under the condition, without the runs
    that crowned it (they passed a test, so they are better than its truth)."""
    mine = [t for t in history if not _crowned_it(t, champion)]
    return measurements(mine, champion.fingerprint, budget_s, hardware)


def noise_floor(
    history: list[TrialRecord], budget_s: float | None = None, hardware: str | None = None
) -> stats.NoiseFloor | None:
    """Pooled spread of the groups of repeated runs (same files, budget and hardware, different seeds) under one
    budget (every budget when None, as a summary) and one hardware type (every type when None)."""
    groups: dict[tuple[str, float, str], list[float]] = defaultdict(list)
    for t in history:
        if (
            _ok(t)
            and t.unbiased
            and (budget_s is None or t.budget_s == budget_s)
            and (hardware is None or t.hardware == hardware)
        ):
            groups[(t.fingerprint, t.budget_s, t.hardware)].append(t.metric)
    return stats.noise_floor(list(groups.values()))


def condition_floor(history: list[TrialRecord], budget_s: float, hardware: str) -> stats.NoiseFloor | None:
    """The noise under one budget, on the hardware if it has repeated runs there, else on every type (the spread
    within a group; the offsets between types never count)."""
    return noise_floor(history, budget_s, hardware or None) or noise_floor(history, budget_s)


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
    """Screen, confirm, crown, re-measure: the rule, the error control and the numbers of runs of each stage."""

    goal: str
    rule: stats.Rule
    confirm_top: int  # promising candidates confirmed per wave at most
    screen_budget_s: float
    confirm_budget_s: float
    first_seed: int = 0  # the campaign's trial seed; new-seed runs draw the next unused ones
    error_control: ErrorControl = ErrorControl("lord", 0.05)

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
        control = ErrorControl(d.error_control, d.alpha, d.fdr_horizon)
        return cls(
            config.metric.goal,
            rule,
            d.confirm_top,
            screen.budget_s,
            confirm.budget_s,
            config.trial.seed,
            control,
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
        decisions, promising = [], []
        conditions: dict = {}  # (budget, hardware) -> (the champion's reference runs, the noise floor): read once
        for trial in screened:
            decision, gain = self._screen_one(history, champion, trial, conditions)
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
        floor = noise_floor(history, self.screen_budget_s)
        return Screening(tuple(decisions), to_confirm, wanted, grid_effects(screened, floor))

    def _screen_one(
        self, history: list[TrialRecord], champion: TrialRecord, trial: TrialRecord, conditions: dict
    ) -> tuple[Decision, float]:
        if not _ok(trial):
            outcome = trial.outcome.value if trial.outcome else "unfinished"
            return Decision(trial.run_id, trial.trial_id, "failed", f"{outcome}: {trial.reason}", None), 0.0
        condition = (trial.budget_s, trial.hardware)
        if condition not in conditions:
            conditions[condition] = self._screen_reference(history, champion, trial.budget_s, trial.hardware)
        champ, floor, note = conditions[condition]
        if not champ or floor is None:
            why = (
                f"no noise floor yet with a {trial.budget_s:g} s budget"
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

    def _screen_reference(
        self, history: list[TrialRecord], champion: TrialRecord, budget_s: float, hardware: str
    ) -> tuple[list[float], stats.NoiseFloor | None, str]:
        """What a screening run under one condition is judged against: the champion's reference runs there, the
        noise floor, and a note when the champion has no run on that hardware yet."""
        champ = reference_runs(history, champion, budget_s, hardware)
        note = ""
        if not champ:  # screening only filters: confirmation is always paired on the trial's own hardware
            champ = reference_runs(history, champion, budget_s, None)
            note = f" (no champion run on {hardware} yet: screened across hardware; confirmed on {hardware})"
        return champ, condition_floor(history, budget_s, hardware), note

    def confirmation_runs(
        self, history: list[TrialRecord], champion: TrialRecord, to_confirm: tuple[TrialRecord, ...]
    ) -> tuple[RunsWanted, ...]:
        """New-seed runs of each candidate on the hardware it was screened on, and as many new runs of the champion
        on each of those hardware types, in the same batch: a confirmation compares runs of one condition only."""
        wanted: list[RunsWanted] = []
        hardware_done: set[str] = set()
        n = self.rule.confirm_runs
        for candidate in to_confirm:
            seeds = self.fresh_seeds(history, candidate.fingerprint, n)
            wanted.append(RunsWanted("confirmation", candidate, "confirm", candidate.hardware or None, seeds))
            if candidate.hardware in hardware_done:
                continue
            hardware_done.add(candidate.hardware)
            taken = {seed for runs in wanted if runs.role == "champion" for seed in runs.seeds}
            seeds = self.fresh_seeds(history, champion.fingerprint, n, taken)
            wanted.append(RunsWanted("champion", champion, "confirm", candidate.hardware or None, seeds))
        return tuple(wanted)

    # --- the champion's runs -----------------------------------------------------------------------------------

    def remeasure_champion(self, history: list[TrialRecord], champion: TrialRecord) -> RunsWanted | None:
        """Fresh runs of a champion at the screening budget, as many as the baseline has copies, unless it has its
        reference runs there (or they are under way): a newly crowned champion is measured again before anything
        is judged against it, since the runs that crowned it were picked for looking good."""
        budget = self.screen_budget_s
        under_way = any(
            t.status == "running"
            and t.unbiased
            and not _crowned_it(t, champion)
            and t.fingerprint == champion.fingerprint
            and t.budget_s == budget
            for t in history
        )
        if under_way or reference_runs(history, champion, budget, None):
            return None
        seeds = self.fresh_seeds(history, champion.fingerprint, self.rule.baseline_runs)
        return RunsWanted("champion", champion, "screen", None, seeds)

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
        self,
        history: list[TrialRecord],
        champion: TrialRecord,
        candidates: list[TrialRecord],
        tested: Collection[TrialRecord] = (),
    ) -> Crowning:
        """Confirmation verdicts, each candidate's new-seed runs against the champion's runs of the same batch, at
        the level the error control gives it after the campaign's earlier confirmations (`tested`: any records,
        those with a test index count); the one crowned is the largest gain that passed, the others runners-up."""
        now = {c.run_id for c in candidates}  # (a resumed wave may have recorded these tests before it died)
        passed = earlier_tests([t for t in tested if t.run_id not in now])
        decisions, kept = [], []
        for candidate in candidates:
            decision, verdict = self._confirm_one(history, champion, candidate, passed)
            decisions.append(decision)
            passed.append(verdict is not None and verdict.decision == "keep")
            if passed[-1]:
                kept.append((verdict, candidate))
        if not kept:
            return Crowning(tuple(decisions), None, None)
        kept.sort(key=lambda item: -item[0].gain)
        best_verdict, best = kept[0]
        # One change at a time: the others that also passed are re-tested on top of the new champion next wave.
        runners_up = {c.run_id for _, c in kept[1:]}
        decisions = [
            replace(
                d,
                decision="runner_up",
                reason=f"{d.reason}; runner-up: {best.trial_id} gained more (one change at a time), so this "
                "change is re-tested on top of it",
            )
            if d.run_id in runners_up
            else d
            for d in decisions
        ]
        return Crowning(tuple(decisions), best, best_verdict)

    def _confirm_one(
        self, history: list[TrialRecord], champion: TrialRecord, candidate: TrialRecord, passed: list[bool]
    ) -> tuple[Decision, stats.Verdict | None]:
        budget = self.confirm_budget_s
        confirmations = [t for t in history if t.role == "confirmation" and t.measures == candidate.run_id]
        runs = [t.metric for t in confirmations if _ok(t) and t.budget_s == budget]
        hardware = confirmations[0].hardware if confirmations else candidate.hardware
        batch = (
            confirmations[0] if confirmations else candidate
        )  # the wave its confirmation runs were planned in
        champ = [  # the champion's runs of this confirmation's batch: same wave, budget and hardware
            t.metric
            for t in history
            if _ok(t)
            and t.role == "champion"
            and t.measures == champion.run_id
            and t.wave == batch.wave
            and t.agent_run_id == batch.agent_run_id
            and t.budget_s == budget
            and t.hardware == hardware
        ]
        floor = condition_floor(history, budget, hardware)
        if not runs or not champ or floor is None:
            missing = (
                "its confirmation runs" if not runs else "the champion's runs" if not champ else "a floor"
            )
            why = f"could not confirm: {missing} on {hardware} failed"
            return Decision(candidate.run_id, candidate.trial_id, "inconclusive", why, None), None
        test, level = len(passed) + 1, self.error_control.level(passed)
        verdict = stats.compare(champ, runs, self.goal, floor, replace(self.rule, alpha=level))
        numbers = {
            **verdict.as_dict(),
            "test_index": test,
            "alpha_t": level,
            "error_control": self.error_control.name,
        }
        decision = Decision(
            candidate.run_id,
            candidate.trial_id,
            verdict.decision,
            f"confirmed with {len(runs)} new-seed runs vs {len(champ)} champion runs of the same batch on "
            f"{hardware}: {verdict.reason}; confirmation {test} of the campaign, at level {level:.3g} "
            f"({self.error_control.kind})",
            _mean(runs) - _mean(champ),
            numbers,
        )
        return decision, verdict

    def smallest_confirmable_gain(self, floor: stats.NoiseFloor, passed: list[bool]) -> float:
        """The confirmed gain (metric units, positive = better) that the next confirmation must exceed to keep a
        candidate: its `confirm_runs` new-seed runs against as many of the champion, under this floor, at the level
        the error control gives it after the campaign's earlier confirmations (`passed`, in order). For the t test,
        t_crit(α_t, dof)·σ·√(2/n), never below min_improvement; math.inf when nothing can be kept (no noise
        measured and no min_improvement)."""
        rule = self.rule
        # stats.compare's se, σ·√(1/n_champion + 1/n_candidate), with confirm_runs runs on each side
        se = floor.sigma * math.sqrt(2 / rule.confirm_runs)
        if se == 0:
            return rule.margin if rule.margin > 0 else math.inf
        if rule.kind == "k_sigma":
            return rule.margin + rule.k * se
        return max(rule.margin, stats.t_critical(self.error_control.level(passed), floor.dof) * se)

    # --- after a crowning --------------------------------------------------------------------------------------

    def retests(self, history: list[TrialRecord], champion: TrialRecord) -> list[TrialRecord]:
        """The runners-up of the wave that crowned the champion, not yet re-tested on top of it."""
        done = {t.measures for t in history if t.role == "candidate" and t.measures}
        return [
            t
            for t in history
            if t.decision == "runner_up"
            and t.agent_run_id == champion.agent_run_id
            and t.wave == champion.wave
            and t.run_id not in done
        ]

    def night_improvement(
        self, history: list[TrialRecord], baseline: TrialRecord, champion: TrialRecord, level: float = 0.95
    ) -> stats.Interval | None:
        """The night's improvement: the champion's fresh runs against the baseline's copies at the screening budget,
        per hardware type, with its interval; None when either has no run or no noise was measured."""
        budget = self.screen_budget_s
        before_runs = [t for t in history if t.role == "baseline" and t.fingerprint == baseline.fingerprint]
        strata = []
        for hardware in sorted({t.hardware for t in before_runs}):
            before = measurements(before_runs, baseline.fingerprint, budget, hardware)
            after = reference_runs(history, champion, budget, hardware)
            if before and after:
                strata.append((before, after))
        floor = noise_floor(history, budget)
        if not strata or floor is None or floor.sigma == 0:
            return None
        return stats.improvement_interval(strata, self.goal, floor, level)


def earlier_tests(records: Collection[TrialRecord]) -> list[bool]:
    """Whether each confirmation the campaign has tested passed, in the order they were tested."""
    tested = sorted(
        (t for t in records if "confirm_test_index" in t.metrics),
        key=lambda t: t.metrics["confirm_test_index"],
    )
    return [t.decision in ("keep", "runner_up") for t in tested]
