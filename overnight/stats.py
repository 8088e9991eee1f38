"""Statistics of keep decisions: the noise floor, screening and confirmation verdicts, and 2^k factorial effects.

With a fixed time budget the metric moves with seed noise, so a keep decision must be judged against that noise:
- the noise floor is the pooled standard deviation of repeated runs (same configuration, different seeds);
- a candidate is screened with one run, and if it looks promising it is confirmed with new-seed runs, then
  compared with the champion's runs against the floor under a named rule (k·σ or a one-sided t test);
- a factorial wave (two levels per factor) gives main effects and two-way interactions with their uncertainty.

Pure functions on plain numbers (no MLflow, Prefect or torch), so every verdict can be logged and checked by hand.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Literal

Goal = Literal["minimize", "maximize"]
VerdictLabel = Literal["keep", "discard", "inconclusive", "promising"]  # what a verdict says of a candidate


# --- The Student t distribution (integer degrees of freedom; the stdlib has none) --------------------------------


def t_sf(t: float, dof: int) -> float:
    """One-sided upper tail P(T > t) of Student's t with an integer number of degrees of freedom."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be at least 1 (got {dof})")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    # Closed form for integer dof (Abramowitz & Stegun 26.7.3-4): with θ = atan(|t|/√dof), A = P(|T| < |t|) is
    #   dof odd:  (2/π)·(θ + sinθ·(cosθ + (2/3)cos³θ + (2·4)/(3·5)cos⁵θ + ... up to cos^(dof-2)θ))
    #   dof even: sinθ·(1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + ... up to cos^(dof-2)θ)
    theta = math.atan(abs(t) / math.sqrt(dof))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if dof % 2:
        term = total = math.cos(theta) if dof > 1 else 0.0
        for j in range(1, (dof - 1) // 2):
            term *= cos2 * (2 * j) / (2 * j + 1)
            total += term
        inside = 2 / math.pi * (theta + sin * total)
    else:
        term = total = 1.0
        for j in range(1, dof // 2):
            term *= cos2 * (2 * j - 1) / (2 * j)
            total += term
        inside = sin * total
    tail = (1.0 - inside) / 2
    return tail if t >= 0 else 1.0 - tail


@lru_cache(maxsize=256)
def t_critical(upper_tail: float, dof: int) -> float:
    """The t value whose upper tail is `upper_tail` (e.g. 0.05 -> 2.015 at 5 dof), found by bisection."""
    if not 0 < upper_tail < 1:
        raise ValueError(f"the tail probability must be in (0, 1) (got {upper_tail})")
    if upper_tail > 0.5:
        return -t_critical(1.0 - upper_tail, dof)
    low, high = 0.0, 1.0
    while t_sf(high, dof) > upper_tail:
        low, high = high, high * 2
    for _ in range(100):  # t_sf falls monotonically; 100 halvings reach double precision
        middle = (low + high) / 2
        low, high = (middle, high) if t_sf(middle, dof) > upper_tail else (low, middle)
    return (low + high) / 2


# --- The noise floor ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoiseFloor:
    """The seed noise of one run: pooled standard deviation of repeated runs, with the counts behind it."""

    sigma: float
    n: int  # runs that contributed (in groups of two or more)
    dof: int  # degrees of freedom: sum over groups of (runs - 1)

    def __str__(self) -> str:
        return f"σ = {self.sigma:.4g} (n = {self.n} runs, {self.dof} dof)"

    def as_dict(self) -> dict[str, float | int]:
        """Plain numbers for MLflow metrics."""
        return {"noise_sigma": self.sigma, "noise_n": self.n, "noise_dof": self.dof}


def noise_floor(groups: list[list[float]]) -> NoiseFloor | None:
    """Pooled within-group standard deviation; each group holds runs of one configuration with different seeds."""
    # s² = Σ_groups Σ_runs (x - mean_group)² / Σ_groups (runs - 1): differences between configurations never count.
    squares, dof, n = 0.0, 0, 0
    for group in groups:
        if len(group) < 2:
            continue  # a single run says nothing about the seed noise
        mean = math.fsum(group) / len(group)
        squares += math.fsum((x - mean) ** 2 for x in group)
        dof += len(group) - 1
        n += len(group)
    if dof == 0:
        return None
    return NoiseFloor(sigma=math.sqrt(squares / dof), n=n, dof=dof)


# --- Keep decisions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How a confirmed gain must clear the noise floor, for one candidate at level alpha.

    tests/test_stats.py simulates one candidate with the defaults (3 baseline runs, one screening run, 5 confirmation
    runs, a floor pooled over them) and checks that null changes are kept at most at alpha and real improvements of
    3σ at least 90% of the time. Over a night, the level each confirmation gets comes from the error control
    (overnight/fdr.py), not from alpha alone.
    """

    kind: Literal["k_sigma", "t_test"] = "t_test"
    k: float = 2.0  # k_sigma: keep iff gain > margin + k·se
    alpha: float = 0.05  # t_test: keep iff the one-sided p < alpha and gain > margin
    margin: float = 0.0  # a practical minimum gain in metric units, on top of the statistics
    screen_k: float = 0.5  # screening: promising iff gain > margin + screen_k·se of the one screening run
    baseline_runs: int = 3  # runs of the baseline (different seeds) that measure the first floor
    confirm_runs: int = 5  # new-seed runs of a promising candidate (and as many of the champion beside them)

    def __post_init__(self) -> None:
        if self.kind not in ("k_sigma", "t_test"):
            raise ValueError(f"rule kind must be 'k_sigma' or 't_test' (got {self.kind!r})")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5) (got {self.alpha})")
        if self.k < 0 or self.screen_k < 0 or self.margin < 0:
            raise ValueError("k, screen_k and margin must not be negative")
        if self.baseline_runs < 2 or self.confirm_runs < 1:
            raise ValueError("baseline_runs must be at least 2 (to see noise) and confirm_runs at least 1")

    @property
    def name(self) -> str:
        """The rule as recorded with each verdict, e.g. 't_test(alpha=0.05, margin=0)'."""
        if self.kind == "k_sigma":
            return f"k_sigma(k={self.k:g}, margin={self.margin:g})"
        return f"t_test(alpha={self.alpha:g}, margin={self.margin:g})"


@dataclass(frozen=True)
class Verdict:
    """A decision with the numbers behind it (gain: mean improvement over the champion, positive = better)."""

    decision: VerdictLabel
    stage: Literal["screen", "confirm"]
    gain: float
    se: float  # standard error of the gain, from the floor's σ
    threshold: float  # what the gain had to exceed
    statistic: float  # gain / se
    p_value: float | None  # one-sided, Student t with the floor's dof (t_test rule only)
    rule: str
    reason: str
    n_champion: int
    n_candidate: int
    sigma: float
    dof: int

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain numbers and strings for MLflow params and metrics (p_value left out when there is none)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def _gain(goal: str, champion: list[float], candidate: list[float]) -> float:
    if goal not in ("minimize", "maximize"):
        raise ValueError(f"goal must be 'minimize' or 'maximize' (got {goal!r})")
    if not champion or not candidate:
        raise ValueError("both the champion and the candidate need at least one run")
    difference = math.fsum(champion) / len(champion) - math.fsum(candidate) / len(candidate)
    return difference if goal == "minimize" else -difference


def _judge(
    stage: Literal["screen", "confirm"],
    champion: list[float],
    candidate: list[float],
    goal: str,
    floor: NoiseFloor,
    rule: Rule,
) -> Verdict:
    gain = _gain(goal, champion, candidate)
    # The floor's pooled σ, not the spread of these few runs: the variance of a difference of two means.
    se = floor.sigma * math.sqrt(1 / len(champion) + 1 / len(candidate))
    if se == 0:
        return _without_noise(stage, champion, candidate, gain, floor, rule)
    statistic = gain / se if se > 0 else math.copysign(math.inf, gain) if gain else 0.0
    p_value = t_sf(statistic, floor.dof) if rule.kind == "t_test" else None
    where = f"se {se:.4g}, {floor}"
    if stage == "screen":
        threshold = rule.margin + rule.screen_k * se
        passed = gain > threshold
        test = f"margin {rule.margin:g} + {rule.screen_k:g}·se"
    elif rule.kind == "k_sigma":
        threshold = rule.margin + rule.k * se
        passed = gain > threshold
        test = f"margin {rule.margin:g} + {rule.k:g}·se"
    else:
        # p < alpha  <=>  gain > t_crit·se, so the threshold is the larger of that and the margin.
        threshold = max(rule.margin, t_critical(rule.alpha, floor.dof) * se)
        passed = p_value < rule.alpha and gain > rule.margin
        versus = "<" if p_value < rule.alpha else ">="
        test = f"p = {p_value:.3g} {versus} α {rule.alpha:g} (t = {statistic:.3g}, {floor.dof} dof), margin {rule.margin:g}"
    if passed:
        decision: VerdictLabel = "promising" if stage == "screen" else "keep"
        reason = f"gain {gain:.4g} > {threshold:.4g}: {test}; {where}"
    elif gain <= 0:
        decision = "discard"
        reason = f"not better: gain {gain:.4g} <= 0; {where}"
    else:
        decision = "inconclusive"
        reason = f"gain {gain:.4g} does not clear {threshold:.4g}: {test}; {where}"
    return Verdict(
        decision=decision,
        stage=stage,
        gain=gain,
        se=se,
        threshold=threshold,
        statistic=statistic,
        p_value=p_value,
        rule=rule.name,
        reason=reason,
        n_champion=len(champion),
        n_candidate=len(candidate),
        sigma=floor.sigma,
        dof=floor.dof,
    )


def _without_noise(
    stage: Literal["screen", "confirm"],
    champion: list[float],
    candidate: list[float],
    gain: float,
    floor: NoiseFloor,
    rule: Rule,
) -> Verdict:
    """No seed noise was measured (runs with different seeds gave identical metrics: the program ignores its seed).
    The runs then say nothing about how a gain generalises, so no gain is significant on statistics alone: only the
    practical minimum (min_improvement) can make one a keep, and with none set a better run stays inconclusive."""
    why = (
        "no seed noise measured (runs with different seeds gave identical metrics: the program ignores "
        "OVERNIGHT_SEED), so only min_improvement can judge a gain"
    )
    if gain <= 0:
        decision: VerdictLabel = "discard"
        reason = f"not better: gain {gain:.4g} <= 0; {why}"
    elif rule.margin > 0 and gain > rule.margin:
        decision = "promising" if stage == "screen" else "keep"
        reason = f"gain {gain:.4g} > min_improvement {rule.margin:g}; {why}"
    else:
        decision = "inconclusive"
        reason = f"gain {gain:.4g} is not judged: {why}" + (
            f" (it does not clear {rule.margin:g})" if rule.margin > 0 else " (none is set)"
        )
    return Verdict(
        decision=decision,
        stage=stage,
        gain=gain,
        se=0.0,
        threshold=rule.margin,
        statistic=0.0,
        p_value=None,
        rule=rule.name,
        reason=reason,
        n_champion=len(champion),
        n_candidate=len(candidate),
        sigma=floor.sigma,
        dof=floor.dof,
    )


def screen(
    champion: list[float], candidate_value: float, goal: Goal, floor: NoiseFloor, rule: Rule | None = None
) -> Verdict:
    """Screen one run of a candidate: promising (confirm it), discard (not better), or inconclusive."""
    # The screen is deliberately loose (screen_k·se, 0.5 by default): it only saves confirmation runs on candidates
    # that look no better; the false-keep rate is held by the confirmation alone.
    return _judge("screen", champion, [candidate_value], goal, floor, rule or Rule())


def compare(
    champion: list[float], candidate: list[float], goal: Goal, floor: NoiseFloor, rule: Rule | None = None
) -> Verdict:
    """Confirm a candidate against the champion's runs: keep, discard or inconclusive, under the rule."""
    # Pass only the candidate's new-seed confirmation runs, never its screening run: that run was chosen because it
    # looked good, so counting it again biases the gain upwards and the false-keep rate above alpha. The floor
    # should pool every group of repeated runs, the champion's and the candidate's confirmation runs included
    # (noise_floor([champion, candidate, ...])): more dof, a sharper test, and it stays exact since within-group
    # spread is independent of the group means.
    return _judge("confirm", champion, candidate, goal, floor, rule or Rule())


@dataclass(frozen=True)
class Interval:
    """An improvement with its confidence interval (metric units, positive = better) and the runs behind it."""

    estimate: float
    low: float
    high: float
    se: float
    level: float
    n_before: int
    n_after: int
    dof: int

    def __str__(self) -> str:
        return f"{self.estimate:+.4g} ({self.level:.0%} interval {self.low:+.4g} to {self.high:+.4g})"


def improvement_interval(
    strata: list[tuple[list[float], list[float]]], goal: Goal, floor: NoiseFloor, level: float = 0.95
) -> Interval:
    """How much better `after` is than `before`, with a t interval on the floor's σ and dof. Each stratum holds the
    runs of one condition (a hardware type): strata are weighted by their precision, never compared across."""
    weights, estimates, n_before, n_after = [], [], 0, 0
    for before, after in strata:
        weights.append(1 / (1 / len(before) + 1 / len(after)))
        estimates.append(_gain(goal, before, after))
        n_before, n_after = n_before + len(before), n_after + len(after)
    if not weights:
        raise ValueError("no condition has runs both before and after")
    total = math.fsum(weights)
    estimate = math.fsum(w * e for w, e in zip(weights, estimates, strict=True)) / total
    se = floor.sigma / math.sqrt(total)  # Var = σ² / Σ w for precision weights w = 1/(1/n_b + 1/n_a)
    half = t_critical((1 - level) / 2, floor.dof) * se
    return Interval(estimate, estimate - half, estimate + half, se, level, n_before, n_after, floor.dof)


# --- Two-level factorial waves -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """A main effect or two-way interaction of a 2^k grid: mean at coded +1 minus mean at coded -1."""

    name: str  # "LR" or "LR×DEPTH"
    factors: tuple[str, ...]
    estimate: float  # in metric units; for a minimized metric a negative effect is better
    se: float
    low: float  # the confidence interval (95% by default)
    high: float
    significant: bool  # the interval excludes 0
    sigma: float  # the noise σ behind se
    dof: int | None  # dof of that σ; None when σ was given as known (normal quantile)

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """Plain values for MLflow; `key` is the name spelled for metric keys ('LR_x_DEPTH')."""
        values = {k: v for k, v in asdict(self).items() if v is not None and k != "factors"}
        return {**values, "factors": ",".join(self.factors), "key": "_x_".join(self.factors)}


def factorial_grid(factors: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Every combination of two-level factors {name: (low, high)}: 2^k configurations, the first factor slowest."""
    for name, levels in factors.items():
        if len(levels) != 2 or levels[0] == levels[1]:
            raise ValueError(f"factor {name}: needs two different levels (low, high), got {levels!r}")
    names = list(factors)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*factors.values())]


def _coded(config: dict[str, Any], factors: dict[str, tuple[Any, Any]], row: int) -> tuple[int, ...]:
    codes = []
    for name, (low, high) in factors.items():
        if name not in config:
            raise ValueError(f"row {row}: no value for factor {name}")
        value = config[name]
        if value == low:
            codes.append(-1)
        elif value == high:
            codes.append(1)
        else:
            raise ValueError(f"row {row}: {name} = {value!r} is neither level {low!r} nor {high!r}")
    return tuple(codes)


def factorial_effects(
    rows: list[tuple[dict[str, Any], float]],
    factors: dict[str, tuple[Any, Any]],
    sigma: float | NoiseFloor | None = None,
    level: float = 0.95,
) -> list[Effect]:
    """Main effects and two-way interactions of a full, balanced 2^k grid (replicates allowed), with intervals.

    sigma: a NoiseFloor (its σ and dof: t intervals), a known σ (normal intervals), or None to estimate σ from the
    replicates (pure error within cells: t intervals); an unreplicated grid then has no error estimate and fails.
    """
    factorial_grid(factors)  # validates the levels
    cells: dict[tuple[int, ...], list[float]] = {}
    for number, (config, value) in enumerate(rows):
        cells.setdefault(_coded(config, factors, number), []).append(value)
    names = list(factors)
    for codes in itertools.product((-1, 1), repeat=len(names)):
        if codes not in cells:
            missing = ", ".join(
                f"{n}={factors[n][(c + 1) // 2]!r}" for n, c in zip(names, codes, strict=True)
            )
            raise ValueError(f"incomplete grid: no run for the cell {missing}")
    counts = {len(values) for values in cells.values()}
    if len(counts) > 1:
        raise ValueError(
            f"unbalanced grid: cells hold {sorted(counts)} runs; give every cell the same number"
        )
    total = len(rows)  # 2^k cells times the replicates of each
    if isinstance(sigma, NoiseFloor):
        noise, dof = sigma.sigma, sigma.dof
    elif sigma is not None:
        noise, dof = float(sigma), None
    else:
        floor = noise_floor(list(cells.values()))
        if floor is None:
            raise ValueError(
                "an unreplicated grid has no estimate of the noise: pass sigma (the noise floor)"
            )
        noise, dof = floor.sigma, floor.dof
    # For a balanced grid of N runs, estimate = (2/N)·Σ c·y with c = ±1, so Var = 4σ²/N and se = 2σ/√N.
    se = 2 * noise / math.sqrt(total)
    tail = (1 - level) / 2
    quantile = NormalDist().inv_cdf(1 - tail) if dof is None else t_critical(tail, dof)
    terms = [(i,) for i in range(len(names))] + list(itertools.combinations(range(len(names)), 2))
    effects = []
    for term in terms:
        contrast = math.fsum(
            math.prod(codes[i] for i in term) * math.fsum(values) for codes, values in cells.items()
        )
        estimate = 2 * contrast / total
        low, high = estimate - quantile * se, estimate + quantile * se
        effects.append(
            Effect(
                name="×".join(names[i] for i in term),
                factors=tuple(names[i] for i in term),
                estimate=estimate,
                se=se,
                low=low,
                high=high,
                significant=not low <= 0 <= high,
                sigma=noise,
                dof=dof,
            )
        )
    return effects
