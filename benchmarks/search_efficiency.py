"""Search efficiency: the offline planner against classical search, on landscapes whose truth is known.

A landscape (benchmarks/landscapes/*.py, or any file of the same shape) stands in for a training program: it declares
its knobs in the campaign's knob format (`KNOBS`), the program's current values (`DEFAULTS`), the best true score
over its domain (`OPTIMUM`), `GOAL` (minimize or maximize), `true_score(params)` (noise-free) and
`score(params, seed)` (one run: a float; NaN when the run diverges; an exception when it crashes). A trial is one
call of `score`, in process: no Prefect, MLflow or subprocess, so tens of thousands of trials take minutes.

Every strategy starts from the defaults, measures them once (the engine: `baseline_repeats` times), and runs
`--workers` trials per wave for `--waves` waves. Each is judged by the true score of the setting it would hand the
user (its own recommendation): the champion for the engine and the greedy loops, the best measured trial for random
search and Optuna's samplers. The figure is the share of the defaults' gap to the optimum still left,
(true(recommendation) - OPTIMUM) / (true(DEFAULTS) - OPTIMUM): 1 is no progress, 0 the optimum, inf a setting that
crashes. Trials are counted with every run a strategy made, baseline and confirmations included.

Strategies, all at the same trial budget and wave size:

- overnight's offline planner (`OfflinePlanner.propose`, the shipped settings) kept by the engine's own decision
  policy (`DecisionPolicy.from_config`: screen against the champion's runs, confirm the promising with new seeds,
  crown, re-measure the new champion, re-test the runners-up on top of it), with waves in turn (a wave's
  confirmations and re-measurements are rounds of their own) and pipelined (`pipeline: true`: the next wave is
  planned while this one runs, seeing its trials pending, and confirmations take slots in a later wave);
- Optuna's TPE (`TPESampler`), CMA-ES (`CmaEsSampler`, started at the defaults) and GP (`GPSampler`) samplers:
  N trials asked per wave, told their scores (a crash or NaN as a failed trial);
- random search: N settings drawn over every knob's range per wave;
- parallel greedy: N - 1 one-knob steps around the champion per wave plus one new run of the champion, the best step
  kept if its run beats the mean of the champion's runs;
- sequential greedy (autoresearch, made fair): one one-knob step around the champion per round, kept if its run
  beats the champion's run. A step is the planner's own (`planners.offline.neighbours`): a doubling on a log scale,
  an eighth of the range otherwise, another value of a choice; one or two steps at once.

Time is counted in rounds of parallel work: a sequential step is one round, a wave is one, and a wave's confirmation
and re-measurement (waves in turn) one more each. Rounds to target: the target is the true score of the sequential
loop's final champion after as many trials as the others get (waves x workers); speed-up = the sequential loop's
rounds to that champion / the strategy's rounds to a recommendation at least as good; one that never gets there
within its waves counts as 0x.

    python benchmarks/search_efficiency.py [--landscape FILE ...] [--seeds 30] [--workers 16] [--waves 10] [--jobs 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # GPSampler's torch: one thread per job (Optuna's own advice)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import optuna  # noqa: E402

from benchmarks.results import write_section  # noqa: E402
from overnight.config import CampaignConfig, Knob  # noqa: E402
from overnight.memory.records import TrialRecord  # noqa: E402
from overnight.memory.snapshot import MemorySnapshot  # noqa: E402
from overnight.planners.base import PlanContext  # noqa: E402
from overnight.planners.offline import OfflinePlanner, neighbours, optuna_distribution  # noqa: E402
from overnight.policy import DecisionPolicy, RunsWanted  # noqa: E402
from overnight.program import constants, format_literal  # noqa: E402
from overnight.proposals import Proposal, ProposalError, apply_proposal, change_as_edits, fingerprint  # noqa: E402
from overnight.trial import Outcome  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*x0.*deprecated", category=FutureWarning)  # CmaEsSampler(x0=...)

ROOT = Path(__file__).resolve().parents[1]
LANDSCAPES = Path(__file__).resolve().parent / "landscapes"
SECTION = "## 2. Search efficiency"
EPSILON = 1e-9  # float slack when comparing true scores


# --- landscapes ----------------------------------------------------------------------------------------------------


class LandscapeError(ValueError):
    """A landscape file that cannot be used, with what is wrong in it."""


@dataclass(frozen=True)
class Landscape:
    name: str
    goal: str
    knobs: tuple[Knob, ...]
    defaults: dict
    optimum: float
    true_score: Callable[[dict], float]
    score: Callable[[dict, int], float]

    @property
    def sign(self) -> int:
        """+1 when lower is better, -1 when higher is: sign * score is minimized."""
        return 1 if self.goal == "minimize" else -1

    def gap_left(self, params: dict) -> float:
        """The share of the defaults' gap to the optimum that a setting leaves (inf for one that crashes)."""
        true = self.true_score({**self.defaults, **params})
        if not math.isfinite(true):
            return math.inf
        start = self.sign * (self.true_score(self.defaults) - self.optimum)
        return max(0.0, self.sign * (true - self.optimum)) / start

    def program(self) -> str:
        """The editable script the planner sees: one constant per knob, at its default."""
        lines = [f'"""The {self.name} landscape\'s knobs (benchmarks/search_efficiency.py)."""', ""]
        lines += [f"{name} = {format_literal(value)}" for name, value in self.defaults.items()]
        return "\n".join(lines) + "\n"

    def config(self, workers: int, seed: int, pipeline: bool = False) -> CampaignConfig:
        """The campaign a user would write for this program: its knobs, the shipped settings otherwise."""
        return CampaignConfig.model_validate(
            {
                "name": self.name,
                "program": ".",
                "metric": {"name": "score", "goal": self.goal},
                "wave_size": workers,
                "pipeline": pipeline,
                "planner": {"kind": "offline", "seed": seed},
                "knobs": [knob.model_dump(exclude_defaults=True) for knob in self.knobs],
            }
        )


