"""A small language model's loss as a function of its learning rate, width, batch size, warmup, weight decay and
schedule: numeric x numeric interactions and a region where runs diverge or crash. Lower is better.

Where it comes from: the shape of published scaling practice, not a fitted model. The best learning rate falls as
1/width (muP-like) and rises linearly with the batch size up to a critical batch of 128 (linear scaling), so
lr_opt(W, B) = 3e-3 · (512 / W) · (min(B, 128) / 128). The best weight decay keeps lr · wd = 3e-4 (AdamW's
timescale). A learning rate above the divergence edge, edge(warmup) · lr_opt with edge = 1.5 without warmup rising
linearly to 2.5 at WARMUP_FRAC >= 0.1, makes the loss NaN (diverged); above 3 · edge · lr_opt the run raises
RuntimeError("loss exploded") (crash). Both are deterministic, and `true_score` returns math.inf there. The best
learning rate lies just below the edge (2x at the optimum's warmup), as in real training.

    loss = 2.0 + width(W) + batch(B) + lr(u) + warmup(w) + decay(wd) + schedule
    width  = 0.25 · ((512 / W)^0.5 + (W / 512)^0.5) - 0.5          a fixed compute budget: 512 is best
    batch  = 0.03 · log2(128 / B) below 128, 0.06 · log2(B / 128)² above
    lr     = 0.06 · u² below lr_opt, 0.15 · u² above, u = ln(LR / lr_opt)
    warmup = 0.01 · |WARMUP_FRAC - 0.05| / 0.05
    decay  = 0.004 · ln(WEIGHT_DECAY · LR / 3e-4)²
    schedule: constant +0.03, linear +0.01, cosine 0, wsd -0.005

What it tests: strategies that move one knob at a time, or fit additive models, from the defaults. Doubling the
width or the batch alone moves lr_opt, so the defaults' learning rate becomes too low (batch) or diverges (width,
once the learning rate has been raised); the learning rate and decay must move together; the search must work near
a cliff. Defaults (LR 5e-4, width 256, batch 32, no warmup, decay 0.01, cosine): true score 2.240. Optimum
OPTIMUM = 1.995 exactly, by construction (every term is zero at its best and the schedule's best is -0.005), at
LR 3e-3, width 512, batch 128, warmup 0.05, decay 0.1, wsd; `__main__` checks it with a dense grid. Noise:
additive Gaussian, σ = 0.015 (about 6% of the defaults' gap), seeded by (seed, knobs); NaN and crashes are not noisy.
"""

import math
import random

GOAL = "minimize"
KNOBS = [
    {"name": "LEARNING_RATE", "type": "float", "low": 3e-5, "high": 3e-2, "log": True},
    {"name": "WIDTH", "type": "int", "low": 64, "high": 2048, "powers_of_two": True},
    {"name": "BATCH_SIZE", "type": "int", "low": 16, "high": 1024, "powers_of_two": True},
    {"name": "WARMUP_FRAC", "type": "float", "low": 0.0, "high": 0.5},
    {"name": "WEIGHT_DECAY", "type": "float", "low": 1e-3, "high": 1.0, "log": True},
    {"name": "SCHEDULE", "type": "choice", "choices": ["constant", "linear", "cosine", "wsd"]},
]
DEFAULTS = {
    "LEARNING_RATE": 5e-4,
    "WIDTH": 256,
    "BATCH_SIZE": 32,
    "WARMUP_FRAC": 0.0,
    "WEIGHT_DECAY": 0.01,
    "SCHEDULE": "cosine",
}
OPTIMUM = 1.995  # by construction; BEST reaches it and `__main__` checks it with a dense grid
BEST = {
    "LEARNING_RATE": 3e-3,
    "WIDTH": 512,
    "BATCH_SIZE": 128,
    "WARMUP_FRAC": 0.05,
    "WEIGHT_DECAY": 0.1,
    "SCHEDULE": "wsd",
}
NOISE_SIGMA = 0.015
CRITICAL_BATCH = 128
SCHEDULE_OFFSET = {"constant": 0.03, "linear": 0.01, "cosine": 0.0, "wsd": -0.005}


