"""The offline planner: search over the script's knobs, no API key needed.

It holds no state: each call rebuilds its search from the campaign's history in MLflow, seeded from the campaign seed
and the history length, so a resumed campaign makes the same choices. The first wave after the baseline screens knobs
one at a time around the champion. Later waves fit a surrogate of the metric to every finished run and propose its
best settings around the champion (overnight/planners/surrogate.py), with Optuna's TPE sampler (a study rebuilt from
the history: finished trials as COMPLETE or FAIL, running ones as pending) filling in when the surrogate has nothing
new; `planner.search: tpe` asks TPE alone.
"""

from __future__ import annotations

import ast
import itertools
import math
import random
import re
import warnings

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from overnight import stats
from overnight.config import CampaignConfig, Knob
from overnight.knobs import campaign_knobs
from overnight.planners import surrogate
from overnight.planners.base import FinishedWave, Plan, PlanContext, Planner, Reflection, wave_report
from overnight.program import format_literal, knob_edit, knob_values, param_name
from overnight.proposals import Proposal, ProposalError, apply_proposal, fingerprint
from overnight.trial import Outcome

optuna.logging.set_verbosity(optuna.logging.WARNING)

ASKS_PER_PROPOSAL = 20  # how often Optuna may suggest a point already tried before we give up on it
KNOBS_PER_MOVE = 2  # knobs TPE may move at once around the champion
# Outcomes that say the setting itself fails (not the backend, the proposal or the clock): the surrogate learns them.
SETTING_FAILED = frozenset({Outcome.CRASH, Outcome.NAN, Outcome.TIMEOUT, Outcome.OVER_LIMIT})
# Words before a knob's name in a suggestion that mean "make it smaller" (otherwise: larger).
LOWER_WORDS = ("lower", "smaller", "less", "decrease", "reduce", "fewer", "narrower", "shallower", "shorter")