def load_landscape(path: str | Path) -> Landscape:
    """A landscape file, loaded by path and checked: its knobs are the campaign's, its defaults lie in them."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"{path}: no such landscape file")
    spec = importlib.util.spec_from_file_location(f"landscape_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [n for n in ("KNOBS", "DEFAULTS", "OPTIMUM", "true_score", "score") if not hasattr(module, n)]
    if missing:
        raise LandscapeError(
            f"{path}: a landscape defines KNOBS, DEFAULTS, OPTIMUM, true_score and score; missing {', '.join(missing)}"
        )
    goal = getattr(module, "GOAL", "minimize")
    if goal not in ("minimize", "maximize"):
        raise LandscapeError(f"{path}: GOAL must be 'minimize' or 'maximize', not {goal!r}")
    try:
        knobs = tuple(Knob.model_validate(knob) for knob in module.KNOBS)
    except ValueError as error:
        raise LandscapeError(f"{path}: KNOBS is not in the campaign's knob format: {error}") from None
    defaults = dict(module.DEFAULTS)
    for knob in knobs:
        if knob.name not in defaults:
            raise LandscapeError(f"{path}: DEFAULTS has no value for knob {knob.name}")
        if knob.snap(defaults[knob.name]) != defaults[knob.name]:
            raise LandscapeError(
                f"{path}: DEFAULTS[{knob.name!r}] = {defaults[knob.name]!r} is not a value the knob takes "
                f"(it would be written as {knob.snap(defaults[knob.name])!r})"
            )
    landscape = Landscape(
        path.stem, goal, knobs, defaults, float(module.OPTIMUM), module.true_score, module.score
    )
    if not landscape.sign * (landscape.true_score(defaults) - landscape.optimum) > 0:
        raise LandscapeError(f"{path}: the defaults already score the OPTIMUM: there is nothing to find")
    return landscape


class Bench:
    """One seed's measurements on a landscape: each run gets a trial seed of its own, so every run is a new draw."""

    def __init__(self, landscape: Landscape, seed: int):
        self.landscape = landscape
        self.base = 1_000_000 * (seed + 1)
        self.count = 0

    def measure(self, params: dict) -> tuple[Outcome, float | None]:
        """One run: its outcome and, when it finished, its score."""
        self.count += 1
        try:
            value = float(self.landscape.score({**self.landscape.defaults, **params}, self.base + self.count))
        except Exception:  # the program crashed: the landscape's way of saying so
            return Outcome.CRASH, None
        if not math.isfinite(value):
            return Outcome.NAN, None
        return Outcome.OK, value

    def loss(self, params: dict) -> float | None:
        """One run as a number to minimize (None when it failed)."""
        outcome, value = self.measure(params)
        return None if outcome is not Outcome.OK else self.landscape.sign * value


# --- a strategy's progress -----------------------------------------------------------------------------------------


@dataclass
class Trace:
    """After each round of work: rounds spent, trials run, and the gap its recommendation leaves."""

    points: list[tuple[int, int, float]] = field(default_factory=list)

    def add(self, rounds: int, trials: int, gap: float) -> None:
        self.points.append((rounds, trials, gap))

    def gap_at(self, trials: int, start: float = 1.0) -> float:
        """The gap left by the recommendation it held when it had run `trials` trials at most."""
        held = [gap for _, spent, gap in self.points if spent <= trials]
        return held[-1] if held else start

    def rounds_to(self, gap: float) -> int | None:
        """Rounds until its recommendation first left `gap` or less, or None."""
        return next((rounds for rounds, _, left in self.points if left <= gap + EPSILON), None)


