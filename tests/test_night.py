"""Verdicts over a whole night, as the engine's own policy makes them on simulated nights with a known truth.

benchmarks/night_verdicts.py drives `DecisionPolicy` through whole nights (screen, confirm at the error control's
level, crown, re-test the runners-up, re-measure the champion) and prints the README's figures over many nights;
these tests run fewer nights of the same simulation, enough for each guarantee to fail if it breaks.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.night_verdicts import NightSetup, policy_for, simulate, wilson  # noqa: E402

SHORT = NightSetup(waves=15, wave_size=16)


def test_a_night_of_null_changes_almost_never_crowns_one_where_the_old_rule_often_did():
    nights = 120
    lord = [simulate(SHORT, seed) for seed in range(nights)]
    old = [simulate(replace(SHORT, control="per_candidate"), seed) for seed in range(nights)]
    false_nights = sum(r.crowns > 0 for r in lord)
    assert wilson(false_nights, nights)[0] <= 0.05, f"{false_nights} of {nights} null nights crowned a change"
    assert false_nights <= 0.05 * nights + 3
    # The same nights judged one candidate at a time crown a null change most nights: this test can fail.
    assert sum(r.crowns > 0 for r in old) > 0.3 * nights


def test_real_three_sigma_gains_are_found_and_the_night_reports_them_without_bias():
    nights = 60
    results = [simulate(replace(SHORT, real=3), 100 + seed) for seed in range(nights)]
    real, found = sum(r.real_proposed for r in results), sum(r.real_crowned for r in results)
    assert found / real >= 0.75, f"{found} of {real} real 3σ changes crowned"
    crowns, false = sum(r.crowns for r in results), sum(r.false_crowns for r in results)
    assert false <= max(2, 0.1 * crowns), f"{false} of {crowns} crowns were null changes"
    errors = [r.estimate.estimate - r.truth for r in results]
    bias = sum(errors) / nights
    spread = math.sqrt(sum((e - bias) ** 2 for e in errors) / (nights - 1)) / math.sqrt(nights)
    assert abs(bias) < 0.25 + 2 * spread, f"the reported improvement is off by {bias:+.3f}σ on average"
    covered = sum(r.estimate.low <= r.truth <= r.estimate.high for r in results)
    assert covered >= 0.85 * nights, f"the 95% interval covered the truth {covered} of {nights} nights"


def test_a_hardware_offset_is_never_taken_for_a_gain():
    nights = 60  # half the runs on a type 5σ faster; every change null
    pool = replace(SHORT, hardware={"h100": 0.0, "h200": -5.0})
    crowned = sum(simulate(pool, 300 + seed).crowns > 0 for seed in range(nights))
    assert crowned <= 0.05 * nights + 2


def test_runners_up_are_recorded_and_re_tested_on_top_of_the_new_champion():
    # Many real changes: a wave often has two that pass their confirmation.
    setup = replace(SHORT, waves=6, real=40)
    policy = policy_for(setup)
    seen = 0
    for seed in range(10):
        night = simulate(setup, seed).records
        runners_up = [t for t in night if t.decision == "runner_up"]
        for runner_up in runners_up:
            if runner_up.wave == setup.waves:
                continue  # the last wave's runners-up have no next wave
            retest = [t for t in night if t.role == "candidate" and t.measures == runner_up.run_id]
            assert len(retest) == 1 and retest[0].wave == runner_up.wave + 1
            assert retest[0].parent_champion != runner_up.parent_champion  # built on the new champion
            seen += 1
        assert all(t.decision != "discard" or "runner-up" not in t.reason for t in night)
    assert seen >= 3, "no runner-up was ever re-tested"
    assert policy.error_control.kind == "lord"
