"""The knobs the offline planner turns: those declared in the config, and ranges guessed around the constants of
the editable scripts (`guess_knobs` in the config: unset, only when no knob is declared; true, beside the declared
ones, each declared knob replacing the guessed one of its name; false, never; `skip_knobs` are never guessed).
`overnight show-config` lists them under knobs_turned, and the constants not turned with the reason under
knobs_left_out; a campaign that would have nothing to turn is refused before anything runs.

The guess, per constant (`program.knob_values`: each element of a tuple of numbers on its own, as `NAME[i]`):

- left out by name: hardware (`*FLOPS*`, `*PEAK*`, `*VRAM*`, GPU model names such as H100), the time budget
  (`*BUDGET*`, `*TIMEOUT*`, `TIME_LIMIT`: turning it games the metric), the seed, the evaluation (`*EVAL*`,
  `VAL_*`, `TEST_*`) and what only reports, logs or saves (`PRINT_*`, `LOG_*`, `*_EVERY`, `*_INTERVAL`...);
- booleans flip;
- a positive int moves by up to 4x on a log scale; a power of two (2**19, 524288, 128) stays one (`powers_of_two`),
  unless it counts layers, blocks, heads or steps (DEPTH = 8 may become 6);
- a fraction (named beta, momentum, EMA, fraction/frac, ratio, dropout, prob or smoothing, and in [0, 1)) gets a
  linear range inside [0, 1): near one (betas, momentum, EMA, or any fraction of 0.9 or more), `1 - v` moves by up
  to 10x, so 0.95 -> [0.5, 0.995] and 0.999 -> [0.99, 0.9999]; any other fraction v -> [0, max(0.5, min(0.95, 2v))],
  so dropout 0.1 -> [0, 0.5] and 0.5 -> [0, 0.95]. A fraction written as the int 0 is one too;
- another positive float moves by up to 10x on a log scale (weight decay is not a fraction: 0.2 -> [0.02, 2]);
  zero -> [0, 1] linear;
- strings, zero ints and negative numbers are left out: declare them to turn them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from overnight.config import CampaignConfig, ConfigError, Knob
from overnight.program import knob_name, knob_values, read_files

# Words of a constant's name (split at "_") that leave it out, checked in this order. A word matches when it is the
# word itself, its plural or the word followed by digits (BETA1); a phrase matches consecutive words.
LEFT_OUT_BY_NAME: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("describes hardware", ("FLOP", "FLOPS", "TFLOPS", "PEAK", "VRAM", "GPU", "TPU", "HBM")),
    (
        "sets the time budget: turning it games the metric",
        ("BUDGET", "TIMEOUT", "DEADLINE", "WALLTIME", "TIME_LIMIT", "MAX_TIME", "MAX_SECONDS", "MAX_MINUTES"),
    ),
    ("the seed: the engine sets OVERNIGHT_SEED", ("SEED",)),
    ("configures the evaluation", ("EVAL", "EVALS", "EVALUATION", "VAL", "VALID", "VALIDATION", "TEST", "HOLDOUT")),
    (
        "only reports, logs or saves",
        (
            "PRINT", "LOG", "LOGGING", "VERBOSE", "VERBOSITY", "REPORT", "PROGRESS", "WANDB", "TENSORBOARD",
            "PLOT", "CHECKPOINT", "SAVE", "EVERY", "INTERVAL",
        ),
    ),
)  # fmt: skip
ACCELERATOR = re.compile(r"[ABHLV]\d{2,3}[A-Z]?")  # H100, A100, H200, B200, V100, L40S, A10G
FRACTION_WORDS = ("FRAC", "FRACTION", "RATIO", "DROPOUT", "DROP", "PROB", "PROBABILITY", "SMOOTHING")
NEAR_ONE_WORDS = ("BETA", "MOMENTUM", "EMA")  # fractions that live near 1: 1 - v is what moves
COUNT_WORDS = ("DEPTH", "LAYER", "BLOCK", "HEAD", "STEP", "EPOCH", "ITER", "ITERATION")  # last word: a count
NEAR_ONE = 0.9  # a fraction this large is near one, whatever its name


@dataclass(frozen=True)
class LeftOut:
    """A constant of the editable scripts that no range is guessed for, and why, in a few words."""

    name: str
    value: object
    reason: str


def campaign_knobs(config: CampaignConfig, files: dict[str, str]) -> list[Knob]:
    """The knobs the offline planner turns in these files: the declared ones, or, when the config guesses, the
    guessed ones (but those in skip_knobs) in file order, each declared knob replacing the guessed one of its name
    and added after them when there is none."""
    if not guesses(config):
        return list(config.knobs)
    declared = {knob.name: knob for knob in config.knobs}
    guessed = [k for k in guess_knobs(config.editable, files) if not _skipped(config, k.name)]
    turned = [declared.pop(knob.name, knob) for knob in guessed]
    return turned + list(declared.values())


def guesses(config: CampaignConfig) -> bool:
    """Whether ranges are guessed: guess_knobs, or when it is unset, whether no knob is declared."""
    return config.guess_knobs if config.guess_knobs is not None else not config.knobs


def _skipped(config: CampaignConfig, name: str) -> bool:
    return name in config.skip_knobs or knob_name(name)[0] in config.skip_knobs


def guess_knobs(editable: list[str], files: dict[str, str]) -> list[Knob]:
    """A range around each constant of the editable scripts that the rules above turn, in file order."""
    return [knob for knob in _guesses(editable, files).values() if isinstance(knob, Knob)]


def left_out_constants(editable: list[str], files: dict[str, str]) -> list[LeftOut]:
    """The constants of the editable scripts that `guess_knobs` leaves out, each with the reason, in file order."""
    values = knob_values(editable, files)
    return [
        LeftOut(name, values[name], guess)
        for name, guess in _guesses(editable, files).items()
        if isinstance(guess, str)
    ]


def _guesses(editable: list[str], files: dict[str, str]) -> dict[str, Knob | str]:
    return {name: _guess(name, value) for name, value in knob_values(editable, files).items()}


def _guess(name: str, value: object) -> Knob | str:
    """The knob guessed for one constant (or element), or why there is none."""
    words = knob_name(name)[0].split("_")
    for reason, phrases in LEFT_OUT_BY_NAME:
        if any(_says(words, phrase) for phrase in phrases):
            return reason
    if any(ACCELERATOR.fullmatch(word) for word in words):
        return "describes hardware"
    if isinstance(value, bool):
        return Knob(name=name, type="choice", choices=[value, not value])
    if isinstance(value, str):
        return "a string: declare it as a choice to turn it"
    fraction = any(_says(words, word) for word in FRACTION_WORDS + NEAR_ONE_WORDS)
    if fraction and 0 <= value < 1:
        near_one = value >= NEAR_ONE or any(_says(words, word) for word in NEAR_ONE_WORDS)
        return _fraction(name, float(value), near_one)
    if value < 0:
        return "negative: declare it to turn it"
    if isinstance(value, int):
        if value == 0:
            return "zero int: declare it to turn it"
        low, high = max(1, value // 4), value * 4
        power = value >= 2 and value & (value - 1) == 0 and not _says(words[-1:], *COUNT_WORDS)
        return Knob(name=name, type="int", low=low, high=high, log=True, powers_of_two=power)
    if value == 0:
        return Knob(name=name, type="float", low=0.0, high=1.0)
    return Knob(name=name, type="float", low=_tidy(value / 10), high=_tidy(value * 10), log=True)


def _fraction(name: str, value: float, near_one: bool) -> Knob:
    """A linear range inside [0, 1): 1 - v moved by up to 10x near one, else from 0 to about twice v."""
    if near_one:
        gap = 1 - value
        low, high = max(0.0, 1 - 10 * gap), 1 - gap / 10
    else:
        low, high = 0.0, max(0.5, min(0.95, 2 * value))
    return Knob(name=name, type="float", low=round(low, 12), high=round(high, 12))  # 1 - 10 * 0.1 is 2e-16


def _tidy(bound: float) -> float:
    """A bound without float noise (0.0006 / 10 is 6e-05, not 5.9999999999999995e-05)."""
    return float(f"{bound:.10g}")


def _says(words: list[str], *phrases: str) -> bool:
    """Whether the name's words hold one of the phrases (consecutive words, each also plural or numbered)."""
    for phrase in phrases:
        wanted = phrase.split("_")
        for start in range(len(words) - len(wanted) + 1):
            if all(_is(word, w) for word, w in zip(words[start:], wanted, strict=False)):
                return True
    return False


