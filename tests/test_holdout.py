"""The holdout, for real: the default program trains for a second on the local backend, saves its model, and
evaluate.py scores it in a fresh process on text no trial's folder holds; the value lands on the champion's MLflow
run, beside its metric in the report, and never in what a planner reads."""

import shutil
import socket
import subprocess
import sys

import anthropic
import pytest
from mlflow.tracking import MlflowClient

from overnight.backends.local import LocalBackend
from overnight.config import ConfigError, default_config_path, load_config
from overnight.holdout import HOLDOUT_DATA_ENV, holdout_env, measure_holdout, trial_folder
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner
from overnight.program import file_hashes, read_files, set_constant
from overnight.report import write_report
from overnight.trial import Outcome, TrialResult, TrialSpec
from overnight.wave.plan import plan_context

HOLDOUT_METRIC = "holdout_val_bpb"


def with_constants(files: dict[str, str], **values: object) -> dict[str, str]:
    text = files["train.py"]
    for name, value in values.items():
        edit = set_constant("train.py", text, name, value)
        text = text.replace(edit.search, edit.replace, 1)
    return {**files, "train.py": text}


class Night:
    """An agent run of the default campaign in a real MLflow store, its trials recorded as the engine records them."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self.agent = memory.start_agent_run("night 1", {"planner": "offline"})
        self.wave = memory.start_wave(self.agent, 0)

    def trial(
        self, trial_id: str, files: dict[str, str], result: TrialResult, where: str, role="baseline"
    ) -> str:
        run_id = self.memory.start_trial(
            wave_run_id=self.wave,
            agent_run_id=self.agent,
            trial_id=trial_id,
            wave=0,
            hypothesis=f"try {trial_id}",
            rationale="",
            params={},
            files=files,
            diff="",
            fingerprint=trial_id,
            parent_champion="",
            role=role,
        )
        self.memory.record_dispatch(run_id, where)
        self.memory.finish_trial(run_id, result)
        return run_id


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A real trial of the default program (1 s of training, a narrower and shallower model than shipped, so that
    only the folder's own train.py can rebuild it) crowned champion in a real store: (config, memory, run id,
    trial folder, its result)."""
    root = tmp_path_factory.mktemp("holdout")
    config = load_config(default_config_path(), {"state_dir": str(root / "state")})
    memory = Memory(f"sqlite:///{root / 'mlflow.db'}", "holdout", "minimize", "val_bpb", root / "artifacts")
    backend = LocalBackend(config.program, root / "work", "val_bpb")
    files = with_constants(read_files(config.program, config.editable), WIDTH=64, DEPTH=2)
    spec = TrialSpec("n1-t0", files, 0, config.command, 1.0, 120.0, {"OMP_NUM_THREADS": "1"})
    result = backend.run(spec)
    assert result.outcome is Outcome.OK, result.log_tail
    night = Night(memory)
    run_id = night.trial("n1-t0", files, result, backend.where("n1-t0"))
    memory.set_champion(run_id, "", why="the program as shipped")
    return config, memory, run_id, backend.trial_dir("n1-t0"), result


def evaluate(folder, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "evaluate.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_evaluator_scores_the_saved_model_of_the_folders_own_train_py_on_the_holdout_text(champion):
    config, _, _, folder, result = champion
    holdout_text = config.metric.holdout_data.read_bytes()
    assert not config.metric.holdout_data.is_relative_to(config.program)
    # The training script never had the holdout text: no file of its folder holds it.
    assert all(holdout_text not in (folder / path).read_bytes() for path in file_hashes(folder))
    assert (folder / ".overnight" / "model.pt").is_file()

    scored = evaluate(folder, {"PATH": "/usr/bin:/bin", HOLDOUT_DATA_ENV: str(config.metric.holdout_data)})
    assert scored.returncode == 0, scored.stdout + scored.stderr
    (line,) = scored.stdout.splitlines()
    name, value = line.split(": ")
    assert (
        name == "val_bpb" and 0 < float(value) < 8.5
    )  # a trained byte model: below uniform (8 bits) or near it
    assert float(value) != pytest.approx(result.metrics["val_bpb"], abs=1e-6)  # another text than validation

    unset = evaluate(folder, {"PATH": "/usr/bin:/bin"})
    assert unset.returncode == 1 and f"{HOLDOUT_DATA_ENV} is not set" in unset.stderr


def test_measure_holdout_records_the_metric_and_status_on_the_champions_run(champion):
    config, memory, run_id, folder, _ = champion
    before = file_hashes(folder)
    measured = measure_holdout(config, memory, run_id)
    assert measured is not None and measured.ok, measured
    run = MlflowClient(memory.tracking_uri).get_run(run_id)
    assert run.data.metrics[HOLDOUT_METRIC] == pytest.approx(measured.value)
    assert run.data.tags["overnight.holdout_status"] == "ok"
    assert file_hashes(folder) == before  # the holdout changed nothing in the trial's folder
    # The environment is the trial's (no secrets of the orchestrator) plus where the data is.
    env = holdout_env(config, memory.find_trial_by_run(run_id))
    assert env[HOLDOUT_DATA_ENV] == str(config.metric.holdout_data) and env["OMP_NUM_THREADS"] == "1"


def test_a_failing_holdout_is_one_clear_status_and_the_campaigns_records_stand(
    champion, tmp_path, monkeypatch
):
    config, memory, run_id, folder, result = champion
    monkeypatch.setenv("OVERNIGHT_TEST_API_KEY", "sk-holdout-secret-value-123456")
    # A folder whose model was never saved (train.py lost its save line, say): the evaluator says so.
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / ".overnight" / "model.pt").unlink()
    night = Night(memory)
    unsaved = night.trial("n1-t1", {"train.py": "X = 1\n"}, result, f"local {socket.gethostname()}:{bare}")
    failed = measure_holdout(config, memory, unsaved)
    assert not failed.ok and failed.value is None
    assert failed.status.startswith("failed: 'python evaluate.py' exited with status 1\n")
    assert "no saved model: .overnight/model.pt not found" in failed.status

    slow = load_config(
        default_config_path(),
        {
            "trial.time_budget_s": 0.5,
            "trial.timeout_s": 1,
            "metric.holdout": "python -c 'import time; time.sleep(60)'",
        },
    )
    timed_out = measure_holdout(slow, memory, run_id)
    assert timed_out.status == "failed: timed out after 1 s"

    leaky = load_config(
        default_config_path(), {"metric.holdout": "python -c 'import os; print(dict(os.environ))'"}
    )
    leaked = measure_holdout(leaky, memory, run_id)
    assert leaked.status.startswith("failed: ") and "'OMP_NUM_THREADS': '1'" in leaked.status
    assert "OVERNIGHT_TEST_API_KEY" not in leaked.status  # none of the orchestrator's secrets reach it

    client = MlflowClient(memory.tracking_uri)
    assert HOLDOUT_METRIC not in client.get_run(unsaved).data.metrics
    assert client.get_run(run_id).data.tags["overnight.holdout_status"].startswith("failed: ")
    champion_now = memory.champion()  # the champion, its metric and outcome are as they were
    assert champion_now.run_id == run_id and champion_now.outcome is Outcome.OK
    assert champion_now.metric == pytest.approx(result.metrics["val_bpb"])
    assert (
        measure_holdout(
            load_config(default_config_path(), {"metric.holdout": None, "metric.holdout_data": None}),
            memory,
            run_id,
        )
        is None
    )


