"""The statistics of keep decisions: hand-checked numbers first, then the error rates a researcher relies on."""

from __future__ import annotations

import math
import random

import pytest

from overnight.stats import (
    NoiseFloor,
    Rule,
    compare,
    factorial_effects,
    factorial_grid,
    improvement_interval,
    noise_floor,
    screen,
    t_critical,
    t_sf,
)

# --- Student t -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "dof", "upper_tail"),
    [  # printed one-sided critical values (3 decimals), so the match is to the table's rounding
        (6.314, 1, 0.05),
        (2.920, 2, 0.05),
        (2.353, 3, 0.05),
        (2.015, 5, 0.05),
        (1.812, 10, 0.05),
        (2.528, 20, 0.01),
        (2.750, 30, 0.005),
        (1.000, 1, 0.25),
    ],
)
def test_t_tail_matches_the_printed_table(t, dof, upper_tail):
    assert t_sf(t, dof) == pytest.approx(upper_tail, abs=2e-4)
    assert t_sf(-t, dof) == pytest.approx(1 - upper_tail, abs=2e-4)
    assert t_critical(upper_tail, dof) == pytest.approx(t, abs=2e-3)


def test_t_tail_exact_forms():
    # dof 1 is Cauchy: P(T > t) = 1/2 - atan(t)/π; dof 2: P(T > t) = (1 - t/√(2 + t²)) / 2.
    for t in (0.0, 0.3, 1.7, 12.0):
        assert t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, abs=1e-14)
        assert t_sf(t, 2) == pytest.approx((1 - t / math.sqrt(2 + t * t)) / 2, abs=1e-14)
    # Many dof: the normal tail.
    assert t_sf(1.6448536, 100000) == pytest.approx(0.05, abs=1e-4)
    assert t_sf(math.inf, 3) == 0.0 and t_sf(-math.inf, 3) == 1.0
    with pytest.raises(ValueError):
        t_sf(1.0, 0)


def test_t_tail_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 4, 7, 8, 25, 60):
        for t in (-4.0, -0.7, 0.0, 0.25, 1.5, 3.0, 8.0):
            assert t_sf(t, dof) == pytest.approx(stats.t.sf(t, dof), rel=1e-9, abs=1e-13)


# --- Noise floor ---------------------------------------------------------------------------------------------------


def test_noise_floor_pools_within_groups_only():
    # Squares about each group's own mean: (1+0+1) + (1+1) = 4 over (2 + 1) dof.
    floor = noise_floor([[1.0, 2.0, 3.0], [4.0, 6.0]])
    assert floor == NoiseFloor(sigma=pytest.approx(math.sqrt(4 / 3)), n=5, dof=3)
    assert str(floor) == "σ = 1.155 (n = 5 runs, 3 dof)"
    # Shifting a whole group (another configuration) changes nothing; single runs contribute nothing.
    assert noise_floor([[1.0, 2.0, 3.0], [104.0, 106.0], [7.0]]) == floor
    assert floor.as_dict() == {"noise_sigma": floor.sigma, "noise_n": 5, "noise_dof": 3}


def test_noise_floor_needs_a_repeat():
    assert noise_floor([]) is None
    assert noise_floor([[1.0], [2.0]]) is None
    assert noise_floor([[3.0, 3.0]]) == NoiseFloor(0.0, 2, 1)


# --- Screening and confirmation ------------------------------------------------------------------------------------

CHAMPION = [1.00, 1.02, 0.98]  # mean 1.00
FLOOR = NoiseFloor(sigma=0.02, n=7, dof=4)
SE = 0.02 * math.sqrt(1 / 3 + 1 / 3)  # 0.01633 for three runs against three


