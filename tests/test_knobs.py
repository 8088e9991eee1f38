"""What the offline planner turns in a program it was not told about: the constants it reads, the ranges it guesses
around them, those it leaves out (and why), and how a config overrides the guess."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from overnight.config import CampaignConfig, ConfigError, Knob, parse_config
from overnight.planners import offline
from overnight.planners.offline import OfflinePlanner
from overnight.program import constants, knob_edit, knob_values, param_name, read_files, set_knob
from overnight.proposals import apply_proposal
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
    distributions = {k.name: offline._distribution(k) for k in config.knobs}
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
