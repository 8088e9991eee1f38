"""The SkyPilot backend without a cluster: the task it builds, what it reads back from a job's log, the pool.

The end-to-end path (launch, exec, logs, down on a real Slurm cluster) is in test_conformance.py.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from endings import gone
from helpers import configure_campaign

sky = pytest.importorskip("sky", reason="SkyPilot is an optional extra: pip install 'overnight[skypilot]'")

from overnight.backends.skypilot import (  # noqa: E402 - after the importorskip
    SkyPilotBackend,
    _one_line,
    clean_log,
    cluster_names,
    trial_task_config,
)
from overnight.config import BackendSettings, CampaignConfig, ConfigError, SkyResources  # noqa: E402
from overnight.program import copy_program  # noqa: E402
from overnight.trial import Outcome, TrialSpec  # noqa: E402

SETTINGS = BackendSettings(
    kind="skypilot",
    resources=SkyResources(infra="k8s", accelerators="H100:1", use_spot=True, disk_size=100),
    setup=["pip install -r requirements.txt", "python prepare.py"],
)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    folder = tmp_path / "program"
    (folder / "data").mkdir(parents=True)
    (folder / "train.py").write_text("print('loss: 1.0')\n")
    (folder / "data" / "corpus.txt").write_text("read-only data\n")
    return folder


def spec(script: str = "print('loss: 0.5')\n", timeout: float = 60, **env) -> TrialSpec:
    return TrialSpec("abc12345-w1-t0", {"train.py": script}, 3, "python3 train.py", 2.0, timeout, env)


def backend(program: Path, tmp_path: Path, settings: BackendSettings = SETTINGS, **more) -> SkyPilotBackend:
    config = CampaignConfig(
        name="tiny gpt", program=program, metric={"name": "loss"}, backend=settings, wave_size=2, **more
    )
    return SkyPilotBackend(config, tmp_path / "work")


def test_the_trial_task_round_trips_through_skypilots_own_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "orchestrator-only")
    config = trial_task_config(spec(EXTRA="yes"), tmp_path, SETTINGS, ["data/corpus.txt"], SETTINGS.resources)
    task = sky.Task.from_yaml_config(config)
    again = sky.Task.from_yaml_config(yaml.safe_load(yaml.safe_dump(task.to_yaml_config())))

    assert again.workdir == str(tmp_path)
    assert again.envs == {
        "EXTRA": "yes",
        "OVERNIGHT_TIME_BUDGET": "2.0",
        "OVERNIGHT_SEED": "3",
        "OVERNIGHT_TRIAL_ID": "abc12345-w1-t0",
        "PYTHONUNBUFFERED": "1",
    }  # the trial's own envs only: nothing of the orchestrator's environment
    (resources,) = again.resources
    assert resources.accelerators == {"H100": 1} and resources.use_spot and resources.disk_size == 100
    assert str(resources.cloud) == "Kubernetes"
    assert again.setup == "pip install -r requirements.txt\npython prepare.py"
    assert "python3 train.py" in again.run


@pytest.mark.parametrize(
    "resources, complaint",
    [
        ({"infra": "nowhere"}, "does not match"),
        ({"accelerators": "H100:-1"}, "positive"),
        ({"cpus": "lots"}, "cpus"),
    ],
)
def test_bad_resources_fail_before_anything_launches(program, tmp_path, resources, complaint):
    settings = BackendSettings(kind="skypilot", resources=SkyResources(**resources))
    with pytest.raises(ConfigError, match="backend.resources") as error:
        backend(program, tmp_path, settings)
    assert complaint in str(error.value)


def test_overnight_run_names_bad_resources_and_starts_nothing(quadratic, tracking_uri):
    config = configure_campaign(
        quadratic, tracking_uri=tracking_uri, backend={"kind": "skypilot", "resources": {"infra": "nowhere"}}
    )
    run = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "backend.resources" in run.stdout and "nowhere" in run.stdout
    assert not (quadratic / ".overnight" / "work").exists()


def test_unknown_backend_keys_are_rejected_with_the_valid_ones(quadratic, tracking_uri):
    config = configure_campaign(quadratic, backend={"kind": "skypilot", "pool": 4})
    run = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "show-config", str(config)], capture_output=True, text=True
    )
    assert run.returncode == 2 and "backend.pool: unknown key" in run.stdout and "pool_size" in run.stdout


def test_cluster_names_are_valid_and_stable_for_a_campaign():
    names = cluster_names("ovn", "Tiny GPT: Shakespeare (night 1)", 3)
    assert names == cluster_names("ovn", "Tiny GPT: Shakespeare (night 1)", 3)
    assert len(set(names)) == 3
    for name in names:
        sky.utils.common_utils.check_cluster_name_is_valid(name)


def _wrapper(config: dict, workdir: Path, job_control: bool = False) -> tuple[subprocess.Popen, int]:
    """Start the task's `run` script the way a cluster would (bash, in the synced workdir, with the task's envs);
    the process and the pid of its bash.

    SkyPilot runs it with `bash -i`, which has job control where the job has a terminal: `script` gives it one.
    """
    script = workdir.parent / "run.sh"
    script.write_text(f'echo "wrapper $$"\n{config["run"]}')
    command = ["bash", str(script)]
    if job_control:
        if shutil.which("script") is None:
            pytest.skip("util-linux's `script` (a terminal for bash's job control) is not installed")
        command = ["script", "-qec", f"bash -i {script}", "/dev/null"]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env={"PATH": os.environ["PATH"], "HOME": str(workdir.parent), **config["envs"]},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, int(_line_of(process, "wrapper ").split()[1])


def _line_of(process: subprocess.Popen, start: str) -> str:
    """The first line of its output that starts so (bash -i may first complain about the terminal)."""
    line = process.stdout.readline()
    while line and not line.startswith(start):
        line = process.stdout.readline()
    return line


def _run_wrapper(config: dict, workdir: Path, job_control: bool = False) -> str:
    output, _ = _wrapper(config, workdir, job_control)[0].communicate(timeout=60)
    return output


@pytest.mark.parametrize(
    "script, outcome",
    [
        ("print('loss: 0.5')\n", Outcome.OK),
        ("print('loss: 0.5')\nraise SystemExit(3)\n", Outcome.CRASH),
        ("print('loss: nan')\n", Outcome.NAN),
        ("print('done, nothing to report')\n", Outcome.NO_METRIC),
        (
            "import json, os\njson.dump({'loss': 0.25}, open(os.environ['OVERNIGHT_RESULT'], 'w'))\n",
            Outcome.OK,
        ),
        ("open('data/corpus.txt', 'w').write('rigged')\nprint('loss: 0.0')\n", Outcome.INVALID),
        ("import os\nos.remove('data/corpus.txt')\nprint('loss: 0.0')\n", Outcome.INVALID),
    ],
    ids=["ok", "crash", "nan", "no_metric", "result_file", "modified", "removed"],
)
def test_the_job_log_alone_gives_the_outcome(program, tmp_path, script, outcome):
    """The wrapper around the script reports exit code, result file and read-only hashes in the log."""
    pilot = backend(program, tmp_path)
    trial = spec(script)
    workdir = tmp_path / "synced"
    copy_program(program, workdir, trial.files)
    config = trial_task_config(trial, workdir, pilot.settings, pilot.read_only, SETTINGS.resources)
    log = _run_wrapper(config, workdir)
    state = "SUCCEEDED" if "exit code 0" in log else "FAILED"
    result = pilot._result(trial, log, state, False, time.monotonic(), {"cluster": "c"})

    assert result.outcome is outcome, result.reason
    if outcome is Outcome.CRASH:
        assert result.exit_code == 3 and "status 3" in result.reason
    if outcome is Outcome.INVALID:
        assert result.reason == "the run changed read-only files: data/corpus.txt"
    if script.startswith("import json"):
        assert result.metrics["loss"] == 0.25
    assert "[overnight]" not in result.log_tail  # the engine's own lines are not the script's log


@pytest.mark.parametrize("job_control", [False, True], ids=["bash", "bash-with-job-control"])
def test_what_the_script_leaves_behind_ends_with_it(program, tmp_path, job_control):
    """A child still holding the job's output would keep the job running to its hard timeout, then outlive it."""
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('child', child.pid)\nprint('loss: 0.5')\nraise SystemExit(3)\n"
    )
    pilot = backend(program, tmp_path)
    trial = spec(script)
    workdir = tmp_path / "synced"
    copy_program(program, workdir, trial.files)
    config = trial_task_config(trial, workdir, pilot.settings, pilot.read_only, SETTINGS.resources)
    started = time.monotonic()
    log = _run_wrapper(config, workdir, job_control)
    assert time.monotonic() - started < 30  # the output closed when the script ended
    assert gone(int(log.split("child ")[1].split()[0]))
    result = pilot._result(trial, log, "FAILED", False, time.monotonic(), {"cluster": "c"})
    assert result.outcome is Outcome.CRASH and result.exit_code == 3  # the wrapper waited for the script


