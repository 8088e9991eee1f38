"""Every word overnight sends to a language model is written here, and nowhere else.

The plan prompt is built from: the program's brief (program.md), the champion's editable files, the memory digest
(`digest` of a `MemorySnapshot`: the champion with its measurements and lineage, every trial grouped by the knobs
its change moves with the newest and the near-misses in full, failed trials with log tails, running trials,
insights), what the campaign knows of its rule (`facts_text`: the noise floor, the smallest confirmable gain, how a
wave is judged), the budget left (`budget_text`), the trials already in the wave and the wave size. It must fit a
token limit: the digest shrinks old groups to counts first, then the listing of recent trials (`LEVELS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime

from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot, failures, rank
from overnight.planners.base import CampaignFacts, ConditionNoise
from overnight.planners.history import (
    Group,
    VerdictNumbers,
    history_groups,
    is_near_miss,
    measurements,
    verdicts,
)
from overnight.trial import Outcome

CHARS_PER_TOKEN = 4  # a conservative estimate for English and code; the limit is a guard, not an accounting

SYSTEM = """You are the research agent of overnight, an autonomous ML research loop in the style of Karpathy's \
autoresearch. Each wave, you propose experiments as exact code edits to the champion (the best version so far). \
The engine runs them in parallel under a fixed time budget, measures the metric, keeps a change only if it beats \
the champion by more than the noise margin, and shows you the results next wave. Propose changes that test one clear \
idea each, learn from the history (do not repeat dead ends), and balance safe tuning with bolder ideas."""

PLAN_TASK = """Propose exactly {n} experiments for the next wave.

Make the wave a mix, not variations of one idea: tune the near-misses (shown in full in the memory), combine \
changes that each helped, and include at least one bolder change to the code itself, not only to a constant. Skip \
changes too small to be confirmed: an effect below the smallest confirmable gain (in <campaign_facts>) is almost \
never kept. The trials still running and those already in this wave are being tested: do not repeat them.

Rules for every experiment:
- Edits are exact search/replace blocks on the champion's files shown above. The `search` text must occur exactly once \
in the file (copy it character for character, including spaces); `replace` is the new text.
- Edit only these files: {editable}. The other files of the program are fixed.
- The result must be valid Python. No new dependencies.
- No two experiments may be the same, and none may repeat a trial already run.
- Give each a one-line hypothesis, a rationale grounded in the history, and the effect you expect on {metric}.
Optionally, instead of some single experiments, give a factorial grid (factors x levels) when interactions matter; \
each combination counts as one experiment."""

SUGGESTIONS_TASK = """A person asked for the experiments in <human_suggestions>. The wave must include one experiment \
for each, turned into edits; start its hypothesis with "Suggestion:"."""
SUGGESTION_PREFIX = "Suggestion:"

IN_WAVE = """The wave already holds these trials, planned by the engine (runners-up of the last crowning, re-tested \
on top of the new champion); your experiments join them, so test other ideas:"""

REFLECT_TASK = """The wave above has finished. Reflect on it for the next plan: what was learned (cite the numbers), \
which directions are dead ends to avoid, and which directions look most promising next. Be brief and concrete."""


@dataclass(frozen=True)
class DigestLevel:
    """How much history the prompt shows; the builder steps down these until the prompt fits. Old groups of trials
    shrink to counts first (`groups`: the most recently tried groups listed trial by trial, None for all), then the
    listing (`listed`: the newest trials listed, None for all) and what is shown in full (`full`: the newest
    proposals; `near_misses`: the newest near-misses of the listed groups)."""

    groups: int | None
    listed: int | None
    full: int
    near_misses: int
    failed: int
    insights: int
    log_lines: int


