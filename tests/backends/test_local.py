"""The local backend on tiny real scripts: what only it does (its folders, its environment, process groups, memory
and disk caps, Ctrl-C). The endings every backend shares (ok, crash, timeout, ...) are in test_conformance.py."""

import threading
import time
from pathlib import Path

import pytest
from helpers import alive

from overnight.backends.base import TrialInterrupted
from overnight.backends.local import PID_FILE, LocalBackend
from overnight.trial import Outcome, TrialSpec

OK = "import os\nprint('step 1')\nprint('loss: 0.5')\nprint('seed:', os.environ['OVERNIGHT_SEED'])\n"


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


def test_the_trial_runs_in_a_copy_of_the_program_with_its_own_files(program, tmp_path):
    result, workdir = run(program, tmp_path, OK)
    assert (workdir / "helper.txt").read_text() == "read-only data\n"
    assert (workdir / "train.py").read_text() == OK
    assert (program / "train.py").read_text() == "print('loss: 1.0')\n"  # the program itself is untouched
    assert "seed: 7" in (workdir / "run.log").read_text()


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


def test_a_command_may_be_any_shell_command_line_and_python_is_still_this_interpreter(program, tmp_path):
    import sys

    (program / "run.sh").write_text(
        'python -c "import sys; print(\'prefix\', sys.prefix)"\npython train.py "$@"\n'
    )
    backend = LocalBackend(program=program, work_root=tmp_path / "work", metric="loss")
    command = 'export GREETING=hi; sh run.sh --fast && echo "done: $GREETING"'
    spec = TrialSpec("t1", {"train.py": OK}, seed=7, command=command, time_budget_s=1, timeout_s=20)
    result = backend.run(spec)
    log = (tmp_path / "work" / "t1" / "run.log").read_text()
    assert result.outcome is Outcome.OK and result.metrics["loss"] == 0.5, log
    assert (
        f"prefix {sys.prefix}" in log
    )  # `python` inside the command line is overnight's interpreter (its venv)
    assert "done: hi" in log  # the shell ran the whole line


def test_a_run_that_changes_a_read_only_file_and_then_hangs_is_invalid_not_a_timeout(program, tmp_path):
    """Tampering makes the metric untrustworthy whatever else happened (the judge's precedence, seen for real)."""
    result, _ = run(
        program, tmp_path, "import time\nopen('helper.txt', 'w').write('rigged')\ntime.sleep(600)\n", 1
    )
    assert result.outcome is Outcome.INVALID
    assert result.reason == "the run changed read-only files: helper.txt"


def test_interrupting_a_backend_stops_its_own_trials_and_no_one_elses(program, tmp_path):
    """Ctrl-C state lives on the backend: another backend's trial runs on, and a new backend starts afresh."""
    first = LocalBackend(program=program, work_root=tmp_path / "first", metric="loss")
    second = LocalBackend(program=program, work_root=tmp_path / "second", metric="loss")
    ended: dict[str, object] = {}

    def run_on(name: str, backend: LocalBackend, script: str) -> None:
        try:
            ended[name] = backend.run(
                TrialSpec("t1", {"train.py": script}, 0, "python train.py", 1, 60)
            ).outcome
        except TrialInterrupted:
            ended[name] = "interrupted"

    threads = [
        threading.Thread(target=run_on, args=("first", first, "import time\ntime.sleep(600)\n")),
        threading.Thread(
            target=run_on, args=("second", second, "import time\ntime.sleep(2)\nprint('loss: 1')\n")
        ),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while not all((tmp_path / name / "t1" / PID_FILE).exists() for name in ("first", "second")):
        assert time.monotonic() < deadline, "the trials never started"
        time.sleep(0.05)
    assert first.interrupt() == 1
    for thread in threads:
        thread.join(30)
    assert ended == {"first": "interrupted", "second": Outcome.OK}

    after = LocalBackend(program=program, work_root=tmp_path / "after", metric="loss")
    assert (
        after.run(TrialSpec("t1", {"train.py": "print('loss: 1')\n"}, 0, "python train.py", 1, 60)).outcome
        is Outcome.OK
    )


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
