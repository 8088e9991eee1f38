"""The settled history: the trials of earlier waves, in a block of the plan prompt that stays the same for several
waves at a time (so the prompt cache can hold it), while the trials since are listed in the memory as before."""

import anthropic

from overnight.config import load_config
from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot
from overnight.planners import prompts
from overnight.planners.claude import ClaudePlanner
from overnight.trial import Outcome

LEVEL = prompts.LEVELS[0]


def trial(night: str, wave: int, number: int, lr: float, loss: float, status="finished") -> TrialRecord:
    return TrialRecord(
        run_id=f"{night}-{wave}-{number}",
        trial_id=f"{night}-w{wave}-t{number}",
        agent_run_id=night,
        wave=wave,
        status=status,
        outcome=Outcome.OK if status == "finished" else None,
        metric=loss if status == "finished" else None,
        hypothesis=f"LR to {lr}",
        params={"LR": str(lr)},
        fingerprint=f"{night}{wave}{number}",
        parent_champion=f"{night}-0-0",
        decision="discard" if status == "finished" else "",
        reason="",
        duration_s=1.0,
        started_ms=wave * 100 + number,
        role="candidate" if wave else "baseline",
    )


def night(name: str, waves: int, running_last: bool = False) -> list[TrialRecord]:
    trials = [trial(name, 0, 0, 0.001, 3.0)]
    for wave in range(1, waves + 1):
        status = "running" if running_last and wave == waves else "finished"
        trials += [
            trial(name, wave, n, 0.001 + wave / 1000 + n / 10000, 3 - wave / 100, status) for n in range(2)
        ]
    return trials


def snapshot(trials: list[TrialRecord]) -> MemorySnapshot:
    champion = trials[0]
    return MemorySnapshot("loss", "minimize", tuple(trials), champion, (champion,), (), {})


def test_a_nights_first_waves_settle_in_blocks_of_four():
    for newest, through in ((4, 0), (5, 4), (8, 4), (9, 8)):
        settled, which = prompts.settled_trials(snapshot(night("n1", newest)))
        assert {t.wave for t in settled} == set(range(1, through + 1)), newest
        assert which == (f"this night's waves 1-{through}" if through else "")


def test_every_earlier_night_is_settled_and_a_running_trial_never_is():
    trials = night("n1", 3) + night("n2", 6, running_last=True)
    settled, which = prompts.settled_trials(snapshot(trials))
    assert {t.wave for t in settled if t.agent_run_id == "n2"} == {1, 2, 3, 4}  # the newest night's waves 1-4
    assert (
        all(t.status == "finished" for t in settled)
        and len([t for t in settled if t.agent_run_id == "n1"]) == 7
    )
    assert which == "every earlier night and this night's waves 1-4"


def test_the_settled_block_stays_the_same_until_more_trials_settle():
    def blocks(waves: int) -> tuple[str, str]:
        view = snapshot(night("n1", waves))
        settled, which = prompts.settled_trials(view)
        return prompts.settled_history(view, settled, which, LEVEL), prompts.digest(view, LEVEL, settled)

    (five, _), (eight, memory_eight), (nine, _) = blocks(5), blocks(8), blocks(9)
    assert five == eight != nine  # waves 6, 7 and 8 added trials, a new wave 9 settled waves 5 to 8
    assert "n1-w4-t1" in five and "n1-w5-t0" not in five
    history = memory_eight.split("The trials since the settled history")[1]
    assert "n1-w5-t0" in history and "n1-w4-t1" not in history  # each trial is in one of the two


def test_the_settled_history_is_its_own_cached_block_before_the_champions_files(quadratic):
    config = load_config(quadratic / "campaign.yaml", {"planner": {"kind": "claude"}})
    planner = ClaudePlanner(config, client=anthropic.Anthropic(api_key="unused: nothing is sent"))
    view = snapshot(night("n1", 6))
    settled, which = prompts.settled_trials(view)
    prompt = prompts.plan_prompt(
        brief="the brief",
        champion_files={"train.py": "X = 1\n"},
        digest=prompts.digest(view, LEVEL, settled),
        settled=prompts.settled_history(view, settled, which, LEVEL),
        n=2,
        editable=["train.py"],
        metric="loss",
        budget_left="",
    )
    blocks = planner.user_content(prompt)
    assert [b["text"].split("\n")[0] for b in blocks[:3]] == [
        "<program_brief>",
        "<settled_history>",
        "<champion_files>",
    ]
    assert ["cache_control" in b for b in blocks] == [True, True, True, False]
