"""Repairs within the wave, stage by stage: real trials crash on the real local backend, a real MLflow store records
them, and the real Claude planner (against the Messages API stand-in) or the offline planner is asked to repair."""

import pytest
from mlflow.tracking import MlflowClient
from standins.messages_api import error, tool_answer

from overnight.backends.local import LocalBackend
from overnight.config import load_config
from overnight.memory.store import Memory
from overnight.planners.claude import ClaudePlanner
from overnight.planners.offline import OfflinePlanner
from overnight.program import read_files
from overnight.proposals import Edit, Proposal, apply_proposal
from overnight.wave import dispatch
from overnight.wave.plan import record_trial
from overnight.wave.repair import repair_crash
from overnight.wave.scope import WaveScope

X = "X = 1.0  # best at 3"


@pytest.fixture
def wave(quadratic, tracking_uri, campaign_name):
    """Wave 1 of a night on the quadratic program, with its backend."""
    config = load_config(quadratic / "campaign.yaml", {"planner": {"kind": "claude", "http_retries": 0}})
    config = config.model_copy(update={"name": campaign_name})
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss", artifact_root=quadratic / "artifacts")
    agent = memory.start_agent_run("night", {})
    backend = LocalBackend(program=quadratic, work_root=quadratic / "work", metric="loss")
    return WaveScope(config, memory, agent, memory.start_wave(agent, 1), 1), backend


def crashed_run(scope, backend, trial_id, replace, source="claude"):
    """A proposal recorded as the planner's, run for real, its result recorded: (planned trial, result)."""
    shipped = read_files(scope.config.program, scope.config.editable)
    proposal = Proposal(
        hypothesis=trial_id, edits=[Edit(path="train.py", search=X, replace=replace)], source=source
    )
    files = apply_proposal(shipped, proposal, scope.config.editable)
    trial = record_trial(scope, scope.trial_id(trial_id), proposal, shipped, files, "")
    return trial, run(scope, backend, trial)


def run(scope, backend, trial):
    result = dispatch.run_trial(scope.config, scope.memory, backend, trial)
    dispatch.record_result(scope.memory, trial, result)
    return result


def fix(replace):
    edit = {"path": "train.py", "search": X, "replace": replace}
    return {
        "experiments": [{"hypothesis": "fixed", "rationale": "r", "expected_effect": "-", "edits": [edit]}]
    }


def test_a_crash_is_repaired_once_and_a_repair_is_never_repaired(messages_api, wave):
    scope, backend = wave
    messages_api.script("WaveAnswer", tool_answer(fix("import not_this_either\nX = 2.5  # best at 3")))
    claude = ClaudePlanner(scope.config)
    trial, result = crashed_run(scope, backend, "w1-t0", "import not_a_module\nX = 2.5  # best at 3")

    repaired = repair_crash(scope, claude, trial, result)
    assert (
        repaired.trial_id == trial.trial_id + "-fix"
        and "import not_this_either" in repaired.files["train.py"]
    )
    assert scope.memory.repair_links(trial.run_id)["repaired_by"] == repaired.run_id
    assert scope.memory.repair_links(repaired.run_id)["repair_of"] == trial.run_id
    # Asked again (a resumed wave sees the crash again): the recorded repair stands, and Claude is not asked.
    assert repair_crash(scope, claude, trial, result) is None
    # The repair crashes too: it is not sent back.
    assert repair_crash(scope, claude, repaired, run(scope, backend, repaired)) is None
    assert len(messages_api.for_tool("WaveAnswer")) == 1


def test_no_repair_when_claude_is_unavailable_is_a_note_on_the_wave(messages_api, wave):
    scope, backend = wave
    messages_api.script("WaveAnswer", error(529, "overloaded_error", "try later"))
    trial, result = crashed_run(scope, backend, "w1-t0", "import not_a_module\nX = 2.5  # best at 3")
    assert repair_crash(scope, ClaudePlanner(scope.config), trial, result) is None
    wave_run = MlflowClient(scope.memory.tracking_uri).get_run(scope.wave_run_id)
    (note,) = wave_run.data.tags["overnight.repair_note"].splitlines()
    assert note.startswith(f"Claude was unavailable to repair {trial.trial_id}")
    assert wave_run.data.metrics["repair_llm_calls"] == 0
    assert scope.memory.repair_links(trial.run_id)["repaired_by"] == "none"  # handled: never asked again


def test_the_offline_planner_and_a_claude_planner_with_repairs_off_never_repair(messages_api, wave):
    scope, backend = wave
    offline, result = crashed_run(scope, backend, "w1-t0", "import not_a_module", source="offline")
    assert repair_crash(scope, OfflinePlanner(scope.config), offline, result) is None
    repairs_off = scope.config.model_copy(
        update={"planner": scope.config.planner.model_copy(update={"repair_crashes": False})}
    )
    claude, result = crashed_run(scope, backend, "w1-t1", "import not_a_module\nX = 2.0  # best at 3")
    off = WaveScope(repairs_off, scope.memory, scope.agent_run_id, scope.wave_run_id, 1)
    assert repair_crash(off, ClaudePlanner(repairs_off), claude, result) is None
    assert messages_api.requests == []
    assert all(scope.memory.repair_links(t.run_id)["repaired_by"] == "" for t in (offline, claude))
