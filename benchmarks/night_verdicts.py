"""Verdicts over a whole night: the engine's own decision policy on simulated nights whose truth is known.

A night runs as a campaign runs it (flows/iteration.py), with the real `DecisionPolicy` deciding: the baseline's
copies; then each wave re-tests the last crowning's runners-up on top of the new champion (`policy.retests`), fills
the rest with new proposals, screens them (`policy.screen`), runs exactly the new-seed runs the policy wants (the
candidates' and the champion's, in one batch), confirms (`policy.confirm`, at the level the campaign's error control
gives each confirmation), and re-measures a new champion with fresh seeds (`policy.remeasure_champion`). At the end,
the night's improvement and its 95% interval are `policy.night_improvement`: the number a campaign reports.

The program is synthetic and its truth known: every proposal is one change whose true effect is either nothing or a
real improvement of `effect` σ, changes add up, and every run adds seed noise N(0, σ) (σ = 1) and, on a mixed pool,
its hardware type's offset. Nothing runs a process: thousands of nights take minutes, so rates mean something.

    python benchmarks/night_verdicts.py [--nights 400] [--waves 30] [--wave-size 16]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field, replace

from benchmarks.results import write_section
from overnight import stats
from overnight.config import CampaignConfig
from overnight.memory.records import TrialRecord
from overnight.policy import Decision, DecisionPolicy, RunsWanted
from overnight.trial import Outcome

SECTION = "## 5. Verdicts over a night"
BUDGET = 300.0


DEFAULTS = CampaignConfig.model_validate({"name": "night", "program": ".", "metric": {"name": "score"}})


@dataclass(frozen=True)
class NightSetup:
    """One kind of simulated night; unset settings are the engine's config defaults."""

    waves: int = 30
    wave_size: int = 16
    real: int = 0  # proposals of the night that truly help (at random places among the nulls)
    effect: float = 3.0  # their true gain, in σ
    hardware: dict[str, float] = field(
        default_factory=lambda: {"h100": 0.0}
    )  # type -> offset of its runs, in σ
    control: str = DEFAULTS.decision.error_control  # lord | per_candidate (the old rule)
    baseline_runs: int = DEFAULTS.baseline_repeats
    confirm_runs: int = DEFAULTS.decision.confirm_runs
    confirm_top: int = DEFAULTS.decision.confirm_top

    def config(self) -> CampaignConfig:
        """The campaign config these settings make: the engine builds its policy from it."""
        decision = {
            "error_control": self.control,
            "confirm_runs": self.confirm_runs,
            "confirm_top": self.confirm_top,
        }
        return CampaignConfig.model_validate(
            {
                "name": "night",
                "program": ".",
                "metric": {"name": "score"},
                "wave_size": self.wave_size,
                "baseline_repeats": self.baseline_runs,
                "trial": {"time_budget_s": BUDGET, "timeout_s": 3 * BUDGET},
                "decision": decision,
            }
        )


@dataclass
class NightResult:
    crowns: int  # changes crowned
    false_crowns: int  # of them, changes with no true effect
    real_proposed: int  # distinct real changes proposed (a runner-up re-tested counts once)
    real_crowned: int
    estimate: stats.Interval | None  # the night's reported improvement (σ units, positive = better)
    truth: float  # the champion's true improvement over the baseline (σ units)
    records: tuple[TrialRecord, ...] = ()  # every run of the night, with its decision


