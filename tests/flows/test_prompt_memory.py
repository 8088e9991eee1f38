"""What Claude reads of the past in a real campaign: the third wave's prompt still holds, for a trial of the first,
its script's measurements (throughput included), its hardware, its decision's numbers, and the campaign's noise
floor and smallest confirmable gain, as the decision policy computes them from the records in MLflow.

The quadratic program here has seed noise (a real floor to confirm against) and prints what a training script
prints beside its metric; its loss is the fixture's plus that noise."""

import json

import pytest
from helpers import configure_campaign
from standins.messages_api import tool_answer

from flows.campaign import campaign_flow
from overnight.config import load_config
from overnight.memory.store import Memory
from overnight.policy import DecisionPolicy, condition_floor, earlier_tests

pytestmark = pytest.mark.slow

TRAIN = '''"""The quadratic program with seed noise, printing steps, throughput and memory beside its loss."""

import os
import random

X = 1.0  # best at 3
Y = 2  # best at -1
MODE = "plain"  # "plain" or "shifted" (shifted is worse by 1)

seed = int(os.environ.get("OVERNIGHT_SEED", "0"))
loss = (X - 3.0) ** 2 + (Y + 1) ** 2 + (1.0 if MODE == "shifted" else 0.0) + random.Random(seed).gauss(0, 0.01)
print(f"loss: {loss:.6f}")
print("num_steps: 120")
print(f"tokens_per_second: {48000 + 1000 * X:.0f}")
print("peak_memory_mb: 42.5")
'''


def experiment(hypothesis, search, replace):
    edit = {"path": "train.py", "search": search, "replace": replace}
    return {"hypothesis": hypothesis, "rationale": "a bowl", "expected_effect": "lower", "edits": [edit]}


WAVES = [
    {  # Y = 0 is crowned (loss 13 -> 5); X = 2.5 was promising too, but only one is confirmed per wave
        "experiments": [
            experiment("X toward 3", "X = 1.0  # best at 3", "X = 2.5  # best at 3"),
            experiment("Y toward -1", "Y = 2  # best at -1", "Y = 0  # best at -1"),
        ]
    },
    {  # on top of Y = 0: X = 3 is crowned (loss 5 -> 1)
        "experiments": [
            experiment("X all the way", "X = 1.0  # best at 3", "X = 3.0  # best at 3"),
            experiment("MODE shifted", 'MODE = "plain"', 'MODE = "shifted"'),
        ]
    },
    {  # on top of X = 3: Y = -1 (loss 1 -> 0)
        "experiments": [
            experiment("Y all the way", "Y = 0  # best at -1", "Y = -1  # best at -1"),
            experiment("MODE shifted again", 'MODE = "plain"', 'MODE = "shifted"'),
        ]
    },
]
INSIGHTS = {"learned": ["a bowl"], "dead_ends": [], "next_directions": []}


def entry(prompt: str, hypothesis: str) -> str:
    """A trial's lines in the prompt's history of every trial: its line, and the lines of its details below it."""
    lines = prompt[prompt.index("Every trial of the campaign") :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  ") and line.endswith(hypothesis))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("      "))
    return "\n".join(lines[start:end])


def test_the_third_waves_prompt_shows_a_first_wave_trials_measurements_verdict_and_the_noise(
    prefect_api, messages_api, quadratic, tmp_path
):
    (quadratic / "train.py").write_text(TRAIN)
    path = configure_campaign(
        quadratic,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        planner={"kind": "claude", "http_retries": 0},
        budget={"waves": 3},
        decision={"confirm_runs": 1, "confirm_top": 1},  # the fewest runs a campaign can judge with
    )
    messages_api.script("WaveAnswer", *(tool_answer(answer) for answer in WAVES))
    messages_api.script("Insights", tool_answer(INSIGHTS))
    summary = campaign_flow(config_path=str(path))
    assert summary.champion_hypothesis == "Y all the way"  # the campaign went as scripted: 13 -> 5 -> 1 -> 0

    third = json.loads(json.dumps(messages_api.for_tool("WaveAnswer")[2]))["messages"][0]["content"]
    prompt = "".join(block["text"] for block in third)
    memory = Memory(summary.tracking_uri, "quadratic", "minimize", "loss")
    trials = memory.trials()
    (first,) = [t for t in trials if t.hypothesis == "Y toward -1"]
    shown = entry(prompt, "Y toward -1")
    assert "ran on cpu with a 1 s budget" in shown  # its hardware and budget
    assert (
        "num_steps 120" in shown and "tokens_per_second 49000 (champion 51000)" in shown
    )  # beside the champion's
    metrics = first.metrics
    assert f"screening gain {metrics['screen_gain']:.4g} ± {metrics['screen_se']:.2g} se" in shown
    assert (  # its decision and the verdict's numbers
        "decision keep: " in shown
        and f"confirmed gain {metrics['confirm_gain']:.4g} ± {metrics['confirm_se']:.2g} se, "
        f"p {metrics['confirm_p_value']:.2g} at level {metrics['confirm_alpha_t']:.2g}"
        in shown
    )

    # The noise floor and the smallest confirmable gain as they stood when the third wave was planned.
    before = [t for t in trials if t.agent_run_id == first.agent_run_id and t.wave <= 2]
    floor = condition_floor(before, 1.0, "cpu")
    policy = DecisionPolicy.from_config(load_config(path))
    smallest = policy.smallest_confirmable_gain(floor, earlier_tests(before))
    assert floor.sigma > 0 and 0 < smallest < 1
    assert (
        f"- cpu, 1 s budget: σ = {floor.sigma:.4g} ({floor.n} runs, {floor.dof} dof); "
        f"smallest confirmable gain {smallest:.4g} loss"
    ) in prompt
