"""The synthetic program's metric: a known function of the knobs plus seeded noise of known size (read-only).

It trains nothing and runs in milliseconds, so the research loop, its statistics and search strategies can be
checked against the truth. Lower is better. The true model (σ = NOISE_SIGMA = 0.01):

    score = 1.0
          + 0.04 · (ln(LEARNING_RATE / 3e-3) / ln 3)²     real effect: 1e-3 (default) -> 3e-3 lowers it by 0.040 (4σ)
          + 0.02 · log2(BATCH_SIZE / 32)²                  16 (default) -> 32 lowers it by 0.020
          + 0.005 · (DEPTH - 5)²                           3 (default) -> 5 lowers it by 0.020
          + 0.01 · ((WARMUP_FRAC - 0.1) / 0.1)²            0.0 (default) -> 0.1 lowers it by 0.010
          + 2.0 · (WEIGHT_DECAY - 0.05)²                   0.1 (default) -> 0.05 lowers it by 0.005
          - 0.01 if ACTIVATION == "swiglu"                 alone: -0.010
          - 0.00 if NORM == "rms"                          alone: no effect
          - 0.03 if both                                   interaction: the pair is 0.030 better than the sum
          + 0 · GRAD_CLIP + 0 · TIE_EMBEDDINGS             null knobs: no effect at all
          + HARDWARE_OFFSET[OVERNIGHT_HARDWARE]            h200 is 0.05 lower, a100 0.03 higher; unset: 0
          + Normal(0, NOISE_SIGMA)

The defaults score 1.095 on average; the best setting (LR 3e-3, batch 32, depth 5, warmup 0.1, decay 0.05,
swiglu with rms) scores 0.96. In the 2^k convention (mean at the high level minus mean at the low level) the
ACTIVATION x NORM grid (gelu/swiglu x layer/rms) has effects ACTIVATION -0.025, NORM -0.015, interaction -0.015.

The noise is drawn from random.Random seeded with OVERNIGHT_SEED and the knob values: the same seed and knobs give
the same score, and two configurations under the same seed get independent noise, as a real program's would.
"""

import math
import random

NOISE_SIGMA = 0.01  # standard deviation of the seed noise of one run
HARDWARE_OFFSET = {"h100": 0.0, "h200": -0.05, "a100": 0.03}  # OVERNIGHT_HARDWARE -> added to the score
KNOBS = (
    "LEARNING_RATE",
    "BATCH_SIZE",
    "DEPTH",
    "WARMUP_FRAC",
    "WEIGHT_DECAY",
    "ACTIVATION",
    "NORM",
    "GRAD_CLIP",
    "TIE_EMBEDDINGS",
)


def expected_score(knobs: dict, hardware: str | None = None) -> float:
    """The noise-free score of a setting of the knobs on a hardware type (None: no offset)."""
    if hardware is not None and hardware not in HARDWARE_OFFSET:
        raise ValueError(f"unknown hardware {hardware!r}; known: {', '.join(HARDWARE_OFFSET)}")
    for name, choices in (("ACTIVATION", ("gelu", "swiglu")), ("NORM", ("layer", "rms"))):
        if knobs[name] not in choices:
            raise ValueError(f"{name} = {knobs[name]!r} is not one of {choices}")
    swiglu, rms = knobs["ACTIVATION"] == "swiglu", knobs["NORM"] == "rms"
    return (
        1.0
        + 0.04 * (math.log(knobs["LEARNING_RATE"] / 3e-3) / math.log(3)) ** 2
        + 0.02 * math.log2(knobs["BATCH_SIZE"] / 32) ** 2
        + 0.005 * (knobs["DEPTH"] - 5) ** 2
        + 0.01 * ((knobs["WARMUP_FRAC"] - 0.1) / 0.1) ** 2
        + 2.0 * (knobs["WEIGHT_DECAY"] - 0.05) ** 2
        - 0.01 * swiglu
        - 0.03 * (swiglu and rms)
        + (HARDWARE_OFFSET[hardware] if hardware else 0.0)
    )


def measure(knobs: dict, seed: int, hardware: str | None = None) -> float:
    """One run's score: the expected score plus Gaussian noise fixed by the seed and the knobs."""
    key = f"{seed}|" + "|".join(f"{name}={knobs[name]!r}" for name in KNOBS)
    return expected_score(knobs, hardware) + random.Random(key).gauss(0.0, NOISE_SIGMA)
