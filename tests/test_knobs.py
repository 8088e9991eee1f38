"""What the offline planner turns in a program it was not told about: the constants it reads, the ranges it guesses
around them, those it leaves out (and why), and how a config overrides the guess."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from overnight.config import CampaignConfig, ConfigError, Knob, parse_config
from overnight.knobs import (
    campaign_knobs,
    check_something_to_turn,
    guess_knobs,
    knob_table,
    knobs_left_out,
    left_out_constants,
)
from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot
from overnight.planners import PlanContext, offline
from overnight.planners.offline import OfflinePlanner
from overnight.program import (
    constants,
    format_literal,
    knob_edit,
    knob_values,
    param_name,
    read_files,
    set_knob,
)
from overnight.proposals import apply_proposal
from overnight.trial import Outcome
from overnight.wave import plan as wave_plan

AUTORESEARCH = """\
DEPTH = 8                       # transformer layers
ASPECT_RATIO = 64               # model_dim = depth * aspect_ratio
HEAD_DIM = 128                  # per-head dimension
TOTAL_BATCH_SIZE = 2**19        # tokens per optimizer step
DEVICE_BATCH_SIZE = 128         # sequences per device step
EVAL_BATCH_SIZE = 128           # sequences per evaluation step
EVAL_TOKENS = 40 * 524288       # tokens of the validation set
EMBEDDING_LR = 0.6              # embedding learning rate (Adam)
MATRIX_LR = 0.04                # matrix learning rate (Muon)
LR = 3e-4 * 2                   # a derived rate
WEIGHT_DECAY = 0.2              # cautious weight decay
ADAM_BETAS = (0.8, 0.95)        # Adam beta1, beta2
WARMUP_RATIO = 0.0              # fraction of the budget in warmup
WARMDOWN_RATIO = 0.5            # fraction of the budget in warmdown
FINAL_LR_FRAC = 0.0             # final LR as a fraction of the peak
H100_BF16_PEAK_FLOPS = 989.5e12 # for the MFU line
WINDOW_PATTERN = "SSSL"         # sliding-window pattern
SCALED = DEPTH * 2              # not a constant: it names another
STEPS = int(1e3)                # not a constant: a call
"""


def test_plain_arithmetic_of_numbers_is_a_constant_and_names_or_calls_are_not():
    found = constants(AUTORESEARCH)
    assert found["TOTAL_BATCH_SIZE"].value == 524288 and found["TOTAL_BATCH_SIZE"].literal == "2**19"
    assert found["EVAL_TOKENS"].value == 40 * 524288 and found["EVAL_TOKENS"].literal == "40 * 524288"
    assert found["LR"].value == 3e-4 * 2 and found["LR"].literal == "3e-4 * 2"
    assert constants("X = -(2 ** 3) // 3\n")["X"].value == -3  # unary minus, floor division
    assert "SCALED" not in found and "STEPS" not in found
    no_real_value = "A = 1 / 0\nB = 10**10**10\nC = (-8) ** 0.5\nD = 1e308 * 10\n"
    assert constants(no_real_value) == {}


def program(tmp_path: Path, source: str = AUTORESEARCH, **config: object) -> CampaignConfig:
    (tmp_path / "train.py").write_text(source)
    data = {"name": "knobs", "program": ".", "metric": {"name": "val_bpb"}, **config}
    return parse_config(data, tmp_path)


def test_a_tuple_of_numbers_is_one_knob_per_element_read_recorded_and_edited_in_place():
    files = {"train.py": AUTORESEARCH}
    values = knob_values(["train.py"], files)
    assert (values["ADAM_BETAS[0]"], values["ADAM_BETAS[1]"]) == (0.8, 0.95) and "ADAM_BETAS" not in values
    edit = set_knob("train.py", AUTORESEARCH, "ADAM_BETAS[1]", 0.99)
    assert edit.search == "ADAM_BETAS = (0.8, 0.95)        # Adam beta1, beta2"
    assert edit.replace == "ADAM_BETAS = (0.8, 0.99)        # Adam beta1, beta2"
    assert knob_edit(["train.py"], files, "ADAM_BETAS[0]", 0.85).replace.startswith(
        "ADAM_BETAS = (0.85, 0.95) "
    )
    assert param_name("ADAM_BETAS[1]") == "ADAM_BETAS.1"  # MLflow's keys take no brackets


def test_the_offline_planner_turns_an_element_and_reads_it_back_from_the_mlflow_params(tmp_path):
    config = program(tmp_path, knobs=[{"name": "ADAM_BETAS[1]", "type": "float", "low": 0.5, "high": 0.99}])
    files = read_files(config.program, config.editable)
    planner = OfflinePlanner(config)
    moves = list(planner._screening_moves(config.knobs, files))
    assert moves[0][1].startswith("ADAM_BETAS[1] 0.95 -> ")
    proposal = planner._proposal(*moves[0], files)
    changed = apply_proposal(files, proposal, config.editable)["train.py"]
    params = wave_plan.knob_values(config, {"train.py": changed})
    assert params["ADAM_BETAS.0"] == 0.8 and params["ADAM_BETAS.1"] == moves[0][0]["ADAM_BETAS[1]"]
    recorded = {name: str(value) for name, value in params.items()}  # MLflow keeps params as text
    distributions = {k.name: offline.optuna_distribution(k) for k in config.knobs}
    assert offline._decode(recorded, config.knobs, distributions) == moves[0][0]
    suggested, _ = planner.from_suggestion("set adam_betas[1] to 0.98", files)  # a person names an element
    assert suggested.params == {"ADAM_BETAS[1]": 0.98}


def test_knobs_may_name_elements_and_a_whole_tuple_is_refused_with_the_names_to_use(tmp_path):
    assert Knob(name="ADAM_BETAS[1]", type="float", low=0.5, high=0.99).name == "ADAM_BETAS[1]"
    for bad in ("ADAM_BETAS[x]", "adam_betas[1]", "ADAM_BETAS[1", "ADAM_BETAS[1][0]"):
        with pytest.raises(ValidationError, match="must be an UPPER_CASE constant"):
            Knob(name=bad, type="float", low=0.5, high=0.99)
    with pytest.raises(ConfigError, match=r"ADAM_BETAS is a tuple: declare its elements, ADAM_BETAS\[0\], "):
        program(tmp_path, knobs=[{"name": "ADAM_BETAS", "type": "float", "low": 0.5, "high": 0.99}])
    with pytest.raises(ConfigError, match=r"knobs.0.name: ADAM_BETAS\[2\] is not"):
        program(tmp_path, knobs=[{"name": "ADAM_BETAS[2]", "type": "float", "low": 0.5, "high": 0.99}])


def test_a_power_of_two_knob_needs_powers_of_two_and_is_on_a_log_scale():
    knob = Knob(name="BATCH", type="int", low=32, high=512, powers_of_two=True)
    assert knob.log is True  # by doublings, unless told otherwise
    for bad in (
        {"type": "int", "low": 32, "high": 500},
        {"type": "int", "low": 3, "high": 512},
        {"type": "float", "low": 32, "high": 512},
        {"type": "int", "low": 32, "high": 512, "log": False},
    ):
        with pytest.raises(ValidationError, match="powers_of_two needs"):
            Knob(name="BATCH", powers_of_two=True, **bad)
    assert [knob.snap(v) for v in (200, 100, 1, 4096, 32)] == [256, 128, 32, 512, 32]


def test_snap_keeps_floats_short_but_fine_enough_for_a_narrow_range():
    assert Knob(name="LR", type="float", low=1e-4, high=1e-2, log=True).snap(0.0012345) == 0.00123
    beta2 = Knob(name="BETA2", type="float", low=0.99, high=0.9999)
    assert (beta2.snap(0.99512), beta2.snap(0.99996), beta2.snap(1.2)) == (0.9951, 0.9999, 0.9999)
    assert format_literal(0.9951) == "0.9951" and format_literal(0.0020000001) == "0.002"


def test_a_power_of_two_written_2_to_the_k_is_written_so_again():
    assert set_knob("train.py", AUTORESEARCH, "TOTAL_BATCH_SIZE", 2**20).replace == (
        "TOTAL_BATCH_SIZE = 2**20        # tokens per optimizer step"
    )
    assert set_knob("t.py", "N = 2 ** 7\n", "N", 64).replace == "N = 2 ** 6"
    assert set_knob("t.py", "N = 2 ** 7\n", "N", 96).replace == "N = 96"  # no longer a power of two
    assert set_knob("t.py", "N = 128\n", "N", 256).replace == "N = 256"  # written as a number: stays one


def record(run: int, batch: int, wave: int) -> TrialRecord:
    """A finished run of a program whose metric is best at BATCH = 300 (not a power of two)."""
    return TrialRecord(
        run_id=f"r{run}",
        trial_id=f"r{run}",
        agent_run_id="a",
        wave=wave,
        status="finished",
        outcome=Outcome.OK,
        metric=(math.log2(batch) - math.log2(300)) ** 2 + 0.01 * run,
        hypothesis="",
        params={"BATCH": str(batch)},
        fingerprint=f"f{batch}",
        parent_champion="r0",
        decision="baseline" if wave == 0 else "",
        reason="",
        duration_s=1.0,
        started_ms=run,
        hardware="cpu",
        budget_s=1.0,
        role="baseline" if wave == 0 else "candidate",
    )


@pytest.mark.parametrize("search", ["surrogate", "tpe"])
def test_every_value_the_offline_planner_proposes_for_a_power_of_two_knob_is_one(tmp_path, search):
    knob = {"name": "BATCH", "type": "int", "low": 8, "high": 2048, "powers_of_two": True}
    config = program(tmp_path, "BATCH = 100\n", knobs=[knob], planner={"search": search})  # not one itself
    files = read_files(config.program, config.editable)
    planner = OfflinePlanner(config)
    first = planner.proposals(
        PlanContext(1, 8, files, MemorySnapshot("m", "minimize", (), None, (), (), {})), 8
    )
    assert sorted(p.params["BATCH"] for p in first) == [
        32,
        64,
        256,
        512,
    ]  # 50, 200 (one step), 25, 400 snapped
    history = [record(0, 100, 0), *(record(i + 1, p.params["BATCH"], 1) for i, p in enumerate(first))]
    memory = MemorySnapshot("m", "minimize", tuple(history), history[0], (history[0],), (), {})
    later = planner.proposals(PlanContext(2, 6, files, memory), 6)
    assert later and all(p.params["BATCH"] & (p.params["BATCH"] - 1) == 0 for p in later)


def ranges(source: str) -> dict[str, tuple]:
    """The guessed knobs of a script: name -> (low, high, log, powers_of_two), or the choices."""
    found = guess_knobs(["train.py"], {"train.py": source})
    return {k.name: k.choices or (k.low, k.high, k.log, k.powers_of_two) for k in found}


def test_the_guess_for_an_autoresearch_like_script():
    assert ranges(AUTORESEARCH) == {
        "DEPTH": (2, 32, True, False),  # a count of layers: 6 and 10 are fine depths
        "ASPECT_RATIO": (16, 256, True, True),  # an int, not a fraction
        "HEAD_DIM": (32, 512, True, True),
        "TOTAL_BATCH_SIZE": (2**17, 2**21, True, True),
        "DEVICE_BATCH_SIZE": (32, 512, True, True),
        "EMBEDDING_LR": (0.06, 6.0, True, False),
        "MATRIX_LR": (0.004, 0.4, True, False),
        "LR": (6e-05, 0.006, True, False),
        "WEIGHT_DECAY": (0.02, 2.0, True, False),  # not a fraction
        "ADAM_BETAS[0]": (0.0, 0.98, False, False),
        "ADAM_BETAS[1]": (0.5, 0.995, False, False),
        "WARMUP_RATIO": (0.0, 0.5, False, False),
        "WARMDOWN_RATIO": (0.0, 0.95, False, False),
        "FINAL_LR_FRAC": (0.0, 0.5, False, False),
    }


def test_fractions_get_a_linear_range_inside_zero_to_one():
    guessed = ranges(
        "ADAM_BETA1 = 0.9\nADAM_BETA2 = 0.999\nMOMENTUM = 0.95\nEMA_DECAY = 0.9999\nDROPOUT = 0.1\n"
        "WARMUP_FRAC = 0.05\nKEEP_RATIO = 0.97\nDROP_PATH = 0\nMLP_RATIO = 4.0\n"
    )
    assert guessed == {
        "ADAM_BETA1": (0.0, 0.99, False, False),
        "ADAM_BETA2": (0.99, 0.9999, False, False),  # 1 - v moves by up to 10x
        "MOMENTUM": (0.5, 0.995, False, False),
        "EMA_DECAY": (0.999, 0.99999, False, False),
        "DROPOUT": (0.0, 0.5, False, False),  # from 0 to max(0.5, min(0.95, 2v))
        "WARMUP_FRAC": (0.0, 0.5, False, False),
        "KEEP_RATIO": (0.7, 0.997, False, False),  # 0.9 or more: near one, whatever the name
        "DROP_PATH": (0.0, 0.5, False, False),  # a fraction written as the int 0
        "MLP_RATIO": (0.4, 40.0, True, False),  # named a ratio, but not in [0, 1)
    }


def test_zero_floats_get_a_linear_range_from_zero_and_zero_ints_or_negatives_are_left_out():
    source = "WEIGHT_DECAY = 0.0\nFINAL_LR_FRAC = 0.0\nN_EXTRA = 0\nSHIFT = -2\nLOG_MIN = -1.5\n"
    assert ranges(source) == {
        "WEIGHT_DECAY": (0.0, 1.0, False, False),
        "FINAL_LR_FRAC": (0.0, 0.5, False, False),
    }
    left_out = {item.name: item.reason for item in left_out_constants(["train.py"], {"train.py": source})}
    assert left_out == {
        "N_EXTRA": "zero int: declare it to turn it",
        "SHIFT": "negative: declare it to turn it",
        "LOG_MIN": "only reports, logs or saves",  # the name's reason comes first
    }


def test_powers_of_two_stay_powers_of_two_unless_they_count():
    guessed = ranges(
        "BLOCK_SIZE = 2 ** 10\nWIDTH = 96\nN_HEAD = 4\nN_LAYER = 16\nNUM_STEPS = 1024\nONE = 1\n"
    )
    assert guessed == {
        "BLOCK_SIZE": (256, 4096, True, True),
        "WIDTH": (24, 384, True, False),
        "N_HEAD": (1, 16, True, False),
        "N_LAYER": (4, 64, True, False),
        "NUM_STEPS": (256, 4096, True, False),
        "ONE": (1, 4, True, False),
    }


def test_what_reports_describes_hardware_sets_the_budget_or_evaluates_is_left_out_with_the_reason():
    source = (
        "H100_BF16_PEAK_FLOPS = 989.5e12\nGPU_MEMORY_GB = 80\nTIME_BUDGET = 300\nTIME_LIMIT_S = 60.0\nSEED = 42\n"
        "EVAL_BATCH_SIZE = 128\nVAL_TOKENS = 2**20\nPRINT_EVERY = 100\nLOG_INTERVAL = 10\nVERBOSE = True\n"
        "PRINT_STATS = True\nACTIVATION = 'relu'\nLR = 0.01\n"
    )
    left_out = {item.name: item.reason for item in left_out_constants(["train.py"], {"train.py": source})}
    assert left_out == {
        "H100_BF16_PEAK_FLOPS": "describes hardware",
        "GPU_MEMORY_GB": "describes hardware",
        "TIME_BUDGET": "sets the time budget: turning it games the metric",
        "TIME_LIMIT_S": "sets the time budget: turning it games the metric",
        "SEED": "the seed: the engine sets OVERNIGHT_SEED",
        "EVAL_BATCH_SIZE": "configures the evaluation",
        "VAL_TOKENS": "configures the evaluation",
        "PRINT_EVERY": "only reports, logs or saves",
        "LOG_INTERVAL": "only reports, logs or saves",
        "VERBOSE": "only reports, logs or saves",
        "PRINT_STATS": "only reports, logs or saves",
        "ACTIVATION": "a string: declare it as a choice to turn it",
    }
    assert list(ranges(source)) == ["LR"]
    assert ranges("A100_HOURS = 3.0\nN_EMBD = 384\n") == {
        "N_EMBD": (96, 1536, True, False)
    }  # a model name alone


def test_guess_knobs_true_guesses_beside_the_declared_knobs_each_replacing_the_guess_of_its_name(tmp_path):
    declared = [
        {"name": "MATRIX_LR", "type": "float", "low": 0.01, "high": 0.1, "log": True},
        {"name": "EVAL_BATCH_SIZE", "type": "int", "low": 64, "high": 256},  # never guessed, but declared
    ]
    config = program(tmp_path, knobs=declared, guess_knobs=True, skip_knobs=["ADAM_BETAS", "DEPTH"])
    files = read_files(config.program, config.editable)
    turned = campaign_knobs(config, files)
    assert [k.name for k in turned] == [
        "ASPECT_RATIO", "HEAD_DIM", "TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE", "EMBEDDING_LR", "MATRIX_LR", "LR",
        "WEIGHT_DECAY", "WARMUP_RATIO", "WARMDOWN_RATIO", "FINAL_LR_FRAC", "EVAL_BATCH_SIZE",
    ]  # fmt: skip
    assert turned[5] == config.knobs[0]  # the declared range, in the guessed one's place
    table = {row["name"]: row for row in knob_table(config)}
    assert (table["MATRIX_LR"]["source"], table["MATRIX_LR"]["low"]) == ("declared", 0.01)
    assert table["EVAL_BATCH_SIZE"]["source"] == "declared" and table["LR"]["source"] == "guessed"
    assert table["TOTAL_BATCH_SIZE"]["powers_of_two"] is True and "powers_of_two" not in table["LR"]
    left_out = {row["name"]: row["reason"] for row in knobs_left_out(config)}
    assert left_out == {
        "DEPTH": "in skip_knobs",
        "EVAL_TOKENS": "configures the evaluation",
        "ADAM_BETAS[0]": "in skip_knobs",  # the tuple's name skips every element
        "ADAM_BETAS[1]": "in skip_knobs",
        "H100_BF16_PEAK_FLOPS": "describes hardware",
        "WINDOW_PATTERN": "a string: declare it as a choice to turn it",
    }


def test_unset_guesses_only_when_nothing_is_declared_and_false_never_guesses(tmp_path):
    declared = [{"name": "LR", "type": "float", "low": 1e-4, "high": 1e-2, "log": True}]
    files = {"train.py": AUTORESEARCH}
    assert len(campaign_knobs(program(tmp_path), files)) == 14  # nothing declared: every guess
    only = program(tmp_path, knobs=declared)
    assert campaign_knobs(only, files) == only.knobs
    assert {row["reason"] for row in knobs_left_out(only)} == {
        "not declared (knobs are declared: guess_knobs: true guesses the rest)"
    }
    never = program(tmp_path, knobs=declared, guess_knobs=False)
    assert campaign_knobs(never, files) == never.knobs
    assert knobs_left_out(never)[0] == {
        "name": "DEPTH",
        "current": 8,
        "reason": "not declared, and guess_knobs is false",
    }
    with pytest.raises(ConfigError, match="no knobs are declared and guess_knobs is false"):
        check_something_to_turn(program(tmp_path, guess_knobs=False), "offline")
    with pytest.raises(ConfigError, match=r"no numeric UPPER_CASE constant .*\(left out: SEED: the seed"):
        check_something_to_turn(program(tmp_path, "SEED = 1\nEVAL_EVERY = 10\n"), "offline")


def test_skip_knobs_must_name_constants_of_the_editable_scripts(tmp_path):
    with pytest.raises(ConfigError, match=r"skip_knobs.1: ADAM_BETAS\[2\] is not a constant"):
        program(tmp_path, skip_knobs=["ADAM_BETAS[1]", "ADAM_BETAS[2]"])
    with pytest.raises(ConfigError, match=r"skip_knobs: 'lr' must be an UPPER_CASE constant"):
        program(tmp_path, skip_knobs=["lr"])


def test_show_config_lists_what_is_turned_and_what_is_left_out_with_why(tmp_path):
    (tmp_path / "train.py").write_text(AUTORESEARCH)
    (tmp_path / "campaign.yaml").write_text(
        "name: c\nprogram: .\nmetric: {name: val_bpb}\nskip_knobs: [LR]\n"
    )
    command = [sys.executable, "-m", "overnight.cli", "show-config", str(tmp_path / "campaign.yaml")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["guess_knobs"], shown["skip_knobs"]) == (None, ["LR"])
    assert "LR" not in {row["name"] for row in shown["knobs_turned"]}
    assert {"name": "LR", "current": 0.0006, "reason": "in skip_knobs"} in shown["knobs_left_out"]
    assert {"name": "EVAL_BATCH_SIZE", "current": 128, "reason": "configures the evaluation"} in shown[
        "knobs_left_out"
    ]