def step(landscape: Landscape, champion: dict, draw: random.Random) -> dict:
    """A sensible one-knob change: one or two of the planner's steps from the champion's value of a random knob."""
    while True:
        knob = draw.choice(landscape.knobs)
        moves = neighbours(knob, champion[knob.name], draw.choice((1, 2)))
        if moves:
            return {**champion, knob.name: draw.choice(moves)}


def random_setting(landscape: Landscape, draw: random.Random) -> dict:
    """Every knob drawn over its range (log-uniform on a log scale), as the knob takes values."""
    values = {}
    for knob in landscape.knobs:
        if knob.type == "choice":
            values[knob.name] = draw.choice(knob.choices)
        elif knob.log:
            values[knob.name] = knob.snap(math.exp(draw.uniform(math.log(knob.low), math.log(knob.high))))
        else:
            values[knob.name] = knob.snap(draw.uniform(knob.low, knob.high))
    return values


def sequential_greedy(landscape: Landscape, seed: int, trials: int) -> Trace:
    """autoresearch: one change at a time, kept if its one run measures better than the champion's run."""
    bench, draw = Bench(landscape, seed), random.Random(seed)
    champion = dict(landscape.defaults)
    best = bench.loss(champion)
    trace = Trace()
    for number in range(1, trials):
        candidate = step(landscape, champion, draw)
        value = bench.loss(candidate)
        if value is not None and (best is None or value < best):
            champion, best = candidate, value
        trace.add(number, number + 1, landscape.gap_left(champion))
    return trace


def parallel_greedy(landscape: Landscape, seed: int, workers: int, waves: int) -> Trace:
    """N - 1 one-knob steps of the champion per wave and one more run of the champion; the best step is kept if its
    run beats the mean of the champion's runs (so the best of N noisy runs does not become the reference)."""
    bench, draw = Bench(landscape, seed), random.Random(seed)
    champion = dict(landscape.defaults)
    runs = [bench.loss(champion)]
    trace = Trace()
    for wave in range(1, waves + 1):
        runs.append(bench.loss(champion))
        measured = [(bench.loss(c), c) for c in (step(landscape, champion, draw) for _ in range(workers - 1))]
        finished = [(value, c) for value, c in measured if value is not None]
        reference = [value for value in runs if value is not None]
        if finished:
            value, candidate = min(finished, key=lambda pair: pair[0])
            if not reference or value < statistics.fmean(reference):
                champion, runs = candidate, [value]
        trace.add(wave, 1 + wave * workers, landscape.gap_left(champion))
    return trace


def random_search(landscape: Landscape, seed: int, workers: int, waves: int) -> Trace:
    """N random settings per wave; the recommendation is the best measured so far."""
    bench, draw = Bench(landscape, seed), random.Random(seed)
    champion = dict(landscape.defaults)
    best = bench.loss(champion)
    trace = Trace()
    for wave in range(1, waves + 1):
        for candidate in (random_setting(landscape, draw) for _ in range(workers)):
            value = bench.loss(candidate)
            if value is not None and (best is None or value < best):
                champion, best = candidate, value
        trace.add(wave, 1 + wave * workers, landscape.gap_left(champion))
    return trace


def optuna_sampler(kind: str, landscape: Landscape, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's sampler as a user would start it; CMA-ES starts at the defaults (its numeric knobs)."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "cmaes":
        numeric = {k.name: landscape.defaults[k.name] for k in landscape.knobs if k.type != "choice"}
        return optuna.samplers.CmaEsSampler(x0=numeric, seed=seed, warn_independent_sampling=False)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown Optuna sampler {kind!r}")


def optuna_search(landscape: Landscape, seed: int, workers: int, waves: int, kind: str) -> Trace:
    """An Optuna sampler over every knob: N trials asked per wave, then told their scores (a failed run as a
    failed trial); the recommendation is the best measured trial. It is told the defaults' run first."""
    bench = Bench(landscape, seed)
    distributions = {knob.name: optuna_distribution(knob) for knob in landscape.knobs}
    study = optuna.create_study(direction="minimize", sampler=optuna_sampler(kind, landscape, seed))
    study.enqueue_trial(dict(landscape.defaults))
    _tell(study, study.ask(distributions), bench)
    trace = Trace()
    for wave in range(1, waves + 1):
        asked = [study.ask(distributions) for _ in range(workers)]
        for trial in asked:
            _tell(study, trial, bench)
        best = study.best_trial.params if study.best_trial else landscape.defaults
        trace.add(wave, 1 + wave * workers, landscape.gap_left(best))
    return trace


def _tell(study: optuna.Study, trial: optuna.Trial, bench: Bench) -> None:
    value = bench.loss({**bench.landscape.defaults, **trial.params})
    if value is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, value)


