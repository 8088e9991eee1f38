"""Report: the morning report of the agent run, in MLflow and as a Prefect markdown artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from overnight.agent_run import report_dir
from overnight.config import CampaignConfig
from overnight.memory.store import Memory
from overnight.report import write_report
from tasks.reflect import artifact_key


@task(name="report", cache_policy=NONE)
def report(config: CampaignConfig, memory: Memory, agent_run_id: str) -> str:
    """Write the night's report (chart and summary) to the state folder and MLflow; publish it in Prefect."""
    written = write_report(memory, report_dir(config, agent_run_id))
    create_markdown_artifact(
        markdown=written.markdown.replace("![progress](progress.png)", f"Chart: {written.chart}"),
        key=artifact_key(config.name, "report"),
        description=f"Morning report of campaign {config.name}",
    )
    return str(written.chart.parent)