def test_compare_t_test_on_hand_numbers():
    verdict = compare(CHAMPION, [0.95, 0.97, 0.93], "minimize", FLOOR)
    assert verdict.decision == "keep"
    assert verdict.gain == pytest.approx(0.05)
    assert verdict.se == pytest.approx(SE)
    assert verdict.statistic == pytest.approx(0.05 / SE)  # t = 3.062
    assert verdict.p_value == pytest.approx(0.01876, abs=5e-5)  # t = 3.062 on 4 dof
    assert verdict.threshold == pytest.approx(2.132 * SE, abs=1e-4)  # one-sided 5% point of t(4) is 2.132
    assert verdict.rule == "t_test(alpha=0.05, margin=0)"
    assert "p = 0.0188 < α 0.05" in verdict.reason and "σ = 0.02 (n = 7 runs, 4 dof)" in verdict.reason
    assert (verdict.n_champion, verdict.n_candidate, verdict.dof) == (3, 3, 4)

    smaller = compare(CHAMPION, [0.99, 0.97, 0.98], "minimize", FLOOR)  # gain 0.02: t = 1.22, p = 0.14
    assert smaller.decision == "inconclusive" and smaller.p_value == pytest.approx(0.1444, abs=5e-4)
    worse = compare(CHAMPION, [1.01, 1.03, 1.02], "minimize", FLOOR)
    assert worse.decision == "discard" and worse.gain == pytest.approx(-0.02)
    # A clear statistical win that is below the practical margin is not kept.
    assert (
        compare(CHAMPION, [0.95, 0.97, 0.93], "minimize", FLOOR, Rule(margin=0.06)).decision == "inconclusive"
    )


def test_compare_k_sigma_on_hand_numbers():
    rule = Rule(kind="k_sigma", k=2.0)
    verdict = compare(CHAMPION, [0.95, 0.97, 0.93], "minimize", FLOOR, rule)
    assert verdict.decision == "keep" and verdict.threshold == pytest.approx(2 * SE)
    assert verdict.p_value is None and "p_value" not in verdict.as_dict()
    assert verdict.rule == "k_sigma(k=2, margin=0)"
    assert "gain 0.05 > 0.03266" in verdict.reason
    # gain 0.03 < 2·se = 0.0327: inconclusive; with a margin of 0.01 the bar is 0.0427.
    assert compare(CHAMPION, [0.97], "minimize", FLOOR, rule).decision == "inconclusive"
    assert compare(CHAMPION, [0.96] * 3, "minimize", FLOOR, rule).decision == "keep"
    assert compare(CHAMPION, [0.96] * 3, "minimize", FLOOR, Rule("k_sigma", margin=0.01)).decision == (
        "inconclusive"
    )


def test_maximize_flips_the_sign_of_the_gain():
    verdict = compare(CHAMPION, [1.05, 1.07, 1.03], "maximize", FLOOR)
    assert verdict.gain == pytest.approx(0.05) and verdict.decision == "keep"
    assert compare(CHAMPION, [0.95, 0.97, 0.93], "maximize", FLOOR).decision == "discard"
    with pytest.raises(ValueError, match="goal"):
        compare(CHAMPION, [1.0], "lower", FLOOR)


def test_screen_on_hand_numbers():
    se = 0.02 * math.sqrt(1 / 3 + 1)  # 0.02309: one screening run against three
    promising = screen(CHAMPION, 0.98, "minimize", FLOOR)  # gain 0.02 > 0.5·se = 0.01155
    assert promising.decision == "promising" and promising.stage == "screen"
    assert promising.threshold == pytest.approx(0.5 * se) and promising.n_candidate == 1
    assert screen(CHAMPION, 0.995, "minimize", FLOOR).decision == "inconclusive"  # gain 0.005
    assert screen(CHAMPION, 1.001, "minimize", FLOOR).decision == "discard"
    assert screen(CHAMPION, 0.98, "minimize", FLOOR, Rule(screen_k=1.0)).decision == "inconclusive"


def test_identical_runs_leave_no_noise_so_only_min_improvement_can_judge_a_gain():
    floor = noise_floor([[2.0, 2.0, 2.0]])  # a program that ignores its seed
    tiny = compare([2.0, 2.0, 2.0], [1.9999], "minimize", floor)
    assert tiny.decision == "inconclusive" and "ignores OVERNIGHT_SEED" in tiny.reason
    assert screen([2.0, 2.0, 2.0], 1.9999, "minimize", floor).decision == "inconclusive"
    assert compare([2.0, 2.0, 2.0], [2.0], "minimize", floor).decision == "discard"
    practical = Rule(margin=0.05)
    assert compare([2.0, 2.0, 2.0], [1.9], "minimize", floor, practical).decision == "keep"
    assert compare([2.0, 2.0, 2.0], [1.97], "minimize", floor, practical).decision == "inconclusive"


def test_improvement_interval_covers_the_truth_95_percent_of_the_time():
    rng, covered, trials = random.Random(3), 0, 2000
    for _ in range(trials):
        before = [rng.gauss(1.0, 0.1) for _ in range(3)]
        after = [rng.gauss(0.9, 0.1) for _ in range(3)]
        floor = noise_floor([before, after])
        interval = improvement_interval([(before, after)], "minimize", floor)
        covered += interval.low <= 0.1 <= interval.high
    assert 0.93 <= covered / trials <= 0.97