# --- the engine: the offline planner and the decision policy, fed the records a campaign writes ---------------------


class Campaign:
    """The records of one simulated campaign, as the loop writes them to MLflow, and its champion."""

    def __init__(self, landscape: Landscape, seed: int, policy: DecisionPolicy):
        self.landscape, self.policy = landscape, policy
        self.bench = Bench(landscape, seed)
        self.history: list[TrialRecord] = []
        self.champion: TrialRecord | None = None
        self.champion_files = {"train.py": landscape.program()}
        self.files: dict[str, dict[str, str]] = {}  # run id -> files

    def knobs_of(self, files: dict[str, str]) -> dict:
        found = constants(files["train.py"])
        return {name: found[name].value for name in self.landscape.defaults}

    def run(
        self,
        files: dict[str, str],
        wave: int,
        role: str,
        proposal: Proposal | None = None,
        measures: str = "",
        stage: str = "screen",
    ) -> TrialRecord:
        knobs = self.knobs_of(files)
        outcome, value = self.bench.measure(knobs)
        run_id = f"r{len(self.history)}"
        record = TrialRecord(
            run_id=run_id,
            trial_id=run_id,
            agent_run_id="bench",
            wave=wave,
            status="finished",
            outcome=outcome,
            metric=value,
            hypothesis=proposal.hypothesis if proposal else "",
            params={name: str(value) for name, value in knobs.items()},
            fingerprint=fingerprint(files),
            parent_champion=self.champion.run_id if self.champion else "",
            decision="baseline" if role == "baseline" else "",
            reason="",
            duration_s=self.policy.budget_s(stage),
            started_ms=len(self.history),
            hardware="h100",
            budget_s=self.policy.budget_s(stage),
            role=role,
            seed=self.bench.count,
            measures=measures,
            factors={f: list(level) for f, level in proposal.factors.items()} if proposal else {},
        )
        self.history.append(record)
        self.files[run_id] = files
        return record

    def run_wanted(self, wave: int, wanted: tuple[RunsWanted, ...] | list[RunsWanted]) -> None:
        """The new-seed runs the policy asks for: the candidates' confirmations first, then the champion's."""
        for runs in sorted(wanted, key=lambda runs: runs.role == "champion"):
            for _ in runs.seeds:
                files = self.files[runs.measures.run_id]
                self.run(files, wave, runs.role, measures=runs.measures.run_id, stage=runs.stage)

    def decide(self, verdicts: dict[str, str]) -> None:
        """What evaluate records: each decision on its run."""
        self.history = [replace(t, decision=verdicts.get(t.run_id, t.decision)) for t in self.history]
        if self.champion is not None:
            self.champion = self.get(self.champion.run_id)

    def get(self, run_id: str) -> TrialRecord:
        return next(t for t in self.history if t.run_id == run_id)

    def crown(self, record: TrialRecord) -> None:
        self.decide({record.run_id: "keep"})
        self.champion = self.get(record.run_id)
        self.champion_files = self.files[record.run_id]

    def gap(self) -> float:
        return self.landscape.gap_left(self.knobs_of(self.champion_files))

    def context(self, wave: int, n: int, pending: set[str] = frozenset()) -> PlanContext:
        """What the planner knows when it plans `wave`: the runs in `pending` still running (no metric yet)."""
        history = tuple(
            replace(t, status="running", outcome=None, metric=None) if t.run_id in pending else t
            for t in self.history
        )
        memory = MemorySnapshot(
            "score", self.landscape.goal, history, self.champion, (self.champion,), (), {}
        )
        return PlanContext(wave, n, self.champion_files, memory)

    def retest_files(self, runner_up: TrialRecord) -> dict[str, str] | None:
        """A runner-up's change re-applied on top of the champion (None when it no longer applies)."""
        edits = change_as_edits(self.files[runner_up.parent_champion], self.files[runner_up.run_id])
        try:
            return apply_proposal(
                self.champion_files, Proposal(hypothesis="re-test", edits=edits), ["train.py"]
            )
        except ProposalError:
            return None

    def retests(self, wave: int, policy: DecisionPolicy, n: int) -> list[TrialRecord]:
        """The runners-up of the last crowning, their change re-applied on top of the champion, run as candidates."""
        runs = []
        for runner_up in policy.retests(self.history, self.champion)[:n]:
            files = self.retest_files(runner_up)
            if files is not None:
                runs.append(self.run(files, wave, "candidate", measures=runner_up.run_id))
        return runs

    def proposals(
        self, context: PlanContext, planner: OfflinePlanner
    ) -> list[tuple[dict[str, str], Proposal]]:
        """The planner's proposals for the context, applied to the champion's files; a repeat of a run is
        dropped, as the engine records it invalid and never runs it."""
        seen, applied = {t.fingerprint for t in self.history}, []
        for proposal in planner.propose(context).proposals[: context.n] if context.n else []:
            files = apply_proposal(self.champion_files, proposal, ["train.py"])
            if fingerprint(files) not in seen or proposal.factors:  # grid cells may repeat (the low corner)
                applied.append((files, proposal))
        return applied

    def candidates(self, wave: int, context: PlanContext, planner: OfflinePlanner) -> list[TrialRecord]:
        """The planner's proposals for the context, run."""
        return [
            self.run(files, wave, "candidate", proposal)
            for files, proposal in self.proposals(context, planner)
        ]


