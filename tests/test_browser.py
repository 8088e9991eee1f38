"""Both UIs as a person sees them: a real MLflow server and a real Prefect server on loopback, a campaign run
against them, then headless Chromium on the MLflow experiment page and the Prefect runs page."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import configure_campaign
from mlflow.tracking import MlflowClient

from overnight.memory.store import Memory

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/lib/chromium/chromium")  # Debian's build; the /usr/bin wrapper adds flags of its own
SCREENSHOTS = Path(os.environ.get("OVERNIGHT_TEST_ARTIFACTS", Path(__file__).parents[1] / ".test-artifacts"))
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], env: dict, health: str, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(health, timeout=2).read()
            return process
        except OSError:
            time.sleep(0.5)
    stop(process)
    pytest.fail(f"{command[0]} did not become healthy; see {log}")


def assert_model_training_view(page) -> None:
    """MLflow 3.17's model-training view as a person sees it, on a loaded page: the side bar lists Runs, Models and
    the Model registry, and none of the GenAI view's pages (Evaluation runs, Sessions, Judges; a run under
    "Evaluations") is there."""
    shown = set(page.inner_text("body").splitlines())
    assert {"Runs", "Models", "Model registry"} <= shown, sorted(shown)
    assert not {"Evaluation runs", "Evaluations", "Sessions", "Judges"} & shown, sorted(shown)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # by group: both servers fork helpers
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
def test_the_campaign_is_on_screen_in_both_uis(quadratic, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    bin_dir = Path(sys.executable).parent
    mlflow_port, prefect_port = free_port(), free_port()
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "ANTHROPIC_API_KEY"
    }
    base_env.update(
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(tmp_path / "ph"),
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    mlflow = start(
        [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'ml.db'}",
            "--artifacts-destination",
            str(tmp_path / "ml-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
        base_env,
        f"http://127.0.0.1:{mlflow_port}/health",
        tmp_path / "mlflow.log",
    )
    prefect_env = {
        **base_env,
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(prefect_port),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{prefect_port}/api",
    }
    prefect = start(
        [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
        prefect_env,
        f"http://127.0.0.1:{prefect_port}/api/health",
        tmp_path / "prefect.log",
    )
    try:
        path = configure_campaign(
            quadratic, tracking_uri=f"http://127.0.0.1:{mlflow_port}", budget={"waves": 1}
        )
        run_env = {**base_env, "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api"}
        ran = subprocess.run(
            [sys.executable, "-m", "overnight.cli", "run", str(path)],
            cwd=tmp_path,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        tracking = f"http://127.0.0.1:{mlflow_port}"
        printed = f"MLflow UI:  {tracking}/#/experiments/1/runs?workflowType=machine_learning"
        assert printed in ran.stdout
        memory = Memory(tracking, MlflowClient(tracking).get_experiment("1").name, "minimize", "loss")
        trial = memory.trials()[0]

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_FLAGS)
            # a fresh browser, so MLflow's own default view (GenAI) unless the link says otherwise
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(printed.split()[-1], wait_until="domcontentloaded")
            page.get_by_text("offline 20", exact=False).first.wait_for(timeout=60000)  # the agent run's name
            assert_model_training_view(page)
            page.screenshot(path=str(SCREENSHOTS / "mlflow-runs.png"))
            trial_page = memory.ui_url(tracking, trial.run_id)  # a trial's own page
            page.goto(trial_page, wait_until="domcontentloaded")
            page.get_by_text(trial.trial_id, exact=True).first.wait_for(timeout=60000)
            page.get_by_text("Model metrics", exact=True).first.wait_for(timeout=60000)  # a classic run tab
            assert_model_training_view(page)
            for tab in ("Overview", "Artifacts"):
                assert page.get_by_text(tab, exact=True).count(), tab
            page.screenshot(path=str(SCREENSHOTS / "mlflow-trial.png"))

            page.goto(f"http://127.0.0.1:{prefect_port}/runs", wait_until="domcontentloaded")
            page.get_by_text("campaign quadratic").first.wait_for(timeout=60000)
            page.screenshot(path=str(SCREENSHOTS / "prefect-runs.png"))
            browser.close()
        assert (SCREENSHOTS / "mlflow-runs.png").stat().st_size > 10_000
        assert (SCREENSHOTS / "prefect-runs.png").stat().st_size > 10_000
    finally:
        stop(prefect)
        stop(mlflow)
