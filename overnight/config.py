"""The campaign config: one YAML file, validated with pydantic.

Every error names the field and what is wrong, and unknown keys are rejected with the list of valid ones, so a broken
config fails before anything runs.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from overnight.errors import ExpectedError
from overnight.program import constants, knob_name, knob_values

DEFAULT_STATE_DIR = ".overnight"
DEFAULT_MODEL = "claude-sonnet-4-5"
API_KEY_ENV = "ANTHROPIC_API_KEY"


class ConfigError(ExpectedError, ValueError):
    """A campaign config that cannot be used; the message names the field and the fix."""


class ConfigWarning(UserWarning):
    """A config that still works but should change (e.g. a renamed key); the message names the new form."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metric(_Strict):
    name: str = Field(description="the `name: value` line the script prints, e.g. val_bpb")
    goal: Literal["minimize", "maximize"] = "minimize"
    holdout: str | None = Field(
        None,
        description="a read-only evaluation command, run in a fresh process in a champion's trial folder on its "
        "saved model and on data the training script never receives; it prints `<metric name>: <value>`. Its value "
        "is never shown to a planner; the report sets it beside the validation metric for every champion version",
    )
    holdout_data: Path | None = Field(
        None,
        description="the holdout's data, relative to the config file and outside the program folder (so no trial's "
        "folder holds it); the holdout command alone is given its absolute path in OVERNIGHT_HOLDOUT_DATA",
    )


class TrialSettings(_Strict):
    time_budget_s: Annotated[float, Field(gt=0)] = Field(
        300, description="training budget given to the script (OVERNIGHT_TIME_BUDGET)"
    )
    timeout_s: Annotated[float, Field(gt=0)] = Field(
        900, description="hard wall-clock limit; the process group is killed after it"
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment variables for every trial"
    )
    seed: int = Field(
        0, description="OVERNIGHT_SEED; one seed for all trials, so they differ only by their change"
    )
    max_memory_mb: Annotated[float, Field(gt=0)] | None = Field(
        None, description="local: a trial whose processes use more resident memory is killed (over_limit)"
    )
    max_disk_mb: Annotated[float, Field(gt=0)] | None = Field(
        None, description="local: a trial whose folder grows past this is killed (over_limit)"
    )
    sandbox: Literal["auto", "bubblewrap", "none"] = Field(
        "auto",
        description="local: `bubblewrap` runs each trial in a box that can write only inside its own folder (and a "
        "private /tmp), and fails the campaign where bwrap is missing; `auto` does so where bwrap is installed and "
        "warns once where it is not; `none` runs trials unboxed",
    )
    network: bool = Field(True, description="local: false gives every trial no network (needs bubblewrap)")
    writable_paths: list[Path] = Field(
        default_factory=list,
        description="local, in the box: folders a trial may write besides its own (a shared dataset or compile "
        "cache, `~/.triton`); relative to the config file; each must exist",
    )
    budget_tolerance: Annotated[float, Field(ge=0)] = Field(
        0.1,
        description="a trial whose training (its own training_seconds) ran past time_budget_s by more than this "
        "fraction is over_budget and can never be crowned",
    )
    overhead_allowance_s: Annotated[float, Field(ge=0)] = Field(
        120,
        description="what starting and evaluating may add to the training budget, as the engine times the whole "
        "run: a run longer than time_budget_s x (1 + budget_tolerance) + this is over_budget, whatever it prints",
    )

    @model_validator(mode="after")
    def _timeout_covers_budget(self) -> TrialSettings:
        if self.timeout_s <= self.time_budget_s:
            raise ValueError(
                f"timeout_s ({self.timeout_s}) must be larger than time_budget_s ({self.time_budget_s}): "
                "the script needs time to start and evaluate"
            )
        return self


class Budget(_Strict):
    waves: Annotated[int, Field(ge=0)] = Field(10, description="waves after the baseline")
    trials: Annotated[int, Field(ge=1)] | None = Field(None, description="total trials, baseline included")
    trial_hours: Annotated[float, Field(gt=0)] | None = Field(
        None, description="total trial time in hours (GPU-hours on a GPU backend)"
    )
    max_usd: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="dollars an agent run may spend (language-model calls plus compute, where priced); no wave starts past it",
    )
    deadline: str | None = Field(
        None,
        description="wall-clock end: a time of day ('07:00', the next one after the start) or a duration "
        "('6h', '90m', '45s'); no wave starts that cannot finish before it",
    )

    @field_validator("deadline")
    @classmethod
    def _deadline_reads(cls, value: str | None) -> str | None:
        if value is not None:
            deadline_after(datetime.now(), value)  # raises with the accepted forms
        return value