def engine(landscape: Landscape, seed: int, workers: int, waves: int) -> Trace:
    """The engine with waves in turn: plan, run, screen, confirm (a round), crown, re-measure (a round), until the
    trial budget (1 + waves x N) is spent, as a campaign with `budget.trials` runs: the last wave smaller."""
    config = landscape.config(workers, seed)
    planner, policy = OfflinePlanner(config), DecisionPolicy.from_config(config)
    campaign, budget = Campaign(landscape, seed, policy), 1 + waves * workers
    baseline = [campaign.run(campaign.champion_files, 0, "baseline") for _ in range(config.baseline_repeats)]
    campaign.crown(baseline[0])
    trace, rounds, wave = Trace(), 0, 0
    while len(campaign.history) < budget:
        wave += 1
        left = budget - len(campaign.history)
        screened = campaign.retests(wave, policy, min(workers, left))
        context = campaign.context(wave, min(workers, left) - len(screened))
        screened += campaign.candidates(wave, context, planner)
        if not screened:
            break
        rounds += 1
        left = budget - len(campaign.history)
        screening = policy.screen(campaign.history, campaign.champion, screened, left)
        campaign.decide({d.run_id: d.decision for d in screening.decisions})
        if screening.to_confirm:
            campaign.run_wanted(wave, screening.wanted)
            rounds += 1
            to_confirm = [campaign.get(t.run_id) for t in screening.to_confirm]
            crowning = policy.confirm(campaign.history, campaign.champion, to_confirm, campaign.history)
            campaign.decide({d.run_id: d.decision for d in crowning.decisions})
            if crowning.champion is not None:
                campaign.crown(campaign.get(crowning.champion.run_id))
                again = policy.remeasure_champion(campaign.history, campaign.champion)
                if again:
                    campaign.run_wanted(wave, [again])
                    rounds += 1
        trace.add(rounds, len(campaign.history), campaign.gap())
    return trace


def engine_pipelined(landscape: Landscape, seed: int, workers: int, waves: int) -> Trace:
    """The engine pipelined: round r runs wave r, planned while round r - 1 ran (its trials pending). Wave r's
    promising trials are confirmed by runs in wave r + 2 (planned during round r + 1) and decided after it; a new
    champion's fresh runs take the first slots of the next round. Every round is one wave of at most N, and the
    trial budget (1 + waves x N) ends it, the last wave smaller."""
    config = landscape.config(workers, seed, pipeline=True)
    planner, policy = OfflinePlanner(config), DecisionPolicy.from_config(config)
    campaign, budget = Campaign(landscape, seed, policy), 1 + waves * workers
    baseline = [campaign.run(campaign.champion_files, 0, "baseline") for _ in range(config.baseline_repeats)]
    campaign.crown(baseline[0])
    promising: dict[int, list[TrialRecord]] = {}  # wave -> its promising trials, confirmed in wave + 2
    trace, wave = Trace(), 0
    planned = _pipelined_wave(
        campaign, planner, policy, 1, min(workers, budget - len(campaign.history)), [], set()
    )
    while planned:
        wave += 1
        ran = [
            campaign.run(files, wave, role, proposal, measures, stage)
            for files, role, proposal, measures, stage in planned
        ]
        # Planned while this round runs: it knows every earlier round and sees this one's trials pending.
        room = min(workers, budget - len(campaign.history))
        waiting = promising.get(wave - 1, [])
        planned = _pipelined_wave(campaign, planner, policy, wave + 1, room, waiting, {t.run_id for t in ran})
        to_decide = [campaign.get(t.run_id) for t in promising.pop(wave - 2, [])]
        if to_decide:
            crowning = policy.confirm(campaign.history, campaign.champion, to_decide, campaign.history)
            campaign.decide({d.run_id: d.decision for d in crowning.decisions})
            if crowning.champion is not None:
                campaign.crown(campaign.get(crowning.champion.run_id))
                again = policy.remeasure_champion(campaign.history, campaign.champion)
                fresh = [
                    (campaign.champion_files, "champion", None, campaign.champion.run_id, again.stage)
                    for _ in (again.seeds if again else ())
                ]
                kept = (fresh + [run for run in planned if run[1] != "candidate"])[:room]
                planned = kept + [run for run in planned if run[1] == "candidate"][: max(0, room - len(kept))]
        screened = [t for t in ran if t.role == "candidate"]
        screening = policy.screen(
            campaign.history, campaign.champion, screened, budget - len(campaign.history)
        )
        campaign.decide({d.run_id: d.decision for d in screening.decisions})
        promising[wave] = list(screening.to_confirm)
        trace.add(wave, len(campaign.history), campaign.gap())
    return trace