def test_the_holdout_says_where_it_cannot_run():
    assert trial_folder("skypilot aws")[1].startswith(
        "unsupported: the holdout runs on the local backend only"
    )
    assert trial_folder("local elsewhere-host:/tmp")[1] == (
        "failed: the trial ran on elsewhere-host, and its folder is not on this machine"
    )
    assert trial_folder("")[1].startswith("failed: its trial run records no local folder")


def test_holdout_data_inside_the_program_folder_is_refused():
    with pytest.raises(ConfigError, match="metric.holdout_data: .* is inside the program folder"):
        load_config(default_config_path(), {"metric.holdout_data": "data/shakespeare.txt"})


def test_no_planner_reads_the_holdout(champion):
    config, memory, run_id, _, _ = champion
    memory.log_metrics(run_id, {HOLDOUT_METRIC: 7.654321})  # a value no other number of the prompt has
    context = plan_context(config, memory, 1, config.wave_size)
    records = [*context.memory.trials, context.memory.champion, *context.memory.lineage]
    assert context.memory.champion.run_id == run_id
    assert all(not key.startswith("holdout_") for record in records for key in record.metrics)
    assert "7.65432" not in repr(context)  # the offline planner's whole input
    planner = ClaudePlanner(config, client=anthropic.Anthropic(api_key="unused: nothing is sent"))
    prompt = planner.prompt(context).text
    assert context.memory.champion.trial_id in prompt  # the champion is in it, its holdout is not
    assert "7.65432" not in prompt and HOLDOUT_METRIC not in prompt
    champion = context.memory.champion.trial_id  # nor in what Claude's memory queries return
    for tool, arguments in (("read_trial", {"trial_id": champion}), ("lineage", {}), ("search_trials", {})):
        answer = context.lookup(tool, arguments)
        assert "7.65432" not in answer and HOLDOUT_METRIC not in answer, tool


def test_the_report_sets_validation_and_holdout_side_by_side_and_flags_a_disagreement(tmp_path):
    memory = Memory(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "report", "minimize", "val_bpb", tmp_path / "artifacts"
    )
    night = Night(memory)
    shipped = {"train.py": "LEARNING_RATE = 0.001\n"}
    previous = ""
    # version: validation, holdout (None: the holdout failed)
    for version, (valid, held) in enumerate([(3.0, 3.2), (2.9, 3.3), (2.8, 3.1), (2.7, None)]):
        files = with_constants(shipped, LEARNING_RATE=0.001 * (version + 1)) if version else shipped
        ok = TrialResult(f"v{version}", Outcome.OK, {"val_bpb": valid}, 10.0, 0, "")
        run_id = night.trial(
            f"v{version}", files, ok, "local host:/nowhere", "candidate" if version else "baseline"
        )
        memory.record_decision(run_id, "keep" if version else "baseline", "")
        memory.set_champion(run_id, previous, gain=0.1 if version else None)
        status = "ok" if held is not None else "failed: 'python evaluate.py' exited with status 1"
        memory.set_tags(run_id, {"overnight.holdout_status": status})
        if held is not None:
            memory.log_metrics(run_id, {HOLDOUT_METRIC: held})
        previous = run_id
    memory.finish_wave(night.wave, {}, "", [])

    markdown = write_report(memory, tmp_path / "report").markdown
    assert "| version | trial | change | val_bpb | holdout val_bpb | confirmed gain | verdict |" in markdown
    assert "| 0 | v0 | try v0 | 3 | 3.2 | - |" in markdown
    assert "| 1 | v1 | try v1 | 2.9 | 3.3 **worse than its parent** | 0.1 |" in markdown
    assert "| 2 | v2 | try v2 | 2.8 | 3.1 | 0.1 |" in markdown
    assert "| 3 | v3 | try v3 | 2.7 | failed | 0.1 |" in markdown
    assert (
        "- **Holdout:** version 1 (v1) improved val_bpb on validation but got worse on the holdout than version 0"
        in markdown
    )
    assert "version 2 (v2) improved" not in markdown and "version 3 (v3) improved" not in markdown
