"""Keep decisions as the engine makes them (overnight.policy.DecisionPolicy), on the synthetic program's known truth.

Each simulated wave builds the same records a campaign writes to MLflow from the synthetic program's own `measure`:
the baseline copies and one screening run, then exactly the new-seed runs the policy asks for (confirmations and the
champion's runs on the candidate's hardware), and the policy decides. Thousands of decisions take a second, so the
rates mean something.
"""

import math
import random

import pytest
from helpers import load_synthetic

from overnight import stats
from overnight.fdr import ErrorControl
from overnight.memory.records import TrialRecord
from overnight.policy import DecisionPolicy, condition_floor, earlier_tests, reference_runs
from overnight.trial import Outcome

synthetic, DEFAULTS = load_synthetic()
SIGMA = synthetic.NOISE_SIGMA
RULE = stats.Rule()  # the shipped defaults: t test at alpha 0.05, 3 baseline runs, 4 confirmation runs
BUDGET = 30.0


def policy(rule=RULE) -> DecisionPolicy:
    """One candidate's verdict at the rule's own level (the error over a night is tests/test_night.py's)."""
    control = ErrorControl("per_candidate", rule.alpha)
    return DecisionPolicy("minimize", rule, 2, BUDGET, BUDGET, error_control=control)


def record(run_id, knobs, seed, hardware, role, measures="") -> TrialRecord:
    value = synthetic.measure(knobs, seed, hardware)
    return TrialRecord(
        run_id=run_id,
        trial_id=run_id,
        agent_run_id="a",
        wave=1,
        status="finished",
        outcome=Outcome.OK,
        metric=value,
        hypothesis="",
        params={},
        fingerprint=repr(sorted(knobs.items())),
        parent_champion="",
        decision="",
        reason="",
        duration_s=1.0,
        started_ms=0,
        hardware=hardware,
        budget_s=BUDGET,
        role=role,
        seed=seed,
        measures=measures,
    )


def decide(candidate_knobs, trial: int, pool=("h100",), rule=RULE) -> str:
    """One candidate through the engine's screen and confirmation, as a wave runs it; returns the final decision."""
    draw = random.Random(trial)
    offset = 1000 * trial  # every simulated campaign draws new noise
    baseline = [
        record(f"b{i}", DEFAULTS, offset + i, draw.choice(pool), "baseline")
        for i in range(rule.baseline_runs)
    ]
    champion = baseline[0]
    screened = record("t", candidate_knobs, offset, draw.choice(pool), "candidate")
    history = [*baseline, screened]
    judge = policy(rule)
    screening = judge.screen(history, champion, [screened])
    if not screening.to_confirm:
        return screening.decisions[0].decision
    for runs in screening.wanted:  # the runs the policy asks for, on the hardware it pins them to
        knobs, draws = (candidate_knobs, 100) if runs.role == "confirmation" else (DEFAULTS, 200)
        history += [  # (noise drawn apart from the baseline's: the simulator's seeds are not the policy's)
            record(
                f"{runs.role}{j}", knobs, offset + draws + j, runs.hardware, runs.role, runs.measures.run_id
            )
            for j in range(len(runs.seeds))
        ]
    crowning = judge.confirm(history, champion, list(screening.to_confirm))
    return crowning.decisions[0].decision


def rate(decisions: list[str]) -> float:
    return sum(d == "keep" for d in decisions) / len(decisions)


def bound(p: float, n: int) -> float:
    """p plus three binomial standard errors: what an honest rate p stays under, nearly always, in n trials."""
    return p + 3 * math.sqrt(p * (1 - p) / n)


NULL_CHANGE = {**DEFAULTS, "GRAD_CLIP": 0.5}  # GRAD_CLIP has no effect at all


def test_null_changes_are_kept_at_most_at_the_false_keep_rate():
    n = 1500
    decisions = [decide(NULL_CHANGE, trial) for trial in range(n)]
    observed = rate(decisions)
    assert observed <= bound(RULE.alpha, n), f"null changes kept {observed:.3%} of {n} (alpha {RULE.alpha})"
    # ... and the screen spares most of them the confirmation runs.
    assert sum(d in ("discard", "inconclusive") for d in decisions) > 0.5 * n