class OfflinePlanner(Planner):
    name = "offline"

    def __init__(self, config: CampaignConfig):
        self.config = config
        self.goal = config.metric.goal

    # --- propose -------------------------------------------------------------------------------------------------

    def propose(self, context: PlanContext) -> Plan:
        suggested, notes = [], []
        for text in context.suggestions:
            proposal, problem = self.from_suggestion(text, context.champion_files)
            if proposal is not None:
                suggested.append(proposal)
            else:
                notes.append(problem)
        exclude = {
            fingerprint(apply_proposal(context.champion_files, p, self.config.editable)) for p in suggested
        }
        rest = self.proposals(context, max(0, context.n - len(suggested)), exclude)
        return Plan(suggested[: context.n] + rest, note=" ".join(notes))

    def from_suggestion(self, text: str, files: dict[str, str]) -> tuple[Proposal | None, str]:
        """A person's hypothesis turned into knob edits, when it names knobs this planner knows (`ADAM_BETAS[1]`
        too); a number the person gives is taken as written, outside the range or off a power of two included."""
        knobs = self.knobs(files)
        current = self._current_values(knobs, files)
        lowered = text.lower()
        values: dict[str, object] = {}
        for knob in knobs:
            for name in (knob.name.lower(), knob.name.lower().replace("_", " ")):
                found = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", lowered)  # whole words: "try" is not Y
                if found is None or knob.name not in current:
                    continue
                at = found.start()
                after = lowered[found.end() :]
                number = re.match(r"\s*(?:=|to|of|at)?\s*(-?\d+(?:\.\d*)?(?:e-?\d+)?)", after)
                if knob.type == "choice":
                    named = [c for c in knob.choices if str(c).lower() in lowered and c != current[knob.name]]
                    values[knob.name] = named[0] if named else neighbours(knob, current[knob.name])[0]
                elif number:
                    value = float(number[1])
                    values[knob.name] = round(value) if knob.type == "int" else value
                else:
                    before = lowered[max(0, at - 30) : at]
                    down = any(word in before for word in LOWER_WORDS)
                    moves = neighbours(knob, current[knob.name])
                    pick = [m for m in moves if (m < current[knob.name]) == down]
                    if pick:
                        values[knob.name] = pick[0]
                break
        if not values:
            names = ", ".join(k.name for k in knobs)
            return (
                None,
                f"The offline planner could not act on the suggestion {text!r}: it names none of the knobs ({names}).",
            )
        changes = ", ".join(
            f"{n} {format_literal(current[n])} -> {format_literal(v)}" for n, v in values.items()
        )
        proposal = self._proposal(values, f"Suggestion: {text} ({changes})", files)
        if proposal is None:
            return None, f"The suggestion {text!r} gives edits that do not apply: {changes}."
        return proposal.model_copy(update={"source": "suggestion", "rationale": "a person's suggestion"}), ""

    def proposals(self, context: PlanContext, n: int, exclude: set[str] = frozenset()) -> list[Proposal]:
        """Up to n proposals whose files differ from every trial run and from the fingerprints in `exclude`."""
        knobs = self.knobs(context.champion_files)
        if not knobs:
            return []
        seen = {t.fingerprint for t in context.history if t.fingerprint} | set(exclude)
        # Runs measured beyond the baseline; a wave planned while the first one still runs (its trials pending) goes
        # on screening, and fills the slots left with the surrogate's (or TPE's) guesses.
        measured = [
            t for t in context.history if t.decision != "baseline" and t.wave > 0 and t.status == "finished"
        ]
        proposals: list[Proposal] = []
        if measured and self.config.planner.factorial and not any(t.factors for t in context.history):
            for proposal in self._grid(
                knobs, context, n
            ):  # its cells may repeat a run (the champion's corner)
                seen.add(fingerprint(apply_proposal(context.champion_files, proposal, self.config.editable)))
                proposals.append(proposal)
        if self.config.planner.search == "surrogate":  # TPE fills in once the surrogate has nothing new
            search = itertools.chain(
                self._surrogate_points(knobs, context), self._optuna_points(knobs, context)
            )
        else:
            search = self._optuna_points(knobs, context)
        screening = self._screening_moves(knobs, context.champion_files)
        if measured:
            candidates = search
        elif any(t.status == "running" and t.wave > 0 for t in context.history):
            candidates = itertools.chain(
                screening, search
            )  # the rest of the screening, then the model's guesses
        else:
            candidates = screening  # the first wave: single moves only, even if fewer than n
        if len(proposals) >= n:
            return proposals[:n]
        for values, hypothesis in candidates:
            proposal = self._proposal(values, hypothesis, context.champion_files)
            if proposal is None:
                continue
            key = fingerprint(apply_proposal(context.champion_files, proposal, self.config.editable))
            if key in seen:
                continue
            seen.add(key)
            proposals.append(proposal)
            if len(proposals) == n:
                break
        return proposals

    def _grid(self, knobs: list[Knob], context: PlanContext, n: int) -> list[Proposal]:
        """A two-level factorial grid over the k knobs whose single moves did best (2^k <= n, k >= 2): each knob
        at the champion's value and at its best move, every combination once, so the next evaluation can measure
        main effects and interactions."""
        champion = context.champion
        if champion is None or champion.metric is None:
            return []
        current = self._current_values(knobs, context.champion_files)
        better = -1 if self.goal == "minimize" else 1
        best: dict[str, tuple[float, object]] = {}  # knob -> (gain, value) of its best single move
        for trial in context.history:
            if trial.role != "candidate" or trial.outcome is not Outcome.OK or trial.metric is None:
                continue
            moved = [
                k for k in current if trial.params.get(param_name(k)) != champion.params.get(param_name(k))
            ]
            if len(moved) != 1:
                continue
            gain = better * (trial.metric - champion.metric)
            name = moved[0]
            try:
                value = ast.literal_eval(trial.params[param_name(name)])
            except (ValueError, SyntaxError):
                value = trial.params[param_name(name)]  # a bare string constant, e.g. relu
            if gain > best.get(name, (-math.inf, None))[0]:  # ranked, not filtered: a move that did nothing
                best[name] = (gain, value)  # alone may still interact with another
        k = min(3, len(best), int(math.log2(n)) if n >= 4 else 0)
        if k < 2:
            return []
        chosen = sorted(best, key=lambda name: -best[name][0])[:k]
        levels = {name: (current[name], best[name][1]) for name in chosen}
        grid = []
        for cell in itertools.product((0, 1), repeat=k):
            values = {name: levels[name][index] for name, index in zip(chosen, cell, strict=True)}
            labels = ", ".join(f"{name}={format_literal(v)}" for name, v in values.items())
            proposal = self._proposal(
                {name: v for name, v in values.items() if v != current[name]},
                f"grid {' x '.join(chosen)} [{labels}]",
                context.champion_files,
            )
            if proposal is None:
                return []
            factors = {  # named as in the MLflow params: the effects become metrics named after them
                param_name(name): (format_literal(levels[name][index]), index)
                for name, index in zip(chosen, cell, strict=True)
            }
            grid.append(proposal.model_copy(update={"factors": factors}))
        return grid

    def knobs(self, files: dict[str, str]) -> list[Knob]:
        """The declared knobs and, as the config says, ranges guessed around the constants of the editable scripts
        (`overnight.knobs.campaign_knobs`)."""
        return campaign_knobs(self.config, files)

    def _current_values(self, knobs: list[Knob], files: dict[str, str]) -> dict[str, object]:
        found = knob_values(self.config.editable, files)
        return {k.name: found[k.name] for k in knobs if k.name in found}

    def _screening_moves(self, knobs: list[Knob], files: dict[str, str]):
        """One knob at a time, a step up then a step down, in the order the knobs are declared; then, for a wave
        with room to spare, two steps (they show each numeric knob's curvature to the surrogate)."""
        current = self._current_values(knobs, files)
        for steps in (1, 2):
            for knob in knobs:
                if knob.name not in current or (steps > 1 and knob.type == "choice"):
                    continue
                for value in neighbours(knob, current[knob.name], steps):
                    old = format_literal(current[knob.name])
                    yield {knob.name: value}, f"{knob.name} {old} -> {format_literal(value)}"

    def _surrogate_points(self, knobs: list[Knob], context: PlanContext):
        """The best points of a surrogate fitted to the whole history: its posterior mean's, then draws' (see
        overnight/planners/surrogate.py)."""
        current = self._current_values(knobs, context.champion_files)
        axes = [
            surrogate.Axis(k, current[k.name])
            for k in knobs
            if k.name in current and _in_range(k, current[k.name])
        ]
        champion = context.champion
        if not axes or champion is None:
            return
        distributions = {a.knob.name: optuna_distribution(a.knob) for a in axes}
        sign = 1.0 if self.goal == "minimize" else -1.0
        observations, failed, groups = [], [], {}
        for trial in context.history:
            params = _decode(trial.params, [a.knob for a in axes], distributions)
            if params is None:
                continue
            condition = (trial.hardware, trial.budget_s)
            if trial.outcome in SETTING_FAILED:
                failed.append((params, condition))
            if trial.outcome is not Outcome.OK or trial.metric is None or not math.isfinite(trial.metric):
                continue
            observations.append((params, condition, sign * trial.metric))
            if trial.unbiased:
                groups.setdefault((trial.fingerprint, *condition), []).append(trial.metric)
        if (
            observations
        ):  # a setting that crashed or diverged counts as the worst run seen, so the model avoids it
            worst = max(value for *_, value in observations)
            observations += [(params, condition, worst) for params, condition in failed]
        floor = stats.noise_floor(list(groups.values()))
        model = surrogate.fit(
            axes, observations, (champion.hardware, champion.budget_s), floor.sigma if floor else None
        )
        if model is None:
            return
        seed = hash((self.config.planner.seed, len(context.history))) % 2**31
        rng = np.random.default_rng(seed)
        for draw in range(context.n * ASKS_PER_PROPOSAL):
            point = model.best(model.mean if draw == 0 else model.draw(rng))
            changed = {name: v for name, v in point.items() if v != current[name]}
            if not changed:
                continue
            source = "surrogate's best guess" if draw == 0 else "surrogate draw"
            yield changed, f"{source}: {_moves(current, changed)}"

    def _optuna_points(self, knobs: list[Knob], context: PlanContext):
        """Points suggested by TPE, from a study rebuilt from the whole history.

        Each point lets TPE move only a few knobs (a random subspace) and holds the rest at the champion's values:
        with a dozen knobs and a few dozen noisy trials, moving every knob at once is a random restart, while
        small moves around the champion keep what it has already won.
        """
        current = self._current_values(knobs, context.champion_files)
        distributions = {k.name: optuna_distribution(k) for k in knobs if k.name in current}
        seed = hash((self.config.planner.seed, len(context.history))) % 2**31
        tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=1, multivariate=True, constant_liar=True)
        direction = "minimize" if self.goal == "minimize" else "maximize"
        study = optuna.create_study(direction=direction, sampler=tpe)
        subspaces = random.Random(seed)
        holdable = {
            k.name: current[k.name]
            for k in knobs
            if k.name in distributions and _in_range(k, current[k.name])
        }
        for trial in context.history:
            params = _decode(trial.params, knobs, distributions)
            if params is None:
                continue
            if trial.status == "running":
                study.enqueue_trial(params)
                study.ask(distributions)  # pending: TPE's constant liar steers away from it
            elif trial.outcome is Outcome.OK and trial.metric is not None and math.isfinite(trial.metric):
                study.add_trial(create_trial(params=params, distributions=distributions, value=trial.metric))
            elif trial.outcome is not None:
                study.add_trial(
                    create_trial(params=params, distributions=distributions, state=TrialState.FAIL)
                )
        for _ in range(context.n * ASKS_PER_PROPOSAL):
            free = set(subspaces.sample(sorted(distributions), k=min(KNOBS_PER_MOVE, len(distributions))))
            held = {name: value for name, value in holdable.items() if name not in free}
            with warnings.catch_warnings():  # "experimental" since Optuna 2.4; its interface is what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.sampler = optuna.samplers.PartialFixedSampler(held, tpe)
            asked = study.ask(distributions)
            values = {name: _round(knobs, name, value) for name, value in asked.params.items()}
            changed = {name: v for name, v in values.items() if v != current[name]}
            if not changed:
                continue
            yield changed, f"TPE: {_moves(current, changed)}"

    def _proposal(self, values: dict[str, object], hypothesis: str, files: dict[str, str]) -> Proposal | None:
        edits = [knob_edit(self.config.editable, files, name, value) for name, value in values.items()]
        proposal = Proposal(
            hypothesis=hypothesis,
            rationale="offline search over the declared knobs (Optuna)",
            source="offline",
            edits=edits,
            params={k: v for k, v in values.items()},
        )
        try:
            apply_proposal(files, proposal, self.config.editable)
        except ProposalError:
            return None
        return proposal

    # --- reflect -------------------------------------------------------------------------------------------------

    def reflect(self, outcome: FinishedWave, context: PlanContext | None = None) -> Reflection:
        return Reflection(wave_report(outcome))