def _is(word: str, stem: str) -> bool:
    rest = word[len(stem) :]
    return word.startswith(stem) and (rest in ("", "S") or rest.isdigit())


def check_something_to_turn(config: CampaignConfig, planner: str) -> None:
    """The offline planner with no knob would plan empty waves all night: refuse it, naming the two fixes."""
    files = read_files(config.program, config.editable)
    if planner != "offline" or campaign_knobs(config, files):
        return
    if not guesses(config):
        why = "no knobs are declared and guess_knobs is false"
    else:
        left_out = "; ".join(f"{item['name']}: {item['reason']}" for item in knobs_left_out(config))
        why = (
            f"no knobs are declared and the editable files ({', '.join(config.editable)}) have no numeric "
            f"UPPER_CASE constant to guess a range around{f' (left out: {left_out})' if left_out else ''}"
        )
    raise ConfigError(
        f"the offline planner has nothing to turn: {why}. Declare the knobs in the config (knobs: [{{name: LR, "
        "type: float, low: 1e-4, high: 1e-2, log: true}]), or set ANTHROPIC_API_KEY so that Claude edits the code "
        "itself"
    )


def knob_table(config: CampaignConfig) -> list[dict]:
    """The knobs the offline planner will turn, each with its range, its current value and its source: declared
    (in the config, a guessed range replaced included) or guessed."""
    files = read_files(config.program, config.editable)
    current = knob_values(config.editable, files)
    declared = {knob.name for knob in config.knobs}
    return [
        {
            **_shown(knob),
            "current": current.get(knob.name),
            "source": "declared" if knob.name in declared else "guessed",
        }
        for knob in campaign_knobs(config, files)
    ]