def deadline_after(start: datetime, text: str) -> datetime:
    """When a campaign that starts at `start` must be done: 'HH:MM' (next occurrence) or a duration like '6h'."""
    text = text.strip()
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if clock and int(clock[1]) < 24 and int(clock[2]) < 60:
        end = start.replace(hour=int(clock[1]), minute=int(clock[2]), second=0, microsecond=0)
        return end if end > start else end + timedelta(days=1)
    duration = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if duration:
        seconds = float(duration[1]) * {"h": 3600, "m": 60, "s": 1}[duration[2]]
        return start + timedelta(seconds=seconds)
    raise ValueError(
        f"{text!r} is neither a time of day like '07:00' nor a duration like '6h', '90m' or '45s'"
    )


class Knob(_Strict):
    """A constant the offline planner turns, and the values it may take (`snap` gives the one it writes)."""

    name: str = Field(
        description="an UPPER_CASE constant of an editable script, or NAME[i]: element i of a tuple of numbers"
    )
    type: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool] | None = None
    powers_of_two: bool = Field(
        False,
        description="int: every value tried is a power of two (low and high must be ones); the range is on a log "
        "scale, moved by doublings",
    )

    @model_validator(mode="before")
    @classmethod
    def _powers_of_two_on_a_log_scale(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("powers_of_two") and "log" not in data:
            return {**data, "log": True}
        return data

    @model_validator(mode="after")
    def _range_fits_type(self) -> Knob:
        if knob_name(self.name) is None:
            raise ValueError(
                f"knob name {self.name!r} must be an UPPER_CASE constant of the script, or NAME[i] for element i "
                "of a tuple"
            )
        if self.type == "choice":
            if not self.choices or len(self.choices) < 2:
                raise ValueError(f"knob {self.name}: type 'choice' needs 'choices' with at least two values")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"knob {self.name}: type {self.type!r} needs both 'low' and 'high'")
            if self.low >= self.high:
                raise ValueError(f"knob {self.name}: 'low' ({self.low}) must be below 'high' ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError(f"knob {self.name}: a log-scale range needs 'low' > 0")
            if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
                raise ValueError(f"knob {self.name}: an int knob needs whole-number 'low' and 'high'")
        if self.powers_of_two:
            if self.type != "int" or not self.log:
                raise ValueError(f"knob {self.name}: powers_of_two needs type 'int' on a log scale")
            if not all(_power_of_two(bound) for bound in (self.low, self.high)):
                raise ValueError(
                    f"knob {self.name}: powers_of_two needs 'low' and 'high' that are powers of two"
                )
        return self

    def snap(self, value: float) -> int | float:
        """The value this knob takes nearest `value`, as the offline planner writes it: inside [low, high]; an int
        rounded (with powers_of_two, to the nearest power of two on a log scale); a float to 3 significant digits,
        or finer where the range is narrow (0.9951 in [0.99, 0.9999]). A choice is returned as it is."""
        if self.type == "choice":
            return value
        value = min(max(value, self.low), self.high)
        if self.type == "int":
            return 2 ** round(math.log2(value)) if self.powers_of_two else round(value)
        if value == 0:
            return 0.0
        decimals = max(
            2 - math.floor(math.log10(abs(value))), 1 - math.floor(math.log10(self.high - self.low))
        )
        return min(max(round(float(value), decimals), self.low), self.high)


def _power_of_two(number: float) -> bool:
    return number >= 1 and number == int(number) and int(number) & (int(number) - 1) == 0


class PlannerSettings(_Strict):
    kind: Literal["auto", "claude", "offline"] = Field(
        "auto", description="auto: Claude when ANTHROPIC_API_KEY is set, else the offline planner"
    )
    seed: int = Field(0, description="seed of the offline planner's search")
    search: Literal["surrogate", "tpe"] = Field(
        "surrogate",
        description="offline, after the first wave: surrogate (a model of the knobs fitted to every run, sampled "
        "around the champion; TPE fills in) or tpe (Optuna's TPE sampler alone)",
    )
    factorial: bool = Field(
        False,
        description="offline: after the screening wave, one wave is a 2^k grid of the k knobs whose moves helped most",
    )
    model: str = Field(DEFAULT_MODEL, description="the Claude model that plans and reflects")
    validation_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        2,
        description="times Claude may correct an answer that fails validation before the offline planner fills in",
    )
    http_retries: Annotated[int, Field(ge=0, le=20)] = Field(
        4, description="retries (with backoff) of a 429 or 5xx answer from the API"
    )
    max_prompt_tokens: Annotated[int, Field(ge=2000)] = Field(
        60000, description="the prompt is shrunk (older history first) to fit this"
    )
    max_output_tokens: Annotated[int, Field(ge=256)] = 8000
    timeout_s: Annotated[float, Field(gt=0)] = Field(300, description="per API request")
    cache: Literal["off", "5m", "1h"] = Field(
        "1h",
        description="prompt caching of the unchanging start of each prompt (system text, brief, champion's files): "
        "how long the cache lives (1h outlives a wave; 5m is cheaper to write), or off",
    )
    memory_tool_calls: Annotated[int, Field(ge=0, le=50)] = Field(
        6,
        description="how many times Claude may query the campaign's memory (MLflow) while it plans a wave; 0: never",
    )
    repair_crashes: bool = Field(
        True,
        description="a Claude proposal that crashes before its first result goes back to Claude once, with its "
        "traceback, and the repair runs in the same wave",
    )


