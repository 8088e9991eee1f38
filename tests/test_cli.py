"""The `overnight` command as a user runs it: a real process, a real campaign, the summary it prints."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def overnight(*args, cwd, env=None, timeout=300):
    command = [sys.executable, "-m", "overnight.cli", *args]
    environment = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def test_help_reads_well(tmp_path):
    """Pinned, so a change to what users read is seen in review (refresh with UPDATE_GOLDEN=1)."""
    for name, args in {"help.txt": ["--help"], "run-help.txt": ["run", "--help"]}.items():
        result = overnight(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        if os.environ.get("UPDATE_GOLDEN"):
            (GOLDEN / name).write_text(result.stdout)
        assert result.stdout == (GOLDEN / name).read_text()


def test_a_broken_config_fails_before_anything_runs(tmp_path, quadratic):
    config = quadratic / "campaign.yaml"
    config.write_text(config.read_text().replace("wave_size: 2", "wave_size: lots"))
    result = overnight("run", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "wave_size: Input should be a valid integer" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / ".overnight").exists()  # nothing started, nothing written


@pytest.mark.slow
def test_run_prints_the_summary_and_how_to_open_both_uis(prefect_api, tmp_path, quadratic):
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    result = overnight("run", str(quadratic / "campaign.yaml"), "--waves", "2", cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "baseline  loss = 13" in output
    assert "champion  loss = " in output and "lower is better" in output
    assert "ok" in output and "Champion's change from this run's baseline:" in output
    assert "-X = 1.0" in output  # the champion's diff
    store = tmp_path / ".overnight" / "mlflow.db"
    assert store.is_file()  # the default store lives in the folder the user ran from
    assert f"{Path(sys.executable).parent}/mlflow ui --backend-store-uri sqlite:///{store}" in output
    assert f"Prefect UI: {PREFECT_API_URL.value().removesuffix('/api')}/runs/flow-run/" in output
    assert "Traceback" not in output and "Error flushing" not in output
