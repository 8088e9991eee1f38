"""The language model answers 429, 500 or garbage: the campaign completes, each wave says what happened (retried,
or filled by the offline planner), and the counts in MLflow add up."""

import pytest
from faultkit import check_books
from helpers import configure_campaign
from mlflow.tracking import MlflowClient
from standins.messages_api import error, tool_answer

from flows.campaign import campaign_flow

pytestmark = pytest.mark.slow


def experiment(hypothesis, search, replace):
    edit = {"path": "train.py", "search": search, "replace": replace}
    return {"hypothesis": hypothesis, "rationale": "r", "expected_effect": "lower", "edits": [edit]}


WAVE_1 = {
    "experiments": [
        experiment("X toward 3", "X = 1.0  # best at 3", "X = 2.5  # best at 3"),
        experiment("Y toward -1", "Y = 2  # best at -1", "Y = 0  # best at -1"),
    ]
}
GARBAGE = {"experiments": [{"hypothesis": 42, "edits": "all of them"}], "factorial": "yes"}
INSIGHTS = {"learned": ["INSIGHT-7"], "dead_ends": [], "next_directions": []}


def garbage_body(body: dict) -> tuple[int, dict, object]:
    """A 200 whose body is JSON but no message at all."""
    return 200, {}, {"id": "msg_standin", "oops": ["not", "a", "message"]}


def test_rate_limits_errors_and_garbage_from_the_model_never_stop_the_campaign(
    prefect_api, messages_api, quadratic, tmp_path
):
    messages_api.script(
        "WaveAnswer",
        error(429, "rate_limit_error"),  # wave 1: rate limited, then a server error, then a good answer
        error(500, "api_error"),
        tool_answer(WAVE_1),
        tool_answer(GARBAGE),  # wave 2: malformed tool input, every attempt
        tool_answer(GARBAGE),
        tool_answer(GARBAGE),
        garbage_body,  # wave 3: a body that is no message (instructor gives up on it at once)
        error(500, "api_error"),  # wave 4: the API stays down past the retries
    )
    messages_api.script("Insights", error(429, "rate_limit_error"), tool_answer(INSIGHTS))
    path = configure_campaign(
        quadratic,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        state_dir=str(tmp_path / "state"),
        planner={"kind": "auto", "http_retries": 2, "validation_retries": 2},
        budget={"waves": 4},
    )
    state = campaign_flow(config_path=str(path), return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    assert summary.waves == 4

    client = MlflowClient(summary.tracking_uri)
    books = check_books(client, summary.experiment_id, summary.agent_run_id)
    waves = {int(w.data.tags["overnight.wave"]): w for w in books["waves"]}
    by_wave: dict[int, set[str]] = {}
    for trial in books["trials"].values():
        if trial.data.tags["overnight.role"] == "candidate":
            wave = int(trial.data.tags["overnight.wave"])
            by_wave.setdefault(wave, set()).add(trial.data.tags["overnight.proposed_by"])

    # Wave 1: the client retried the 429 and the 500 and Claude's plan ran as written.
    assert "overnight.planner_fallback" not in waves[1].data.tags
    assert by_wave[1] == {"claude"}
    # Waves 2 to 4: the offline planner filled in, and the wave says why.
    notes = {w: waves[w].data.tags.get("overnight.planner_note", "") for w in (2, 3, 4)}
    assert "Claude's answer failed validation 3 times" in notes[2]
    assert "Claude was unavailable (HTTP 500: InternalServerError)" in notes[4]
    assert notes[3].startswith("Claude's answer failed validation"), notes[3]
    for wave in (2, 3, 4):
        assert waves[wave].data.tags["overnight.planner_fallback"] == "true"
        assert "2 of 2 proposals filled by the offline planner" in notes[wave]
        assert by_wave[wave] == {"offline"}
        with open(client.download_artifacts(waves[wave].info.run_id, "reflection.md")) as reflection:
            assert f"**Planner note:** {notes[wave]}" in reflection.read()
    # What the stand-in saw: 3 tries in wave 1, 3 validation attempts in wave 2, 1 in wave 3, 1 + 2 retries in wave 4.
    assert len(messages_api.for_tool("WaveAnswer")) == 10
    print(f"\n{summary.trials} trials, outcomes {summary.outcomes}; notes: {notes}")