def test_improvement_interval_weighs_conditions_and_never_compares_across_them():
    floor = NoiseFloor(0.1, 10, 8)
    # h100 runs are 1.0 lower than h200 runs; the change helps by 0.1 on both.
    strata = [([2.0, 2.0], [1.9, 1.9]), ([1.0, 1.0, 1.0, 1.0], [0.9, 0.9, 0.9, 0.9])]
    interval = improvement_interval(strata, "minimize", floor)
    assert interval.estimate == pytest.approx(0.1)
    assert interval.se == pytest.approx(0.1 / math.sqrt(1 + 2))
    assert interval.n_before == 6 and interval.n_after == 6


def test_rule_rejects_nonsense():
    with pytest.raises(ValueError, match="kind"):
        Rule(kind="bayes")
    with pytest.raises(ValueError, match="alpha"):
        Rule(alpha=0.7)


# --- The whole procedure, simulated --------------------------------------------------------------------------------


def _procedure(rng: random.Random, effect: float, rule: Rule, sigma: float = 1.0) -> str:
    """Baseline runs -> floor; screen one run; if promising, confirm with new seeds; the final decision."""
    champion = [rng.gauss(10.0, sigma) for _ in range(rule.baseline_runs)]
    floor = noise_floor([champion])
    first = screen(champion, rng.gauss(10.0 - effect, sigma), "minimize", floor, rule)
    if first.decision != "promising":
        return first.decision
    confirmation = [rng.gauss(10.0 - effect, sigma) for _ in range(rule.confirm_runs)]
    return compare(champion, confirmation, "minimize", noise_floor([champion, confirmation]), rule).decision


def test_null_changes_are_kept_at_most_at_alpha():
    rule, trials = Rule(), 2000
    rng = random.Random(2024)
    rate = sum(_procedure(rng, 0.0, rule) == "keep" for _ in range(trials)) / trials
    tolerance = 3 * math.sqrt(rule.alpha * (1 - rule.alpha) / trials)
    assert rate <= rule.alpha + tolerance, (
        f"false-keep rate {rate:.3f} > alpha {rule.alpha} + {tolerance:.3f}"
    )
    print(f"false-keep rate of null changes: {rate:.4f} over {trials} ({rule.name})")


def test_real_three_sigma_improvements_are_kept():
    rule, trials = Rule(), 1000
    rng = random.Random(7)
    power = sum(_procedure(rng, 3.0, rule) == "keep" for _ in range(trials)) / trials
    assert power >= 0.90, f"power {power:.3f} for a 3σ improvement ({rule.name}, {trials} trials)"
    print(f"power for 3σ improvements: {power:.4f} over {trials} ({rule.name})")


def test_worse_changes_are_never_kept():
    rng = random.Random(11)
    assert not any(_procedure(rng, -2.0, Rule()) == "keep" for _ in range(500))


# --- Factorial waves -----------------------------------------------------------------------------------------------

AB = {"A": (0, 1), "B": ("x", "y")}


def _direct_rows(spread: float = 0.0) -> list[tuple[dict, float]]:
    # y = 10 + 2·a + 3·b + 1·a·b in coded units (a, b = ±1), so the effects are A = 4, B = 6, A×B = 2.
    rows = []
    for config in factorial_grid(AB):
        a, b = (1 if config["A"] == 1 else -1), (1 if config["B"] == "y" else -1)
        value = 10 + 2 * a + 3 * b + a * b
        rows += [(config, value + spread), (config, value - spread)] if spread else [(config, value)]
    return rows


def test_factorial_grid_is_full_and_balanced():
    grid = factorial_grid({"LR": (1e-3, 3e-3), "DEPTH": (2, 4), "NORM": ("layer", "rms")})
    assert len(grid) == 8 and len({tuple(c.items()) for c in grid}) == 8
    assert grid[0] == {"LR": 1e-3, "DEPTH": 2, "NORM": "layer"}
    assert sum(c["DEPTH"] == 4 for c in grid) == 4
    with pytest.raises(ValueError, match="LR"):
        factorial_grid({"LR": (1e-3, 1e-3)})