LEVELS = (  # the plan prompt's (in full: about the last wave's proposals, and the near-misses)
    DigestLevel(groups=None, listed=None, full=16, near_misses=30, failed=10, insights=8, log_lines=15),
    DigestLevel(groups=12, listed=None, full=16, near_misses=20, failed=10, insights=8, log_lines=15),
    DigestLevel(groups=6, listed=None, full=16, near_misses=12, failed=10, insights=8, log_lines=15),
    DigestLevel(groups=3, listed=None, full=16, near_misses=8, failed=10, insights=8, log_lines=15),
    DigestLevel(groups=3, listed=60, full=15, near_misses=6, failed=6, insights=5, log_lines=8),
    DigestLevel(groups=2, listed=24, full=8, near_misses=4, failed=4, insights=3, log_lines=4),
    DigestLevel(groups=1, listed=8, full=4, near_misses=2, failed=2, insights=2, log_lines=2),
    DigestLevel(groups=1, listed=2, full=1, near_misses=1, failed=1, insights=1, log_lines=0),
)
# A digest asked for without a level, and the reflect prompt's.
DIGEST = DigestLevel(groups=None, listed=40, full=10, near_misses=10, failed=5, insights=3, log_lines=5)
REFLECT = DigestLevel(groups=6, listed=20, full=5, near_misses=5, failed=5, insights=3, log_lines=3)

HISTORY = """Every trial of the campaign (all nights), grouped by the knobs its change moves, the groups in the \
order they were last tried (newest last). In full: the newest {full} proposals and the near-misses (not kept, yet \
their gain was positive, or runners-up); "vs champion" is the change in the metric against the champion of its \
time."""
# The history of earlier waves settles in blocks of this many waves: its text then stays the same, and is read from
# the prompt cache, for that many waves (a 1-hour cache write costs twice the input price; a read a tenth of it).
SETTLE_EVERY = 4
SETTLED = """The settled history: the trials of {which}, grouped by the knobs their change moves, the groups in \
the order they were last tried (newest last); the near-misses (not kept, yet their gain was positive, or \
runners-up) in full. These lines no longer change; the trials since are in <memory>."""
HISTORY_SINCE = """The trials since the settled history (in <settled_history>), grouped the same way, the groups \
in the order they were last tried (newest last), the newest proposals and the near-misses in full; "vs champion" \
is the change in the metric against the champion of its time."""
GROUP_NAMES = {
    "baseline": "Baselines (the champion as each night began, and its other seeds)",
    "code": "Code changes that move no knob",
    "invalid": "Invalid proposals (they never ran)",
}


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def digest(
    snapshot: MemorySnapshot, level: DigestLevel = DIGEST, settled: tuple[TrialRecord, ...] = ()
) -> str:
    """The memory as compact text: the champion and its measurements, every trial grouped by the knobs its change
    moves (the newest and the near-misses in full, older groups as counts when the level says so), the failures
    with their logs, the trials still running, the insights of the last waves. The `settled` trials are left
    out of the groups: `settled_history` shows them, before the champion's files."""
    metric = snapshot.metric
    lines = [
        f"{len(snapshot.finished)} trials finished so far; metric {metric} ({snapshot.goal}, so "
        f"{'lower' if snapshot.goal == 'minimize' else 'higher'} is better)."
    ]
    lines += _champion(snapshot)
    gone = {t.run_id for t in settled}
    recent = replace(snapshot, trials=tuple(t for t in snapshot.trials if t.run_id not in gone))
    lines += _history(recent, level, HISTORY_SINCE if settled else "")
    lines += _failed(snapshot, level.failed, level.log_lines)
    if snapshot.running:
        lines.append("Trials still running (treat as pending; do not repeat them):")
        lines += [f"  {t.trial_id}: {t.hypothesis}" for t in snapshot.running]
    if level.insights and snapshot.insights:
        lines.append("Insights from earlier waves (newest last):")
        lines += [f"--- \n{text.strip()}" for text in snapshot.insights[-level.insights :]]
    return "\n".join(lines)