class SkyResources(_Strict):
    """What each cluster asks SkyPilot for; the keys and their meaning are SkyPilot's own `resources:`."""

    infra: str | None = Field(
        None, description="where: 'k8s', a cloud ('aws', 'gcp/us-central1'), or 'slurm/<cluster>'"
    )
    accelerators: str | None = Field(None, description="e.g. 'H100:1'; none for a CPU-only trial")
    cpus: str | None = Field(None, description="e.g. '4+'")
    memory: str | None = Field(None, description="e.g. '32+' (GB)")
    use_spot: bool = Field(False, description="spot/preemptible instances (cheaper; may be preempted)")
    image_id: str | None = Field(None, description="VM image or 'docker:<image>'")
    disk_size: Annotated[int, Field(gt=0)] | None = Field(None, description="GB")

    def to_sky(self) -> dict[str, object]:
        """The `resources:` mapping as SkyPilot reads it (unset keys left to SkyPilot's defaults)."""
        return {key: value for key, value in self.model_dump().items() if value not in (None, False)}


class BackendSettings(_Strict):
    kind: Literal["local", "skypilot"] = "local"
    resources: SkyResources = Field(
        default_factory=SkyResources, description="skypilot: what each cluster runs on"
    )
    pool_size: Annotated[int, Field(ge=1, le=256)] | None = Field(
        None, description="skypilot: clusters launched at most (default: the wave size)"
    )
    setup: list[str] = Field(
        default_factory=list, description="skypilot: commands run once when a cluster is launched"
    )
    autostop_minutes: Annotated[int, Field(ge=1)] | None = Field(
        30, description="skypilot: a cluster idle this long stops itself, even if overnight died"
    )
    teardown: Literal["down", "stop", "keep"] = Field(
        "down",
        description="skypilot: what happens to the clusters when the campaign ends, fails or is stopped",
    )
    cluster_prefix: str = Field("ovn", description="skypilot: cluster names are <prefix>-<campaign>-<n>")
    price_per_hour: Annotated[float, Field(ge=0)] | None = Field(
        None, description="skypilot: $ per cluster-hour, where SkyPilot's catalog does not know it"
    )
    simulate_hardware: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="local: act as a mixed pool, {type: workers}; each trial gets OVERNIGHT_HARDWARE=<type>",
    )


