"""What language-model calls cost: token counts and the one price table.

Prices are US dollars per million tokens, from Anthropic's public price list. A model missing here is priced at the
most expensive known rate, so an unknown model can only overstate spend against `budget.max_usd`, never understate it.

Prompt caching: writing a prefix to the cache costs 1.25x the input price when it lives 5 minutes and 2x when it
lives an hour; reading it back costs 0.1x. The API reports the tokens written (`cache_creation_input_tokens`, with
the 1-hour part in `cache_creation.ephemeral_1h_input_tokens`) and read (`cache_read_input_tokens`) apart from the
uncached input (`input_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass

# model prefix -> (input, output, 5-minute cache write, cache read), $ per million tokens
# (More specific prefixes first: the first match wins.)
PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-4-5": (5.0, 25.0, 6.25, 0.50),
    "claude-opus-4": (15.0, 75.0, 18.75, 1.50),
    "claude-sonnet-4": (3.0, 15.0, 3.75, 0.30),
    "claude-haiku-4": (1.0, 5.0, 1.25, 0.10),
    "claude-3-7-sonnet": (3.0, 15.0, 3.75, 0.30),
    "claude-3-5-haiku": (0.80, 4.0, 1.0, 0.08),
}
MOST_EXPENSIVE = max(PRICES.values())
ONE_HOUR_WRITE = 2.0  # x the input price: a cache write that lives an hour (the 5-minute write is in PRICES)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0  # written to the cache, both lifetimes
    cache_read_tokens: int = 0
    calls: int = 0
    cache_creation_1h_tokens: int = 0  # the part of cache_creation_tokens written to live an hour

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.calls + other.calls,
            self.cache_creation_1h_tokens + other.cache_creation_1h_tokens,
        )

    @property
    def prompt_tokens(self) -> int:
        """Every token of the prompts sent, however each was billed."""
        return self.input_tokens + self.cache_creation_tokens + self.cache_read_tokens


def price_of(model: str) -> tuple[float, float, float, float]:
    for prefix, price in PRICES.items():
        if model.startswith(prefix):
            return price
    return MOST_EXPENSIVE


def cost_usd(model: str, usage: Usage) -> float:
    inp, out, write, read = price_of(model)
    written_5m = usage.cache_creation_tokens - usage.cache_creation_1h_tokens
    tokens = (
        usage.input_tokens,
        usage.output_tokens,
        written_5m,
        usage.cache_creation_1h_tokens,
        usage.cache_read_tokens,
    )
    prices = (inp, out, write, inp * ONE_HOUR_WRITE, read)
    return sum(n * p for n, p in zip(tokens, prices, strict=True)) / 1e6