def knobs_left_out(config: CampaignConfig) -> list[dict]:
    """The constants of the editable scripts that the offline planner will not turn, in file order, each with its
    current value and the reason: a rule of the guess (`left_out_constants`), skip_knobs, or no guessing."""
    files = read_files(config.program, config.editable)
    turned = {knob.name for knob in campaign_knobs(config, files)}
    if guesses(config):
        reasons = {item.name: item.reason for item in left_out_constants(config.editable, files)}
        reasons.update(
            {k.name: "in skip_knobs" for k in guess_knobs(config.editable, files) if _skipped(config, k.name)}
        )
    elif config.guess_knobs is False:
        reasons = dict.fromkeys(knob_values(config.editable, files), "not declared, and guess_knobs is false")
    else:
        reasons = dict.fromkeys(
            knob_values(config.editable, files),
            "not declared (knobs are declared: guess_knobs: true guesses the rest)",
        )
    return [
        {"name": name, "current": value, "reason": reasons[name]}
        for name, value in knob_values(config.editable, files).items()
        if name in reasons and name not in turned
    ]


def _shown(knob: Knob) -> dict:
    """A knob as show-config lists it: its keys that are set (powers_of_two only where it is true)."""
    return {k: v for k, v in knob.model_dump(exclude_none=True).items() if k != "powers_of_two" or v}