@pytest.mark.parametrize("job_control", [False, True], ids=["bash", "bash-with-job-control"])
def test_a_job_cancelled_after_it_changed_a_read_only_file_is_invalid(program, tmp_path, job_control):
    """SkyPilot cancels a job past its timeout with SIGTERM: the script's own process group gets it, and the
    wrapper still hashes the read-only files, so tampering beats the timeout here as on the local backend."""
    script = (
        "import os, time\nopen('data/corpus.txt', 'w').write('rigged')\n"
        "print('started', os.getpid(), flush=True)\ntime.sleep(600)\n"
    )
    pilot = backend(program, tmp_path)
    trial = spec(script)
    workdir = tmp_path / "synced"
    copy_program(program, workdir, trial.files)
    wrapper, bash = _wrapper(
        trial_task_config(trial, workdir, pilot.settings, pilot.read_only, SETTINGS.resources),
        workdir,
        job_control,
    )
    script_pid = int(_line_of(wrapper, "started").split()[1])
    os.kill(bash, signal.SIGTERM)  # the wrapper alone: the script is in a process group of its own
    log, _ = wrapper.communicate(timeout=30)
    assert "[overnight] exit code 143" in log
    assert gone(script_pid)
    result = pilot._result(trial, log, "CANCELLED", True, time.monotonic(), {"cluster": "c"})
    assert result.outcome is Outcome.INVALID
    assert result.reason == "the run changed read-only files: data/corpus.txt"


