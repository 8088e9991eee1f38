"""The memory a planner queries while it plans: each query reads the campaign's MLflow records (through `Memory`)
and answers in short text, for every night of the campaign.

The tools Claude is offered (names, descriptions, input schemas) are written in `overnight.planners.prompts`
(`MEMORY_TOOLS`); this module answers them. A query it cannot answer (no such tool, a bad argument, an unknown
trial) raises `QueryError`, whose message goes back to the model as the tool's error.
"""

from __future__ import annotations

from overnight.memory.records import TrialRecord
from overnight.memory.store import Memory

ANSWER_CHARS = 6000  # one answer is cut here, so that a query cannot flood the prompt
DIFF_CHARS, LOG_LINES, MAX_LISTED = 3000, 40, 50


class QueryError(ValueError):
    """A query that cannot be answered as asked; the message says why, for the model to correct."""


class MemoryQueries:
    """The queries over one campaign's memory; `lookup` is what a planner is handed (`PlanContext.lookup`)."""

    def __init__(self, memory: Memory):
        self.memory = memory

    def lookup(self, tool: str, arguments: dict) -> str:
        handlers = {
            "search_trials": self.search_trials,
            "read_trial": self.read_trial,
            "lineage": self.lineage,
        }
        if tool not in handlers:
            raise QueryError(f"there is no tool {tool!r}; the tools are {', '.join(handlers)}")
        try:
            answer = handlers[tool](**arguments)
        except TypeError as error:  # an argument the tool does not take, or a missing one
            raise QueryError(f"{tool}: {error}") from None
        return answer if len(answer) <= ANSWER_CHARS else answer[:ANSWER_CHARS] + "\n[... cut]"

    def search_trials(
        self, text: str = "", knob: str = "", outcome: str = "", decision: str = "", limit: int = 20
    ) -> str:
        """The trials whose hypothesis contains `text`, that moved `knob`, that ended in `outcome` or were
        decided `decision` (every filter given must hold), newest first."""
        trials = self.memory.trials()
        by_run = {t.run_id: t for t in trials}
        found = [
            t
            for t in reversed(trials)
            if (not text or text.lower() in t.hypothesis.lower())
            and (not knob or knob in moved_knobs(t, by_run.get(t.parent_champion)))
            and (not outcome or (t.outcome is not None and t.outcome.value == outcome))
            and (not decision or t.decision == decision)
        ]
        if not found:
            return "No trial matches."
        shown = found[: max(1, min(int(limit), MAX_LISTED))]
        lines = [f"{len(found)} trials match; the newest {len(shown)}:"]
        lines += [self._line(t, by_run.get(t.parent_champion)) for t in shown]
        return "\n".join(lines)

    def read_trial(self, trial_id: str) -> str:
        """One trial whole: its change, diff, measurements, decision with its numbers, and its log's last lines."""
        matches = [t for t in self.memory.trials() if t.trial_id == trial_id]
        if not matches:
            raise QueryError(f"no trial has the id {trial_id!r} (ids look like the ones search_trials lists)")
        trial = matches[-1]
        texts = self.memory.trial_texts(trial.run_id)
        outcome = trial.outcome.value if trial.outcome else "running"
        lines = [
            f"{trial.trial_id} (wave {trial.wave}, {trial.role}): {trial.hypothesis}",
            f"rationale: {texts['rationale'] or '-'}",
            f"expected effect: {texts['expected'] or '-'}",
            f"ran on: {trial.hardware or '-'}, budget {trial.budget_s:g} s, seed {trial.seed}",
            f"outcome: {outcome}" + (f" ({trial.reason})" if trial.reason else ""),
            f"decision: {trial.decision or '-'}"
            + (f" ({texts['decision_reason']})" if texts["decision_reason"] else ""),
            "metrics: " + (", ".join(f"{k}={v:.6g}" for k, v in sorted(trial.metrics.items())) or "-"),
        ]
        diff = self.memory.read_artifact(trial.run_id, "diff.patch")
        lines += ["diff:", diff[:DIFF_CHARS] + ("\n[... cut]" if len(diff) > DIFF_CHARS else "")]
        log = [line for line in self.memory.read_artifact(trial.run_id, "log_tail.txt").splitlines() if line]
        if log:
            lines += [f"log (last {min(len(log), LOG_LINES)} lines):", *log[-LOG_LINES:]]
        return "\n".join(lines)

    def lineage(self) -> str:
        """The champion's lineage, from the program as shipped: each change crowned, its gain, why, and its diff."""
        versions = self.memory.champion_versions()
        if not versions:
            return "No champion yet."
        metric = self.memory.metric
        lines = []
        for version in versions:
            value = f"{metric}={version.metric:.6g}" if version.metric is not None else f"{metric} unknown"
            gain = (
                f", confirmed gain {version.confirmed_gain:.4g}" if version.confirmed_gain is not None else ""
            )
            lines.append(f"v{version.version} {version.trial_id}: {value}{gain}: {version.hypothesis}")
            if version.verdict:
                lines.append(f"  why: {version.verdict}")
            if version.step_diff:
                lines.append("  " + version.step_diff[:1000].replace("\n", "\n  ").rstrip())
        return "\n".join(lines)

    def _line(self, trial: TrialRecord, parent: TrialRecord | None) -> str:
        value = f"{self.memory.metric}={trial.metric:.6g}" if trial.metric is not None else "-"
        outcome = trial.outcome.value if trial.outcome else "running"
        moves = ", ".join(
            f"{k} {parent.params.get(k)} -> {trial.params[k]}" for k in sorted(moved_knobs(trial, parent))
        )
        verdict = f", {trial.decision}" if trial.decision else ""
        return f"{trial.trial_id} w{trial.wave} [{outcome}{verdict}] {value} {moves + '; ' if moves else ''}{trial.hypothesis}"


def moved_knobs(trial: TrialRecord, parent: TrialRecord | None) -> set[str]:
    """The knobs (UPPER_CASE constants, the trial's params) whose value differs from the champion it was built on."""
    if parent is None:
        return set()
    return {k for k, v in trial.params.items() if parent.params.get(k) != v}
