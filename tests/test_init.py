"""`overnight init` as a new user runs it on a program they already have: the config it writes, what it says, and
a campaign run from that config with the README's command."""

import shutil
from pathlib import Path

import yaml
from test_cli import overnight

FIXTURES = Path(__file__).parent / "fixtures"


def said(result) -> str:
    return " ".join((result.stdout + result.stderr).split())


def knobs_by_name(config: dict) -> dict[str, dict]:
    return {knob["name"]: knob for knob in config.get("knobs", [])}


def test_init_on_an_autoresearch_layout_writes_a_config_that_runs_as_it_is(prefect_api, tmp_path):
    from prefect.settings import PREFECT_API_URL

    program = tmp_path / "autoresearch_like"
    shutil.copytree(FIXTURES / "autoresearch_like", program)
    result = overnight("init", "autoresearch_like", cwd=tmp_path, timeout=180)
    output = said(result)
    assert result.returncode == 0, output
    assert (
        output.count("Running `python train.py` in a scratch copy") == 1
    )  # it says so, once: no seed to vary
    written = (program / "campaign.yaml").read_text()
    config = yaml.safe_load(written)

    assert config["metric"] == {"name": "val_bpb", "goal": "minimize"}  # from the `---` block; bpb: lower
    assert (
        config["trial"]["time_budget_s"] == 3
    )  # prepare.py's TIME_BUDGET, read-only, which train.py follows
    assert "does not read OVERNIGHT_TIME_BUDGET: it trains for prepare.py's TIME_BUDGET = 3 s" in output
    assert "does not read OVERNIGHT_SEED: it fixes its seed (train.py:" in output
    assert "torch.manual_seed(42)" in output and "# WARNING:" in written  # said, and kept in the file

    knobs = knobs_by_name(config)
    beta1, beta2 = knobs["ADAM_BETAS[0]"], knobs["ADAM_BETAS[1]"]  # a tuple: one knob per element
    assert 0 <= beta1["low"] < 0.8 < beta1["high"] < 1 and 0 <= beta2["low"] < 0.95 < beta2["high"] < 1
    assert knobs["WARMUP_RATIO"]["low"] == 0 and not knobs["WARMUP_RATIO"].get("log")  # zero: a linear range
    assert knobs["WARMDOWN_RATIO"]["high"] < 1
    assert knobs["TOTAL_BATCH_SIZE"]["powers_of_two"] is True  # written 2**12
    for left_out in ("H100_BF16_PEAK_FLOPS", "CPU_EVAL_BATCH_SIZE", "LOG_EVERY"):
        assert left_out not in knobs and f"#   {left_out}: " in written
    assert (
        "# DEPTH = 8: read only when torch.cuda.is_available()" in written
    )  # its CPU twin overrides it here: visible before a night

    again = overnight("init", "autoresearch_like", cwd=tmp_path)
    assert again.returncode == 2 and "exists; nothing was written (pass --force" in said(again)
    assert (program / "campaign.yaml").read_text() == written

    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    ran = overnight(
        "run", "autoresearch_like/campaign.yaml", "--waves", "1", cwd=tmp_path, env=env
    )  # README's
    output = said(ran)
    assert ran.returncode == 0, output
    assert "metric val_bpb (minimize)" in output and "3 s per trial" in output
    assert (
        "warning: the program does not follow OVERNIGHT_TIME_BUDGET" not in output
    )  # its own 3 s is the budget


def test_init_on_a_program_that_ignores_its_seed_says_so_and_what_to_change(tmp_path):
    program = tmp_path / "seedless"
    program.mkdir()
    (program / "train.py").write_text(
        "import os, random, time\n"
        "SEED = int(os.environ.get('OVERNIGHT_SEED', 0))  # read, but never given to the generator\n"
        "LEARNING_RATE = 3e-4\n"
        "DROPOUT = 0.1\n"
        "USE_BIAS = True\n"
        "PRINT_EVERY = 100\n"
        "random.seed(1234)\n"
        "time.sleep(float(os.environ['OVERNIGHT_TIME_BUDGET']) / 10)\n"
        "print(f'train_loss: {random.random() + DROPOUT:.6f}')\n"
        "print(f'val_accuracy: {0.5 + LEARNING_RATE + random.random() / 10 - USE_BIAS / 100:.6f}')\n"
        "print(f'training_seconds: 1.0')\n"
    )
    result = overnight("init", str(program), "--time-budget", "2", cwd=tmp_path, timeout=120)
    output = said(result)
    assert result.returncode == 0, output
    assert output.count("in a scratch copy of seedless") == 2  # two seeds, each said before it starts
    config = yaml.safe_load((program / "campaign.yaml").read_text())
    assert config["metric"] == {"name": "val_accuracy", "goal": "maximize"}  # a validation figure, named acc
    assert "also printed: train_loss" in output
    assert config["trial"]["time_budget_s"] == 2
    assert "reads OVERNIGHT_SEED, but seeds 0 and 1 gave the same val_accuracy" in output
    knobs = knobs_by_name(config)
    assert (
        knobs["LEARNING_RATE"]["log"] is True
        and knobs["LEARNING_RATE"]["low"] < 3e-4 < knobs["LEARNING_RATE"]["high"]
    )
    assert 0 <= knobs["DROPOUT"]["low"] < 0.1 < knobs["DROPOUT"]["high"] < 1
    assert knobs["USE_BIAS"]["choices"] == [True, False]
    assert "PRINT_EVERY" not in knobs and "SEED" not in knobs


def test_init_says_what_to_pass_when_no_printed_name_reads_as_a_metric(tmp_path):
    program = tmp_path / "quiet"
    program.mkdir()
    (program / "train.py").write_text("import os\nWIDTH = 64\nprint('perf: 0.5')\n")
    result = overnight("init", str(program), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "pass --metric NAME --goal minimize|maximize" in said(result) and "perf" in said(result)
    assert not (program / "campaign.yaml").exists()

    named = overnight(
        "init", str(program), "--metric", "perf", "--goal", "maximize", cwd=tmp_path, timeout=120
    )
    assert named.returncode == 0, said(named)
    assert yaml.safe_load((program / "campaign.yaml").read_text())["metric"] == {
        "name": "perf",
        "goal": "maximize",
    }
    unrun = overnight("init", str(program), "--no-run", "--force", cwd=tmp_path)  # from the code alone
    assert unrun.returncode == 2 and "with --no-run nothing is printed" in said(unrun)
    unrun = overnight("init", str(program), "--no-run", "--force", "--metric", "val_loss", cwd=tmp_path)
    assert unrun.returncode == 0 and "Running" not in said(unrun), said(unrun)
    assert yaml.safe_load((program / "campaign.yaml").read_text())["metric"]["goal"] == "minimize"


def test_a_program_that_crashes_in_its_brief_run_gets_its_own_last_lines_and_no_config(tmp_path):
    program = tmp_path / "broken"
    program.mkdir()
    (program / "train.py").write_text("LR = 0.1\nimport missing_module_xyz\n")
    result = overnight("init", str(program), cwd=tmp_path, timeout=120)
    output = said(result)
    assert result.returncode == 2
    assert "ended crash (exit code 1)" in output and "No module named 'missing_module_xyz'" in output
    assert output.count("Traceback (most recent call last)") == 1  # the program's own; not ours
    assert not (program / "campaign.yaml").exists()