def test_real_effects_of_three_sigma_or_more_are_kept_at_least_90_percent_of_the_time():
    # LEARNING_RATE 1e-3 -> 3e-3 lowers the score by 0.04 (4σ); a 3σ change: 0.03 below the defaults.
    three_sigma = {**DEFAULTS, "LEARNING_RATE": 3e-3 * 3 ** math.sqrt(0.25)}
    effect = synthetic.expected_score(DEFAULTS) - synthetic.expected_score(three_sigma)
    assert effect == pytest.approx(3 * SIGMA)
    four_sigma = {**DEFAULTS, "LEARNING_RATE": 3e-3}
    n = 600
    for knobs, name in ((three_sigma, "3σ"), (four_sigma, "4σ")):
        observed = rate([decide(knobs, trial) for trial in range(n)])
        assert observed >= 0.90, f"a real {name} improvement was kept only {observed:.1%} of {n} times"


def test_a_mixed_pool_never_makes_a_champion_out_of_a_hardware_offset():
    """h200 scores 0.05 (5σ) lower than h100 for the same program: compared across types, null changes would win."""
    n = 800
    decisions = [decide(NULL_CHANGE, trial, pool=("h100", "h200")) for trial in range(n)]
    observed = rate(decisions)
    assert observed <= bound(RULE.alpha, n), f"null changes on a mixed pool kept {observed:.3%}"

    # The same candidates judged naively (one run against the champion's runs on any hardware) would be kept often:
    # this is what the pairing prevents, so the test above can fail.
    naive = 0
    for trial in range(n):
        draw = random.Random(trial)
        champion_runs = [
            synthetic.measure(DEFAULTS, 1000 * trial + i, draw.choice(("h100", "h200"))) for i in range(3)
        ]
        candidate = synthetic.measure(NULL_CHANGE, 1000 * trial, draw.choice(("h100", "h200")))
        naive += sum(champion_runs) / 3 - candidate > 2 * SIGMA
    assert naive / n > 0.2


def test_a_candidate_screened_on_h200_is_confirmed_against_the_champion_on_h200():
    history = [record(f"b{i}", DEFAULTS, i, "h100", "baseline") for i in range(3)]
    champion = history[0]
    screened = record("t", NULL_CHANGE, 7, "h200", "candidate")
    history.append(screened)
    screening = policy().screen(history, champion, [screened])
    # No champion run on h200 yet: screened across hardware (the offset makes it look promising) and said so.
    assert screening.to_confirm == (screened,)
    assert "no champion run on h200 yet" in screening.decisions[0].reason
    # The policy wants the candidate's new-seed runs and as many new champion runs, all pinned to h200.
    n = RULE.confirm_runs
    wanted = {(runs.role, runs.hardware, len(runs.seeds)) for runs in screening.wanted}
    assert wanted == {("confirmation", "h200", n), ("champion", "h200", n)}
    history += [record(f"c{j}", NULL_CHANGE, 10 + j, "h200", "confirmation", measures="t") for j in range(n)]
    history += [record(f"h{j}", DEFAULTS, 20 + j, "h200", "champion", measures="b0") for j in range(n)]
    crowning = policy().confirm(history, champion, list(screening.to_confirm))
    confirmed = crowning.decisions
    assert crowning.champion is None and confirmed[0].decision != "keep"
    assert f"vs {n} champion runs of the same batch on h200" in confirmed[0].reason
    assert confirmed[0].numbers["n_champion"] == n and "p_value" in confirmed[0].numbers


def test_a_grid_recovers_the_planted_main_effects_and_interaction():
    """ACTIVATION x NORM, two levels each, replicated: effects -0.025, -0.015 and interaction -0.015 (2^k units)."""
    factors = {"ACTIVATION": ("gelu", "swiglu"), "NORM": ("layer", "rms")}
    truth = {"ACTIVATION": -0.025, "NORM": -0.015, "ACTIVATION×NORM": -0.015}
    covered = {name: 0 for name in truth}
    grids = 200
    for grid in range(grids):
        rows = []
        for cell in stats.factorial_grid(factors):
            knobs = {**DEFAULTS, **cell}
            rows += [(cell, synthetic.measure(knobs, 10_000 * grid + r, None)) for r in range(4)]
        floor = stats.NoiseFloor(SIGMA, 3, 100)  # the campaign's floor, well measured by then
        for effect in stats.factorial_effects(rows, factors, floor):
            covered[effect.name] += effect.low <= truth[effect.name] <= effect.high
    for name, hits in covered.items():
        assert hits / grids >= 0.9, f"the 95% interval of {name} covered the truth in {hits} of {grids} grids"