class Night:
    """The records of one simulated night, as a campaign writes them to MLflow, and the truth behind them."""

    def __init__(self, setup: NightSetup, seed: int):
        self.setup, self.draw = setup, random.Random(seed)
        self.history: list[TrialRecord] = []
        self.changes: dict[str, frozenset[int]] = {}  # run id -> the changes its files carry
        self.effects: dict[int, float] = {}  # change -> its true gain (σ)
        self.next_seed = 1

    def true_mean(self, changes: frozenset[int]) -> float:
        return -sum(self.effects[c] for c in changes)  # minimized: a gain lowers the metric

    def run(
        self,
        changes: frozenset[int],
        wave: int,
        role: str,
        measures: str = "",
        hardware: str = "",
        parent: str = "",
    ) -> TrialRecord:
        hardware = hardware or self.draw.choice(sorted(self.setup.hardware))
        value = self.true_mean(changes) + self.setup.hardware[hardware] + self.draw.gauss(0.0, 1.0)
        run_id = f"r{len(self.history)}"
        self.next_seed += 1
        record = TrialRecord(
            run_id=run_id,
            trial_id=run_id,
            agent_run_id="night",
            wave=wave,
            status="finished",
            outcome=Outcome.OK,
            metric=value,
            hypothesis="",
            params={},
            fingerprint=",".join(map(str, sorted(changes))),
            parent_champion=parent,
            decision="baseline" if role == "baseline" else "",
            reason="",
            duration_s=BUDGET,
            started_ms=len(self.history),
            hardware=hardware,
            budget_s=BUDGET,
            role=role,
            seed=self.next_seed,
            measures=measures,
        )
        self.history.append(record)
        self.changes[run_id] = changes
        return record

    def run_wanted(self, wanted: tuple[RunsWanted, ...] | list[RunsWanted], wave: int) -> None:
        for runs in wanted:
            for _ in runs.seeds:
                self.run(
                    self.changes[runs.measures.run_id],
                    wave,
                    runs.role,
                    runs.measures.run_id,
                    runs.hardware or "",
                )

    def record(self, decisions: tuple[Decision, ...]) -> None:
        """What evaluate records in MLflow: the decision on the run, a confirmation's numbers as its metrics."""
        by_run = {d.run_id: d for d in decisions}
        for index, trial in enumerate(self.history):
            decision = by_run.get(trial.run_id)
            if decision is None:
                continue
            metrics = dict(trial.metrics)
            if decision.numbers.get("stage") == "confirm":
                metrics.update({f"confirm_{k}": float(v) for k, v in decision.numbers.items() if _number(v)})
            self.history[index] = replace(trial, decision=decision.decision, metrics=metrics)

    def get(self, run_id: str) -> TrialRecord:
        return next(t for t in self.history if t.run_id == run_id)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def policy_for(setup: NightSetup) -> DecisionPolicy:
    """The engine's policy, built as a campaign builds it from its config."""
    return DecisionPolicy.from_config(setup.config())


def simulate(setup: NightSetup, seed: int) -> NightResult:
    """One night through the engine's policy; returns what it crowned and reported, beside the truth."""
    night, policy = Night(setup, seed), policy_for(setup)
    slots = setup.waves * setup.wave_size
    real_at = set(night.draw.sample(range(slots), setup.real))
    baseline = [night.run(frozenset(), 0, "baseline") for _ in range(setup.baseline_runs)]
    champion, proposed, crowned = baseline[0], 0, []
    for wave in range(1, setup.waves + 1):
        screened = []
        for runner_up in policy.retests(night.history, champion)[: setup.wave_size]:
            changes = night.changes[champion.run_id] | (
                night.changes[runner_up.run_id] - night.changes[runner_up.parent_champion]
            )
            screened.append(night.run(changes, wave, "candidate", runner_up.run_id, parent=champion.run_id))
        while len(screened) < setup.wave_size:
            change = len(night.effects)
            night.effects[change] = setup.effect if proposed in real_at else 0.0
            proposed += 1
            changes = night.changes[champion.run_id] | {change}
            screened.append(night.run(changes, wave, "candidate", parent=champion.run_id))
        screening = policy.screen(night.history, champion, screened)
        night.record(screening.decisions)
        if not screening.to_confirm:
            continue
        night.run_wanted(screening.wanted, wave)
        to_confirm = [night.get(t.run_id) for t in screening.to_confirm]
        crowning = policy.confirm(night.history, champion, to_confirm, night.history)
        night.record(crowning.decisions)
        if crowning.champion is None:
            continue
        champion = night.get(crowning.champion.run_id)
        crowned.append(champion)
        again = policy.remeasure_champion(night.history, champion)
        night.run_wanted([again] if again else [], wave)
    return _result(night, policy, baseline[0], champion, crowned)


def _result(
    night: Night, policy: DecisionPolicy, baseline: TrialRecord, champion: TrialRecord, crowned: list
) -> NightResult:
    new_changes = []  # each crown adds one change to its parent champion's
    previous = frozenset()
    for record in crowned:
        added = night.changes[record.run_id] - previous
        new_changes.extend(added)
        previous = night.changes[record.run_id]
    real = {c for c, effect in night.effects.items() if effect > 0}
    return NightResult(
        crowns=len(crowned),
        false_crowns=sum(1 for c in new_changes if night.effects[c] == 0),
        real_proposed=len(real),
        real_crowned=len(real & set(new_changes)),
        estimate=policy.night_improvement(night.history, baseline, champion),
        truth=night.true_mean(frozenset()) - night.true_mean(night.changes[champion.run_id]),
        records=tuple(night.history),
    )


