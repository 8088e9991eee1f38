"""Trials in a box on the local backend, tried as a new user's program would behave: a helper started in a session
of its own, a write beside the trial's folder, a connection out. Boxed where bubblewrap is installed; the unboxed
fallback still stops every process a trial started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import configure_campaign, processes_with

from overnight.backends.box import UNBOXED, make_box
from overnight.backends.local import LocalBackend
from overnight.config import ConfigError, load_config
from overnight.trial import Outcome, TrialSpec

BOXABLE = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(
    not BOXABLE, reason="bubblewrap is not installed (apt-get install bubblewrap): the box cannot be tried"
)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    folder = tmp_path / "state" / "program"
    folder.mkdir(parents=True)
    (folder / "train.py").write_text("print('loss: 1.0')\n")
    return folder


def run(program: Path, script: str, box=UNBOXED, timeout: float = 60):
    """One trial of `script` in a campaign-like layout: state/trials/t1 beside state/program."""
    backend = LocalBackend(program=program, work_root=program.parent / "trials", metric="loss", box=box)
    spec = TrialSpec("t1", {"train.py": script}, 0, "python train.py", 1, timeout)
    return backend.run(spec), program.parent / "trials" / "t1"


def detached_helper(token: str) -> str:
    """A trial that starts a daemon in a session of its own (as servers and some launchers do), then reports."""
    return (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{token}'],"
        " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "time.sleep(0.5)\nprint('loss: 1.0')\n"
    )


@pytest.mark.parametrize(
    "boxed", [pytest.param(True, marks=needs_bwrap), False], ids=["bubblewrap", "unboxed"]
)
def test_a_helper_that_left_the_trials_session_is_gone_when_the_trial_ends(program, boxed):
    token = f"helper-{uuid.uuid4()}"
    result, _ = run(program, detached_helper(token), make_box("bubblewrap", True) if boxed else UNBOXED)
    assert result.outcome is Outcome.OK, result.reason
    time.sleep(0.3)
    assert processes_with(token) == []


def test_a_helper_left_by_a_campaign_killed_with_minus_9_is_stopped_when_its_trial_reruns(program):
    """A resumed campaign reruns the trial in the same folder: what the dead one left of it goes first."""
    token = f"orphan-{uuid.uuid4()}"
    work = program.parent / "trials" / "t1"
    work.mkdir(parents=True)
    orphan = subprocess.Popen(  # as a trial of the dead campaign left it: its environment names the trial
        [sys.executable, "-c", "import time; time.sleep(600)", token],
        env={**os.environ, "OVERNIGHT_RESULT": str(work / ".overnight_result.json")},
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while processes_with(token) != [orphan.pid]:  # until it has started
        assert time.monotonic() < deadline, "the orphan never started"
        time.sleep(0.05)
    result, _ = run(program, "print('loss: 1.0')\n")
    assert result.outcome is Outcome.OK
    orphan.wait(timeout=10)
    assert processes_with(token) == []


@needs_bwrap
def test_a_write_beside_the_trials_folder_fails_and_is_reported_on_the_trial(program):
    script = "open('../anything', 'w').write('x')\nprint('loss: 1.0')\n"
    result, workdir = run(program, script, make_box("bubblewrap", True))
    assert not (workdir.parent / "anything").exists()  # nothing landed in the campaign's state folder
    assert result.outcome is Outcome.CRASH
    assert "tried to write outside its folder" in result.reason and "../anything" in result.reason
    assert "Read-only file system: '../anything'" in result.placement["refused_writes"]
    assert result.placement["sandbox"] == "bubblewrap"


@needs_bwrap
def test_a_boxed_trial_writes_its_folder_its_tmpdir_and_the_folders_it_was_given(program, tmp_path):
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    script = (
        "import os, tempfile\n"
        "open('checkpoint.pt', 'w').write('weights')\n"
        "with tempfile.NamedTemporaryFile(delete=False) as f:\n    f.write(b'tmp')\n"
        f"open({str(cache / 'tokens.bin')!r}, 'w').write('cache')\n"
        "print('tmp in folder:', f.name.startswith(os.getcwd()))\nprint('loss: 1.0')\n"
    )
    result, workdir = run(program, script, make_box("bubblewrap", True, [cache]))
    assert result.outcome is Outcome.OK, result.reason
    assert "tmp in folder: True" in result.log_tail and "refused_writes" not in result.placement
    assert (workdir / "checkpoint.pt").exists() and (cache / "tokens.bin").read_text() == "cache"


@needs_bwrap
def test_a_trial_given_no_network_cannot_connect_out(program):
    with (
        socket.socket() as listener
    ):  # a server on this machine, as a dataset mirror or a tracking server would be
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        script = (
            "import socket\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n    print('connected')\n"
            "except OSError as error:\n    print('no network:', error)\nprint('loss: 1.0')\n"
        )
        with_network, _ = run(program, script, make_box("bubblewrap", True))
        without, _ = run(program, script, make_box("bubblewrap", False))
    assert "connected" in with_network.log_tail
    assert "no network:" in without.log_tail and "connected" not in without.log_tail


def test_a_box_that_cannot_be_had_is_one_clear_message(tmp_path):
    with pytest.raises(
        ConfigError, match="network: false needs the bubblewrap sandbox; trial.sandbox is none"
    ):
        make_box("none", False)
    with pytest.raises(ConfigError, match="no such folder"):
        make_box("auto", True, [tmp_path / "missing"])


def test_where_bubblewrap_is_missing_a_box_asked_for_stops_the_run_and_auto_warns(quadratic):
    without_bwrap = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no /usr/bin: no bwrap
    config = configure_campaign(
        quadratic, trial={"time_budget_s": 1, "timeout_s": 30, "sandbox": "bubblewrap"}
    )
    done = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        env=without_bwrap,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join(done.stdout.split())  # as one line, however the terminal wrapped it
    assert "Config error: trial.sandbox: bubblewrap, but bubblewrap (bwrap) is not installed" in said
    assert "Traceback" not in done.stdout + done.stderr

    auto = subprocess.run(
        [sys.executable, "-c", "from overnight.backends.box import make_box; print(make_box('auto', True))"],
        env=without_bwrap,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Box(bwrap=None" in auto.stdout
    assert "trials run unboxed: they can write outside their folders" in auto.stderr


def test_writable_paths_are_read_from_the_config_against_its_folder(quadratic):
    (quadratic / "cache").mkdir()
    config = configure_campaign(
        quadratic, trial={"time_budget_s": 1, "timeout_s": 30, "writable_paths": ["cache"]}
    )
    assert load_config(config).trial.writable_paths == [quadratic / "cache"]
    configure_campaign(quadratic, trial={"time_budget_s": 1, "timeout_s": 30, "writable_paths": ["nowhere"]})
    with pytest.raises(ConfigError, match=r"campaign.yaml: trial.writable_paths: no such folder: .*nowhere"):
        load_config(config)
