"""COCO's bbob-noisy f110 (Rosenbrock with severe Gaussian noise), dimension 5, instance 1, read as a program's
mixed knobs, with the noise re-drawn from a seed. Lower is better.

Where it comes from: the `bbob-noisy` suite of the COCO benchmarking platform (module `cocoex`). COCO draws its noise
from an internal stream that cannot be seeded per call, so the truth is the noiseless counterpart, bbob f8
(Rosenbrock, rotated and shifted, dimension 5, instance 1: bbob-noisy f104's median over 2001 draws equals f8's value
at the same points), and a run applies bbob-noisy's Gaussian noise model with β = 1 (severe) to the gap:
score = f_opt + (f - f_opt) · exp(N(0, 1)) (+ 1.01e-8 where f - f_opt >= 1e-8, as COCO adds), N drawn from
random.Random seeded by (seed, knobs). `true_score` is the noiseless f, the median of a run's score (its mean is
f_opt + e^0.5 · (f - f_opt): the noise is multiplicative and heavy-tailed). f_opt = 149.15 (bbob f8's minimum,
found with L-BFGS-B from several starts; COCO's real f110 returns 149.15 + 1.01e-8 there).

The five variables in [-5, 5] are read as LEARNING_RATE in [1e-4, 1e-1] and WEIGHT_DECAY in [1e-4, 1], both log10
mapped linearly onto [-5, 5]; DROPOUT in [0, 0.5] linearly; DEPTH 1..21 in steps of 0.5; and WARMUP_STEPS, a choice
of [0, 250, 500, 1000, 2000] onto [-4, -2, 0, 2, 4]. Because DEPTH and WARMUP_STEPS take a grid of values, the
optimum over the knobs is above f_opt: OPTIMUM = 158.6203 (DEPTH 13, WARMUP_STEPS 0, LR ≈ 2.2e-3, decay ≈ 4.6e-3,
dropout ≈ 0.22), hard-coded; `compute_optimum()` recomputes it (all 105 DEPTH x WARMUP_STEPS combinations, the 3
floats minimised with L-BFGS-B from 2 starts; ~3 s; 7 random starts near the best levels agree).

What it tests: noise whose size scales with the gap (a run at the defaults varies by a factor of e either way), so
means mislead and single runs are unreliable, on a curved, non-separable valley that a quadratic fits badly.
Defaults: every variable at 0 (LR 3.16e-3, decay 0.01, dropout 0.25, depth 11, warmup 500); true score ≈ 1476.32
(the LR rounded to 3.16e-3 puts it a hair off 0).

Model check (`verify_noise()`, 2001 draws each, 10/50/90% quantiles, this model vs COCO's real f110):
    x = 0:                            547 / 1484 / 4870    vs  489 / 1403 / 5097
    x = (1, -1, 2, 0.5, -2):          3473 / 11303 / 39598 vs  3167 / 11281 / 43428
    x ≈ f8's optimum:                 149.15 / 149.16 / 149.19 (both)
"""

import math
import random

import cocoex

# The suite must stay alive as long as the problem: a problem is freed with its suite.
SUITE = cocoex.Suite("bbob", "", "function_indices:8 dimensions:5 instance_indices:1")
PROBLEM = SUITE.get_problem_by_function_dimension_instance(8, 5, 1)
F_OPT = 149.15  # bbob f8 instance 1's minimum; find_f_opt() recomputes it
BETA = 1.0  # bbob-noisy's severe Gaussian noise

GOAL = "minimize"
WARMUPS = [0, 250, 500, 1000, 2000]
KNOBS = [
    {"name": "LEARNING_RATE", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    {"name": "WEIGHT_DECAY", "type": "float", "low": 1e-4, "high": 1.0, "log": True},
    {"name": "DROPOUT", "type": "float", "low": 0.0, "high": 0.5},
    {"name": "DEPTH", "type": "int", "low": 1, "high": 21},
    {"name": "WARMUP_STEPS", "type": "choice", "choices": WARMUPS},
]
DEFAULTS = {"LEARNING_RATE": 3.16e-3, "WEIGHT_DECAY": 0.01, "DROPOUT": 0.25, "DEPTH": 11, "WARMUP_STEPS": 500}
OPTIMUM = 158.6203  # compute_optimum() recomputes it (158.620334)


def _log_onto(value: float, low: float, high: float) -> float:
    return -5.0 + 10.0 * (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))


