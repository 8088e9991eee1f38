"""COCO's bbob-mixint f21 (Gallagher's 101 peaks), dimension 5, instance 1, read as a program's mixed knobs.
Lower is better.

Where it comes from: the `bbob-mixint` suite of the COCO benchmarking platform (pip package `coco-experiment`,
module `cocoex`), problem `bbob-mixint_f021_i01_d05`. Its variables 0-3 are integers in [0, 1], [0, 3], [0, 7],
[0, 15] and variable 4 is continuous in [-5, 5]; they are read as NORM (layer/rms), OPTIMIZER (4 names), DEPTH
1..8, HEADS 1..16 and LEARNING_RATE in [1e-4, 1e-1], whose log10 maps linearly onto [-5, 5]. The names are labels:
the function knows nothing of optimizers, which is the point, as nothing in it suits a planner's assumptions.

What it tests: a multimodal, non-separable function (101 Gaussian peaks with random orientations, rotated) that is
not quadratic, over mostly discrete knobs: two choice knobs whose levels have no order, two ints with 8 and 16
levels, and one float. Strategies that assume a smooth or additive response, or that move one knob at a time, are
out of their depth; the benchmark shows how they fare when their assumptions are wrong.

Defaults: COCO's initial solution (the middle, [1, 2, 4, 8, 0]) mapped back: rms, lion, depth 5, 9 heads,
LR 3.16e-3 (10^-2.5 rounded to 3 significant digits so the planner's rounding keeps it); true score ≈ 72.32.
OPTIMUM = 40.78, hard-coded: `compute_optimum()` recomputes it (every one of the 2·4·8·16 integer combinations on
a 401-point grid of the continuous variable, then the best 32 refined with a bounded 1-D search; about 1 s, too
slow for import) and finds 40.780000, COCO's f_opt: the best peak lies inside the domain, at layer, sgd, depth 8,
4 heads, LR ≈ 2.51e-4 (continuous; a 3-digit LR costs a little). The gap at the defaults is ≈ 31.55. Noise: additive Gaussian
with σ = 2% of (true(DEFAULTS) - OPTIMUM), seeded by (seed, knobs); COCO's function itself is noise-free.
"""

import math
import random

import cocoex

# The suite must stay alive as long as the problem: a problem is freed with its suite.
SUITE = cocoex.Suite("bbob-mixint", "", "function_indices:21 dimensions:5 instance_indices:1")
PROBLEM = SUITE.get_problem_by_function_dimension_instance(21, 5, 1)

GOAL = "minimize"
NORMS = ["layer", "rms"]
OPTIMIZERS = ["sgd", "adamw", "lion", "adafactor"]
LR_LOW, LR_HIGH = 1e-4, 1e-1
KNOBS = [
    {"name": "NORM", "type": "choice", "choices": NORMS},
    {"name": "OPTIMIZER", "type": "choice", "choices": OPTIMIZERS},
    {"name": "DEPTH", "type": "int", "low": 1, "high": 8},
    {"name": "HEADS", "type": "int", "low": 1, "high": 16},
    {"name": "LEARNING_RATE", "type": "float", "low": LR_LOW, "high": LR_HIGH, "log": True},
]


def to_x(params: dict) -> list[float]:
    """The COCO point of a setting of the knobs."""
    lr = math.log10(params["LEARNING_RATE"])
    lo, hi = math.log10(LR_LOW), math.log10(LR_HIGH)
    return [
        float(NORMS.index(params["NORM"])),
        float(OPTIMIZERS.index(params["OPTIMIZER"])),
        float(params["DEPTH"] - 1),
        float(params["HEADS"] - 1),
        -5.0 + 10.0 * (lr - lo) / (hi - lo),
    ]


def from_x(x) -> dict:
    """The setting of the knobs at a COCO point (integers rounded; the learning rate not rounded)."""
    lo, hi = math.log10(LR_LOW), math.log10(LR_HIGH)
    return {
        "NORM": NORMS[round(x[0])],
        "OPTIMIZER": OPTIMIZERS[round(x[1])],
        "DEPTH": round(x[2]) + 1,
        "HEADS": round(x[3]) + 1,
        "LEARNING_RATE": float(10 ** (lo + (x[4] + 5.0) * (hi - lo) / 10.0)),
    }


DEFAULTS = {**from_x(PROBLEM.initial_solution), "LEARNING_RATE": 3.16e-3}
OPTIMUM = 40.78  # COCO's f_opt for this instance, reached in the domain; compute_optimum() recomputes it


def true_score(params: dict) -> float:
    """COCO's (noise-free) value of the setting."""
    return float(PROBLEM(to_x(params)))


DEFAULT_TRUTH = true_score(DEFAULTS)
NOISE_SIGMA = 0.02 * (DEFAULT_TRUTH - OPTIMUM)


def score(params: dict, seed: int) -> float:
    """One run's score: COCO's value plus seeded Gaussian noise, σ = 2% of the defaults' gap to the optimum."""
    key = f"{seed}|" + "|".join(f"{k}={params[k]!r}" for k in sorted(params))
    return true_score(params) + random.Random(key).gauss(0.0, NOISE_SIGMA)


def compute_optimum(grid: int = 401, refine: int = 32) -> tuple[float, dict]:
    """The minimum over the knobs' domain: every integer combination on a grid of the continuous variable, the
    best `refine` combinations then refined by a bounded 1-D search around their best grid point."""
    import itertools

    from scipy.optimize import minimize_scalar

    step = 10.0 / (grid - 1)
    found = []
    for ints in itertools.product(range(2), range(4), range(8), range(16)):
        values = [(PROBLEM([*ints, -5.0 + i * step]), -5.0 + i * step) for i in range(grid)]
        found.append((*min(values), ints))
    found.sort()
    best = (math.inf, None)
    for _, x4, ints in found[:refine]:
        result = minimize_scalar(
            lambda t, ints=ints: PROBLEM([*ints, t]),
            bounds=(max(-5.0, x4 - step), min(5.0, x4 + step)),
            method="bounded",
            options={"xatol": 1e-9},
        )
        best = min(best, (float(result.fun), from_x([*ints, result.x])), key=lambda pair: pair[0])
    return best


if (
    __name__ == "__main__"
):  # this landscape's own facts; the generic ones: search_efficiency.py --check --landscape
    import time

    assert PROBLEM.lower_bounds.tolist() == [0, 0, 0, 0, -5]
    assert PROBLEM.upper_bounds.tolist() == [1, 3, 7, 15, 5]
    assert PROBLEM.number_of_integer_variables == 4
    start = time.perf_counter()
    value, where = compute_optimum()
    print(
        f"recomputed optimum {value:.6f} at {where} ({time.perf_counter() - start:.1f} s; OPTIMUM {OPTIMUM})"
    )