def _moves(current: dict[str, object], changed: dict[str, object]) -> str:
    """The changes in words: "LR 0.001 -> 0.002, DEPTH 3 -> 2"."""
    return ", ".join(
        f"{name} {format_literal(current[name])} -> {format_literal(v)}" for name, v in changed.items()
    )


def optuna_distribution(knob: Knob) -> BaseDistribution:
    """The Optuna distribution a knob's values are drawn from (its range, its scale, its choices)."""
    if knob.type == "float":
        return FloatDistribution(knob.low, knob.high, log=knob.log)
    if knob.type == "int":
        return IntDistribution(int(knob.low), int(knob.high), log=knob.log)
    return CategoricalDistribution(list(knob.choices))


def neighbours(knob: Knob, value: object, steps: int = 1) -> list[object]:
    """`steps` steps up and down from the current value, as the knob takes values (`Knob.snap`: inside its range,
    a power of two where it keeps to them; a step: a doubling on a log scale, an eighth of the range otherwise)."""
    if knob.type == "choice":
        return [c for c in knob.choices if c != value][:2]
    if knob.log:
        up, down = value * 2**steps, value / 2**steps
    else:
        step = surrogate.screening_step(knob) * steps
        up, down = value + step, value - step
    moves = []
    for candidate in (up, down):
        candidate = knob.snap(candidate)
        if candidate != value and candidate not in moves:
            moves.append(candidate)
    return moves


def _in_range(knob: Knob, value: object) -> bool:
    if knob.type == "choice":
        return value in knob.choices
    return isinstance(value, (int, float)) and not isinstance(value, bool) and knob.low <= value <= knob.high


def _round(knobs: list[Knob], name: str, value: object) -> object:
    """Optuna's values as the knob takes them (`Knob.snap`: floats to three significant digits, powers of two), so
    values read well and repeats are caught."""
    return next(k for k in knobs if k.name == name).snap(value)


def _decode(params: dict[str, str], knobs: list[Knob], distributions: dict) -> dict[str, object] | None:
    """Knob values from a trial's MLflow params; None when the trial lies outside the search space."""
    decoded: dict[str, object] = {}
    for knob in knobs:
        if knob.name not in distributions:
            continue
        key = param_name(knob.name)
        if key not in params:
            return None
        try:
            value = ast.literal_eval(params[key])
        except (ValueError, SyntaxError):
            value = params[key]
        if not _in_range(knob, value):
            return None
        decoded[knob.name] = value
    return decoded
