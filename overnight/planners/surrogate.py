"""A surrogate of the metric for the offline planner, fitted to every finished run and sampled around the champion.

The model is additive and quadratic in the knobs, the shape of most tuning curves near a good setting:

- a numeric knob enters as u and u² (and u³ with a tight prior, for a curve that is skewed), u its distance from
  the champion's value in screening steps (a doubling on a log scale, an eighth of the range otherwise, as the
  first wave's moves);
- a choice knob as one indicator per other level, and each pair of choice knobs as one indicator per pair of other
  levels, so an interaction (a pair that helps only together) can be learnt and, while unknown, is tried;
- each condition (hardware, training budget) other than the champion's as an offset, so runs on other hardware
  still inform the shape without biasing it.

It is Bayesian linear regression: a normal prior on every coefficient (its sd is the spread of the metric seen so
far) and the noise floor's σ as the noise. The posterior mean is the model's best guess; draws from the posterior
are plausible alternatives. A proposal is the best point of the mean or of a draw inside a trust region of a few
steps around the champion (batch Thompson sampling): the wave tries where the model is either confident or unsure,
stops moving knobs shown to do little (their coefficients are small and certain), and combines the changes that
helped one at a time. Pure numpy on plain values, no state: rebuilt from the history at every call.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from overnight.config import Knob

TRUST_STEPS = 2.0  # how far (in screening steps) a proposal may move a numeric knob from the champion's value
CUBIC_PRIOR = (
    0.1  # the prior sd of a u³ (skew) coefficient, as a fraction of the others': used when data ask for it
)
GRID = 33  # values tried per numeric knob inside the trust region
MAX_COMBINATIONS = 512  # choice knobs are enumerated jointly up to this many combinations, else one at a time


def screening_step(knob: Knob) -> float:
    """One step of a numeric knob in its coded scale: ln 2 on a log scale, an eighth of the range otherwise."""
    if knob.log:
        return math.log(2)
    step = (knob.high - knob.low) / 8
    return max(1, round(step)) if knob.type == "int" else step


@dataclass(frozen=True)
class Axis:
    """One knob as the model sees it, around the champion's value."""

    knob: Knob
    center: object

    @property
    def numeric(self) -> bool:
        return self.knob.type != "choice"

    def u(self, value: object) -> float:
        """Distance from the champion's value, in screening steps."""
        if self.knob.log:
            return (math.log(value) - math.log(self.center)) / screening_step(self.knob)
        return (value - self.center) / screening_step(self.knob)

    def others(self) -> list[object]:
        return [c for c in self.knob.choices if c != self.center]

    def candidates(self, radius: float) -> list[object]:
        """The values inside the trust region (rounded as the planner writes them), the champion's first."""
        found = [self.center]
        for u in np.linspace(-radius, radius, GRID):
            if self.knob.log:
                value = math.exp(math.log(self.center) + u * screening_step(self.knob))
            else:
                value = self.center + u * screening_step(self.knob)
            value = self.knob.snap(value)
            if value not in found:
                found.append(value)
        return found


