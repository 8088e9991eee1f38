"""What the offline planner turns in a program it was not told about: the constants it reads, the ranges it guesses
around them, those it leaves out (and why), and how a config overrides the guess."""

from overnight.program import constants

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
