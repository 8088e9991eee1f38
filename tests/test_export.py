"""The champion handed to a person: its lineage from MLflow, `overnight export` to a folder and to a git branch, and
the lineage in the morning report. One real campaign (two nights) on the quadratic program serves every test."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import configure_campaign

from overnight.memory.store import Memory
from overnight.proposals import unified_diff
from overnight.report import lineage_table, write_report
from overnight.trial import Outcome, TrialResult

FIXTURES = Path(__file__).parent / "fixtures"


def overnight(*args, cwd):
    environment = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "overnight.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def campaign(prefect_api, tmp_path_factory) -> Path:
    """Two nights of a real campaign on a copy of the quadratic program; returns its campaign.yaml."""
    from flows.campaign import campaign_flow

    root = tmp_path_factory.mktemp("export")
    program = root / "quadratic"
    shutil.copytree(FIXTURES / "quadratic", program)
    config = configure_campaign(
        program,
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        state_dir=str(root / "state"),
        budget={"waves": 2},
    )
    campaign_flow(config_path=str(config))
    campaign_flow(config_path=str(config), overrides={"budget.waves": 1})  # night 2 re-measures it first
    return config


@pytest.fixture(scope="module")
def memory(campaign) -> Memory:
    import yaml

    uri = yaml.safe_load(campaign.read_text())["tracking_uri"]
    return Memory(uri, "quadratic", "minimize", "loss")


@pytest.mark.slow
def test_versions_run_from_the_program_as_shipped_to_the_champion(memory):
    versions = memory.champion_versions()
    shipped = {"train.py": (FIXTURES / "quadratic" / "train.py").read_text()}
    assert len(versions) >= 2, "the quadratic program should improve at least once"
    first, champion = versions[0], versions[-1]
    assert first.files == shipped and first.hypothesis == "baseline: the program as shipped"
    assert (first.parent_run_id, first.confirmed_gain, first.cumulative_diff) == ("", None, "")
    assert champion.files == memory.champion_files()
    for number, (parent, version) in enumerate(zip(versions, versions[1:], strict=False), start=1):
        assert version.version == number and version.parent_run_id == parent.run_id
        assert version.step_diff == unified_diff(parent.files, version.files) != ""
        assert version.cumulative_diff == unified_diff(shipped, version.files)
        assert version.metric < parent.metric  # each version is better (minimize)
    # night 2's baseline re-measured the champion: a link in MLflow's lineage, not a version of its own
    assert len(memory.lineage()) == len(versions) + 1
    assert not any(v.hypothesis.startswith("baseline: the champion") for v in versions)


def test_confirmed_gain_and_verdict_are_shown_where_recorded(tmp_path, tracking_uri, campaign_name):
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss", artifact_root=tmp_path / "artifacts")
    agent = memory.start_agent_run("night", {})
    wave = memory.start_wave(agent, 1)
    runs = []
    for name, text, loss in [("base", "X = 1\n", 4.0), ("older", "X = 2\n", 1.0), ("newer", "X = 3\n", 0.0)]:
        run_id = memory.start_trial(
            wave_run_id=wave,
            agent_run_id=agent,
            trial_id=name,
            wave=1,
            hypothesis=f"try {name}",
            rationale="",
            params={},
            files={"train.py": text},
            diff="",
            fingerprint=name,
            parent_champion="",
        )
        memory.finish_trial(run_id, TrialResult(name, Outcome.OK, {"loss": loss}, 1.0, 0, "", ""))
        runs.append(run_id)
    memory.set_champion(runs[0], "")
    memory.set_champion(runs[1], runs[0])  # crowned before gains were recorded
    memory.set_champion(runs[2], runs[1], gain=0.75, why="beat the champion by 0.75 | twice the noise")

    base, older, newer = memory.champion_versions()
    assert (base.confirmed_gain, older.confirmed_gain, newer.confirmed_gain) == (None, None, 0.75)
    assert newer.verdict == "beat the champion by 0.75 | twice the noise" and older.verdict == ""
    assert newer.cumulative_diff == "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-X = 1\n+X = 3\n"
    table = lineage_table([base, older, newer], "loss")
    assert table[0] == "| version | trial | change | loss | confirmed gain | verdict |"
    assert table[2:] == [
        "| 0 | base | try base | 4 | - | - |",
        "| 1 | older | try older | 1 | - | - |",
        "| 2 | newer | try newer | 0 | 0.75 | beat the champion by 0.75 \\| twice the noise |",
    ]


@pytest.mark.slow
def test_export_to_a_folder_writes_the_champion_its_patch_and_lineage(campaign, memory, tmp_path):
    out = tmp_path / "review"
    result = overnight("export", str(campaign), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    champion_files = memory.champion_files()
    assert (out / "train.py").read_text() == champion_files["train.py"]
    assert f"patch -p1 -d {campaign.parent} < {out / 'champion.patch'}" in result.stdout

    original = tmp_path / "original"
    shutil.copytree(FIXTURES / "quadratic", original)
    applied = subprocess.run(
        ["patch", "-p1", "-i", str(out / "champion.patch")], cwd=original, capture_output=True, text=True
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (original / "train.py").read_text() == champion_files["train.py"]

    lineage = (out / "LINEAGE.md").read_text()
    versions = memory.champion_versions()
    rows = [
        line for line in lineage.splitlines() if line.startswith("| ") and not line.startswith("| version")
    ]
    assert [row.split(" | ")[1] for row in rows] == [v.trial_id for v in versions]
    for version in versions[1:]:
        assert f"## Version {version.version}: {version.trial_id}" in lineage
        assert version.step_diff.strip() in lineage


@pytest.mark.slow
def test_export_to_a_branch_leaves_the_users_work_alone(campaign, memory, tmp_path):
    repo = tmp_path / "repo"
    program = repo / "research"
    shutil.copytree(FIXTURES / "quadratic", program)
    shutil.copy(campaign, program / "campaign.yaml")  # same store, same campaign
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Reviewer")
    git(repo, "config", "user.email", "reviewer@example.com")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the program")
    (repo / "notes.txt").write_text("uncommitted work\n")  # the user's work in progress
    (program / "train.py").write_text((program / "train.py").read_text() + "# a local edit\n")
    before = (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "branch", "--show-current"),
        git(repo, "status", "-s"),
    )
    edited = (program / "train.py").read_text()

    result = overnight("export", str(program / "campaign.yaml"), "--branch", "overnight/review", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"git -C {repo} merge overnight/review" in result.stdout

    after = (git(repo, "rev-parse", "HEAD"), git(repo, "branch", "--show-current"), git(repo, "status", "-s"))
    assert after == before and (program / "train.py").read_text() == edited
    versions = memory.champion_versions()
    subjects = git(repo, "log", "--reverse", "--format=%s", "main..overnight/review").splitlines()
    assert subjects == [f"overnight: {v.trial_id}: {v.hypothesis}" for v in versions[1:]]
    tip = git(repo, "show", "overnight/review:research/train.py")
    assert tip == memory.champion_files()["train.py"]
    body = git(repo, "log", "-1", "--format=%b", "overnight/review")
    assert f"loss: {versions[-1].metric:.6g}" in body and "confirmed gain: " in body

    again = overnight("export", str(program / "campaign.yaml"), "--branch", "overnight/review", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stdout


@pytest.mark.slow
def test_export_refuses_what_it_must_not_do(campaign, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "train.py").write_text("mine\n")
    refused = overnight("export", str(campaign), "--out", str(out), cwd=tmp_path)
    assert refused.returncode == 2 and "is not empty" in refused.stdout and "--force" in refused.stdout
    assert (out / "train.py").read_text() == "mine\n" and sorted(p.name for p in out.iterdir()) == [
        "train.py"
    ]
    forced = overnight("export", str(campaign), "--out", str(out), "--force", cwd=tmp_path)
    assert forced.returncode == 0 and (out / "train.py").read_text() != "mine\n"

    no_repo = overnight("export", str(campaign), "--branch", "review", cwd=tmp_path)
    assert no_repo.returncode == 2 and "is not in a git work tree" in no_repo.stdout

    neither = overnight("export", str(campaign), cwd=tmp_path)
    assert neither.returncode == 2 and "give one of --out DIR or --branch NAME" in neither.stdout

    other = tmp_path / "fresh"
    shutil.copytree(campaign.parent, other)
    configure_campaign(other, name="never-run")
    empty = overnight("export", str(other / "campaign.yaml"), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert empty.returncode == 1 and "no champion yet: run a campaign first" in empty.stdout
    assert not (tmp_path / "x").exists()
    assert "Traceback" not in refused.stderr + no_repo.stderr + empty.stderr


@pytest.mark.slow
def test_the_morning_report_shows_the_lineage(memory, tmp_path):
    markdown = write_report(memory, tmp_path / "report").markdown
    versions = memory.champion_versions()
    assert "## Champion lineage" in markdown
    assert "| version | trial | change | loss | confirmed gain | verdict |" in markdown
    for version in versions:
        assert f"| {version.version} | {version.trial_id} | {version.hypothesis} |" in markdown
    assert versions[-1].cumulative_diff.strip() in markdown
