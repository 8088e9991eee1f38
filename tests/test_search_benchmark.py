"""benchmarks/search_efficiency.py on a landscape file of a user's own: it loads any file of the documented shape,
says what is wrong with one that is not, counts a crash and a NaN as failures, and judges each strategy by the
true score of what it recommends (a crashing recommendation is the worst there is)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.search_efficiency import PLANNER, Bench, LandscapeError, load_landscape, main  # noqa: E402
from overnight.trial import Outcome  # noqa: E402

# A two-knob program: the best learning rate grows with the width, and too high a rate diverges (NaN) or crashes.
LANDSCAPE = """
import math, random

GOAL = "minimize"
KNOBS = [
    {"name": "LEARNING_RATE", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    {"name": "WIDTH", "type": "int", "low": 64, "high": 1024, "powers_of_two": True},
]
DEFAULTS = {"LEARNING_RATE": 0.001, "WIDTH": 128}
OPTIMUM = 1.0


def _best_rate(width):
    return 0.002 * width / 256


def true_score(params):
    rate, width = params["LEARNING_RATE"], params["WIDTH"]
    if rate > 4 * _best_rate(width):
        return math.inf
    return 1.0 + 0.05 * math.log(rate / _best_rate(width)) ** 2 + 0.02 * math.log2(1024 / width)


def score(params, seed):
    rate, width = params["LEARNING_RATE"], params["WIDTH"]
    if rate > 8 * _best_rate(width):
        raise RuntimeError("loss exploded")
    if rate > 4 * _best_rate(width):
        return math.nan
    key = f"{seed}|{rate!r}|{width!r}"
    return true_score(params) + random.Random(key).gauss(0.0, 0.005)
"""


@pytest.fixture
def landscape_file(tmp_path: Path) -> Path:
    path = tmp_path / "width_rate.py"
    path.write_text(LANDSCAPE)
    return path


def test_a_users_landscape_runs_through_the_planner_and_the_peers(landscape_file, capsys):
    main(
        [
            "--landscape",
            str(landscape_file),
            "--seeds",
            "2",
            "--workers",
            "4",
            "--waves",
            "3",
            "--jobs",
            "1",
            "--no-write",
            "--strategies",
            PLANNER,
            "Optuna TPE",
        ]
    )
    out = capsys.readouterr().out
    assert "| width_rate | 2 (1 float, 1 int) |" in out  # the landscape's facts, from its own file
    planner_rows = [line for line in out.splitlines() if line.startswith(f"| {PLANNER} |")]
    assert len(planner_rows) == 2  # its gap left, and its speed-up against the sequential loop
    assert "| Optuna TPE |" in out and "sequential greedy" in out
    assert "- width_rate: the planner (pipelined)" in out  # the verdict is computed, per landscape


def test_a_crash_and_a_nan_are_failures_and_a_crashing_setting_is_the_worst(landscape_file):
    landscape = load_landscape(landscape_file)
    bench = Bench(landscape, seed=0)
    assert bench.measure({"LEARNING_RATE": 0.1, "WIDTH": 64}) == (Outcome.CRASH, None)
    assert bench.measure({"LEARNING_RATE": 0.0025, "WIDTH": 64}) == (Outcome.NAN, None)
    defaults = dict(landscape.defaults)
    outcome, value = bench.measure(defaults)
    assert outcome is Outcome.OK and value == pytest.approx(landscape.true_score(defaults), abs=0.03)
    assert landscape.gap_left(defaults) == pytest.approx(1.0)
    assert landscape.gap_left({"LEARNING_RATE": 0.008, "WIDTH": 1024}) == pytest.approx(0.0, abs=1e-9)
    assert landscape.gap_left({"LEARNING_RATE": 0.004, "WIDTH": 512}) == pytest.approx(
        0.02 / 0.06
    )  # half way
    assert landscape.gap_left({"LEARNING_RATE": 0.1, "WIDTH": 64}) == float("inf")


@pytest.mark.parametrize(
    "change, message",
    [
        ('DEFAULTS = {"LEARNING_RATE": 0.001}', "DEFAULTS has no value for knob WIDTH"),
        (
            'DEFAULTS = {"LEARNING_RATE": 0.001, "WIDTH": 100}',
            "DEFAULTS['WIDTH'] = 100 is not a value the knob takes",
        ),
        ("OPTIMUM = 1.0", ""),  # unchanged: loads
        ('GOAL = "lower"', "GOAL must be 'minimize' or 'maximize'"),
    ],
)
def test_a_broken_landscape_file_says_what_is_wrong(tmp_path, change, message):
    text = LANDSCAPE
    for line in LANDSCAPE.splitlines():
        if line.split(" = ")[0] == change.split(" = ")[0]:
            text = text.replace(line, change)
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent(text))
    if not message:
        assert load_landscape(path).name == "broken"
        return
    with pytest.raises(LandscapeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_landscape(path)


def test_the_command_names_a_missing_landscape_without_a_stack_trace(tmp_path):
    with pytest.raises(SystemExit, match="no such landscape file"):
        main(["--landscape", str(tmp_path / "absent.py"), "--no-write"])


def test_check_reports_a_landscapes_noise_failures_and_optimum(landscape_file, capsys):
    main(["--check", "--landscape", str(landscape_file)])
    out = capsys.readouterr().out
    assert "width_rate: true score of the defaults 1.06, OPTIMUM 1 (gap 0.06)" in out
    assert "200 finished" in out and "(no better than OPTIMUM)" in out
    share = float(out.split("random settings: ")[1].split("%")[0])
    assert 10 < share < 90  # the region above 4x the best rate fails, and only that region
