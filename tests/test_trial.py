"""The one judge: what a backend saw of a run becomes an outcome and a reason, with one precedence everywhere."""

import pytest

from overnight.trial import Outcome, TrialFacts, judge, parse_metrics

TAMPERED = ("data.txt",)
CAP = "killed: its processes used 300 MB, over the 150 MB memory cap"


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
    ],
)
def test_each_ending_alone(facts, outcome, reason):
    assert judge("loss", facts) == (outcome, reason)


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
    ],
)
def test_when_several_things_went_wrong_the_first_in_the_precedence_decides(facts, outcome):
    assert judge("loss", facts)[0] is outcome


def test_the_metrics_of_a_run_are_its_lines_then_its_result_file():
    facts = TrialFacts(
        0, log="step 1\nloss: 0.9\ndevice: cpu\nloss: 0.5\n", result_json='{"acc": 0.7, "ok": true}'
    )
    assert facts.metrics == parse_metrics(facts.log, facts.result_json) == {"loss": 0.5, "acc": 0.7}
