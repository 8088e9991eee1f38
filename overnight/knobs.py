"""The knobs the offline planner turns: those declared in the config, or else ranges guessed around the numeric
UPPER_CASE constants of the editable scripts. `overnight show-config` lists them, and a campaign that would have
nothing to turn is refused before anything runs."""

from __future__ import annotations

from overnight.config import CampaignConfig, ConfigError, Knob
from overnight.program import knob_values, read_files


def campaign_knobs(config: CampaignConfig, files: dict[str, str]) -> list[Knob]:
    """The declared knobs, or else the guessed ones (`guess_knobs`) of these files."""
    return list(config.knobs) if config.knobs else guess_knobs(config.editable, files)


def guess_knobs(editable: list[str], files: dict[str, str]) -> list[Knob]:
    """A range around each numeric constant: booleans flip, positive ints and floats move by up to 4x and 10x on a
    log scale. Other constants (strings, zero, negative numbers) are not guessed: declare them to turn them."""
    guessed = []
    for name, value in knob_values(editable, files).items():
        if isinstance(value, bool):
            guessed.append(Knob(name=name, type="choice", choices=[value, not value]))
        elif isinstance(value, int) and value > 0:
            guessed.append(Knob(name=name, type="int", low=max(1, value // 4), high=value * 4, log=True))
        elif isinstance(value, float) and value > 0:
            guessed.append(Knob(name=name, type="float", low=value / 10, high=value * 10, log=True))
    return guessed


def check_something_to_turn(config: CampaignConfig, planner: str) -> None:
    """The offline planner with no knob would plan empty waves all night: refuse it, naming the two fixes."""
    if planner != "offline" or campaign_knobs(config, read_files(config.program, config.editable)):
        return
    raise ConfigError(
        f"the offline planner has nothing to turn: no knobs are declared and the editable files "
        f"({', '.join(config.editable)}) have no numeric UPPER_CASE constant to guess a range around. Declare the "
        "knobs in the config (knobs: [{name: LR, type: float, low: 1e-4, high: 1e-2, log: true}]), or set "
        "ANTHROPIC_API_KEY so that Claude edits the code itself"
    )


def knob_table(config: CampaignConfig) -> list[dict]:
    """The knobs the offline planner will turn, declared or guessed, with their ranges and current values."""
    files = read_files(config.program, config.editable)
    current = knob_values(config.editable, files)
    source = "declared" if config.knobs else "guessed"
    return [
        {**_shown(knob), "current": current.get(knob.name), "source": source}
        for knob in campaign_knobs(config, files)
    ]


def _shown(knob: Knob) -> dict:
    """A knob as show-config lists it: its keys that are set (powers_of_two only where it is true)."""
    return {k: v for k, v in knob.model_dump(exclude_none=True).items() if k != "powers_of_two" or v}
