"""A loss with one basin per optimizer, of different depths and widths, and noise that grows with the loss.
Lower is better.

Where it comes from: made up to break two assumptions, that the landscape has one basin and that the noise is the
same everywhere. Each OPTIMIZER has its own best learning rate, depth, dropout and weight decay (SGD wants a large
learning rate and little decay, Lion a small one and a large decay), and NORM moves the basin's floor and, without
a norm, halves the best depth:

    OPTIMIZER  best LR   depth  dropout  decay   floor (+ layer / rms / none)   LR basin width (decades)
    adamw      1e-3      12     0.10     0.1     0.30 + 0 / 0.01 / 0.06         0.5
    sgd        1e-1      6      0.0      5e-4    0.33 + 0 / 0.02 / 0.02         0.5
    lion       2e-4      16     0.30     0.3     0.26 + 0.03 / -0.04 / 0.10     0.25 (narrow)

    loss = floor + 0.08 · logcosh(3 · dlr) + 0.03 · |ddepth|^1.5 + 0.05 · (1 - exp(-ddrop²)) + 0.02 · logcosh(2 · dwd)
    dlr = (log10 LR - best) / width, ddepth = (DEPTH - best) / 4, ddrop = (DROPOUT - best) / 0.15,
    dwd = log10(WEIGHT_DECAY / best)

None of the terms is quadratic (log-cosh grows linearly far out, |x|^1.5 is sharp at the bottom, 1 - exp(-x²)
saturates), so a quadratic surrogate is mis-specified, and the choice knobs switch the numeric optimum.

What it tests: strategies that refine the basin they start in. The defaults (adamw, layer norm, LR 1e-3, depth 6,
dropout 0.1, decay 0.01) sit in adamw's basin, true score 0.382; its bottom is 0.30 (adamw, layer), sgd's is 0.33
and the global optimum is lion with rms norm, OPTIMUM = 0.22 exactly (every distance zero: LR 2e-4, depth 16,
dropout 0.3, decay 0.3), in a basin half as wide in the learning rate. A strategy that switches to lion without
moving the learning rate, depth and decay at once sees a worse score than adamw's.

Noise: Gaussian, heteroscedastic, σ = 0.1 · (true - OPTIMUM) + 0.002, seeded by (seed, knobs): about 0.018 at the
defaults and 0.002 at the optimum.
"""

import math
import random

GOAL = "minimize"
KNOBS = [
    {"name": "OPTIMIZER", "type": "choice", "choices": ["adamw", "sgd", "lion"]},
    {"name": "NORM", "type": "choice", "choices": ["layer", "rms", "none"]},
    {"name": "LEARNING_RATE", "type": "float", "low": 1e-5, "high": 1.0, "log": True},
    {"name": "DEPTH", "type": "int", "low": 1, "high": 24},
    {"name": "DROPOUT", "type": "float", "low": 0.0, "high": 0.5},
    {"name": "WEIGHT_DECAY", "type": "float", "low": 1e-4, "high": 1.0, "log": True},
]
DEFAULTS = {
    "OPTIMIZER": "adamw",
    "NORM": "layer",
    "LEARNING_RATE": 1e-3,
    "DEPTH": 6,
    "DROPOUT": 0.1,
    "WEIGHT_DECAY": 0.01,
}
OPTIMUM = 0.22  # by construction: lion's floor 0.26 with rms's -0.04, every distance zero at BEST
BEST = {
    "OPTIMIZER": "lion",
    "NORM": "rms",
    "LEARNING_RATE": 2e-4,
    "DEPTH": 16,
    "DROPOUT": 0.3,
    "WEIGHT_DECAY": 0.3,
}
# optimizer -> (log10 best LR, LR basin width in decades, best depth, best dropout, log10 best decay, floor)
BASINS = {
    "adamw": (-3.0, 0.5, 12, 0.10, -1.0, 0.30),
    "sgd": (-1.0, 0.5, 6, 0.0, math.log10(5e-4), 0.33),
    "lion": (math.log10(2e-4), 0.25, 16, 0.30, math.log10(0.3), 0.26),
}
NORM_OFFSET = {
    "adamw": {"layer": 0.0, "rms": 0.01, "none": 0.06},
    "sgd": {"layer": 0.0, "rms": 0.02, "none": 0.02},
    "lion": {"layer": 0.03, "rms": -0.04, "none": 0.10},
}
NOISE_SLOPE, NOISE_FLOOR = 0.1, 0.002


def _logcosh(x: float) -> float:
    x = abs(x)
    return x + math.log1p(math.exp(-2.0 * x)) - math.log(2.0)


def true_score(params: dict) -> float:
    """The noise-free loss of a setting."""
    optimizer, norm = params["OPTIMIZER"], params["NORM"]
    lr_best, lr_width, depth_best, drop_best, wd_best, floor = BASINS[optimizer]
    if norm == "none":
        depth_best = depth_best / 2
    dlr = (math.log10(params["LEARNING_RATE"]) - lr_best) / lr_width
    ddepth = (params["DEPTH"] - depth_best) / 4
    ddrop = (params["DROPOUT"] - drop_best) / 0.15
    dwd = math.log10(params["WEIGHT_DECAY"]) - wd_best
    return (
        floor
        + NORM_OFFSET[optimizer][norm]
        + 0.08 * _logcosh(3.0 * dlr)
        + 0.03 * abs(ddepth) ** 1.5
        + 0.05 * (1.0 - math.exp(-ddrop * ddrop))
        + 0.02 * _logcosh(2.0 * dwd)
    )


def basin_bottom(optimizer: str, norm: str) -> dict:
    """The best setting for this optimizer and norm (the bottom of its basin)."""
    lr_best, _, depth_best, drop_best, wd_best, _ = BASINS[optimizer]
    depth = round(depth_best / 2) if norm == "none" else depth_best
    return dict(
        OPTIMIZER=optimizer,
        NORM=norm,
        LEARNING_RATE=10**lr_best,
        DEPTH=depth,
        DROPOUT=drop_best,
        WEIGHT_DECAY=10**wd_best,
    )


def noise_sigma(truth: float) -> float:
    """The noise's standard deviation at a setting whose true loss is `truth`."""
    return NOISE_SLOPE * (truth - OPTIMUM) + NOISE_FLOOR


def score(params: dict, seed: int) -> float:
    """One run's loss: the truth plus seeded Gaussian noise whose σ grows with the gap to the optimum."""
    truth = true_score(params)
    key = f"{seed}|" + "|".join(f"{k}={params[k]!r}" for k in sorted(params))
    return truth + random.Random(key).gauss(0.0, noise_sigma(truth))


if (
    __name__ == "__main__"
):  # this landscape's own facts; the generic ones: search_efficiency.py --check --landscape
    assert math.isclose(true_score(BEST), OPTIMUM)
    print(f"true score at BEST {true_score(BEST):.6f} (OPTIMUM {OPTIMUM})")
