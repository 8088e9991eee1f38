"""Every word overnight sends to a language model is written here, and nowhere else.

The plan prompt is built from: the program's brief (program.md), the champion's editable files, the memory digest
(`digest` of a `MemorySnapshot`: champion and lineage, best, recent, failed trials with log tails, running trials,
insights), the wave size and the budget left. It must fit a token limit: the digest shrinks older history first
(whole records become counts).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot, failures

CHARS_PER_TOKEN = 4  # a conservative estimate for English and code; the limit is a guard, not an accounting

SYSTEM = """You are the research agent of overnight, an autonomous ML research loop in the style of Karpathy's \
autoresearch. Each wave, you propose experiments as exact code edits to the champion (the best version so far). \
The engine runs them in parallel under a fixed time budget, measures the metric, keeps a change only if it beats \
the champion by more than the noise margin, and shows you the results next wave. Propose changes that test one clear \
idea each, learn from the history (do not repeat dead ends), and balance safe tuning with bolder ideas."""

PLAN_TASK = """Propose exactly {n} experiments for the next wave.

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

REFLECT_TASK = """The wave above has finished. Reflect on it for the next plan: what was learned (cite the numbers), \
which directions are dead ends to avoid, and which directions look most promising next. Be brief and concrete."""


@dataclass(frozen=True)
class DigestLevel:
    """How much history the prompt shows; the builder steps down these until the prompt fits."""

    best: int
    recent: int
    failed: int
    insights: int
    log_lines: int


LEVELS = (  # the plan prompt's
    DigestLevel(best=10, recent=30, failed=10, insights=8, log_lines=15),
    DigestLevel(best=8, recent=15, failed=6, insights=5, log_lines=8),
    DigestLevel(best=5, recent=8, failed=4, insights=3, log_lines=4),
    DigestLevel(best=3, recent=4, failed=2, insights=2, log_lines=2),
    DigestLevel(best=1, recent=2, failed=1, insights=1, log_lines=0),
)
# A digest asked for without a level, and the reflect prompt's.
DIGEST = DigestLevel(best=5, recent=10, failed=5, insights=3, log_lines=5)
REFLECT = DigestLevel(best=5, recent=10, failed=5, insights=3, log_lines=3)


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def digest(snapshot: MemorySnapshot, level: DigestLevel = DIGEST) -> str:
    """The memory as compact text: whole records, newest first to stay; older history is summarised as counts,
    never cut mid-record."""
    metric, finished = snapshot.metric, snapshot.finished
    lines = [
        f"{len(finished)} trials finished so far; metric {metric} ({snapshot.goal}, so "
        f"{'lower' if snapshot.goal == 'minimize' else 'higher'} is better)."
    ]
    if snapshot.champion and snapshot.champion.metric is not None:
        lines.append(f"Champion: {snapshot.champion.trial_id} {metric}={snapshot.champion.metric:.6g}")
        lines.append("Champion lineage (newest first):")
        lines += [f"  {_describe(t, metric)}" for t in snapshot.lineage]
    if snapshot.best(level.best):
        lines.append(f"Best trials (top {level.best}):")
        lines += [f"  {_describe(t, metric)}" for t in snapshot.best(level.best)]
    lines += _recent(finished, level.recent, metric)
    lines += _failed(snapshot, level.failed, level.log_lines)
    if snapshot.running:
        lines.append("Trials still running (treat as pending; do not repeat them):")
        lines += [f"  {t.trial_id}: {t.hypothesis}" for t in snapshot.running]
    if level.insights and snapshot.insights:
        lines.append("Insights from earlier waves (newest last):")
        lines += [f"--- \n{text.strip()}" for text in snapshot.insights[-level.insights :]]
    return "\n".join(lines)


def _recent(finished: list[TrialRecord], recent: int, metric: str) -> list[str]:
    """The last `recent` finished trials whole, and the older ones as counts by outcome."""
    shown = finished[-recent:]
    older = finished[: len(finished) - len(shown)]
    lines = []
    if older:
        counts = Counter(t.outcome.value if t.outcome else "running" for t in older)
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        lines.append(f"Older trials not listed: {len(older)} ({summary}).")
    if shown:
        lines.append(f"Recent trials (last {len(shown)}, oldest first):")
        lines += [f"  {_describe(t, metric)}" for t in shown]
    return lines


def _failed(snapshot: MemorySnapshot, failed: int, log_lines: int) -> list[str]:
    """The last `failed` finished trials that did not end ok, with why, and the last lines of their logs."""
    shown = failures(snapshot.finished)[-failed:] if failed else []
    lines = ["Failed trials, with why:"] if shown else []
    for t in shown:
        lines.append(f"  {t.trial_id} {t.outcome.value}: {t.reason} ({t.hypothesis})")
        log = [line for line in snapshot.failure_logs.get(t.run_id, "").splitlines() if line.strip()]
        lines += [f"    | {line}" for line in log[-log_lines:]] if log_lines else []
    return lines


def _describe(trial: TrialRecord, metric: str) -> str:
    value = (
        f"{metric}={trial.metric:.6g}"
        if trial.metric is not None
        else (trial.outcome.value if trial.outcome else "running")
    )
    outcome = trial.outcome.value if trial.outcome else "running"
    return f"{trial.trial_id} [{outcome}{', ' + trial.decision if trial.decision else ''}] {value} {trial.hypothesis}"


def files_block(files: dict[str, str]) -> str:
    return "\n\n".join(f'<file path="{path}">\n{text}</file>' for path, text in sorted(files.items()))


@dataclass(frozen=True)
class Prompt:
    """A user prompt in two parts. `cached` is the same on every call until the champion changes (the brief, the
    champion's files): it is sent with Anthropic's cache control, so later calls read it from the cache. `rest`
    changes every wave (the memory, the budget, the task)."""

    cached: str
    rest: str

    @property
    def text(self) -> str:
        return self.cached + self.rest


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
) -> Prompt:
    asked = ""
    if suggestions:
        listed = "\n".join(f"- {text}" for text in suggestions)
        asked = f"<human_suggestions>\n{listed}\n</human_suggestions>\n\n{SUGGESTIONS_TASK}\n\n"
    cached = (
        f"<program_brief>\n{brief.strip()}\n</program_brief>\n\n"
        f"<champion_files>\n{files_block(champion_files)}\n</champion_files>\n\n"
    )
    rest = (
        f"<memory>\n{digest.strip()}\n</memory>\n\n"
        f"<budget_left>{budget_left}</budget_left>\n\n"
        + asked
        + PLAN_TASK.format(n=n, editable=", ".join(editable), metric=metric)
    )
    return Prompt(cached, rest)


def reflect_prompt(*, brief: str, wave_report: str, digest: str) -> str:
    return (
        f"<program_brief>\n{brief.strip()}\n</program_brief>\n\n"
        f"<memory>\n{digest.strip()}\n</memory>\n\n"
        f"<finished_wave>\n{wave_report.strip()}\n</finished_wave>\n\n" + REFLECT_TASK
    )


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
    *, cached: str, hypothesis: str, edits: list, reason: str, log_tail: str, editable: list[str]
) -> Prompt:
    """The repair of one crashed proposal; `cached` is the plan prompt's unchanging start, so it is read from the
    cache the plan call wrote."""
    rest = (
        f"<crashed_experiment>\n<hypothesis>{hypothesis}</hypothesis>\n{edits_block(edits)}\n"
        f"<outcome>{reason}</outcome>\n<log_tail>\n{log_tail.strip()}\n</log_tail>\n</crashed_experiment>\n\n"
        + REPAIR_TASK.format(editable=", ".join(editable))
    )
    return Prompt(cached, rest)


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

EXPLORE_TASK = """Before you answer, you may query the campaign's memory with the tools offered (at most {calls} \
queries in all): look up what the summary above leaves out, such as a near-miss's diff, a crash's log or everything \
tried on one knob. When you know enough, reply with a short plain-text note of what you found and call no tool; you \
will then be asked for the wave."""


def memory_queries_block(queries: list[tuple[str, dict, str]]) -> str:
    """What Claude's queries returned, for the call that asks for the wave: (tool, arguments, answer) each."""
    if not queries:
        return ""
    shown = "\n".join(
        f"<query tool=\"{tool}\" arguments='{json.dumps(arguments, sort_keys=True)}'>\n{answer.strip()}\n</query>"
        for tool, arguments, answer in queries
    )
    return f"\n\n<memory_queries>\nWhat your queries of the memory returned:\n{shown}\n</memory_queries>"