def settled_trials(
    snapshot: MemorySnapshot, every: int = SETTLE_EVERY
) -> tuple[tuple[TrialRecord, ...], str]:
    """The trials whose lines no longer change, and which they are in words: every earlier night's, and this
    night's up to a wave that moves on only every `every` waves (at least one finished wave behind the newest), so
    that the prompt's block of them stays the same, and is read from the cache, for `every` waves at a time."""
    if not snapshot.trials:
        return (), ""
    night = snapshot.trials[-1].agent_run_id
    newest = max(t.wave for t in snapshot.trials if t.agent_run_id == night)
    through = max(0, (newest - 1) // every * every)
    settled = tuple(
        t
        for t in snapshot.trials
        if t.status == "finished" and (t.agent_run_id != night or 0 < t.wave <= through)
    )
    earlier = any(t.agent_run_id != night for t in settled)
    which = " and ".join(
        part
        for part in (
            "every earlier night" if earlier else "",
            f"this night's waves 1-{through}" if through else "",
        )
        if part
    )
    return (settled, which) if settled else ((), "")


def settled_history(
    snapshot: MemorySnapshot, settled: tuple[TrialRecord, ...], which: str, level: DigestLevel
) -> str:
    """The settled trials grouped as the memory groups the rest, near-misses in full, nothing compared with
    today's champion: text that stays the same until more trials settle."""
    if not settled:
        return ""
    view = replace(snapshot, trials=settled, champion=None, lineage=())
    lines = _history(view, replace(level, full=0, listed=None), SETTLED.format(which=which))
    return "\n".join(lines)


def _champion(snapshot: MemorySnapshot) -> list[str]:
    """The champion with where it ran and its script's measurements (what every trial is compared with), and its
    lineage."""
    champion, metric = snapshot.champion, snapshot.metric
    if champion is None or champion.metric is None:
        return []
    ran = _ran(champion)
    lines = [f"Champion: {champion.trial_id} {metric}={champion.metric:.6g}" + (f" ({ran})" if ran else "")]
    figures = _figures(measurements(champion, metric), {})
    lines += [f"  its measurements: {figures}"] if figures else []
    lines.append("Champion lineage (newest first):")
    lines += [f"  {_line(t, snapshot)}" for t in snapshot.lineage]
    return lines


def _newest(items: list, n: int | None) -> list:
    return items if n is None else items[max(0, len(items) - n) :]


def _history(snapshot: MemorySnapshot, level: DigestLevel, header: str = "") -> list[str]:
    """Every group of trials: the most recently tried listed trial by trial (the newest and the near-misses in
    full), the older as one line of counts each."""
    groups = history_groups(snapshot.trials)
    if not groups:
        return []
    first_listed = 0 if level.groups is None else max(0, len(groups) - level.groups)
    order = {t.run_id: i for i, t in enumerate(snapshot.trials)}
    candidates = sorted((t for g in groups[first_listed:] for t in g.trials), key=lambda t: order[t.run_id])
    near = _newest([t for t in candidates if is_near_miss(t)], level.near_misses)
    proposals = [t for t in _newest(candidates, level.listed) if t.role == "candidate"]
    in_full = {t.run_id for t in _newest(proposals, level.full) + near}
    shown = {t.run_id for t in _newest(candidates, level.listed)} | in_full
    lines = [header or HISTORY.format(full=level.full)]
    for number, group in enumerate(groups):
        header = _group_header(group, snapshot)
        if number < first_listed:
            lines.append(f"- {header} (not listed)")
            continue
        listed = [t for t in group.trials if t.run_id in shown]
        unlisted = len(group.trials) - len(listed)
        lines.append(f"- {header}" + (f"; {unlisted} older trials not listed" if unlisted else "") + ":")
        for trial in listed:
            lines.append(f"  {_line(trial, snapshot)}")
            if trial.run_id in in_full:
                lines += [f"      {detail}" for detail in _details(trial, snapshot)]
    return lines


def _group_header(group: Group, snapshot: MemorySnapshot) -> str:
    """A group in one line: its name, its trials, the best of them (at which knob values) and how many were kept."""
    name = GROUP_NAMES.get(group.kind) or " + ".join(group.knobs)
    count = len(group.trials)
    if group.kind == "invalid":
        return f"{name}: {count}"
    ranked = rank(group.trials, snapshot.goal)
    best = ""
    if ranked:
        top = ranked[0]
        at = ", ".join(f"{knob}={top.params.get(knob, '?')}" for knob in group.knobs)
        best = f", best {snapshot.metric}={top.metric:.6g} ({top.trial_id}{' at ' + at if at else ''})"
    if group.kind == "baseline":
        return f"{name}: {count} run{'s' * (count != 1)}{best}"
    kept = sum(1 for t in group.trials if t.decision == "keep")
    return f"{name}: {count} trial{'s' * (count != 1)}{best}, {kept} kept"


def _line(trial: TrialRecord, snapshot: MemorySnapshot) -> str:
    """A trial in one short line: id, outcome and decision, metric, its effect (and the one expected), hypothesis."""
    metric = snapshot.metric
    outcome = trial.outcome.value if trial.outcome else "running"
    value = f"{metric}={trial.metric:.6g}" if trial.metric is not None else outcome
    effect = _effect(trial, snapshot.goal)
    notes = [f"{effect:+.4g} vs champion"] if effect is not None else []
    notes += [f"expected {_cut(trial.expected, 40)}"] if trial.expected else []
    note = f" ({'; '.join(notes)})" if notes else ""
    decision = f", {trial.decision}" if trial.decision else ""
    return f"{trial.trial_id} [{outcome}{decision}] {value}{note} {_cut(trial.hypothesis, 120)}"


def _details(trial: TrialRecord, snapshot: MemorySnapshot) -> list[str]:
    """What a trial says in full: its change, where it ran, why it failed, its verdicts' numbers, its script's
    measurements beside the champion's, the effect expected against the effect measured."""
    metric, champion = snapshot.metric, snapshot.champion
    lines = [f"change: {trial.change}"] if trial.change else []
    lines += [_ran(trial)] if _ran(trial) else []
    if trial.outcome not in (None, Outcome.OK):
        lines.append(f"outcome: {trial.outcome.value}: {trial.reason}")
    found = verdicts(trial)
    if found:
        lines.append(f"decision {trial.decision}: " + "; ".join(_verdict(v) for v in found))
    reference = measurements(champion, metric) if champion and champion.run_id != trial.run_id else {}
    figures = _figures(measurements(trial, metric), reference)
    lines += [f"measured: {figures}"] if figures else []
    if trial.expected:
        effect = _effect(trial, snapshot.goal)
        measured = f"measured: {effect:+.4g} {metric}" if effect is not None else "no effect measured"
        lines.append(f"expected: {trial.expected}; {measured}")
    return lines


def _ran(trial: TrialRecord) -> str:
    where = f" on {trial.hardware}" if trial.hardware else ""
    budget = f" with a {trial.budget_s:g} s budget" if trial.budget_s else ""
    return f"ran{where}{budget}" if where or budget else ""


def _effect(trial: TrialRecord, goal: str) -> float | None:
    """The change in the metric its last verdict measured against the champion (negative = lower)."""
    found = verdicts(trial)
    if not found:
        return None
    return -found[-1].gain if goal == "minimize" else found[-1].gain


def _verdict(verdict: VerdictNumbers) -> str:
    champion = f"{verdict.n_champion} champion runs"
    if verdict.stage == "screen":
        text, runs = "screening gain", f"1 run vs {champion}"
    else:
        text, runs = "confirmed gain", f"{verdict.n_candidate} new-seed runs vs {champion}"
    text += f" {verdict.gain:.4g} ± {verdict.se:.2g} se"
    text += f", p {verdict.p_value:.2g}" if verdict.p_value is not None else ""
    text += f" at level {verdict.alpha_t:.2g}" if verdict.alpha_t is not None else ""
    text += f", needed > {verdict.threshold:.4g}" if verdict.threshold is not None else ""
    return f"{text} ({runs})"


def _figures(measured: dict[str, float], reference: dict[str, float]) -> str:
    """A script's measurements by name, each beside the champion's where it has one; tokens/s derived from
    tokens_seen and training_seconds when the script printed no rate."""
    measured, reference = _with_throughput(measured), _with_throughput(reference)
    return ", ".join(
        f"{name} {_number(value)}" + (f" (champion {_number(reference[name])})" if name in reference else "")
        for name, value in sorted(measured.items())
    )


def _with_throughput(figures: dict[str, float]) -> dict[str, float]:
    rated = any("per_s" in name or "/s" in name for name in figures)
    if rated or not figures.get("training_seconds") or "tokens_seen" not in figures:
        return figures
    return {**figures, "tokens/s": figures["tokens_seen"] / figures["training_seconds"]}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.5g}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failed(snapshot: MemorySnapshot, failed: int, log_lines: int) -> list[str]:
    """The last `failed` finished trials that did not end ok, with why, and the last lines of their logs."""
    shown = failures(snapshot.finished)[-failed:] if failed else []
    lines = ["Failed trials, with why:"] if shown else []
    for t in shown:
        lines.append(f"  {t.trial_id} {t.outcome.value}: {t.reason} ({t.hypothesis})")
        log = [line for line in snapshot.failure_logs.get(t.run_id, "").splitlines() if line.strip()]
        lines += [f"    | {line}" for line in log[-log_lines:]] if log_lines else []
    return lines