def _pipelined_wave(
    campaign: Campaign,
    planner: OfflinePlanner,
    policy: DecisionPolicy,
    wave: int,
    room: int,
    to_confirm: list[TrialRecord],
    pending: set[str],
) -> list[tuple]:
    """Wave `wave` as the pipelined engine plans it, in `room` slots: the confirmation runs of the trials waiting for
    it (the champion topped up to as many runs), the runners-up re-tested, then the planner's proposals in the slots
    left. Returns (files, role, proposal, the run it measures) for each run."""
    wanted = (
        policy.confirmation_runs(campaign.history, campaign.champion, tuple(to_confirm)) if to_confirm else ()
    )
    runs = [
        (campaign.files[w.measures.run_id], w.role, None, w.measures.run_id, w.stage)
        for w in sorted(wanted, key=lambda w: w.role == "champion")  # the candidates' runs first
        for _ in w.seeds
    ][: max(0, room)]
    for runner_up in policy.retests(campaign.history, campaign.champion)[: max(0, room - len(runs))]:
        files = campaign.retest_files(runner_up)
        if files is not None:
            runs.append((files, "candidate", None, runner_up.run_id, "screen"))
    context = campaign.context(wave, max(0, room - len(runs)), pending)
    runs += [
        (files, "candidate", proposal, "", "screen")
        for files, proposal in campaign.proposals(context, planner)
    ]
    return runs


# --- the benchmark -------------------------------------------------------------------------------------------------

SEQUENTIAL = "sequential greedy (autoresearch, steps around the champion)"
STRATEGIES: dict[str, Callable[[Landscape, int, int, int], Trace]] = {
    "offline planner, engine's rule, waves in turn": engine,
    "offline planner, engine's rule, pipelined": engine_pipelined,
    "Optuna TPE": lambda land, s, n, w: optuna_search(land, s, n, w, "tpe"),
    "Optuna CMA-ES": lambda land, s, n, w: optuna_search(land, s, n, w, "cmaes"),
    "Optuna GP": lambda land, s, n, w: optuna_search(land, s, n, w, "gp"),
    "random search": random_search,
    "parallel greedy, champion re-measured": parallel_greedy,
}
PLANNER = "offline planner, engine's rule, pipelined"  # the row the goals are about


@dataclass(frozen=True)
class Cell:
    """One strategy on one seed of one landscape."""

    gap: float  # the gap its recommendation leaves at the trial budget
    rounds: int | None  # rounds to the sequential loop's final champion (None: never within its waves)
    sequential_rounds: int
    seconds: float


def run_seed(job: tuple[str, int, int, int, tuple[str, ...]]) -> tuple[str, int, dict[str, Cell]]:
    """Every chosen strategy on one seed of one landscape (a job of the pool)."""
    path, seed, workers, waves, names = job
    landscape = load_landscape(path)
    budget = 1 + workers * waves
    started = time.process_time()
    sequential = sequential_greedy(landscape, seed, budget)
    target = sequential.points[-1][2]
    seq_rounds = sequential.rounds_to(target)
    cells = {SEQUENTIAL: Cell(target, seq_rounds, seq_rounds, time.process_time() - started)}
    for name in names:
        started = time.process_time()
        trace = STRATEGIES[name](landscape, seed, workers, waves)
        cells[name] = Cell(
            trace.gap_at(budget), trace.rounds_to(target), seq_rounds, time.process_time() - started
        )
    return landscape.name, seed, cells


