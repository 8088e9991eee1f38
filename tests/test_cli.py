"""The `overnight` command as a user runs it: a real process, a real campaign, the summary it prints."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import configure_campaign, night_in_flight, processes_with, start_campaign

GOLDEN = Path(__file__).parent / "golden"


def overnight(*args, cwd, env=None, timeout=300, unset=()):
    """The CLI in its own process, as a user runs it, with `env` added and the `unset` variables removed."""
    command = [sys.executable, "-m", "overnight.cli", *args]
    environment = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", **(env or {})}
    environment = {k: v for k, v in environment.items() if k not in unset}
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
def test_a_renamed_config_key_still_loads_with_one_line_naming_the_new_one(tmp_path, quadratic):
    config = quadratic / "campaign.yaml"
    config.write_text(config.read_text().replace("budget: {waves: 2}", "budget: {iterations: 2}"))
    result = overnight("show-config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = " ".join((result.stdout + result.stderr).split())
    assert "warning: " in output and "budget.iterations is now budget.waves" in output
    assert (
        "ConfigWarning" not in output and '"waves": 2' in output
    )  # no Python warning report; the value kept


def test_run_prints_the_summary_and_how_to_open_both_uis(prefect_api, tmp_path, quadratic):
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    result = overnight("run", str(quadratic / "campaign.yaml"), "--waves", "2", cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    night = " ".join(output.replace("│", " ").split())  # (rich wraps the panel's lines)
    assert "this night: loss 13" in night and ": better by " in night and "lower is better" in night
    assert "crowns: LORD++(FDR 0.05" in night
    # The quadratic program ignores its seed and trains for no time at all: both said once, at the start.
    warnings = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and "ignores its seed" in warnings[0], warnings
    assert "does not follow OVERNIGHT_TIME_BUDGET" in warnings[1]
    assert "ok" in output and "Champion's change from this run's baseline:" in output
    assert "-X = 1.0" in output  # the champion's diff
    assert "Champion lineage (newest first):" in output and "baseline: the program as shipped" in output
    store = tmp_path / ".overnight" / "mlflow.db"
    assert store.is_file()  # the default store lives in the folder the user ran from
    assert f"{Path(sys.executable).parent}/mlflow ui --backend-store-uri sqlite:///{store}" in output
    assert f"Prefect UI: {PREFECT_API_URL.value().removesuffix('/api')}/runs/flow-run/" in output
    assert "Traceback" not in output and "Error flushing" not in output


def without_key() -> dict:
    return {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}


def test_a_program_with_nothing_to_turn_and_no_claude_is_refused_before_anything_runs(tmp_path):
    program = tmp_path / "program"
    program.mkdir()
    (program / "train.py").write_text('print("loss: 1.0")\n')  # no constant to guess a range around
    (program / "campaign.yaml").write_text("name: bare\nprogram: .\nmetric: {name: loss}\n")
    unset = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
    result = overnight(
        "run", str(program / "campaign.yaml"), cwd=tmp_path, env={"COLUMNS": "300"}, unset=unset
    )
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert "the offline planner has nothing to turn" in said
    assert "Declare the knobs in the config" in said and "set ANTHROPIC_API_KEY" in said  # the two fixes
    assert "Traceback" not in result.stdout + result.stderr and not (tmp_path / ".overnight").exists()


def test_show_config_lists_the_knobs_the_offline_planner_will_turn(tmp_path):
    import json

    program = tmp_path / "program"
    program.mkdir()
    (program / "train.py").write_text("LEARNING_RATE = 0.01\nDEPTH = 4\nprint('loss: 1.0')\n")
    (program / "campaign.yaml").write_text("name: guessed\nprogram: .\nmetric: {name: loss}\n")
    result = overnight("show-config", str(program / "campaign.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["knobs"] == []  # none declared: the guessed ones are listed apart, with their ranges
    turned = {k["name"]: k for k in shown["knobs_turned"]}
    assert turned["LEARNING_RATE"] == {
        "name": "LEARNING_RATE",
        "type": "float",
        "low": 0.001,
        "high": 0.1,
        "log": True,
        "current": 0.01,
        "source": "guessed",
    }
    assert turned["DEPTH"]["type"] == "int" and (turned["DEPTH"]["low"], turned["DEPTH"]["high"]) == (1, 16)


def test_a_failing_baseline_is_one_message_with_the_programs_last_lines_and_none_of_our_stack(
    prefect_api, tmp_path, quadratic
):
    from prefect.settings import PREFECT_API_URL

    (quadratic / "train.py").write_text("X = 1.0\nY = 2\nMODE = 'plain'\nimport missing_module_xyz\n")
    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    result = overnight("run", str(quadratic / "campaign.yaml"), cwd=tmp_path, env={**env, "COLUMNS": "300"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "The campaign failed: the baseline trial failed (crash: exited with status 1)" in output
    assert "ModuleNotFoundError: No module named 'missing_module_xyz'" in output  # the program's own lines
    assert output.count("Traceback (most recent call last)") == 1  # the program's, in its log; not ours
    assert "CampaignError" not in output and "Encountered exception" not in output and "prefect" not in output


def test_claude_without_a_key_is_a_clear_error_before_anything_runs(tmp_path, quadratic):
    config = quadratic / "campaign.yaml"
    config.write_text(config.read_text() + "planner: {kind: claude}\n")
    env = without_key()
    result = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "planner.kind: 'claude' needs the ANTHROPIC_API_KEY environment variable" in " ".join(
        result.stdout.split()
    )
    assert not (tmp_path / ".overnight").exists()


def test_plan_offline_says_why_and_shows_the_diffs(tmp_path, quadratic):
    env = without_key()
    result = subprocess.run(
        [sys.executable, "-m", "overnight.cli", "plan", str(quadratic / "campaign.yaml")],
        cwd=tmp_path,
        env={**env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Planner: offline, because ANTHROPIC_API_KEY is not set" in result.stdout
    assert "1. X 1.0 -> 2.0" in result.stdout and "+X = 2.0  # best at 3" in result.stdout


def test_plan_with_claude_prints_proposals_and_the_exact_prompt(tmp_path, quadratic):
    from standins.messages_api import MessagesAPI, text_answer, tool_answer

    edit = {"path": "train.py", "search": "X = 1.0  # best at 3", "replace": "X = 2.5  # best at 3"}
    answer = {
        "experiments": [
            {
                "hypothesis": "X toward 3",
                "rationale": "the loss is a bowl",
                "expected_effect": "-3.75",
                "edits": [edit],
            },
            {
                "hypothesis": "Y down",
                "rationale": "also a bowl",
                "expected_effect": "-5",
                "edits": [
                    {"path": "train.py", "search": "Y = 2  # best at -1", "replace": "Y = 0  # best at -1"}
                ],
            },
        ]
    }
    with MessagesAPI() as api:
        api.script("search_trials", text_answer("No query needed."))  # Claude's round of memory queries
        api.script("WaveAnswer", tool_answer(answer))
        env = {
            **without_key(),
            "ANTHROPIC_API_KEY": "sk-ant-cli-test",
            "ANTHROPIC_BASE_URL": api.base_url,
            "COLUMNS": "120",
        }
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "overnight.cli",
                "plan",
                str(quadratic / "campaign.yaml"),
                "--show-prompt",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "--- system ---" in shown.stdout and "X = 1.0  # best at 3" in shown.stdout
        assert "Propose exactly 2 experiments" in shown.stdout
        budget = "<budget_left>1 more waves after this one; each trial trains for 1 s (stopped past 30 s)</budget_left>"
        assert budget in shown.stdout  # the budget text the campaign would send
        assert api.requests == []  # showing the prompt calls nothing
        planned = subprocess.run(
            [sys.executable, "-m", "overnight.cli", "plan", str(quadratic / "campaign.yaml")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "Planner: claude, because ANTHROPIC_API_KEY is set" in planned.stdout
    assert "1. X toward 3" in planned.stdout and "the loss is a bowl" in planned.stdout
    assert "+X = 2.5  # best at 3" in planned.stdout
    usages = api.usages()  # a round of memory queries, then the answer
    tokens = [sum(u[key] for u in usages) for key in ("input_tokens", "output_tokens")]
    assert f"Planner usage: {tokens[0]} input / {tokens[1]} output tokens" in planned.stdout
    assert "sk-ant-cli-test" not in planned.stdout + planned.stderr


@pytest.mark.slow
def test_ctrl_c_stops_running_trials_and_leaves_nothing_running(prefect_api, tmp_path, quadratic):
    import signal
    import time

    from mlflow.tracking import MlflowClient
    from prefect.settings import PREFECT_API_URL

    train = quadratic / "train.py"  # a program that records its pid, then works for a long time
    train.write_text(
        train.read_text().replace(
            "import os\n",
            "import os\nimport time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n",
            1,
        )
    )
    config = quadratic / "campaign.yaml"
    config.write_text(
        config.read_text().replace("time_budget_s: 1, timeout_s: 30", "time_budget_s: 1, timeout_s: 120")
    )
    env = {**without_key(), "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "100"}
    process = start_campaign(config, tmp_path, env)
    pid_file = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the baseline trial is running
        pid_files = list((tmp_path / ".overnight" / "work").glob("*/*/pid"))
        if pid_files:
            pid_file = pid_files[0]
            break
        time.sleep(0.5)
    assert pid_file is not None, "the baseline never started"
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "stopped 2 running trial(s)" in output and "The campaign was interrupted" in output  # both copies
    time.sleep(0.5)  # its processes, found by its id in their environment (a boxed trial's pid is its box's)
    assert processes_with(f"OVERNIGHT_TRIAL_ID={pid_file.parent.name}\0") == []
    client = MlflowClient(f"sqlite:///{tmp_path / '.overnight' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("quadratic").experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    trials = [r for r in runs if r.data.tags.get("overnight.kind") == "trial"]
    assert len(trials) == 2  # the baseline's two copies
    for trial in trials:
        assert trial.info.status == "KILLED" and "interrupt" in trial.data.tags["overnight.reason"].lower()


def test_an_unreachable_tracking_server_fails_early_and_plainly(tmp_path, quadratic):
    env = {**without_key(), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "COLUMNS": "200"}
    for command in (["run"], ["plan"]):
        result = subprocess.run(
            [sys.executable, "-m", "overnight.cli", *command, str(quadratic / "campaign.yaml")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "MLflow is not usable: the tracking server http://127.0.0.1:9 does not answer" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr


def test_status_on_sqlite_shows_the_running_trials_without_importing_mlflow(
    tmp_path, quadratic, tracking_uri, campaign_name
):
    """A status check costs a fraction of a second: on a SQLite store it reads the file directly, so it never
    pays for importing MLflow (or Prefect) and opening the store through it."""
    from overnight.memory.store import Memory

    config = configure_campaign(quadratic, name=campaign_name, tracking_uri=tracking_uri)
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss")
    night_in_flight(memory)
    shown = overnight(
        "status", str(config), cwd=tmp_path, env={"COLUMNS": "200", "PYTHONPROFILEIMPORTTIME": "1"}
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text = " ".join(shown.stdout.split())
    assert f"Campaign {campaign_name}: agent run night 2 running for" in text and "wave 1;" in text
    assert "3 trials finished, 2 running" in text and "$0.05 of language-model calls" in text
    assert "$0.02 of compute" in text
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in shown.stdout.splitlines()[1:]]
    assert ["n2-run", "try n2-run", "local host /tmp/work/n2-run"] in rows
    assert ["n2-start", "try n2-start", "(starting)"] in rows
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in shown.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "overnight" in imported
    assert not imported & {"mlflow", "sqlalchemy", "alembic", "prefect", "torch"}

    memory.finish_agent_run(memory.status().agent_run_id, {}, "# Night 2\n")
    after = overnight("status", str(config), cwd=tmp_path)
    assert f"Campaign {campaign_name}: nothing running; champion n1-base loss=0.9." in " ".join(
        after.stdout.split()
    )


@pytest.mark.slow
def test_status_shows_what_runs_now(prefect_api, tmp_path, quadratic):
    import signal
    import time

    from prefect.settings import PREFECT_API_URL

    train = quadratic / "train.py"  # trials that take a while
    train.write_text(train.read_text().replace("import os\n", "import os\nimport time\ntime.sleep(30)\n", 1))
    config = quadratic / "campaign.yaml"
    config.write_text(
        config.read_text().replace("time_budget_s: 1, timeout_s: 30", "time_budget_s: 1, timeout_s: 120")
    )
    env = {**without_key(), "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (
            not list((tmp_path / ".overnight" / "work").glob("*/*/run.log")) and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        time.sleep(3)
        shown = overnight("status", str(config), cwd=tmp_path, env=env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        text = " ".join(shown.stdout.split())
        assert "Campaign quadratic: agent run offline" in text and "wave 0" in text
        assert "0 trials finished, 2 running" in text and "spend so far" in text
        assert "-baseline" in text and f"local {socket.gethostname()}:" in text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    after = overnight("status", str(config), cwd=tmp_path, env=env)
    assert "Campaign quadratic: nothing running" in after.stdout