class StageSettings(_Strict):
    """How one stage of a wave runs; unset keys take the campaign's trial and backend settings."""

    time_budget_s: Annotated[float, Field(gt=0)] | None = Field(
        None, description="training budget in this stage (default: trial.time_budget_s)"
    )
    timeout_s: Annotated[float, Field(gt=0)] | None = Field(
        None, description="hard limit in this stage (default: trial.timeout_s)"
    )
    resources: SkyResources | None = Field(
        None, description="skypilot: this stage's clusters (default: backend.resources)"
    )


class DecisionSettings(_Strict):
    """How a trial becomes champion: screened on one run, confirmed with new seeds against the noise floor."""

    rule: Literal["t_test", "k_sigma"] = Field(
        "t_test",
        description="t_test: one-sided test at level alpha; k_sigma: the gain must exceed k standard errors",
    )
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = Field(
        0.05,
        description="t_test: with error_control lord, the false discovery rate held over the campaign's crownings; "
        "with per_candidate, each confirmation's own false-keep rate",
    )
    error_control: Literal["lord", "per_candidate"] = Field(
        "lord",
        description="lord: LORD++ online FDR over every confirmation the campaign ever tests, each at its own level "
        "alpha_t; per_candidate: every confirmation at alpha (the old rule: false crowns add up over a night)",
    )
    fdr_horizon: Annotated[int, Field(ge=1, le=100_000)] = Field(
        64,
        description="lord: the confirmations the error budget is spread over before each new one gets less (until "
        "one passes); about the confirmations of one night (waves x confirm_top)",
    )
    k: Annotated[float, Field(ge=0)] = Field(2.0, description="k_sigma: standard errors the gain must clear")
    screen_k: Annotated[float, Field(ge=0)] = Field(
        0.5,
        description="a screening run is promising if its gain exceeds min_improvement + screen_k standard errors",
    )
    confirm_runs: Annotated[int, Field(ge=1, le=64)] = Field(
        5,
        description="new-seed runs of each promising trial, and as many of the champion in the same batch; 5 keeps "
        "the power to crown real 3σ gains above 80% under lord (benchmarks/night_verdicts.py)",
    )
    confirm_top: Annotated[int, Field(ge=1, le=64)] = Field(
        2, description="promising trials confirmed per wave at most, best screening gain first"
    )
    screen: StageSettings = Field(default_factory=StageSettings, description="the screening stage")
    confirm: StageSettings = Field(default_factory=StageSettings, description="the confirmation stage")

    @model_validator(mode="after")
    def _error_control_has_p_values(self) -> DecisionSettings:
        if self.error_control == "lord" and self.rule == "k_sigma":
            raise ValueError(
                "error_control 'lord' sets a level for each confirmation's p value, and rule 'k_sigma' has none: "
                "use rule 't_test', or error_control 'per_candidate'"
            )
        return self