def test_a_new_champion_is_judged_by_fresh_runs_never_by_the_runs_that_crowned_it():
    four_sigma = {**DEFAULTS, "LEARNING_RATE": 3e-3}
    history = [record(f"b{i}", DEFAULTS, i, "h100", "baseline") for i in range(3)]
    crowned = record("t", four_sigma, 7, "h100", "candidate")
    history.append(crowned)
    history += [record(f"c{j}", four_sigma, 10 + j, "h100", "confirmation", measures="t") for j in range(5)]
    judge = policy()
    assert (
        reference_runs(history, crowned, BUDGET, "h100") == []
    )  # the screening and confirmation runs don't count
    wanted = judge.remeasure_champion(history, crowned)
    assert wanted.role == "champion" and wanted.stage == "screen" and len(wanted.seeds) == RULE.baseline_runs
    assert not set(wanted.seeds) & {t.seed for t in history if t.fingerprint == crowned.fingerprint}
    fresh = [record(f"f{j}", four_sigma, 30 + j, "h100", "champion", measures="t") for j in wanted.seeds]
    history += fresh
    assert judge.remeasure_champion(history, crowned) is None
    assert reference_runs(history, crowned, BUDGET, "h100") == [t.metric for t in fresh]
    night = judge.night_improvement(history, history[0], crowned)
    truth = synthetic.expected_score(DEFAULTS) - synthetic.expected_score(four_sigma)
    assert night.low <= truth <= night.high and night.n_before == 3 and night.n_after == len(fresh)


def run(run_id, metric, role, fingerprint, measures="", decision="", metrics=None) -> TrialRecord:
    """A finished run of one set of files with a chosen metric, on h100 at the test's budget."""
    return TrialRecord(
        run_id=run_id,
        trial_id=run_id,
        agent_run_id="a",
        wave=1,
        status="finished",
        outcome=Outcome.OK,
        metric=metric,
        hypothesis="",
        params={},
        fingerprint=fingerprint,
        parent_champion="",
        decision=decision,
        reason="",
        duration_s=1.0,
        started_ms=0,
        metrics=metrics or {},
        hardware="h100",
        budget_s=BUDGET,
        role=role,
        measures=measures,
    )


def confirmed_with_gain(judge: DecisionPolicy, gain: float, tested: list[TrialRecord]) -> tuple[str, object]:
    """A candidate whose new-seed runs are the champion's runs of the same batch, better by exactly `gain`: its
    decision, and the noise floor the confirmation was judged under (the same for every gain: a shift of one group
    leaves the spread within it as it was)."""
    batch = [1.010, 0.981, 1.032, 1.004, 0.996][: judge.rule.confirm_runs]
    champion = run("champ", 1.0, "baseline", "champ")
    history = [champion, run("b1", 1.021, "baseline", "champ"), run("b2", 0.987, "baseline", "champ")]
    candidate = run("cand", 0.9, "candidate", "cand")
    history.append(candidate)
    history += [run(f"k{i}", x, "champion", "champ", measures="champ") for i, x in enumerate(batch)]
    history += [run(f"c{i}", x - gain, "confirmation", "cand", measures="cand") for i, x in enumerate(batch)]
    crowning = judge.confirm(history, champion, [candidate], tested)
    return crowning.decisions[0].decision, condition_floor(history, BUDGET, "h100")


@pytest.mark.parametrize(
    "rule, control, earlier",
    [
        (stats.Rule(), ErrorControl("lord", 0.05), []),  # a campaign's first confirmation: LORD++'s least
        (stats.Rule(), ErrorControl("lord", 0.05), ["keep", "discard", "inconclusive"]),  # level earned
        (stats.Rule(margin=0.5), ErrorControl("lord", 0.05), []),  # min_improvement above the statistics
        (stats.Rule(kind="k_sigma", confirm_runs=3), ErrorControl("per_candidate", 0.05), []),
    ],
)
def test_the_smallest_confirmable_gain_is_where_the_policys_confirmation_starts_to_keep(
    rule, control, earlier
):
    judge = DecisionPolicy("minimize", rule, 2, BUDGET, BUDGET, error_control=control)
    tested = [
        run(f"t{i}", 1.0, "candidate", f"t{i}", decision=d, metrics={"confirm_test_index": i})
        for i, d in enumerate(earlier, start=1)
    ]
    _, floor = confirmed_with_gain(judge, 0.0, tested)
    smallest = judge.smallest_confirmable_gain(floor, earlier_tests(tested))
    assert 0 < smallest < math.inf
    assert confirmed_with_gain(judge, smallest * (1 + 1e-6), tested)[0] == "keep"
    assert confirmed_with_gain(judge, smallest * (1 - 1e-6), tested)[0] != "keep"


def test_with_no_noise_measured_only_min_improvement_can_be_confirmed():
    silent = stats.NoiseFloor(sigma=0.0, n=4, dof=2)
    assert policy(stats.Rule(margin=0.01)).smallest_confirmable_gain(silent, []) == 0.01
    assert policy().smallest_confirmable_gain(silent, []) == math.inf