def test_factorial_effects_direct_case():
    effects = {e.name: e for e in factorial_effects(_direct_rows(), AB, sigma=0.1)}
    assert list(effects) == ["A", "B", "A×B"]
    assert [effects[n].estimate for n in effects] == pytest.approx([4.0, 6.0, 2.0])
    ab = effects["A×B"]
    assert ab.factors == ("A", "B") and ab.se == pytest.approx(2 * 0.1 / math.sqrt(4))  # 2σ/√N
    assert (ab.low, ab.high) == pytest.approx((2 - 1.95996 * 0.1, 2 + 1.95996 * 0.1), abs=1e-5)
    assert ab.significant and ab.dof is None
    assert ab.as_dict()["key"] == "A_x_B" and ab.as_dict()["factors"] == "A,B"


def test_factorial_effects_estimate_sigma_from_replicates():
    # Two runs per cell at value ± 0.5: pure error σ = √(4·0.5 / 4) = √0.5 on 4 dof; se = 2σ/√8 = 0.5.
    effects = factorial_effects(_direct_rows(spread=0.5), AB)
    assert [e.estimate for e in effects] == pytest.approx([4.0, 6.0, 2.0])
    for effect in effects:
        assert (effect.sigma, effect.dof, effect.se) == pytest.approx((math.sqrt(0.5), 4, 0.5))
        assert effect.high - effect.estimate == pytest.approx(2.776 * 0.5, abs=1e-3)  # t(0.025, 4) = 2.776
    assert all(e.significant for e in effects)  # A×B: 2 ± 1.39
    # Four times the spread: σ = √8 and se = 2, so A×B = 2 ± 5.55 is no longer told from zero, B = 6 ± 5.55 is.
    wide = {e.name: e for e in factorial_effects(_direct_rows(spread=2.0), AB)}
    assert not wide["A×B"].significant and wide["B"].significant


def test_factorial_effects_with_a_noise_floor_use_its_dof():
    effects = factorial_effects(_direct_rows(), AB, sigma=NoiseFloor(sigma=0.1, n=3, dof=2))
    assert effects[0].dof == 2
    assert effects[0].high - effects[0].estimate == pytest.approx(4.303 * 0.1, abs=1e-3)  # t(0.025, 2)


def test_factorial_effects_reject_a_broken_grid():
    rows = _direct_rows()
    with pytest.raises(ValueError, match="no run for the cell A=1, B='y'"):
        factorial_effects(rows[:3], AB, sigma=1.0)
    with pytest.raises(ValueError, match=r"unbalanced grid: cells hold \[1, 2\] runs"):
        factorial_effects(rows + rows[:1], AB, sigma=1.0)
    with pytest.raises(ValueError, match="B = 'z' is neither level 'x' nor 'y'"):
        factorial_effects(rows + [({"A": 0, "B": "z"}, 1.0)], AB, sigma=1.0)
    with pytest.raises(ValueError, match="no value for factor B"):
        factorial_effects([({"A": 0}, 1.0)], AB, sigma=1.0)
    with pytest.raises(ValueError, match="unreplicated grid"):
        factorial_effects(rows, AB)


def test_factorial_intervals_cover_the_planted_effects():
    """Three factors, two replicates, σ = 1: A = 1.0, B = -0.6, C = 0, A×B = 0.8, others 0 (2^k effects)."""
    factors = {"A": (0, 1), "B": (0, 1), "C": (0, 1)}
    truth = {"A": 1.0, "B": -0.6, "C": 0.0, "A×B": 0.8, "A×C": 0.0, "B×C": 0.0}
    rng, grids = random.Random(3), 400
    covered = {"known σ": dict.fromkeys(truth, 0), "σ from replicates": dict.fromkeys(truth, 0)}
    for _ in range(grids):
        rows = []
        for config in factorial_grid(factors):
            a, b, c = (2 * config[n] - 1 for n in "ABC")
            mean = 5 + (truth["A"] * a + truth["B"] * b + truth["C"] * c + truth["A×B"] * a * b) / 2
            rows += [(config, rng.gauss(mean, 1.0)) for _ in range(2)]
        for label, sigma in (("known σ", 1.0), ("σ from replicates", None)):
            for effect in factorial_effects(rows, factors, sigma=sigma):
                covered[label][effect.name] += effect.low <= truth[effect.name] <= effect.high
    for label, counts in covered.items():
        rates = {name: count / grids for name, count in counts.items()}
        assert min(rates.values()) >= 0.9, f"95% intervals ({label}) covered the truth only {rates}"