# --- what the campaign knows of its own rule, and the budget left ---------------------------------------------------

KEEP_RULE = """The keep rule: a change is kept only if, on {n} new-seed runs against {n} new runs of the champion, \
{test}. With no seed noise measured (σ = 0) only min_improvement can keep a change. A change whose true effect is \
below the smallest confirmable gain is almost never kept, however real: each experiment should be able to move \
{metric} by more than that."""
T_TEST = """a one-sided t test passes at level α_t = {level:.2g}{control} and the gain exceeds min_improvement \
{margin:g}: the smallest such gain is t_crit(α_t, dof) × σ × √(2/{n}), or min_improvement if that is larger"""
K_SIGMA = """the gain exceeds min_improvement {margin:g} + {k:g} × σ × √(2/{n})"""
LORD = """ (LORD++ over every confirmation of the campaign, false discovery rate {alpha:g}; the next is \
confirmation {test}: each pass earns level back, each failure spends it)"""
JUDGING = """How a wave is judged: each experiment runs once ({screen_s:g} s budget) and is screened against the \
champion's runs under the same budget and hardware: promising if its gain exceeds min_improvement + {screen_k:g} \
standard errors. The most promising (at most {top} per wave) are confirmed with {n} new-seed runs each \
({confirm_s:g} s), beside {n} new runs of the champion in the same batch. Of those that pass the keep rule, the largest gain is crowned the new \
champion (one change at a time); the others that passed are runners-up, re-tested on top of it in the next wave. A \
new champion is re-measured with fresh seeds before anything is judged against it."""