def to_x(params: dict) -> list[float]:
    """The COCO point of a setting of the knobs."""
    return [
        _log_onto(params["LEARNING_RATE"], 1e-4, 1e-1),
        _log_onto(params["WEIGHT_DECAY"], 1e-4, 1.0),
        -5.0 + 20.0 * params["DROPOUT"],
        -5.0 + 0.5 * (params["DEPTH"] - 1),
        -4.0 + 2.0 * WARMUPS.index(params["WARMUP_STEPS"]),
    ]


def true_score(params: dict) -> float:
    """The noiseless Rosenbrock value of the setting (the median of its score)."""
    return float(PROBLEM(to_x(params)))


def _noisy(value: float, normal: float) -> float:
    gap = value - F_OPT
    return F_OPT + gap * math.exp(BETA * normal) + (1.01e-8 if gap >= 1e-8 else 0.0)


def score(params: dict, seed: int) -> float:
    """One run's score: bbob-noisy's severe Gaussian noise on the gap to f_opt, seeded by (seed, knobs)."""
    key = f"{seed}|" + "|".join(f"{k}={params[k]!r}" for k in sorted(params))
    return _noisy(true_score(params), random.Random(key).gauss(0.0, 1.0))


def find_f_opt() -> float:
    """bbob f8's minimum over [-5, 5]^5, by L-BFGS-B from several starts."""
    import numpy as np
    from scipy.optimize import minimize

    starts = [np.zeros(5), -2 * np.ones(5), np.array([2.0, -2.0, 1.0, -1.0, 0.0]), np.ones(5)]
    return min(
        minimize(PROBLEM, s, method="L-BFGS-B", bounds=[(-5, 5)] * 5, options={"ftol": 1e-15}).fun
        for s in starts
    )


def compute_optimum() -> tuple[float, list[float]]:
    """The minimum over the knobs' domain: every DEPTH x WARMUP_STEPS level, the three floats by L-BFGS-B."""
    import numpy as np
    from scipy.optimize import minimize

    best = (math.inf, [])
    for depth in range(1, 22):
        for warmup in range(5):
            fixed = [-5.0 + 0.5 * (depth - 1), -4.0 + 2.0 * warmup]
            for start in (np.zeros(3), np.array([-1.0, 1.0, -1.0])):
                result = minimize(
                    lambda z, fixed=fixed: PROBLEM([*z, *fixed]),
                    start,
                    method="L-BFGS-B",
                    bounds=[(-5, 5)] * 3,
                    options={"ftol": 1e-15},
                )
                if result.fun < best[0]:
                    best = (float(result.fun), [*result.x.tolist(), *fixed])
    return best


def verify_noise(draws: int = 2001) -> list[tuple]:
    """(point, this model's 10/50/90% quantiles, COCO f110's) at three points, from `draws` draws each."""
    import numpy as np

    noisy_suite = cocoex.Suite("bbob-noisy", "", "dimensions:5 instance_indices:1")
    noisy = noisy_suite.get_problem_by_function_dimension_instance(110, 5, 1)
    rows = []
    for x in ([0.0] * 5, [1.0, -1.0, 2.0, 0.5, -2.0], [-0.05, -0.37, 0.02, 1.85, -2.74]):
        value = float(PROBLEM(x))
        ours = [_noisy(value, random.Random(f"{i}|check").gauss(0.0, 1.0)) for i in range(draws)]
        theirs = [float(noisy(x)) for _ in range(draws)]
        rows.append((x, np.quantile(ours, [0.1, 0.5, 0.9]), np.quantile(theirs, [0.1, 0.5, 0.9])))
    return rows


if (
    __name__ == "__main__"
):  # this landscape's own facts; the generic ones: search_efficiency.py --check --landscape
    import time

    print(f"f_opt {find_f_opt():.6f}")
    start = time.perf_counter()
    value, x = compute_optimum()
    print(
        f"recomputed optimum {value:.6f} at x = {[round(v, 3) for v in x]} ({time.perf_counter() - start:.1f} s)"
    )
    for x, ours, theirs in verify_noise():
        print(f"x = {x}: model q10/50/90 {ours.round(2).tolist()}  COCO f110 {theirs.round(2).tolist()}")
