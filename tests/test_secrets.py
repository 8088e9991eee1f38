"""Secrets never reach MLflow: what a trial prints is scrubbed before it is stored."""

from overnight.memory.store import Memory
from overnight.secrets import scrub
from overnight.trial import Outcome, TrialResult


def test_values_of_secret_variables_and_credential_shapes_are_redacted():
    environ = {"MY_SERVICE_TOKEN": "tok-1234567890", "HOME": "/root", "DEBUG_PASSWORD": "short"}
    anthropic_like = "sk-" + "ant-api03-abcdefghijklmnop"  # built here so the repo holds nothing key-shaped
    aws_like = "AKIA" + "ABCDEFGHIJKLMNOP"
    text = f"token tok-1234567890 key {anthropic_like} aws {aws_like} home /root ok"
    assert scrub(text, environ) == "token [redacted] key [redacted] aws [redacted] home /root ok"


def test_a_trial_log_reaches_mlflow_scrubbed(tmp_path, tracking_uri, campaign_name, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890")
    memory = Memory(tracking_uri, campaign_name, "minimize", "loss", artifact_root=tmp_path / "artifacts")
    agent = memory.start_agent_run("night", {})
    wave = memory.start_wave(agent, 1)
    run_id = memory.start_trial(
        wave_run_id=wave,
        agent_run_id=agent,
        trial_id="t",
        wave=1,
        hypothesis="h",
        rationale="",
        params={},
        files={"train.py": ""},
        diff="",
        fingerprint="f",
        parent_champion="",
    )
    log = "using tok-1234567890\nAuthorization: Bearer abcdefghijklmnopqrstuvwxyz\nloss: 1\n"
    memory.finish_trial(
        run_id, TrialResult("t", Outcome.CRASH, {}, 1.0, 1, log, "died holding tok-1234567890")
    )
    stored = memory.read_artifact(run_id, "log_tail.txt")
    assert "tok-1234567890" not in stored and "abcdefghijklmnopqrstuvwxyz" not in stored
    assert stored.count("[redacted]") == 2 and "loss: 1" in stored
    assert memory.failed()[0].reason == "died holding [redacted]"