def facts_text(facts: CampaignFacts | None, metric: str) -> str:
    """What the campaign knows of its rule, in words and numbers: the noise floor of each condition, the smallest
    gain a confirmation there can keep, and how a wave is judged."""
    if facts is None:
        return ""
    if facts.noise:
        lines = [
            f"Noise floor: the spread of one run's {metric} between seeds, from this night's repeated runs of the "
            "same files (baseline copies, confirmations, re-measurements), and the smallest gain a confirmation "
            "can keep under it now:"
        ]
        lines += [f"- {_condition(condition, metric)}" for condition in facts.noise]
    else:
        lines = ["Noise floor: not measured yet (the baseline's copies measure it first)."]
    n = facts.confirm_runs
    if facts.rule == "k_sigma":
        test = K_SIGMA.format(margin=facts.min_improvement, k=facts.k, n=n)
    else:
        lord = facts.error_control == "lord"
        control = LORD.format(alpha=facts.alpha, test=facts.tests_done + 1) if lord else ""
        test = T_TEST.format(level=facts.level, control=control, margin=facts.min_improvement, n=n)
    lines.append(KEEP_RULE.format(n=n, test=test, metric=metric))
    lines.append(
        JUDGING.format(
            screen_s=facts.screen_budget_s,
            screen_k=facts.screen_k,
            top=facts.confirm_top,
            n=n,
            confirm_s=facts.confirm_budget_s,
        )
    )
    return "\n".join(lines)


def _condition(condition: ConditionNoise, metric: str) -> str:
    where = f"{condition.hardware or 'any hardware'}, {condition.budget_s:g} s budget"
    pooled = " (pooled over hardware types: no repeated runs on this one yet)" if condition.pooled else ""
    smallest = (
        f"{condition.smallest_gain:.4g} {metric}"
        if math.isfinite(condition.smallest_gain)
        else "none: nothing can be kept (no seed noise measured and no min_improvement)"
    )
    floor = f"σ = {condition.sigma:.4g} ({condition.runs} runs, {condition.dof} dof)"
    return f"{where}: {floor}{pooled}; smallest confirmable gain {smallest}"


