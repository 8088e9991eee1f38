"""The local backend on tiny real scripts: each way a trial can end gives the right outcome."""

import time
from pathlib import Path

import pytest
from helpers import alive

from overnight.backends.local import LocalBackend
from overnight.trial import Outcome, TrialSpec

SCRIPTS = {
    "ok": "import os\nprint('step 1')\nprint('loss: 0.5')\nprint('seed:', os.environ['OVERNIGHT_SEED'])\n",
    "crash": "print('loss: 0.5')\nraise SystemExit(3)\n",
    "nan": "print('loss: nan')\n",
    "no_metric": "print('all done, but I forgot to report')\n",
    "json": "import json, os\nopen(os.environ['OVERNIGHT_RESULT'], 'w').write(json.dumps({'loss': 0.25}))\n",
}


@pytest.fixture
def program(tmp_path: Path) -> Path:
    folder = tmp_path / "program"
    folder.mkdir()
    (folder / "train.py").write_text("print('loss: 1.0')\n")
    (folder / "helper.txt").write_text("read-only data\n")
    return folder


def run(program: Path, tmp_path: Path, script: str, timeout: float = 20, **env) -> tuple:
    backend = LocalBackend(program=program, work_root=tmp_path / "work", metric="loss")
    spec = TrialSpec(
        "t1",
        {"train.py": script},
        seed=7,
        command="python train.py",
        time_budget_s=1,
        timeout_s=timeout,
        env=env,
    )
    return backend.run(spec), tmp_path / "work" / "t1"


@pytest.mark.parametrize("name", ["ok", "crash", "nan", "no_metric"])
def test_each_ending_has_its_outcome(program, tmp_path, name):
    result, _ = run(program, tmp_path, SCRIPTS[name])
    assert result.outcome is Outcome(name)
    if name == "ok":
        assert result.metrics["loss"] == 0.5 and result.exit_code == 0
    if name == "crash":
        assert result.exit_code == 3 and "status 3" in result.reason
    if name == "no_metric":
        assert "loss" in result.reason and "forgot to report" in result.log_tail


def test_the_trial_runs_in_a_copy_of_the_program_with_its_own_files(program, tmp_path):
    result, workdir = run(program, tmp_path, SCRIPTS["ok"])
    assert (workdir / "helper.txt").read_text() == "read-only data\n"
    assert (workdir / "train.py").read_text() == SCRIPTS["ok"]
    assert (program / "train.py").read_text() == "print('loss: 1.0')\n"  # the program itself is untouched
    assert "seed: 7" in (workdir / "run.log").read_text()


def test_the_result_file_is_read_too(program, tmp_path):
    result, _ = run(program, tmp_path, SCRIPTS["json"])
    assert result.outcome is Outcome.OK and result.metrics["loss"] == 0.25


def test_secrets_of_the_orchestrator_do_not_reach_the_trial(program, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    script = "import os\nprint(sorted(k for k in os.environ if 'SECRET' in k or 'API_KEY' in k))\nprint('loss: 1')\n"
    result, _ = run(program, tmp_path, script, EXTRA="yes")
    assert "[]" in result.log_tail


def test_a_hung_trial_is_killed_with_its_whole_process_group(program, tmp_path):
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open('child.pid', 'w').write(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    started = time.monotonic()
    result, workdir = run(program, tmp_path, script, timeout=2)
    assert result.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < 15
    child = int((workdir / "child.pid").read_text())
    time.sleep(0.2)
    assert not alive(child)  # the grandchild died with the group


def test_a_command_that_cannot_start_is_an_infra_error(program, tmp_path):
    backend = LocalBackend(program=program, work_root=tmp_path / "work", metric="loss")
    spec = TrialSpec(
        "t1", {"train.py": ""}, seed=0, command="/no/such/interpreter train.py", time_budget_s=1, timeout_s=5
    )
    result = backend.run(spec)
    assert result.outcome is Outcome.INFRA_ERROR and "could not start" in result.reason


@pytest.mark.parametrize(
    "script",
    [
        "open('helper.txt', 'w').write('rigged')\nprint('loss: 0.0')\n",
        "import os\nos.remove('helper.txt')\nprint('loss: 0.0')\n",
    ],
    ids=["modified", "removed"],
)
def test_a_run_that_touches_read_only_files_is_invalid(program, tmp_path, script):
    result, _ = run(program, tmp_path, script)
    assert result.outcome is Outcome.INVALID
    assert result.reason == "the run changed read-only files: helper.txt"


def test_files_a_run_creates_are_its_own_business(program, tmp_path):
    result, _ = run(program, tmp_path, "open('checkpoint.bin', 'w').write('x')\nprint('loss: 0.5')\n")
    assert result.outcome is Outcome.OK


def test_a_trial_past_its_memory_cap_is_killed_and_says_so(program, tmp_path):
    backend = LocalBackend(program=program, work_root=tmp_path / "work", metric="loss")
    script = "import time\nhog = bytearray(300 * 2**20)\nfor i in range(0, len(hog), 4096):\n    hog[i] = 1\ntime.sleep(60)\nprint('loss: 1')\n"
    spec = TrialSpec("t1", {"train.py": script}, 0, "python train.py", 1, 60, max_memory_mb=150)
    started = time.monotonic()
    result = backend.run(spec)
    assert result.outcome is Outcome.OVER_LIMIT and "150 MB memory cap" in result.reason
    assert time.monotonic() - started < 20


def test_a_trial_that_fills_its_folder_is_killed_and_says_so(program, tmp_path):
    backend = LocalBackend(program=program, work_root=tmp_path / "work", metric="loss")
    script = (
        "import time\nwith open('dump.bin', 'wb') as f:\n"
        "    for _ in range(400):\n        f.write(b'x' * 2**20)\n        f.flush()\n        time.sleep(0.01)\n"
        "time.sleep(60)\n"
    )
    spec = TrialSpec("t1", {"train.py": script}, 0, "python train.py", 1, 60, max_disk_mb=50)
    result = backend.run(spec)
    assert result.outcome is Outcome.OVER_LIMIT and "50 MB disk cap" in result.reason
