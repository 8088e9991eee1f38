"""One suite of trial endings, run over every backend (as Optuna runs one storage test case over every storage).

Each ending of endings.py must give the same outcome and reason on the local backend and on SkyPilot. Local trials
run here, one per test. SkyPilot's run on one warm cluster of the local Slurm cluster (see conftest.py): the first
SkyPilot test runs every ending at once, in a process of its own (slurm_trials.py), the first launching the cluster
and the others queued onto it with exec, and the tests read their ending's result from that batch.
"""

from __future__ import annotations

import pytest
from endings import ENDINGS, METRIC, SECRET, gone, run_ending, write_program

from overnight.backends.local import LocalBackend

BACKENDS = ["local", pytest.param("skypilot", marks=[pytest.mark.slow, pytest.mark.timeout(1200)])]
LOCAL_SHORT_TIMEOUT_S = 2


class LocalEndings:
    """Runs an ending on the local backend when a test asks for it (once: a second test of it reads the first)."""

    def __init__(self, work):
        self.backend = LocalBackend(
            program=write_program(work / "program"), work_root=work / "work", metric=METRIC
        )
        self.results: dict[str, dict] = {}

    def __call__(self, name: str) -> dict:
        if name not in self.results:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv(*SECRET)
                self.results[name] = run_ending(self.backend, name, "python train.py", LOCAL_SHORT_TIMEOUT_S)
        return self.results[name]


@pytest.fixture(scope="module")
def skypilot_results(sky_env, tmp_path_factory) -> dict[str, dict]:
    """Every ending's result on SkyPilot, by name: one warm cluster for all of them, torn down at the end."""
    from slurm_trials import run_every_ending

    return run_every_ending(sky_env, tmp_path_factory.mktemp("skypilot-endings"))


@pytest.fixture(scope="module", params=BACKENDS)
def ending(request, tmp_path_factory):
    """The result of a named ending on the backend under test, as plain data (outcome, reason, metrics, ...)."""
    if request.param == "local":
        return LocalEndings(tmp_path_factory.mktemp("local-endings"))
    results = request.getfixturevalue("skypilot_results")
    return lambda name: results[name]


def test_a_run_that_reports_its_metric_is_ok(ending):
    result = ending("ok")
    assert (result["outcome"], result["reason"]) == ("ok", "")
    assert result["metrics"] == {"loss": 0.5} and result["exit_code"] == 0
    assert "seed 7" in result["log_tail"]  # the trial's seed reaches the script; the file it made is its own


def test_a_trial_sees_its_own_variables_and_none_of_the_orchestrators(ending):
    log = ending("ok")["log_tail"]
    assert "extra yes" in log
    assert "leaked []" in log  # SECRET is set where the backend runs: the trial never sees it


def test_a_non_zero_exit_is_a_crash(ending):
    result = ending("crash")
    assert (result["outcome"], result["reason"]) == ("crash", "exited with status 3")
    assert result["exit_code"] == 3


def test_a_run_past_its_hard_timeout_is_a_timeout_whatever_it_printed(ending):
    result = ending("timeout")
    assert (result["outcome"], result["reason"]) == ("timeout", "killed after the hard timeout")


def test_a_run_that_trained_past_its_budget_is_over_budget(ending):
    result = ending("over_budget")
    assert result["outcome"] == "over_budget"
    assert (
        result["reason"]
        == "trained 5 s (its training_seconds) on a 1 s budget, past 1.1 s (budget_tolerance 0.1)"
    )


def test_a_run_longer_than_its_budget_allows_is_over_budget_whatever_it_prints(ending):
    result = ending("over_budget_wall")  # says it trained 0.9 s, but the engine timed it past 1.1 s + 0 s
    assert result["outcome"] == "over_budget"
    assert "by the engine's clock (wall_s) on a 1 s budget, past 1.1 s" in result["reason"]
    assert result["wall_s"] >= 2  # the script's sleep, timed by the engine


def test_a_nan_metric_is_nan(ending):
    result = ending("nan")
    assert (result["outcome"], result["reason"]) == ("nan", "loss was nan")


def test_a_run_that_never_reports_the_metric_is_no_metric(ending):
    result = ending("no_metric")
    assert (result["outcome"], result["reason"]) == ("no_metric", "the script never printed 'loss: <value>'")
    assert "forgot to report" in result["log_tail"]  # the why, for a person and for the next plan


def test_the_result_file_is_read_too(ending):
    result = ending("result_file")
    assert result["outcome"] == "ok" and result["metrics"] == {"loss": 0.25}


def test_a_run_that_modifies_or_removes_read_only_files_is_invalid(ending):
    result = ending("read_only_changed")
    assert result["outcome"] == "invalid"
    assert result["reason"] == "the run changed read-only files: data.txt, prepare.py"


def test_nothing_the_script_leaves_behind_outlives_the_trial(ending):
    """The trial ends with its script, not at the hard timeout, even with a child holding the script's output."""
    result = ending("child_left_behind")
    assert (result["outcome"], result["reason"]) == ("ok", "")
    assert result["seconds"] < 120  # the hard timeout is 300 s
    # Both backends run their trials on this machine (the local Slurm cluster too), so the child can be looked for.
    child = int(result["log_tail"].split("child ", 1)[1].split()[0])
    assert gone(child)  # killed as the trial ended; dying takes a moment


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_on_skypilot_every_ending_ran_on_one_warm_cluster_then_it_was_torn_down(skypilot_results, sky_env):
    from slurm_trials import sky_status

    assert set(skypilot_results) == set(ENDINGS)
    # Launched once, then exec: every trial ran on the same cluster, as successive jobs of its queue.
    placements = [result["placement"] for result in skypilot_results.values()]
    assert {p["cluster"] for p in placements} == {"ovn-conformance-0"}
    assert [int(p["job_id"]) for p in placements] == sorted(int(p["job_id"]) for p in placements)
    assert {p["hardware"] for p in placements} == {"cpu"}
    assert "No existing clusters" in sky_status(sky_env)  # close() took it down