def budget_text(
    *,
    waves: int,
    trials: int | None,
    trial_hours: float | None,
    usd: float | None,
    deadline: datetime | None,
    now: datetime,
    screen_s: float,
    confirm_s: float,
    timeout_s: float,
) -> str:
    """Every budget left after the wave being planned, and the seconds each trial trains (overnight.budget)."""
    parts = [f"{waves} more waves after this one"]
    parts += [f"{trials} trials"] if trials is not None else []
    parts += [f"{trial_hours:.2f} trial-hours"] if trial_hours is not None else []
    parts += [f"${usd:.2f} of spend (language model and compute)"] if usd is not None else []
    if deadline is not None:
        minutes = max(0.0, (deadline - now).total_seconds()) / 60
        parts.append(f"the deadline at {deadline:%H:%M}, {minutes:.0f} minutes from now")
    if screen_s == confirm_s:
        trains = f"each trial trains for {screen_s:g} s"
    else:
        trains = f"a screening run trains for {screen_s:g} s, a confirmation run for {confirm_s:g} s"
    parts.append(f"{trains} (stopped past {timeout_s:g} s)")
    return "; ".join(parts)


def files_block(files: dict[str, str]) -> str:
    return "\n\n".join(f'<file path="{path}">\n{text}</file>' for path, text in sorted(files.items()))


@dataclass(frozen=True)
class Prompt:
    """A user prompt in three parts, each sent as its own block. `brief` (the program's brief) is the same for the
    whole campaign and `files` (the champion's files) until the champion changes: both are sent with Anthropic's
    cache control, so later calls read them from the cache, and a new champion rewrites only its files. `rest`
    changes every wave (the memory, the budget, the task)."""

    brief: str
    files: str
    rest: str
    settled: str = ""  # the settled history: it changes every few waves (SETTLE_EVERY), between the two

    @property
    def text(self) -> str:
        return self.brief + self.settled + self.files + self.rest

    @property
    def parts(self) -> tuple[tuple[str, bool], ...]:
        """The blocks in the order they are sent, each with whether it ends a cached part; empty ones left out."""
        found = ((self.brief, True), (self.settled, True), (self.files, True), (self.rest, False))
        return tuple((text, cached) for text, cached in found if text)


def plan_prompt(
    *,
    brief: str,
    champion_files: dict[str, str],
    digest: str,
    n: int,
    editable: list[str],
    metric: str,
    budget_left: str,
    suggestions: tuple[str, ...] = (),
    facts: str = "",
    in_wave: tuple[str, ...] = (),
    settled: str = "",
) -> Prompt:
    asked = ""
    if suggestions:
        listed = "\n".join(f"- {text}" for text in suggestions)
        asked = f"<human_suggestions>\n{listed}\n</human_suggestions>\n\n{SUGGESTIONS_TASK}\n\n"
    start = f"<program_brief>\n{brief.strip()}\n</program_brief>\n\n"
    files = f"<champion_files>\n{files_block(champion_files)}\n</champion_files>\n\n"
    known = f"<campaign_facts>\n{facts.strip()}\n</campaign_facts>\n\n" if facts else ""
    wave = ""
    if in_wave:
        listed = "\n".join(f"- {text}" for text in in_wave)
        wave = f"<this_wave>\n{IN_WAVE}\n{listed}\n</this_wave>\n\n"
    rest = (
        f"<memory>\n{digest.strip()}\n</memory>\n\n"
        + known
        + f"<budget_left>{budget_left}</budget_left>\n\n"
        + wave
        + asked
        + PLAN_TASK.format(n=n, editable=", ".join(editable), metric=metric)
    )
    old = _settled_block(settled)
    return Prompt(start, files, rest, old)


def _settled_block(settled: str) -> str:
    return f"<settled_history>\n{settled.strip()}\n</settled_history>\n\n" if settled else ""


def reflect_prompt(*, brief: str, wave_report: str, digest: str, settled: str = "") -> Prompt:
    """The reflection's prompt: the brief and the settled history first, as the plan prompt has them, so each
    wave's reflection reads them back from the cache the one before wrote."""
    start = f"<program_brief>\n{brief.strip()}\n</program_brief>\n\n"
    old = _settled_block(settled)
    rest = (
        f"<memory>\n{digest.strip()}\n</memory>\n\n"
        f"<finished_wave>\n{wave_report.strip()}\n</finished_wave>\n\n" + REFLECT_TASK
    )
    return Prompt(start, "", rest, old)


