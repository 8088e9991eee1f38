"""LORD++'s levels: what a campaign may spend while nothing passes, and what a pass earns back."""

import math

import pytest

from overnight.fdr import ErrorControl, gamma


def test_the_spending_sequence_sums_to_one():
    assert math.fsum(gamma(j, 64) for j in range(1, 400_000)) == pytest.approx(1.0, abs=2e-3)
    assert gamma(1, 64) > gamma(64, 64) > gamma(1000, 64) > 0 and gamma(0, 64) == 0


def test_while_nothing_passes_a_campaign_spends_at_most_half_of_alpha_in_all():
    control = ErrorControl("lord", 0.05)
    spent = math.fsum(control.level([False] * k) for k in range(5000))
    assert spent <= control.w0 == 0.025 and spent > 0.02


def test_a_pass_earns_level_back_for_the_tests_after_it():
    control = ErrorControl("lord", 0.05)
    after_nothing, after_a_pass = control.level([False] * 10), control.level([False] * 9 + [True])
    assert after_a_pass > 2 * after_nothing
    assert control.level([True, True]) > control.level([True, False])
    assert all(control.level([True] * k) <= 0.05 for k in range(1, 50))


def test_per_candidate_is_alpha_for_every_test_and_says_so():
    control = ErrorControl("per_candidate", 0.05)
    assert control.level([False] * 30) == 0.05 and "add up" in control.name
    assert "LORD++(FDR 0.05, W0 0.025, horizon 64)" in ErrorControl("lord", 0.05).name
    with pytest.raises(ValueError, match="error control"):
        ErrorControl("bonferroni", 0.05)