def test_a_job_that_failed_in_setup_is_an_infra_error_not_a_crash(program, tmp_path):
    pilot = backend(program, tmp_path)
    result = pilot._result(
        spec(), "pip: no such package\n", "FAILED_SETUP", False, time.monotonic(), {"cluster": "c"}
    )
    assert result.outcome is Outcome.INFRA_ERROR and "FAILED_SETUP" in result.reason


def test_a_job_cancelled_past_its_timeout_is_a_timeout(program, tmp_path):
    """Cancelled before its wrapper's last lines: no hashes, so the engine cannot know of a change and reports none
    (a read-only file is not taken for removed because its hash is missing)."""
    pilot = backend(program, tmp_path)
    result = pilot._result(spec(), "step 1\n", "CANCELLED", True, time.monotonic(), {"cluster": "c"})
    assert result.outcome is Outcome.TIMEOUT


def test_bad_stage_resources_are_named_by_their_key(program, tmp_path):
    with pytest.raises(ConfigError, match=r"decision.confirm.resources: .*positive"):
        backend(program, tmp_path, decision={"confirm": {"resources": {"accelerators": "H100:-1"}}})


def test_a_confirmation_stage_with_its_own_resources_gets_its_own_clusters(program, tmp_path):
    pilot = backend(
        program, tmp_path, decision={"confirm": {"resources": {"infra": "k8s", "accelerators": "H200:1"}}}
    )
    screen, confirm = pilot.pools["screen"], pilot.pools["confirm"]
    assert screen is not confirm
    assert not {w.name for w in screen.workers} & {w.name for w in confirm.workers}
    assert pilot.resources["confirm"].accelerators == "H200:1"
    assert pilot.resources["screen"].accelerators == "H100:1"


def test_skypilots_colours_and_line_prefixes_do_not_hide_the_metric(program, tmp_path):
    digest = hashlib.sha256((program / "data" / "corpus.txt").read_bytes()).hexdigest()
    raw = (
        "\x1b[32m⚙︎ Job submitted, ID: 3\x1b[0m\n"
        "(abc12345-w1-t0, pid=4242) step 10\n"
        "(abc12345-w1-t0, pid=4242) loss: 0.75\n"
        "(abc12345-w1-t0, pid=4242) [overnight] exit code 0\n"
        f"(abc12345-w1-t0, pid=4242) [overnight] sha256 {digest}  data/corpus.txt\n"
        "\x1b[32m✓ Job finished (status: SUCCEEDED).\x1b[0m\n"
    )
    text = clean_log(raw)
    assert "loss: 0.75\n" in text and "pid=" not in text and "\x1b" not in text
    result = backend(program, tmp_path)._result(
        spec(), text, "SUCCEEDED", False, time.monotonic(), {"cluster": "c"}
    )
    assert result.outcome is Outcome.OK and result.metrics["loss"] == 0.75 and result.exit_code == 0


def test_a_job_killed_from_outside_before_the_script_finished_is_an_infra_error_not_a_crash(
    program, tmp_path
):
    """The engine cancels a job only past its timeout (or on Ctrl-C): a job that ended before its wrapper's last line
    otherwise was ended by the infrastructure (a scancel, a node gone), so the trial is run again."""
    pilot = backend(program, tmp_path)
    result = pilot._result(spec(), "step 1\n", "FAILED", False, time.monotonic(), {"cluster": "c"})
    assert result.outcome is Outcome.INFRA_ERROR
    assert "ended FAILED on c before the script finished" in result.reason
    assert "step 1" in result.log_tail  # what it printed before, for the person who reads why


def test_skypilots_colours_do_not_reach_an_infra_errors_reason():
    error = RuntimeError("Cloud access is not set up. Run: \x1b[1msky check\x1b[0m")
    assert _one_line(error) == "RuntimeError: Cloud access is not set up. Run: sky check"
