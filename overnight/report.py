"""The morning report of a night (an agent run): a progress chart and a markdown summary, from MLflow alone.

The chart follows autoresearch's progress.png: every trial a dot, the kept improvements a step line, each annotated
with what changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from overnight.memory.records import AgentRunRecord, ChampionVersion, TrialRecord
from overnight.memory.store import Memory
from overnight.policy import improvement
from overnight.trial import Outcome

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
    trials = memory.trials(agent.run_id)
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
    first = next(iter(memory.trials(decision="baseline")), baseline)  # the first night's
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
        f"- This night: {metric} {_this_night(agent, metric, pct(baseline.metric, night_champion.metric))}",
        f"- All nights: {metric} {_all_nights(first, baseline, pct(first.metric, champion.metric))}",
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
    versions = memory.champion_versions()
    lines += ["", "## Champion lineage", "", *lineage_table(versions, metric), ""]
    if warnings := holdout_warnings(versions, metric):
        lines += [*warnings, ""]
    if versions and versions[-1].cumulative_diff:
        lines += [
            "The champion's diff from the program as shipped:",
            "",
            *_fenced(versions[-1].cumulative_diff),
        ]
    else:
        lines.append("The champion is still the program as shipped.")
    lines += [
        "",
        "![progress](progress.png)",
        "",
        f"MLflow: {memory.ui_url()} (this agent run: {memory.ui_url(run_id=agent.run_id)})",
    ]
    flow_run = agent.params.get("prefect_flow_run_id", "-")
    if flow_run != "-":
        lines.append(f"Prefect: {prefect_ui}/runs/flow-run/{flow_run}")
    return "\n".join(lines) + "\n"


def _this_night(agent: AgentRunRecord, metric: str, single_runs: str) -> str:
    """The night's improvement as the agent run's summary recorded it (overnight.agent_run.summarise: the champion's
    fresh runs against the baseline's copies, with its 95% interval), so the report, the CLI, MLflow and `status`
    show one line; an agent run that never finished has no summary, and its single runs are shown, saying so."""
    if not agent.night:
        return f"{single_runs} (single runs: the agent run did not finish)"
    return agent.night


def _all_nights(first: TrialRecord, baseline: TrialRecord, single_runs: str) -> str:
    """Since the campaign began: on its first night, the night's own line above; later, single runs, saying so."""
    if first.run_id == baseline.run_id:
        return "as this night (the campaign's first)"
    return f"{single_runs} (single runs: the first night's baseline, the champion's crowning run)"


def lineage_table(versions: list[ChampionVersion], metric: str) -> list[str]:
    """The champion's versions as a markdown table, oldest first; "-" where a value was not recorded. Where a
    holdout ran, its value stands beside the validation metric, flagged where it disagrees with it."""
    holdout = any(v.holdout_status for v in versions)
    extra = f" holdout {metric} |" if holdout else ""
    lines = [
        f"| version | trial | change | {metric} |{extra} confirmed gain | verdict |",
        "|---|---|---|---|---|---|" + ("---|" if holdout else ""),
    ]
    for v in versions:
        value = f"{v.metric:.6g}" if v.metric is not None else "-"
        held = f" {_holdout_cell(v)} |" if holdout else ""
        gain = f"{v.confirmed_gain:.4g}" if v.confirmed_gain is not None else "-"
        lines.append(
            f"| {v.version} | {_cell(v.trial_id)} | {_cell(v.hypothesis)} | {value} |{held} {gain} | "
            f"{_cell(v.verdict) or '-'} |"
        )
    return lines


def _holdout_cell(v: ChampionVersion) -> str:
    """A version's holdout: its value (flagged if worse than its parent's), else how its measurement went."""
    if v.holdout is not None:
        return f"{v.holdout:.6g}" + (" **worse than its parent**" if v.holdout_worse else "")
    return v.holdout_status.split(":")[0] or "-"


def holdout_warnings(versions: list[ChampionVersion], metric: str) -> list[str]:
    """A line for every version that improved on validation but got worse on the holdout than its parent."""
    return [
        f"- **Holdout:** version {v.version} ({v.trial_id}) improved {metric} on validation but got worse on the "
        f"holdout than version {v.version - 1}: its gain may not be real."
        for v in versions
        if v.holdout_worse
    ]


def lineage_markdown(versions: list[ChampionVersion], metric: str) -> str:
    """LINEAGE.md of an export: the table, then each version's change from its parent."""
    champion = versions[-1]
    lines = [
        f"# Champion lineage: {champion.trial_id}",
        "",
        "Version 0 is the program as shipped; each later version is a change the campaign kept, built on the one "
        f"before it. The confirmed gain is in {metric} units over its parent (positive = better; - where it was "
        "not recorded). `champion.patch` holds the champion's whole diff from the program as shipped.",
        "",
        *lineage_table(versions, metric),
    ]
    if warnings := holdout_warnings(versions, metric):
        lines += ["", *warnings]
    for v in versions[1:]:
        lines += [
            "",
            f"## Version {v.version}: {v.trial_id}",
            "",
            f"{v.hypothesis}",
            "",
            f"MLflow run {v.run_id}, built on version {v.version - 1} (run {v.parent_run_id}).",
            "",
            *_fenced(v.step_diff),
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text that stays inside one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _fenced(text: str, language: str = "diff") -> list[str]:
    """A fenced code block whose fence no line of the text can close."""
    fence = "```"
    while fence in text:
        fence += "`"
    return [fence + language, text.rstrip("\n"), fence]
