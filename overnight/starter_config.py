"""The commented campaign.yaml that `overnight init` writes from what it found in a program (overnight.survey):
the metric and its goal, a budget the script follows, the knobs with their ranges and where each is read, the
constants left out and why, and what to change in a script that ignores the engine's budget or seed."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from overnight.config import Knob, parse_config
from overnight.knobs import guess_knobs, left_out_constants
from overnight.program import knob_name, knob_values
from overnight.survey import BUDGET_ENV, SEED_ENV, MetricChoice, ProbeRun, StaticFacts, read_summary


@dataclass(frozen=True)
class TurnedKnob:
    knob: Knob
    current: object
    where: str  # read_summary of its constant


@dataclass
class Findings:
    """Everything the config is written from."""

    program: Path
    script: str
    command: str
    metric: MetricChoice
    time_budget_s: float
    knobs: list[TurnedKnob]
    left_out: list[tuple[str, str]]  # (constant, why it is not turned)
    warnings: list[str] = field(default_factory=list)
    budget_note: str = ""
    seed_note: str = ""

    @property
    def timeout_s(self) -> float:
        return max(3 * self.time_budget_s, self.time_budget_s + 60)


def found_knobs(facts: StaticFacts, editable: list[str]) -> tuple[list[TurnedKnob], list[tuple[str, str]]]:
    """The guessed knobs whose constant the program reads, and every constant left out with the reason."""
    files = {path: facts.python_files[path] for path in editable if path in facts.python_files}
    left_out = [(item.name, item.reason) for item in left_out_constants(editable, files)]
    current = knob_values(list(files), files)
    turned = []
    for knob in guess_knobs(editable, files):
        reads = facts.reads.get(knob_name(knob.name)[0], [])  # ADAM_BETAS[1] is read where ADAM_BETAS is
        if not reads:
            left_out.append((knob.name, "never read: turning it changes nothing"))
            continue
        turned.append(TurnedKnob(knob, current.get(knob.name), read_summary(reads)))
    return turned, left_out


def budget_findings(facts: StaticFacts, script: str, default_s: float) -> tuple[float, str, list[str]]:
    """The campaign's time budget, the comment that explains it, and a warning where the script does not follow
    OVERNIGHT_TIME_BUDGET."""
    if facts.reads_budget:
        return default_s, f"{script} reads {BUDGET_ENV}: each trial trains for this many seconds", []
    fixed = facts.fixed_budget
    if fixed is not None:
        seconds = fixed.seconds
        warning = (
            f"{script} does not read {BUDGET_ENV}: it trains for {fixed.path}'s {fixed.name} = {seconds:g} s, so "
            f"time_budget_s is set to {seconds:g} to match and a campaign cannot change it. To let overnight set "
            f'the budget, write `{fixed.name} = int(os.environ.get("{BUDGET_ENV}", {seconds:g}))` in {fixed.path}.'
        )
        return seconds, f"the program's own budget ({fixed.path}: {fixed.name})", [warning]
    warning = (
        f"{script} does not read {BUDGET_ENV} and sets no budget constant of its own: it trains for as long as it "
        f"takes, so trials are not compared on a fixed budget. Make it stop training after "
        f'float(os.environ["{BUDGET_ENV}"]) seconds.'
    )
    return default_s, "the script keeps no budget: see the warning above", [warning]


def seed_findings(
    facts: StaticFacts, script: str, probes: list[ProbeRun], metric: str
) -> tuple[str, list[str]]:
    """What the seed does, and what to change where the script does not follow OVERNIGHT_SEED (read from the
    code, or seen in two runs)."""
    if not facts.reads_seed:
        return f"{script} does not read {SEED_ENV}", _seed_warnings(facts, script, probes, metric)
    measured = [run for run in probes if run.finished and metric in run.metrics]
    runs = ", ".join(f"{run.metrics[metric]:.6g} with seed {run.seed}" for run in measured)
    note = f"{script} reads {SEED_ENV}" + (f" ({metric} {runs})" if runs else "")
    return note, _seed_warnings(facts, script, probes, metric)


def _seed_warnings(facts: StaticFacts, script: str, probes: list[ProbeRun], metric: str) -> list[str]:
    if not facts.reads_seed:
        fixed = f": it fixes its seed ({'; '.join(facts.fixed_seeds[:3])})" if facts.fixed_seeds else ""
        return [
            f"{script} does not read {SEED_ENV}{fixed}. Every trial then runs one seed, so the baseline copies "
            "cannot measure seed noise and a gain is judged against min_improvement alone. Seed it from the "
            f'engine, e.g. `torch.manual_seed(int(os.environ.get("{SEED_ENV}", 42)))`.'
        ]
    values = {run.metrics.get(metric) for run in probes if run.finished}
    if len(probes) >= 2 and len(values) == 1 and None not in values:
        seeds = " and ".join(str(run.seed) for run in probes)
        return [
            f"{script} reads {SEED_ENV}, but seeds {seeds} gave the same {metric} ({values.pop():.6g}): the seed "
            "may not reach its randomness (data order, initialisation)."
        ]
    return []


def campaign_yaml(findings: Findings, out: Path) -> str:
    """The config's text; checked by the engine's own parser before it is returned."""
    program = os.path.relpath(findings.program, out.parent.resolve())
    lines = [
        f"# Written by `overnight init` on {date.today().isoformat()} for {findings.program}.",
        "# Edit freely; `overnight show-config <this file>` checks it and prints every default.",
        *[f"# WARNING: {line}" for warning in findings.warnings for line in _wrapped(warning)],
        f"name: {_campaign_name(findings.program)}",
        f"program: {_yaml_text(program)}",
        f"editable: [{findings.script}]",
        f"command: {_yaml_text(findings.command)}",
        "metric:",
        *[f"  # {line}" for line in _wrapped(findings.metric.why)],
        f"  name: {findings.metric.name}",
        f"  goal: {findings.metric.goal}",
        "trial:",
        f"  # {findings.budget_note}",
        f"  time_budget_s: {_yaml_number(findings.time_budget_s)}",
        f"  timeout_s: {_yaml_number(findings.timeout_s)}   # the trial's processes are killed after this",
        "wave_size: 4   # trials at once: one per GPU (or CPU worker)",
        "baseline_repeats: 3   # runs of the unchanged program; their spread is the first noise floor",
        *_knob_lines(findings),
    ]
    text = "\n".join(lines) + "\n"
    parse_config(
        yaml.safe_load(text), out.parent.resolve(), source=str(out)
    )  # raises on a config we got wrong
    return text


def _knob_lines(findings: Findings) -> list[str]:
    lines = [
        "# What the offline planner turns (with ANTHROPIC_API_KEY set, Claude edits the code itself and reads these",
        "# as a start). Guessed from the constants of the editable files: prune the list and change any range",
        "# before a night is spent on it; a knob read only under a condition may change nothing on your hardware.",
    ]
    if findings.knobs:
        lines.append("knobs:")
    for turned in findings.knobs:
        lines.append(f"  # {turned.knob.name} = {turned.current!r}: {turned.where}")
        lines.append(f"  - {_flow_mapping(turned.knob)}")
    if findings.left_out:
        lines.append("# Left out (declare one under knobs: to turn it anyway):")
        lines.extend(f"#   {name}: {why}" for name, why in findings.left_out)
    return lines


def _flow_mapping(knob: Knob) -> str:
    data = knob.model_dump(exclude_none=True, exclude_defaults=True)
    data = {"name": knob.name, "type": knob.type, **data}
    parts = []
    for key, value in data.items():
        if isinstance(value, list):
            value = "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
        else:
            value = _yaml_scalar(value)
        parts.append(f"{key}: {value}")
    return "{" + ", ".join(parts) + "}"


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _yaml_number(value)
    return _yaml_text(str(value))


def _yaml_number(value: float) -> str:
    """A number YAML reads back as one: whole floats as ints where exact, `1.0e-04` rather than `1e-04`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + (e + exponent if e else "")


def _yaml_text(text: str) -> str:
    plain = re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./ -]*", text) and text.strip() == text
    return text if plain else json.dumps(text)  # YAML reads a JSON string as the same string


def _campaign_name(program: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", program.resolve().name).strip("-") or "campaign"


def _wrapped(text: str, width: int = 110) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])