# --- the figures ---------------------------------------------------------------------------------------------------


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def share(hits: int, n: int) -> str:
    low, high = wilson(hits, n)
    return f"{hits / n:.1%} ({hits}/{n}; 95% CI {low:.1%}-{high:.1%})" if n else "n/a"


def mean_interval(values: list[float], unit: str = "σ") -> str:
    """The mean over nights with its normal 95% interval, in σ units or as a share ("%")."""
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    if unit == "%":
        low, high = max(0.0, mean - half), mean + half
        return f"{mean:.1%} (95% CI {low:.1%}-{high:.1%}; {n} nights with a crown)"
    return f"{mean:+.3f}σ (95% CI {mean - half:+.3f} to {mean + half:+.3f}; {n} nights)"


def null_night(setup: NightSetup, nights: int, first_seed: int) -> tuple[str, str]:
    results = [simulate(setup, first_seed + k) for k in range(nights)]
    any_crown = sum(r.crowns > 0 for r in results)
    crowns = sum(r.crowns for r in results)
    return share(any_crown, nights), f"{crowns / nights:.3f}"


def mixed_nights(setup: NightSetup, nights: int, first_seed: int) -> dict[str, str]:
    results = [simulate(setup, first_seed + k) for k in range(nights)]
    fdp = [r.false_crowns / r.crowns for r in results if r.crowns]
    real = sum(r.real_proposed for r in results)
    found = sum(r.real_crowned for r in results)
    reported = [r for r in results if r.estimate is not None]
    errors = [r.estimate.estimate - r.truth for r in reported]
    covered = sum(r.estimate.low <= r.truth <= r.estimate.high for r in reported)
    false_crowns, crowns = sum(r.false_crowns for r in results), sum(r.crowns for r in results)
    return {
        "fdr": mean_interval(fdp, "%") if len(fdp) > 1 else "n/a",
        "false_share": share(false_crowns, crowns),
        "power": share(found, real),
        "bias": mean_interval(errors),
        "coverage": share(covered, len(reported)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=400, help="simulated nights per figure")
    parser.add_argument("--waves", type=int, default=30)
    parser.add_argument("--wave-size", type=int, default=16)
    parser.add_argument("--real", type=int, default=5, help="real changes among a mixed night's proposals")
    parser.add_argument("--no-write", action="store_true", help="print, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    started = time.time()
    base = NightSetup(waves=args.waves, wave_size=args.wave_size)
    n = args.nights
    rows = []
    for control in ("lord", "per_candidate"):
        setup = replace(base, control=control)
        any_null, crowns_null = null_night(setup, n, 10_000)
        mixed_pool = replace(setup, hardware={"h100": 0.0, "h200": -5.0})
        any_mixed, _ = null_night(mixed_pool, n, 20_000)
        mixed = mixed_nights(replace(setup, real=args.real), n, 30_000)
        rows.append((control, any_null, crowns_null, any_mixed, mixed))
    command = "python benchmarks/night_verdicts.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        SECTION,
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Command: `PYTHONPATH=. {command.strip()}` ({time.time() - started:.0f} s)",
        f"- Nights: {n} per figure (seeds 10000+, 20000+, 30000+), {args.waves} waves x {args.wave_size} "
        f"trials; the engine's defaults: {base.baseline_runs} baseline copies, {base.confirm_runs} confirmation runs "
        f"(and as many of the champion), {base.confirm_top} confirmed per wave at most, α = "
        f"{DEFAULTS.decision.alpha:g}, LORD++ horizon {DEFAULTS.decision.fdr_horizon}; noise σ = 1.",
        f"- Mixed nights: {args.real} real changes of 3σ at random places among the nulls. Mixed pool: half the "
        "runs on a type 5σ faster, every change null.",
        "",
    ]
    for control, any_null, crowns_null, any_mixed, mixed in rows:
        lines += [
            f"### error_control: {control}",
            "",
            "| figure | goal | measured |",
            "|---|---|---|",
            f"| all-null night: any false crown | ≤ 5% | {any_null} |",
            f"| all-null night: crowns per night | | {crowns_null} |",
            f"| mixed pool, all null: any crown (a hardware offset) | no more than a null change | {any_mixed} |",
            f"| mixed night: false-discovery proportion of crowns (mean over the nights) | ≤ 5% | {mixed['fdr']} |",
            f"| mixed night: false crowns among all crowns | | {mixed['false_share']} |",
            f"| mixed night: real 3σ changes crowned | ≥ 80% | {mixed['power']} |",
            f"| reported improvement minus truth (bias) | within ±0.25σ | {mixed['bias']} |",
            f"| 95% interval covers the truth | 93-97% | {mixed['coverage']} |",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