class CampaignConfig(_Strict):
    name: str = Field(description="the campaign; also the MLflow experiment name")
    program: Path = Field(description="folder of the research program, relative to the config file")
    editable: list[str] = Field(default_factory=lambda: ["train.py"], description="files the agent may edit")
    command: str = Field(
        "python train.py", description="run in the trial's folder; 'python' is this interpreter"
    )
    metric: Metric
    trial: TrialSettings = Field(default_factory=TrialSettings)
    wave_size: Annotated[int, Field(ge=1, le=256)] = 4
    pipeline: bool = Field(
        False,
        description="plan the next wave while this one runs, its trials taking workers as they free up: no worker "
        "waits for planning or evaluation (for GPU pools); the planner sees the running wave's trials as pending",
    )
    budget: Budget = Field(default_factory=Budget)
    baseline_repeats: Annotated[int, Field(ge=2, le=64)] = Field(
        3,
        description="runs of the baseline, with seeds seed, seed+1, ..., at most wave_size at once: their spread is "
        "the first noise floor",
    )
    min_improvement: Annotated[float, Field(ge=0)] = Field(
        0.0, description="a practical minimum: a confirmed gain must also exceed this (metric units)"
    )
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: SQLite under .overnight/"
    )
    prefect_api_url: str | None = Field(
        None,
        description="the Prefect server the campaign reports to (a team's, e.g. on PostgreSQL); default: "
        "PREFECT_API_URL, else Prefect's local API",
    )
    state_dir: Path = Field(
        Path(DEFAULT_STATE_DIR), description="where the local store and trial folders live"
    )
    knobs: list[Knob] = Field(
        default_factory=list,
        description="what the offline planner turns; beside guessed knobs, one declared here replaces the guessed "
        "one of its name",
    )
    guess_knobs: bool | None = Field(
        None,
        description="guess ranges around the editable scripts' constants (overnight/knobs.py): unset, only when no "
        "knob is declared; true, also beside the declared knobs; false, never",
    )
    skip_knobs: list[str] = Field(
        default_factory=list,
        description="constants never guessed (NAME[i] for one element of a tuple, NAME for all of them); a declared "
        "knob is still turned",
    )

    @field_validator("name")
    @classmethod
    def _name_is_usable(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if "/" in value:
            raise ValueError("must not contain '/'")
        return value

    @field_validator("editable")
    @classmethod
    def _editable_inside_program(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one file the agent may edit")
        for name in value:
            path = Path(name)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"{name!r} must be a path inside the program folder")
        return value

    @field_validator("skip_knobs")
    @classmethod
    def _skip_knobs_are_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if knob_name(name) is None:
                raise ValueError(f"{name!r} must be an UPPER_CASE constant of the script, or NAME[i]")
        return value

    @model_validator(mode="after")
    def _knobs_unique(self) -> CampaignConfig:
        names = [k.name for k in self.knobs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"knobs: {', '.join(duplicates)} declared more than once")
        return self

    def stage(self, name: str) -> Stage:
        """A stage's settings as numbers: its own keys, else the campaign's trial and backend settings. Unset, a
        stage's timeout grows with its budget in the proportion of trial.timeout_s to trial.time_budget_s."""
        own = self.decision.confirm if name == "confirm" else self.decision.screen
        budget = own.time_budget_s or self.trial.time_budget_s
        timeout = own.timeout_s or max(
            self.trial.timeout_s, budget * self.trial.timeout_s / self.trial.time_budget_s
        )
        screen_resources = self.decision.screen.resources or self.backend.resources
        resources = (
            (self.decision.confirm.resources or screen_resources) if name == "confirm" else screen_resources
        )
        return Stage(name, budget, timeout, resources)

    def resolved_tracking_uri(self) -> str:
        """Config wins, then MLFLOW_TRACKING_URI, then a SQLite file in the state folder."""
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{(self.state_dir / 'mlflow.db').resolve()}"


@dataclass(frozen=True)
class Stage:
    """How the trials of one stage of a wave run: screen (one run per candidate) or confirm (new-seed runs)."""

    name: str  # screen | confirm
    budget_s: float  # the training budget (OVERNIGHT_TIME_BUDGET); runs are compared only under the same one
    timeout_s: float  # the hard limit
    resources: SkyResources  # skypilot: the clusters it runs on


RENAMED_KEYS = {("budget", "iterations"): "waves"}  # old key -> its new name; the old one still loads


def _renamed_keys(data: dict, source: str) -> None:
    """Move renamed keys to their new names, with a warning naming the new one."""
    for (section, old), new in RENAMED_KEYS.items():
        node = data.get(section)
        if not isinstance(node, dict) or old not in node:
            continue
        if new in node:
            raise ConfigError(
                f"{source}: {section}.{old} is the old name of {section}.{new}; keep only {new}"
            )
        node[new] = node.pop(old)
        warnings.warn(
            f"{source}: {section}.{old} is now {section}.{new}; rename it (the old name still works for now)",
            ConfigWarning,
            stacklevel=3,
        )


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = _model_at(item["loc"][:-1])
            valid = ", ".join(parent.model_fields) if parent else "see the README"
            lines.append(f"  {where}: unknown key; valid keys here: {valid}")
        elif item["type"] == "missing":
            lines.append(f"  {where}: required, but missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {message} (got {item.get('input')!r})")
    return "\n".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that sits at a location of the config, to list its valid keys."""
    model: type[BaseModel] = CampaignConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def parse_config(data: object, base_dir: Path, source: str = "config") -> CampaignConfig:
    """Validate a config mapping; relative paths are resolved against base_dir."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values at the top level")
    _renamed_keys(data, source)
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source} is not a valid campaign config:\n{_describe(error)}") from None
    program = (base_dir / config.program).resolve()
    if not program.is_dir():
        raise ConfigError(f"{source}: program: folder {program} does not exist")
    for name in config.editable:
        if not (program / name).is_file():
            raise ConfigError(f"{source}: editable: {name!r} is not a file in {program}")
    files = {name: (program / name).read_text() for name in config.editable if name.endswith(".py")}
    found = knob_values(config.editable, files)
    for number, knob in enumerate(config.knobs):
        if knob.name not in found:
            raise ConfigError(
                f"{source}: knobs.{number}.name: {knob.name} is not an UPPER_CASE constant with a literal value, "
                f"nor an element NAME[i] of a tuple of numbers, in the editable files ({', '.join(config.editable)}){_elements_hint(knob.name, files)}"
            )
    for number, name in enumerate(config.skip_knobs):
        if name not in found and not any(knob_name(other)[0] == name for other in found):
            raise ConfigError(
                f"{source}: skip_knobs.{number}: {name} is not a constant (nor an element NAME[i] of a tuple) of "
                f"the editable files ({', '.join(config.editable)})"
            )
    metric = _holdout_data_resolved(config.metric, base_dir, program, source)
    writable = [(base_dir / path.expanduser()).resolve() for path in config.trial.writable_paths]
    if missing := [str(path) for path in writable if not path.is_dir()]:
        raise ConfigError(f"{source}: trial.writable_paths: no such folder: {', '.join(missing)}")
    trial = config.trial.model_copy(update={"writable_paths": writable})
    return config.model_copy(update={"program": program, "metric": metric, "trial": trial})