class Surrogate:
    """The fitted model: features of a setting, the posterior of their coefficients, and its best points."""

    def __init__(self, axes: list[Axis], conditions: list[tuple[str, str]]):
        self.axes = axes
        self.numeric = [a for a in axes if a.numeric]
        self.choices = [a for a in axes if not a.numeric]
        self.pairs = list(itertools.combinations(range(len(self.choices)), 2))
        self.conditions = conditions  # other conditions than the champion's, each with an offset
        self.names: list[str] = ["intercept"]
        for axis in self.numeric:
            self.names += [f"{axis.knob.name}", f"{axis.knob.name}²", f"{axis.knob.name}³"]
        for axis in self.choices:
            self.names += [f"{axis.knob.name}={c}" for c in axis.others()]
        for i, j in self.pairs:
            first, second = self.choices[i], self.choices[j]
            self.names += [
                f"{first.knob.name}={a}×{second.knob.name}={b}"
                for a in first.others()
                for b in second.others()
            ]
        self.names += [f"condition {hardware or '?'} {budget}" for hardware, budget in conditions]
        self.mean = np.zeros(len(self.names))
        self.root = np.eye(len(self.names))  # Cholesky factor of the posterior precision

    def features(self, values: dict[str, object], condition: tuple[str, str]) -> np.ndarray:
        row = [1.0]
        for axis in self.numeric:
            u = axis.u(values[axis.knob.name])
            row += [u, u * u, u**3]
        for axis in self.choices:
            row += [float(values[axis.knob.name] == c) for c in axis.others()]
        for i, j in self.pairs:
            first, second = self.choices[i], self.choices[j]
            row += [
                float(values[first.knob.name] == a and values[second.knob.name] == b)
                for a in first.others()
                for b in second.others()
            ]
        row += [float(condition == c) for c in self.conditions]
        return np.array(row)

    def fit(self, rows: np.ndarray, y: np.ndarray, sigma: float, tau: float) -> None:
        """Posterior of the coefficients: prior N(0, tau²) on each (flat on the intercept and the conditions)."""
        prior = np.full(len(self.names), 1 / tau**2)
        cubic = [i for i, name in enumerate(self.names) if name.endswith("³")]
        prior[cubic] = 1 / (CUBIC_PRIOR * tau) ** 2
        prior[0] = 1e-9 / tau**2
        prior[len(self.names) - len(self.conditions) :] = 1e-9 / tau**2
        precision = rows.T @ rows / sigma**2 + np.diag(prior)
        self.root = np.linalg.cholesky(precision)
        self.mean = np.linalg.solve(precision, rows.T @ y / sigma**2)

    def draw(self, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """Coefficients drawn from the posterior, its spread times `scale`."""
        return self.mean + scale * np.linalg.solve(self.root.T, rng.standard_normal(len(self.names)))

    def best(self, beta: np.ndarray, radius: float = TRUST_STEPS) -> dict[str, object]:
        """The setting inside the trust region that `beta` predicts lowest (the metric is minimised)."""
        point: dict[str, object] = {}
        at = 1
        for axis in self.numeric:
            a, b, c = beta[at : at + 3]
            at += 3
            point[axis.knob.name] = min(
                axis.candidates(radius), key=lambda v: a * axis.u(v) + b * axis.u(v) ** 2 + c * axis.u(v) ** 3
            )
        mains: dict[tuple[int, object], float] = {}
        for index, axis in enumerate(self.choices):
            for c in axis.others():
                mains[(index, c)] = beta[at]
                at += 1
        joint: dict[tuple[int, object, int, object], float] = {}
        for i, j in self.pairs:
            for a in self.choices[i].others():
                for b in self.choices[j].others():
                    joint[(i, a, j, b)] = beta[at]
                    at += 1

        def predicted(levels: tuple) -> float:
            total = sum(mains.get((i, v), 0.0) for i, v in enumerate(levels))
            return total + sum(joint.get((i, levels[i], j, levels[j]), 0.0) for i, j in self.pairs)

        if self.choices:
            options = [a.knob.choices for a in self.choices]
            if math.prod(len(o) for o in options) <= MAX_COMBINATIONS:
                levels = min(itertools.product(*options), key=predicted)
            else:  # too many to enumerate: one knob at a time from the champion's levels
                levels = [a.center for a in self.choices]
                for index, option in enumerate(options):
                    levels[index] = min(
                        option, key=lambda v, i=index: predicted((*levels[:i], v, *levels[i + 1 :]))
                    )
            point.update({a.knob.name: v for a, v in zip(self.choices, levels, strict=True)})
        return point

    def predict(self, values: dict[str, object], condition: tuple[str, str] = ("", "")) -> float:
        return float(self.features(values, condition) @ self.mean)


def fit(
    axes: list[Axis],
    observations: list[tuple[dict[str, object], tuple[str, str], float]],
    champion_condition: tuple[str, str],
    sigma: float | None,
) -> Surrogate | None:
    """The surrogate of (setting, condition, metric to minimise) observations; None with fewer than two."""
    if len(observations) < 2:
        return None
    conditions = sorted({c for _, c, _ in observations if c != champion_condition})
    model = Surrogate(axes, conditions)
    rows = np.array([model.features(values, c) for values, c, _ in observations])
    y = np.array([value for *_, value in observations])
    y = y - y.mean()
    spread = float(y.std())
    if spread == 0:
        spread = 1.0  # every run scored the same: nothing to learn, a unit prior is as good as any
    if sigma is None or not sigma > 0:
        sigma = 0.1 * spread  # no repeated runs yet (or noise-free runs): trust the data, not blindly
    model.fit(rows, y, sigma, spread)
    return model