def best_lr(width: float, batch: float) -> float:
    """The learning rate with the lowest loss at this width and batch size."""
    return 3e-3 * (512 / width) * (min(batch, CRITICAL_BATCH) / CRITICAL_BATCH)


def edge(warmup: float) -> float:
    """How far above the best learning rate a run diverges: 1.5x without warmup, 2.5x with 10% or more."""
    return 1.5 + 10.0 * min(warmup, 0.1)


def _outcome(params: dict) -> tuple[str, float]:
    lr, width, batch, warmup = (params[k] for k in ("LEARNING_RATE", "WIDTH", "BATCH_SIZE", "WARMUP_FRAC"))
    ratio = lr / best_lr(width, batch)
    if ratio > 3.0 * edge(warmup):
        return "crash", math.inf
    if ratio > edge(warmup):
        return "nan", math.inf
    u = math.log(ratio)
    loss = (
        2.0
        + 0.25 * (math.sqrt(512 / width) + math.sqrt(width / 512))
        - 0.5
        + (
            0.03 * math.log2(CRITICAL_BATCH / batch)
            if batch < CRITICAL_BATCH
            else 0.06 * math.log2(batch / 128) ** 2
        )
        + (0.06 if u < 0 else 0.15) * u * u
        + 0.01 * abs(warmup - 0.05) / 0.05
        + 0.004 * math.log(params["WEIGHT_DECAY"] * lr / 3e-4) ** 2
        + SCHEDULE_OFFSET[params["SCHEDULE"]]
    )
    return "ok", loss


def true_score(params: dict) -> float:
    """The noise-free loss of a setting; math.inf where the run diverges or crashes."""
    return _outcome(params)[1]


def score(params: dict, seed: int) -> float:
    """One run's loss: NaN if it diverges, RuntimeError if it crashes, else the truth plus seeded noise."""
    outcome, loss = _outcome(params)
    if outcome == "crash":
        raise RuntimeError("loss exploded")
    if outcome == "nan":
        return math.nan
    key = f"{seed}|" + "|".join(f"{k}={params[k]!r}" for k in sorted(params))
    return loss + random.Random(key).gauss(0.0, NOISE_SIGMA)


def grid_minimum() -> float:
    """The lowest true score on a dense grid of the domain (schedule at its best: it only adds a constant)."""
    lrs = [3e-5 * 1000 ** (i / 120) for i in range(121)] + [BEST["LEARNING_RATE"]]
    warmups = [i / 40 for i in range(21)]
    decays = [1e-3 * 1000 ** (i / 30) for i in range(31)]
    best = math.inf
    for width in (64, 128, 256, 512, 1024, 2048):
        for batch in (16, 32, 64, 128, 256, 512, 1024):
            for lr in lrs:
                wd = min(
                    max(3e-4 / lr, 1e-3), 1.0
                )  # the decay term's minimum over the range, then a grid check
                for warmup in warmups:
                    p = dict(
                        LEARNING_RATE=lr, WIDTH=width, BATCH_SIZE=batch, WARMUP_FRAC=warmup, SCHEDULE="wsd"
                    )
                    best = min(best, true_score({**p, "WEIGHT_DECAY": wd}))
            p = dict(BEST, WIDTH=width, BATCH_SIZE=batch)
            best = min(best, *(true_score({**p, "WEIGHT_DECAY": wd}) for wd in decays))
    return best


if (
    __name__ == "__main__"
):  # this landscape's own facts; the generic ones: search_efficiency.py --check --landscape
    assert math.isclose(true_score(BEST), OPTIMUM)
    print(f"dense-grid minimum {grid_minimum():.6f} (OPTIMUM {OPTIMUM})")
