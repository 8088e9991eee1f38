"""Reflect: the planner's insights on the wave, stored in MLflow and published as Prefect artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from overnight.planners import FinishedWave, Planner
from overnight.wave import reflect as core
from overnight.wave.scope import WaveScope


def artifact_key(campaign: str, suffix: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes; a stable key makes a history per campaign."""
    slug = "".join(c if c.isalnum() else "-" for c in campaign.lower()).strip("-")
    return f"{slug}-{suffix}"


@task(name="reflect", task_run_name="reflect on wave {outcome.wave}", cache_policy=NONE)
def reflect(scope: WaveScope, planner: Planner, outcome: FinishedWave, note: str = "") -> str:
    """Write the reflection and the wave's trial table to MLflow and to the Prefect UI."""
    campaign = scope.config.name
    reflection, table = core.reflect(scope, planner, outcome, note)
    link = scope.memory.ui_url()
    create_table_artifact(
        table=table,
        key=artifact_key(campaign, "wave-trials"),
        description=f"Trials of wave {outcome.wave} of campaign {campaign}. MLflow: {link}",
    )
    create_markdown_artifact(
        markdown=reflection + f"\n[Open the campaign in MLflow]({link})\n",
        key=artifact_key(campaign, "wave-reflection"),
        description=f"Reflection on wave {outcome.wave} of campaign {campaign}",
    )
    return reflection
