"""The one judge: what a backend saw of a run becomes an outcome and a reason, with one precedence everywhere."""

import pytest

from overnight.trial import (
    Outcome,
    TimeBudget,
    TrialFacts,
    TrialResult,
    TrialSpec,
    crashed_before_first_result,
    judge,
    parse_metrics,
)

TAMPERED = ("data.txt",)
CAP = "killed: its processes used 300 MB, over the 150 MB memory cap"
# 10 s of training; the script may report up to 11 s of it, and the whole run may take 16 s by the engine's clock.
BUDGET = TimeBudget(10, tolerance=0.1, allowance_s=5)
LONG = 99.0  # a run's wall time far past the budget


@pytest.mark.parametrize(
    "facts, outcome, reason",
    [
        (TrialFacts(0, log="loss: 0.5\n"), Outcome.OK, ""),
        (TrialFacts(0, result_json='{"loss": 0.25}'), Outcome.OK, ""),
        (TrialFacts(3, log="loss: 0.5\n"), Outcome.CRASH, "exited with status 3"),
        (TrialFacts(-9, timed_out=True, log="loss: 0.5\n"), Outcome.TIMEOUT, "killed after the hard timeout"),
        (TrialFacts(0, log="loss: nan\n"), Outcome.NAN, "loss was nan"),
        (TrialFacts(0, log="loss: inf\n"), Outcome.NAN, "loss was inf"),
        (TrialFacts(0, log="done\n"), Outcome.NO_METRIC, "the script never printed 'loss: <value>'"),
        (TrialFacts(-9, over_limit=CAP), Outcome.OVER_LIMIT, CAP),
        (
            TrialFacts(0, log="loss: 0.0\n", changed_read_only=("data.txt", "prepare.py")),
            Outcome.INVALID,
            "the run changed read-only files: data.txt, prepare.py",
        ),
        (
            TrialFacts(None, log="loss: 0.5\n", ended_early="FAILED"),
            Outcome.CRASH,
            "the job ended FAILED before the script finished",
        ),
        (
            TrialFacts(0, log="loss: 0.5\ntraining_seconds: 12\n", wall_s=13.0),
            Outcome.OVER_BUDGET,
            "trained 12 s (its training_seconds) on a 10 s budget, past 11 s (budget_tolerance 0.1)",
        ),
        (
            TrialFacts(0, log="loss: 0.5\ntraining_seconds: 10\n", wall_s=17.0),
            Outcome.OVER_BUDGET,
            "ran 17 s by the engine's clock (wall_s) on a 10 s budget, past 16 s (budget_tolerance 0.1, "
            "overhead_allowance_s 5)",
        ),
        # Up to the limits a run is comparable: the script may say 10.9 s of training, the engine see 15.9 s.
        (TrialFacts(0, log="loss: 0.5\ntraining_seconds: 10.9\n", wall_s=15.9), Outcome.OK, ""),
    ],
    ids=[
        "ok",
        "result_file",
        "crash",
        "timeout",
        "nan",
        "inf",
        "no_metric",
        "over_limit",
        "invalid",
        "ended_early",
        "over_budget_training_seconds",
        "over_budget_wall_s",
        "within_budget",
    ],
)
def test_each_ending_alone(facts, outcome, reason):
    assert judge("loss", facts, BUDGET) == (outcome, reason)