def _elements_hint(name: str, files: dict[str, str]) -> str:
    """For a knob named after a tuple constant: the element names to declare instead."""
    for text in files.values():
        constant = constants(text).get(name)
        if constant is not None and isinstance(constant.value, tuple):
            elements = ", ".join(f"{name}[{i}]" for i in range(len(constant.value)))
            return f"; {name} is a tuple: declare its elements, {elements}"
    return ""


def _holdout_data_resolved(metric: Metric, base_dir: Path, program: Path, source: str) -> Metric:
    """metric.holdout_data as an absolute path, checked: it exists, goes with a holdout command, and lies outside
    the program folder (everything inside is copied into every trial's folder, where the training script reads it)."""
    if metric.holdout_data is None:
        return metric
    data = (base_dir / metric.holdout_data).resolve()
    if metric.holdout is None:
        raise ConfigError(f"{source}: metric.holdout_data is set but metric.holdout (the command) is not")
    if not data.exists():
        raise ConfigError(f"{source}: metric.holdout_data: {data} does not exist")
    if data.is_relative_to(program):
        raise ConfigError(
            f"{source}: metric.holdout_data: {data} is inside the program folder {program}, so every trial's "
            "folder would hold it; move it outside"
        )
    return metric.model_copy(update={"holdout_data": data})


def load_config(path: Path | str, overrides: dict[str, object] | None = None) -> CampaignConfig:
    """Read and validate a campaign YAML file; `overrides` sets dotted keys first (e.g. {"budget.waves": 2})."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if isinstance(data, dict):
        for dotted, value in (overrides or {}).items():
            *parents, leaf = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{path}: cannot override {dotted}: {key} is not a mapping")
            node[leaf] = value
    return parse_config(data, path.resolve().parent, source=str(path))


def resolve_planner(config: CampaignConfig, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """Which planner runs, and why, in words for the CLI. `claude` without a key fails here, before anything runs."""
    environ = os.environ if environ is None else environ
    has_key = bool(environ.get(API_KEY_ENV))
    kind = config.planner.kind
    if kind == "claude" and not has_key:
        raise ConfigError(
            f"planner.kind: 'claude' needs the {API_KEY_ENV} environment variable; set it, or use planner kind "
            "'auto' or 'offline'"
        )
    if kind == "auto":
        if has_key:
            return "claude", f"{API_KEY_ENV} is set (planner: auto)"
        return "offline", f"{API_KEY_ENV} is not set (planner: auto); Optuna over the script's knobs"
    return kind, f"planner: {kind} in the config"


def default_config_path() -> Path:
    """The campaign that ships with overnight: a tiny GPT on bundled Shakespeare."""
    return Path(__file__).parent / "programs" / "tiny_gpt" / "campaign.yaml"
