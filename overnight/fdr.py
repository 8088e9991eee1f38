"""Error control over many confirmations: the level each one is tested at, so that a night's crowns stay true.

Testing every confirmation at α holds each candidate's false-keep rate at α, not the night's: thirty waves of null
changes crown something most nights. LORD++ (Javanmard & Montanari 2018; Ramdas et al. 2017) is an online
false-discovery-rate procedure: confirmation number t is tested at its own level α_t, fixed before its data are seen,

    α_t = γ_t·W0 + (α - W0)·γ_(t - τ1) + α·Σ_(j ≥ 2) γ_(t - τj)

where τ1 < τ2 < ... are the earlier confirmations that passed and γ is a fixed sequence summing to at most one. While
nothing passes, the levels add up to at most W0 (here α/2), so a campaign in which nothing works crowns anything with
probability at most α/2, however many nights it runs. Each confirmation that passes earns back level for the tests
after it, which keeps the power to find the next real gain. With independent runs it holds the expected share of
false crowns among crowns (the FDR) at α.

γ spreads the level over `horizon` confirmations, then decays: γ_j = 1 / (ψ'(h)·(h + j - 1)²), with h the horizon and
ψ' the trigamma function, so that Σ γ_j = 1 exactly. Tests past the horizon get less and less until a pass.

Pure arithmetic on the campaign's earlier tests: no MLflow, no config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

ErrorControlKind = Literal["lord", "per_candidate"]


@lru_cache(maxsize=64)
def _trigamma(h: int) -> float:
    """ψ'(h) = Σ_(k ≥ 0) 1/(h + k)², summed to 10⁴ terms and closed with the tail's asymptotic expansion."""
    terms = 10_000
    head = math.fsum(1.0 / (h + k) ** 2 for k in range(terms))
    x = h + terms
    return head + 1 / x + 1 / (2 * x**2) + 1 / (6 * x**3)


def gamma(j: int, horizon: int) -> float:
    """The share of the error budget that test j (1, 2, ...) after the last pass may spend."""
    if j < 1:
        return 0.0
    return 1.0 / (_trigamma(horizon) * (horizon + j - 1) ** 2)


@dataclass(frozen=True)
class ErrorControl:
    """How the level of each confirmation is set: LORD++ over the campaign, or α for every candidate alone."""

    kind: ErrorControlKind
    alpha: float  # lord: the FDR held over the campaign's crowns; per_candidate: each confirmation's level
    horizon: int = 64  # lord: confirmations the level is spread over before it decays

    def __post_init__(self) -> None:
        if self.kind not in ("lord", "per_candidate"):
            raise ValueError(f"error control must be 'lord' or 'per_candidate' (got {self.kind!r})")
        if self.horizon < 1:
            raise ValueError(f"the horizon must be at least one test (got {self.horizon})")

    @property
    def w0(self) -> float:
        """LORD++'s starting wealth: the most a campaign with no true gain can ever spend."""
        return self.alpha / 2

    @property
    def name(self) -> str:
        """The procedure and its guarantee, as recorded on every decision."""
        if self.kind == "per_candidate":
            return (
                f"per_candidate(alpha={self.alpha:g}): each confirmation at α; false crowns add up over waves"
            )
        return (
            f"LORD++(FDR {self.alpha:g}, W0 {self.w0:g}, horizon {self.horizon}): false crowns are at most "
            f"{self.alpha:g} of the campaign's crowns, and nothing is crowned with probability at most {self.w0:g} "
            "when no change helps"
        )

    def level(self, passed: list[bool]) -> float:
        """The level of the next confirmation, given whether each earlier one (in the campaign's order) passed."""
        if self.kind == "per_candidate":
            return self.alpha
        t = len(passed) + 1
        passes = [number for number, ok in enumerate(passed, start=1) if ok]
        level = gamma(t, self.horizon) * self.w0
        for count, tau in enumerate(passes):
            level += (self.alpha - self.w0 if count == 0 else self.alpha) * gamma(t - tau, self.horizon)
        return min(level, self.alpha)
