"""What the baseline copies say of the program: it ignores its seed, or it does not follow its time budget."""

import pytest
from mlflow.tracking import MlflowClient

from overnight import progress
from overnight.config import CampaignConfig
from overnight.memory.records import TrialRecord
from overnight.memory.store import Memory
from overnight.program_checks import ProgramWarning, check_program, record_program_warnings
from overnight.trial import Outcome

CONFIG = CampaignConfig(
    name="checks", program=".", metric={"name": "loss"}, trial={"time_budget_s": 30, "timeout_s": 300}
)


def copy(seed, loss, training_s=None, wall_s=31.0, role="baseline", outcome=Outcome.OK) -> TrialRecord:
    metrics = {"loss": loss, "wall_s": wall_s, "duration_s": wall_s + 0.5}
    if training_s is not None:
        metrics["training_seconds"] = training_s
    return TrialRecord(
        run_id=f"run-{seed}",
        trial_id=f"t-{seed}",
        agent_run_id="agent",
        wave=0,
        status="finished",
        outcome=outcome,
        metric=loss,
        hypothesis="baseline",
        params={},
        fingerprint="same",
        parent_champion="",
        decision="baseline",
        reason="",
        duration_s=wall_s + 0.5,
        started_ms=0,
        metrics=metrics,
        budget_s=30,
        role=role,
        seed=seed,
    )


def keys(trials) -> list[str]:
    return [w.key for w in check_program(CONFIG, trials)]


def test_a_program_that_follows_its_seed_and_budget_gets_no_warning():
    assert keys([copy(0, 2.81, 30.0), copy(1, 2.83, 30.1), copy(2, 2.82, 29.9)]) == []
    # No training_seconds: the engine's wall time, starting and evaluating included.
    assert keys([copy(0, 2.81, wall_s=33.0), copy(1, 2.83, wall_s=34.0)]) == []


def test_copies_with_different_seeds_and_one_metric_mean_the_program_ignores_its_seed():
    (warning,) = check_program(CONFIG, [copy(0, 2.8, 30.0), copy(1, 2.8, 30.0), copy(2, 2.8, 30.0)])
    assert warning.key == "seed"
    assert "OVERNIGHT_SEED 0, 1, 2 and all gave loss = 2.8" in warning.message
    assert "noise floor is zero" in warning.message and "min_improvement (0)" in warning.message
    assert "nothing is crowned on statistics alone" in warning.message


def test_one_seed_or_one_copy_says_nothing_of_the_seed():
    assert keys([copy(0, 2.8, 30.0), copy(0, 2.8, 30.0)]) == []  # copies of one seed may well agree
    assert keys([copy(0, 2.8, 30.0)]) == []
    # Only the baseline's copies count: a candidate and a confirmation run may give any metric.
    assert keys([copy(0, 2.8, 30.0), copy(1, 2.8, 30.0, role="candidate")]) == []


@pytest.mark.parametrize(
    "trials",
    [
        [copy(0, 2.81, 5.0), copy(1, 2.83, 5.1)],  # trains 5 s of its 30 s: a constant of its own
        [copy(0, 2.81, 60.0, outcome=Outcome.OVER_BUDGET), copy(1, 2.83, 60.2, outcome=Outcome.OVER_BUDGET)],
        [copy(0, 2.81, wall_s=4.0), copy(1, 2.83, wall_s=4.2)],  # no training_seconds, and done in 4 s
    ],
    ids=["far_below", "above", "wall_time_far_below"],
)
def test_copies_whose_training_time_does_not_follow_the_budget_mean_it_reads_a_constant(trials):
    (warning,) = check_program(CONFIG, trials)
    assert warning.key == "budget"
    assert "does not follow OVERNIGHT_TIME_BUDGET" in warning.message and "30 s budget" in warning.message
    assert "reads its budget from a constant" in warning.message


def test_one_slow_copy_is_not_a_program_that_ignores_its_budget():
    assert keys([copy(0, 2.81, 30.0), copy(1, 2.83, 14.0)]) == []


def test_a_program_that_ignores_both_gets_both_warnings():
    assert keys([copy(0, 2.8, 5.0), copy(1, 2.8, 5.0)]) == ["seed", "budget"]


def test_warnings_are_tags_on_the_agent_run_and_progress_events(tmp_path, tracking_uri, campaign_name):
    memory = Memory(
        tracking_uri, campaign_name, goal="minimize", metric="loss", artifact_root=tmp_path / "art"
    )
    agent = memory.start_agent_run("night", {})
    events = []
    listener = lambda event, **data: events.append((event, data))  # noqa: E731
    progress.subscribe(listener)
    try:
        record_program_warnings(
            memory,
            agent,
            [ProgramWarning("seed", "ignores its seed"), ProgramWarning("budget", "a constant")],
        )
    finally:
        progress.unsubscribe(listener)
    tags = MlflowClient(tracking_uri).get_run(agent).data.tags
    assert tags["overnight.warning.seed"] == "ignores its seed"
    assert tags["overnight.warning.budget"] == "a constant"
    assert events == [
        ("program_warning", {"key": "seed", "message": "ignores its seed"}),
        ("program_warning", {"key": "budget", "message": "a constant"}),
    ]


def test_the_cli_prints_a_warning_as_one_line():
    from overnight.cli.common import console
    from overnight.cli.display import ProgressDisplay

    message = check_program(CONFIG, [copy(0, 2.8, 30.0), copy(1, 2.8, 30.0)])[0].message
    with console.capture() as captured:
        ProgressDisplay(waves=1, wave_size=2).on_event("program_warning", key="seed", message=message)
    assert captured.get() == f"warning: {message}\n"
