"""The morning report of a night (an agent run): a progress chart and a markdown summary, from MLflow alone.

The chart follows autoresearch's progress.png: every trial a dot, the kept improvements a step line, each annotated
with what changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from overnight.evaluation import improvement
from overnight.memory import AgentRunRecord, Memory, TrialRecord
from overnight.results import Outcome

CHART_SIZE_PX = (1200, 600)


@dataclass(frozen=True)
class Report:
    agent_run_id: str
    markdown: str
    chart: Path


def write_report(
    memory: Memory, out_dir: Path, night: date | None = None, prefect_ui: str = "http://127.0.0.1:4200"
) -> Report:
    """The report of the night's agent run (the newest one when no date is given), written to out_dir and MLflow."""
    agent = memory.agent_run_on(night)
    trials = [t for t in memory.trials() if t.agent_run_id == agent.run_id]
    if not trials:
        raise LookupError(f"agent run {agent.name} has no trials to report on")
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / "progress.png"
    draw_progress(trials, memory.metric, memory.goal, chart)
    markdown = _markdown(memory, agent, trials, prefect_ui)
    (out_dir / "report.md").write_text(markdown)
    memory.log_report(agent.run_id, markdown, chart)
    return Report(agent.run_id, markdown, chart)


def draw_progress(trials: list[TrialRecord], metric: str, goal: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ok = [(i, t) for i, t in enumerate(trials) if t.outcome is Outcome.OK and t.metric is not None]
    failed = [i for i, t in enumerate(trials) if t.outcome not in (None, Outcome.OK)]
    width, height = CHART_SIZE_PX
    figure, axes = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
    axes.scatter(
        [i for i, _ in ok], [t.metric for _, t in ok], s=18, color="#9aa5b1", label="trial", zorder=2
    )
    steps_x, steps_y = [], []
    for i, trial in ok:
        if trial.decision in ("baseline", "keep"):
            steps_x.append(i)
            steps_y.append(trial.metric)
            label = "baseline" if trial.decision == "baseline" else trial.hypothesis[:48]
            axes.annotate(label, (i, trial.metric), textcoords="offset points", xytext=(4, 6), fontsize=7)
    if steps_x:
        steps_x.append(len(trials) - 1)
        steps_y.append(steps_y[-1])
        axes.step(steps_x, steps_y, where="post", color="#d9480f", linewidth=2, label="champion", zorder=3)
        axes.scatter(steps_x[:-1], steps_y[:-1], s=36, color="#d9480f", zorder=4)
    if failed:
        low, high = axes.get_ylim()
        axes.scatter(failed, [high] * len(failed), marker="x", color="#c92a2a", label="failed", zorder=2)
    axes.set_xlabel("trial")
    axes.set_ylabel(f"{metric} ({'lower' if goal == 'minimize' else 'higher'} is better)")
    kept = sum(1 for t in trials if t.decision == "keep")
    axes.set_title(f"{len(trials)} trials, {kept} improvements kept")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _markdown(memory: Memory, agent: AgentRunRecord, trials: list[TrialRecord], prefect_ui: str) -> str:
    metric, goal = memory.metric, memory.goal
    baseline = next(t for t in trials if t.decision == "baseline")
    kept = [t for t in trials if t.decision == "keep"]
    night_champion = kept[-1] if kept else baseline
    first = next((t for t in memory.trials() if t.decision == "baseline"), baseline)
    champion = memory.champion() or night_champion
    outcomes = Counter(t.outcome.value if t.outcome else "running" for t in trials)
    llm = memory.llm_totals(agent.run_id)

    def pct(before: float, after: float) -> str:
        gain = improvement(goal, before, after)
        return f"{before:.6g} -> {after:.6g} ({100 * gain / abs(before):+.2f}%)"

    lines = [
        f"# overnight report: {agent.name}",
        "",
        f"- Night: {datetime.fromtimestamp(agent.started_ms / 1000):%Y-%m-%d %H:%M}, {len(trials)} trials",
        f"- This night: {metric} {pct(baseline.metric, night_champion.metric)}",
        f"- All nights: {metric} {pct(first.metric, champion.metric)}",
        "- Outcomes: " + ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())),
        f"- Spend: {sum(t.duration_s for t in trials) / 3600:.3f} trial-hours; language model: "
        f"${llm.get('usd', 0.0):.2f}, {int(llm.get('input_tokens', 0))} input and "
        f"{int(llm.get('output_tokens', 0))} output tokens",
        "",
        "## Changes kept tonight",
        "",
    ]
    if kept:
        lines += [f"| trial | change | {metric} | better by |", "|---|---|---|---|"]
        previous = baseline.metric
        for trial in kept:
            lines.append(
                f"| {trial.trial_id} | {trial.hypothesis} | {trial.metric:.6g} | "
                f"{improvement(goal, previous, trial.metric):.4g} |"
            )
            previous = trial.metric
    else:
        lines.append("None: no trial beat the champion by the margin.")
    lines += [
        "",
        "![progress](progress.png)",
        "",
        f"MLflow: {memory.ui_url()} (agent run {agent.run_id})",
    ]
    flow_run = agent.params.get("prefect_flow_run_id", "-")
    if flow_run != "-":
        lines.append(f"Prefect: {prefect_ui}/runs/flow-run/{flow_run}")
    return "\n".join(lines) + "\n"