@pytest.mark.parametrize(
    "facts, outcome",
    [
        # A changed read-only file beats everything: the metric cannot be trusted, whatever else happened.
        (TrialFacts(-15, timed_out=True, changed_read_only=TAMPERED), Outcome.INVALID),
        (TrialFacts(-9, over_limit=CAP, changed_read_only=TAMPERED), Outcome.INVALID),
        (TrialFacts(1, log="loss: nan\n", changed_read_only=TAMPERED), Outcome.INVALID),
        # The engine's kill past a cap explains the timeout, the exit status and the missing metric that follow.
        (TrialFacts(-9, timed_out=True, over_limit=CAP), Outcome.OVER_LIMIT),
        # What a killed run printed before is not a result: a timeout, even with a NaN, a crash or a metric.
        (TrialFacts(-15, timed_out=True, log="loss: nan\n"), Outcome.TIMEOUT),
        (TrialFacts(None, timed_out=True, ended_early="CANCELLED", log="loss: 0.5\n"), Outcome.TIMEOUT),
        # A script that fails fast on NaN exits non-zero: the NaN is the cause.
        (TrialFacts(1, log="loss: nan\n"), Outcome.NAN),
        (TrialFacts(None, ended_early="FAILED", log="loss: nan\n"), Outcome.NAN),
        # A job that ended before its script did is a crash, even where the script printed the metric.
        (TrialFacts(None, ended_early="CANCELLED", log="loss: 0.5\n"), Outcome.CRASH),
        # A crash beats a missing metric: the exit status is the better reason.
        (TrialFacts(2, log="nothing\n"), Outcome.CRASH),
        # An engine kill explains a long run; tampering beats everything.
        (TrialFacts(0, log="loss: 0\ntraining_seconds: 99\n", changed_read_only=TAMPERED), Outcome.INVALID),
        (TrialFacts(-9, over_limit=CAP, wall_s=LONG), Outcome.OVER_LIMIT),
        (TrialFacts(-15, timed_out=True, log="training_seconds: 99\n", wall_s=LONG), Outcome.TIMEOUT),
        # A run past its budget used time no other trial had, whatever it ended with.
        (TrialFacts(1, log="loss: nan\ntraining_seconds: 99\n"), Outcome.OVER_BUDGET),
        (TrialFacts(3, log="loss: 0.5\n", wall_s=LONG), Outcome.OVER_BUDGET),
        (TrialFacts(None, ended_early="FAILED", wall_s=LONG), Outcome.OVER_BUDGET),
        (TrialFacts(0, log="training_seconds: 99\n"), Outcome.OVER_BUDGET),
        # The engine's clock beats what the script says of its own training.
        (TrialFacts(0, log="loss: 0.5\ntraining_seconds: 1\n", wall_s=LONG), Outcome.OVER_BUDGET),
    ],
    ids=[
        "invalid>timeout",
        "invalid>over_limit",
        "invalid>nan+crash",
        "over_limit>timeout",
        "timeout>nan",
        "timeout>ended_early",
        "nan>crash",
        "nan>ended_early",
        "ended_early>ok",
        "crash>no_metric",
        "invalid>over_budget",
        "over_limit>over_budget",
        "timeout>over_budget",
        "over_budget>nan",
        "over_budget>crash",
        "over_budget>ended_early",
        "over_budget>no_metric",
        "wall_s>training_seconds",
    ],
)
def test_when_several_things_went_wrong_the_first_in_the_precedence_decides(facts, outcome):
    assert judge("loss", facts, BUDGET)[0] is outcome


def test_without_a_budget_nothing_is_over_budget():
    facts = TrialFacts(0, log="loss: 0.5\ntraining_seconds: 99\n", wall_s=LONG)
    assert judge("loss", facts) == (Outcome.OK, "")


def test_a_trial_spec_carries_its_budget_with_the_configs_tolerance_and_allowance():
    spec = TrialSpec("t", {}, 0, "python train.py", 30, 90, budget_tolerance=0.2, overhead_allowance_s=60)
    assert spec.budget == TimeBudget(30, 0.2, 60)
    assert (spec.budget.training_limit_s, spec.budget.wall_limit_s) == (36, 96)


def test_the_metrics_of_a_run_are_its_lines_then_its_result_file():
    facts = TrialFacts(
        0, log="step 1\nloss: 0.9\ndevice: cpu\nloss: 0.5\n", result_json='{"acc": 0.7, "ok": true}'
    )
    assert facts.metrics == parse_metrics(facts.log, facts.result_json) == {"loss": 0.5, "acc": 0.7}


@pytest.mark.parametrize(
    "outcome, metrics, early",
    [
        (Outcome.CRASH, {"concurrency": 2.0}, True),  # a traceback and nothing else: what the engine counted
        (
            Outcome.CRASH,
            {"concurrency": 1.0, "duration_s": 0.2, "wall_s": 0.1},
            True,
        ),  # as a resumed wave reads it
        (Outcome.CRASH, {"concurrency": 1.0, "step": 100.0}, False),  # it trained, then crashed: not early
        (Outcome.CRASH, {"concurrency": 1.0, "loss": 0.5}, False),
        (Outcome.TIMEOUT, {"concurrency": 1.0}, False),
        (Outcome.NO_METRIC, {}, False),
    ],
    ids=["traceback_only", "resumed", "after_a_metric_line", "after_the_metric", "timeout", "no_metric"],
)
def test_a_crash_is_early_only_before_the_script_printed_any_metric_line(outcome, metrics, early):
    result = TrialResult("t", outcome, metrics, 0.2, 1, "Traceback (most recent call last): ...")
    assert crashed_before_first_result(result) is early
