"""Evaluation: results become decisions, judged against the noise floor.

A trial is screened on its one run against the champion's runs under the same condition (training budget and
hardware). A promising one is confirmed with new-seed runs on the hardware it was screened on, beside runs of the
champion on that same hardware, and becomes champion only if the confirmed gain clears the rule (see
overnight/stats.py). Only unbiased runs measure the champion and the noise: baseline copies, confirmation runs and
re-measurements, never a screening run that was picked for looking good.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from overnight import stats
from overnight.config import CampaignConfig
from overnight.memory.records import TrialRecord
from overnight.trial import Outcome


@dataclass(frozen=True)
class Decision:
    run_id: str
    trial_id: str
    # keep | discard | inconclusive | promising | failed | baseline | baseline_repeat | confirmation | champion_run
    decision: str
    reason: str
    delta: (
        float | None
    )  # metric minus the champion's mean under the same condition (negative is better if minimizing)
    numbers: dict[str, float | int | str] = field(default_factory=dict)  # the verdict behind it, for MLflow


def improvement(goal: str, champion: float, candidate: float) -> float:
    """How much better the candidate is, in metric units (positive = better)."""
    return champion - candidate if goal == "minimize" else candidate - champion


def rule_for(config: CampaignConfig) -> stats.Rule:
    d = config.decision
    return stats.Rule(
        kind=d.rule,
        k=d.k,
        alpha=d.alpha,
        margin=config.min_improvement,
        screen_k=d.screen_k,
        baseline_runs=config.baseline_repeats,
        confirm_runs=d.confirm_runs,
    )


def _ok(trial: TrialRecord) -> bool:
    return trial.outcome is Outcome.OK and trial.metric is not None and math.isfinite(trial.metric)


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
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for t in history:
        if _ok(t) and t.unbiased:
            groups[(t.fingerprint, t.budget_s, t.hardware)].append(t.metric)
    return stats.noise_floor(list(groups.values()))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def screen_wave(
    screened: list[TrialRecord],
    history: list[TrialRecord],
    champion: TrialRecord,
    goal: str,
    rule: stats.Rule,
) -> tuple[list[Decision], list[TrialRecord]]:
    """Screening verdicts for a wave's trials, and the promising ones, best screening gain first."""
    floor = noise_floor(history)
    decisions, promising = [], []
    for trial in screened:
        if not _ok(trial):
            outcome = trial.outcome.value if trial.outcome else "unfinished"
            decisions.append(
                Decision(trial.run_id, trial.trial_id, "failed", f"{outcome}: {trial.reason}", None)
            )
            continue
        champ = measurements(history, champion.fingerprint, trial.budget_s, trial.hardware)
        note = ""
        if not champ:  # screening only filters: confirmation is always paired on the trial's own hardware
            champ = measurements(history, champion.fingerprint, trial.budget_s, None)
            note = f" (no champion run on {trial.hardware} yet: screened across hardware; confirmed on {trial.hardware})"
        if not champ or floor is None:
            why = (
                "no noise floor yet" if floor is None else f"no champion run with a {trial.budget_s} s budget"
            )
            decisions.append(Decision(trial.run_id, trial.trial_id, "inconclusive", why, None))
            continue
        verdict = stats.screen(champ, trial.metric, goal, floor, rule)
        decisions.append(
            Decision(
                trial.run_id,
                trial.trial_id,
                verdict.decision,
                f"screening: {verdict.reason}{note}",
                trial.metric - _mean(champ),
                verdict.as_dict(),
            )
        )
        if verdict.decision == "promising":
            promising.append((verdict.gain, trial))
    promising.sort(key=lambda pair: -pair[0])
    return decisions, [trial for _, trial in promising]


def confirm_candidates(
    candidates: list[TrialRecord],
    history: list[TrialRecord],
    champion: TrialRecord,
    goal: str,
    rule: stats.Rule,
    budget_s: float,
) -> tuple[list[Decision], TrialRecord | None, stats.Verdict | None]:
    """Confirmation verdicts, each candidate's new-seed runs against the champion's runs on the same hardware.

    Returns the decisions for the candidates, and the one to crown (the largest confirmed gain) with its verdict.
    """
    floor = noise_floor(history)
    decisions, kept = [], []
    for candidate in candidates:
        runs = [
            t.metric
            for t in history
            if _ok(t)
            and t.role == "confirmation"
            and t.measures == candidate.run_id
            and t.budget_s == budget_s
        ]
        hardware = next(
            (t.hardware for t in history if t.role == "confirmation" and t.measures == candidate.run_id),
            candidate.hardware,
        )
        champ = measurements(history, champion.fingerprint, budget_s, hardware)
        if not runs or not champ or floor is None:
            missing = (
                "its confirmation runs" if not runs else "the champion's runs" if not champ else "a floor"
            )
            decisions.append(
                Decision(
                    candidate.run_id,
                    candidate.trial_id,
                    "inconclusive",
                    f"could not confirm: {missing} on {hardware} failed",
                    None,
                )
            )
            continue
        verdict = stats.compare(champ, runs, goal, floor, rule)
        decision = Decision(
            candidate.run_id,
            candidate.trial_id,
            verdict.decision,
            f"confirmed with {len(runs)} new-seed runs vs {len(champ)} champion runs on {hardware}: {verdict.reason}",
            _mean(runs) - _mean(champ),
            verdict.as_dict(),
        )
        decisions.append(decision)
        if verdict.decision == "keep":
            kept.append((verdict, candidate, decision))
    if not kept:
        return decisions, None, None
    kept.sort(key=lambda item: -item[0].gain)
    best_verdict, best, _ = kept[0]
    # One change at a time: the others that also cleared the rule wait for a later wave, built on the new champion.
    runners_up = {c.run_id for _, c, _ in kept[1:]}
    decisions = [
        Decision(
            d.run_id,
            d.trial_id,
            "discard",
            f"{d.reason}; but {best.trial_id} gained more (one change at a time)",
            d.delta,
            d.numbers,
        )
        if d.run_id in runners_up
        else d
        for d in decisions
    ]
    return decisions, best, best_verdict