def validation_feedback(errors: list[str]) -> str:
    """What the model reads when its answer fails validation (instructor sends it back with the retry)."""
    return "The proposals cannot be run as written:\n" + "\n".join(f"- {e}" for e in errors)


# --- repairs: a proposal that crashed before its first result goes back once, with its traceback --------------------

REPAIR_TASK = """The experiment in <crashed_experiment> crashed before its first result, most likely from a bug in \
its edits rather than a bad idea. Give exactly 1 experiment: the same idea with the bug fixed, as edits to the \
champion's files shown above (not on top of the crashed version). The same rules apply: edit only {editable}; the \
`search` text must occur exactly once in the champion's file; the result must be valid Python. If the idea cannot \
work at all, give the closest change that can."""


def edits_block(edits: list) -> str:
    """A proposal's edits as the model wrote them."""
    return "\n".join(
        f'<edit path="{e.path}">\n<search>\n{e.search}\n</search>\n<replace>\n{e.replace}\n</replace>\n</edit>'
        for e in edits
    )


def repair_prompt(
    *, plan: Prompt, hypothesis: str, edits: list, reason: str, log_tail: str, editable: list[str]
) -> Prompt:
    """The repair of one crashed proposal, after the plan prompt's brief and files: their cache, written by the
    plan's calls, is read back."""
    rest = (
        f"<crashed_experiment>\n<hypothesis>{hypothesis}</hypothesis>\n{edits_block(edits)}\n"
        f"<outcome>{reason}</outcome>\n<log_tail>\n{log_tail.strip()}\n</log_tail>\n</crashed_experiment>\n\n"
        + REPAIR_TASK.format(editable=", ".join(editable))
    )
    return replace(plan, rest=rest)


# --- the memory Claude may query before it answers (answered by overnight.memory.queries) ---------------------------

MEMORY_TOOLS = [
    {
        "name": "search_trials",
        "description": "Search every trial of the campaign, all nights, newest first. Each filter given must hold: "
        "`text` in the hypothesis, `knob` (an UPPER_CASE constant) moved from the champion it was built on, "
        "`outcome` (ok, crash, timeout, over_budget, invalid, oom...), `decision` (keep, discard, runner_up...). "
        "One line per trial: id, wave, outcome, decision, metric, knobs moved, hypothesis.",
        "input_schema": {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "knob": {"type": "string"},
                "outcome": {"type": "string"},
                "decision": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
        },
    },
    {
        "name": "read_trial",
        "description": "One trial whole, by its id: hypothesis, rationale, expected effect, hardware and budget, "
        "outcome, decision and its reason, every metric the script printed, its diff, and its log's last lines.",
        "input_schema": {
            "type": "object",
            "properties": {"trial_id": {"type": "string"}},
            "required": ["trial_id"],
        },
    },
    {
        "name": "lineage",
        "description": "The champion's lineage from the program as shipped: each change crowned, its metric, its "
        "confirmed gain, the verdict that crowned it and its diff.",
        "input_schema": {"type": "object", "properties": {}},
    },
]

RESEARCH_TASK = """You may first query the campaign's memory with the memory tools (at most {calls} queries in \
all), to look up what the summary above leaves out: a near-miss's diff, a crash's log, everything tried on one knob. \
Then answer with the WaveAnswer tool, as the task above says. If the summary is enough, answer at once."""


def answer_block(queries: list[tuple[str, dict, str]], failed: str = "") -> str:
    """For the call that asks for the wave after the memory conversation: what Claude's queries returned, (tool,
    arguments, answer) each, and why the answer it gave there could not run."""
    text = ""
    if queries:
        shown = "\n".join(
            f"<query tool=\"{tool}\" arguments='{json.dumps(arguments, sort_keys=True)}'>\n{answer.strip()}\n</query>"
            for tool, arguments, answer in queries
        )
        text += f"\n\n<memory_queries>\nWhat your queries of the memory returned:\n{shown}\n</memory_queries>"
    if failed:
        text += f"\n\n<last_answer_failed>\n{failed}\n</last_answer_failed>"
    return text
