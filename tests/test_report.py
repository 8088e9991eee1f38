"""The morning report: the chart is a real picture and the numbers are MLflow's."""

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from PIL import Image, ImageStat
from prefect.client.orchestration import get_client

from flows.campaign import campaign_flow
from overnight.memory.store import Memory
from overnight.report import CHART_SIZE_PX, write_report

pytestmark = pytest.mark.slow


def test_the_campaign_writes_a_report_whose_numbers_match_mlflow(prefect_api, quadratic, tmp_path):
    # Seed noise, so that a mean of runs and a single run differ: the report must show the summary's number.
    train = quadratic / "train.py"
    train.write_text(
        train.read_text().replace("loss = (", "loss = 0.01 * int(os.environ['OVERNIGHT_SEED']) + (")
    )
    path = configure_campaign(
        quadratic,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        budget={"waves": 3},
    )
    summary = campaign_flow(config_path=str(path))

    client = MlflowClient(summary.tracking_uri)
    agent = client.get_run(summary.agent_run_id)
    artifacts = {a.path for a in client.list_artifacts(agent.info.run_id, "report")}
    assert artifacts == {"report/report.md", "report/progress.png"}  # written by the campaign itself
    with get_client(sync_client=True) as prefect:
        assert any(a.key == "quadratic-report" for a in prefect.read_artifacts())

    memory = Memory(summary.tracking_uri, "quadratic", "minimize", "loss")
    written = write_report(memory, tmp_path / "again")
    image = Image.open(written.chart)
    assert image.size == CHART_SIZE_PX
    assert max(ImageStat.Stat(image.convert("L")).stddev) > 10  # not a blank canvas
    baseline = agent.data.metrics["baseline_loss"]
    champion = agent.data.metrics["champion_loss"]
    night = agent.data.tags["overnight.night"]  # what the CLI printed and `status` shows
    assert night.startswith(f"{baseline:.6g} -> {champion:.6g}: better by") and night == summary.night
    assert f"This night: loss {night}\n" in written.markdown
    assert (
        "- All nights: loss as this night (the campaign's first)\n" in written.markdown
    )  # never a second number
    outcomes = ", ".join(
        f"{int(v)} {k.removeprefix('trials_')}"
        for k, v in sorted(agent.data.metrics.items())
        if k.startswith("trials_")
    )
    assert f"- Outcomes: {outcomes}" in written.markdown
    assert (
        f"Prefect: http://127.0.0.1:4200/runs/flow-run/{agent.data.params['prefect_flow_run_id']}"
        in written.markdown
    )
    agent_page = (
        f"#/experiments/{summary.experiment_id}/runs/{agent.info.run_id}?workflowType=machine_learning"
    )
    assert agent_page in written.markdown  # opens in MLflow's model-training view, not GenAI's
    kept = client.search_runs([summary.experiment_id], "tags.`overnight.decision` = 'keep'")
    for trial in kept:
        assert trial.data.tags["overnight.hypothesis"] in written.markdown