def bootstrap_median(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The median and a percentile bootstrap 95% interval of it."""
    draw = random.Random(seed)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples))
    return statistics.median(values), medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def _show(value: float, digits: int = 3) -> str:
    return "crash" if math.isinf(value) else f"{value:.{digits}f}"


def gap_table(results: dict[str, dict[str, list[Cell]]], names: list[str]) -> tuple[str, list[str]]:
    """Median gap left per landscape and strategy, with its interval; and the verdict of each landscape."""
    landscapes = list(results)
    lines = ["| strategy | " + " | ".join(landscapes) + " |", "|---|" + "---|" * len(landscapes)]
    intervals = {
        (land, name): bootstrap_median([c.gap for c in results[land][name]])
        for land in landscapes
        for name in names
    }
    for name in names:
        row = [
            f"{_show(m)} [{_show(lo)}, {_show(hi)}]"
            for m, lo, hi in (intervals[land, name] for land in landscapes)
        ]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    verdicts = []
    for land in landscapes:
        peers = [n for n in names if not n.startswith("offline planner")]
        if PLANNER not in names or not peers:
            continue
        ours = intervals[land, PLANNER]
        best = min(peers, key=lambda n: intervals[land, n][0])
        theirs = intervals[land, best]
        if ours[2] < theirs[1]:
            verdict = "better than every peer (the intervals do not overlap)"
        elif ours[1] > theirs[2]:
            verdict = "worse than the best peer (the intervals do not overlap)"
        elif ours[0] <= theirs[0]:
            verdict = "no worse than the best peer (median at or below it, the intervals overlap)"
        else:
            verdict = "behind the best peer's median, within the intervals"
        beaten = sum(intervals[land, PLANNER][2] < intervals[land, n][1] for n in peers)
        verdicts.append(
            f"- {land}: the planner (pipelined) {_show(ours[0])} against the best peer, {best}, {_show(theirs[0])}: "
            f"{verdict}; clearly better than {beaten} of {len(peers)} peers."
        )
    return "\n".join(lines), verdicts


def speed_table(results: dict[str, dict[str, list[Cell]]], names: list[str]) -> str:
    """Median speed-up in rounds against the sequential loop, with its interval, and how often the target was met."""
    landscapes = list(results)
    lines = ["| strategy | " + " | ".join(landscapes) + " |", "|---|" + "---|" * len(landscapes)]
    for name in names:
        row = []
        for land in landscapes:
            cells = results[land][name]
            speedups = [c.sequential_rounds / c.rounds if c.rounds else 0.0 for c in cells]
            median, low, high = bootstrap_median(speedups)
            reached = sum(c.rounds is not None for c in cells)
            row.append(f"{median:.1f}x [{low:.1f}, {high:.1f}] ({reached}/{len(cells)})")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_all(
    paths: list[str], seeds: int, workers: int, waves: int, names: list[str], jobs: int
) -> dict[str, dict[str, list[Cell]]]:
    """Every strategy on every seed of every landscape, in `jobs` processes."""
    work = [(path, seed, workers, waves, tuple(names)) for path in paths for seed in range(seeds)]
    results: dict[str, dict[str, list[Cell]]] = {}
    by_seed: dict[tuple[str, int], dict[str, Cell]] = {}
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for land, seed, cells in pool.imap_unordered(run_seed, work):
                by_seed[land, seed] = cells
                print(f"{land} seed {seed} done", file=sys.stderr, flush=True)
    else:
        for job in work:
            land, seed, cells = run_seed(job)
            by_seed[land, seed] = cells
            print(f"{land} seed {seed} done", file=sys.stderr, flush=True)
    for path, seed, *_ in work:  # in the order of the landscapes and seeds asked for
        for name, cell in by_seed[Path(path).stem, seed].items():
            results.setdefault(Path(path).stem, {}).setdefault(name, []).append(cell)
    return results


def landscape_facts(paths: list[str]) -> str:
    lines = ["| landscape | knobs | defaults' true score | optimum |", "|---|---|---|---|"]
    for path in paths:
        land = load_landscape(path)
        kinds = ", ".join(
            f"{sum(k.type == t for k in land.knobs)} {t}"
            for t in ("float", "int", "choice")
            if any(k.type == t for k in land.knobs)
        )
        lines.append(
            f"| {land.name} | {len(land.knobs)} ({kinds}) | {land.true_score(land.defaults):.4g} | {land.optimum:.4g} |"
        )
    return "\n".join(lines)


def check_landscape(path: str, samples: int = 2000) -> str:
    """What a new landscape file should be checked for: its defaults' true score against its noise, the noise the
    runs really show there, how often a random setting fails, how fast a run is, and that no random setting beats
    its OPTIMUM (which must be the lower bound)."""
    land = load_landscape(path)
    bench, draw = Bench(land, seed=0), random.Random(0)
    started = time.perf_counter()
    runs = [bench.measure(land.defaults) for _ in range(200)]
    per_run = (time.perf_counter() - started) / 200
    values = [value for outcome, value in runs if outcome is Outcome.OK]
    settings = [random_setting(land, draw) for _ in range(samples)]
    failed = sum(bench.measure(setting)[0] is not Outcome.OK for setting in settings)
    best = min(land.sign * land.true_score({**land.defaults, **s}) for s in settings)
    gap = land.sign * (land.true_score(land.defaults) - land.optimum)
    lines = [
        f"{land.name}: true score of the defaults {land.true_score(land.defaults):.6g}, OPTIMUM {land.optimum:.6g}"
        f" (gap {gap:.4g})",
        f"  200 runs of the defaults: {len(values)} finished, median {statistics.median(values):.6g}, sd"
        f" {statistics.stdev(values):.4g} ({statistics.stdev(values) / gap:.1%} of the gap); {per_run * 1e6:.0f} µs a run",
        f"  {samples} random settings: {failed / samples:.1%} crash or NaN; the best true score"
        f" {land.sign * best:.6g} ({'no better than' if best >= land.sign * land.optimum - EPSILON else 'BETTER THAN'} OPTIMUM)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--landscape", nargs="+", default=None, help="landscape files (default: benchmarks/landscapes/*.py)"
    )
    parser.add_argument(
        "--seeds", type=int, default=30, help="independent campaigns per strategy and landscape"
    )
    parser.add_argument("--workers", type=int, default=16, help="N: trials per wave")
    parser.add_argument(
        "--waves", type=int, default=10, help="waves per strategy (the trial budget: 1 + waves x N)"
    )
    parser.add_argument(
        "--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES), metavar="NAME"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes (one seed of one landscape each)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    parser.add_argument(
        "--check", action="store_true", help="check the landscape files and stop (no strategies)"
    )
    args = parser.parse_args(argv)
    paths = [str(p) for p in (args.landscape or sorted(LANDSCAPES.glob("*.py")))]
    if args.check:
        try:
            print("\n".join(check_landscape(path) for path in paths))
        except LandscapeError as error:
            raise SystemExit(f"search_efficiency: {error}") from None
        return
    try:
        facts = landscape_facts(paths)
    except LandscapeError as error:
        raise SystemExit(f"search_efficiency: {error}") from None
    started = time.time()
    results = run_all(paths, args.seeds, args.workers, args.waves, args.strategies, args.jobs)
    names = [SEQUENTIAL, *args.strategies]
    gaps, verdicts = gap_table(results, names)
    speeds = speed_table(results, [n for n in names if n != SEQUENTIAL])
    cpu = {name: sum(c.seconds for land in results.values() for c in land[name]) for name in names}
    command = "python benchmarks/search_efficiency.py " + " ".join(sys.argv[1:] if argv is None else argv)
    budget = 1 + args.workers * args.waves
    print(facts, gaps, "\n".join(verdicts), speeds, sep="\n\n")
    if args.no_write:
        return
    section = f"""{SECTION}

- Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, Optuna {optuna.__version__}.
  Date: {datetime.date.today().isoformat()}.
- Command: `PYTHONPATH=. {command.strip()}` ({time.time() - started:.0f} s, {args.jobs} processes).
- Seeds 0 to {args.seeds - 1} on every landscape; {args.workers} trials per wave, {args.waves} waves: a budget of
  {budget} trials, every run counted (the engine's baseline copies, confirmations and re-measurements too).
- Intervals: percentile bootstrap 95% intervals of the median over the seeds (2000 resamples).
- How it is run and judged: the docstring of `benchmarks/search_efficiency.py`; the landscapes: the docstrings of
  `benchmarks/landscapes/*.py` (each checked with `--check`).

What flatters whom. The synthetic landscape is additive and quadratic in exactly the terms the planner's surrogate
fits, and was written before the surrogate was tuned on it: the one row where the planner's model is the truth.
The engine spends part of the same trial budget on its baseline copies, on confirmations and on the fresh runs of
each new champion, and crowns only what its error control confirms; random search and Optuna's samplers hand over
their best measured trial, a lucky measurement, yet are judged here on its true score, so the bias of the number
they would report costs them nothing. Optuna's samplers run with their defaults, as a user would start them
(CMA-ES from the defaults). No strategy pays for its planning time; the CPU each took is in the last line.

{facts}

### Gap left after {budget} trials

Median share of the defaults' gap to the optimum that each strategy's recommendation still leaves, after {budget}
trials (0 is the optimum, 1 the defaults), [95% interval]. Lower is better.

{gaps}

{chr(10).join(verdicts)}

### Rounds to the sequential loop's final champion

Speed-up in rounds (wall time) against the sequential loop ({budget - 1} steps), median [95% interval] (seeds that
reached it within {args.waves} waves). A strategy that never reaches it counts as 0x: a strategy ahead by more
than its {args.waves} waves allow is cut off, so these are lower figures.

{speeds}

CPU seconds per strategy, all landscapes and seeds: {", ".join(f"{name} {seconds:.0f}" for name, seconds in cpu.items())}.
"""
    write_section(SECTION, section)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
