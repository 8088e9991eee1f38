"""The offline planner's surrogate on the synthetic program, whose true score is known: after one screening wave it
combines the moves that helped, learns an interaction, and `planner.search: tpe` keeps Optuna's sampler alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import SYNTHETIC, load_synthetic
from pydantic import ValidationError

from overnight.config import PlannerSettings, load_config
from overnight.memory.records import TrialRecord
from overnight.memory.snapshot import MemorySnapshot
from overnight.planners import PlanContext, surrogate
from overnight.planners.offline import OfflinePlanner
from overnight.program import constants
from overnight.proposals import apply_proposal, fingerprint
from overnight.trial import Outcome

truth, DEFAULTS = load_synthetic()
CONFIG = load_config(SYNTHETIC / "campaign.yaml")
FILES = {"train.py": (SYNTHETIC / "train.py").read_text()}
OPTIMUM = 0.96  # the truth's best setting


def knobs_of(files: dict[str, str]) -> dict:
    found = constants(files["train.py"])
    return {name: found[name].value for name in DEFAULTS}


class Campaign:
    """The records the engine would write for runs of the synthetic program, each with a seed of its own."""

    def __init__(self):
        self.history: list[TrialRecord] = []
        for _ in range(3):
            self.run(FILES, "baseline", 0)
        self.champion = self.history[0]

    def run(self, files: dict[str, str], role: str, wave: int, hypothesis: str = "") -> TrialRecord:
        knobs = knobs_of(files)
        record = TrialRecord(
            run_id=f"r{len(self.history)}",
            trial_id=f"r{len(self.history)}",
            agent_run_id="test",
            wave=wave,
            status="finished",
            outcome=Outcome.OK,
            metric=truth.measure(knobs, 1000 + len(self.history)),
            hypothesis=hypothesis,
            params={name: str(value) for name, value in knobs.items()},
            fingerprint=fingerprint(files),
            parent_champion="r0",
            decision="baseline" if role == "baseline" else "",
            reason="",
            duration_s=1.0,
            started_ms=len(self.history),
            hardware="cpu",
            budget_s=1.0,
            role=role,
        )
        self.history.append(record)
        return record

    def context(self, wave: int, n: int) -> PlanContext:
        memory = MemorySnapshot(
            "score", "minimize", tuple(self.history), self.champion, (self.champion,), (), {}
        )
        return PlanContext(wave, n, FILES, memory)


def screened_campaign(config=CONFIG) -> tuple[Campaign, OfflinePlanner, list]:
    """The baseline and a first wave of 16 one-knob moves, measured."""
    campaign, planner = Campaign(), OfflinePlanner(config)
    first = planner.propose(campaign.context(1, 16)).proposals
    for proposal in first:
        campaign.run(apply_proposal(FILES, proposal, config.editable), "candidate", 1, proposal.hypothesis)
    return campaign, planner, first


def test_a_first_wave_with_room_to_spare_adds_two_step_moves():
    _, _, first = screened_campaign()
    assert all(len(p.params) == 1 for p in first)  # still one knob at a time
    hypotheses = [p.hypothesis for p in first]
    assert hypotheses[:2] == ["LEARNING_RATE 0.001 -> 0.002", "LEARNING_RATE 0.001 -> 0.0005"]
    # Nine knobs give 14 one-step moves (WARMUP_FRAC sits at its lower end); the last two slots go two steps.
    assert hypotheses[14:] == ["LEARNING_RATE 0.001 -> 0.004", "LEARNING_RATE 0.001 -> 0.00025"]


def test_after_the_screening_wave_the_surrogate_combines_the_moves_that_helped():
    campaign, planner, first = screened_campaign()
    best_single = min(
        truth.expected_score(knobs_of(apply_proposal(FILES, p, CONFIG.editable))) for p in first
    )
    second = planner.propose(campaign.context(2, 16)).proposals
    scores = [truth.expected_score(knobs_of(apply_proposal(FILES, p, CONFIG.editable))) for p in second]
    assert second[0].hypothesis.startswith("surrogate's best guess:")
    assert len(second[0].params) >= 4  # a combination, not one more single move
    assert scores[0] < best_single - 0.04  # the best guess beats the best single move by 4σ and more
    assert (
        min(scores) < OPTIMUM + 0.015
    )  # and some draw comes within 1.5σ of the optimum, interaction included
    best = second[scores.index(min(scores))].params
    assert (best.get("ACTIVATION"), best.get("NORM")) == ("swiglu", "rms")


def test_the_surrogate_learns_an_interaction_that_no_single_move_shows():
    axes = [
        surrogate.Axis(knob, DEFAULTS[knob.name])
        for knob in CONFIG.knobs
        if knob.name in ("ACTIVATION", "NORM")
    ]
    observations = []
    for activation in ("gelu", "swiglu"):
        for norm in ("layer", "rms"):
            knobs = {**DEFAULTS, "ACTIVATION": activation, "NORM": norm}
            values = {"ACTIVATION": activation, "NORM": norm}
            observations += [(values, ("cpu", "1"), truth.measure(knobs, seed)) for seed in range(3)]
    model = surrogate.fit(axes, observations, ("cpu", "1"), truth.NOISE_SIGMA)
    assert model.best(model.mean) == {"ACTIVATION": "swiglu", "NORM": "rms"}
    both = model.predict({"ACTIVATION": "swiglu", "NORM": "rms"})
    alone = model.predict({"ACTIVATION": "swiglu", "NORM": "layer"})
    assert both < alone - 0.01  # rms helps only beside swiglu: 0.03 in the truth, shrunk by the prior


def test_search_tpe_keeps_optunas_sampler_alone():
    config = CONFIG.model_copy(update={"planner": CONFIG.planner.model_copy(update={"search": "tpe"})})
    campaign, planner, _ = screened_campaign(config)
    second = planner.propose(campaign.context(2, 16)).proposals
    assert len(second) == 16 and all(p.hypothesis.startswith("TPE:") for p in second)
    assert CONFIG.planner.search == "surrogate"  # the default
    with pytest.raises(ValidationError, match="search"):
        PlannerSettings(search="bayes")


def test_a_wave_planned_while_the_first_one_runs_goes_on_screening():
    campaign, planner = Campaign(), OfflinePlanner(CONFIG)
    first = planner.propose(campaign.context(1, 16)).proposals
    for proposal in first:  # dispatched, not finished: no metric yet
        record = campaign.run(
            apply_proposal(FILES, proposal, CONFIG.editable), "candidate", 1, proposal.hypothesis
        )
        campaign.history[-1] = replace(record, status="running", outcome=None, metric=None)
    second = planner.propose(campaign.context(2, 16)).proposals
    assert len(second) == 16
    assert not {p.hypothesis for p in first} & {
        p.hypothesis for p in second
    }  # pending trials are not repeated
    assert second[0].hypothesis == "BATCH_SIZE 16 -> 64"  # the two-step moves the first wave had no room for
    assert all(len(p.params) == 1 for p in second[:9])


def test_the_surrogate_steers_away_from_settings_that_crashed():
    # The truth rewards a higher learning rate (its best is 3e-3), but every run above 1e-3 crashed: a program that
    # diverges there. A model fitted to the finished runs alone reads the lower rates' losses as "go up".
    campaign, planner = Campaign(), OfflinePlanner(CONFIG)
    for proposal in planner.propose(campaign.context(1, 16)).proposals:
        run = campaign.run(
            apply_proposal(FILES, proposal, CONFIG.editable), "candidate", 1, proposal.hypothesis
        )
        if float(run.params["LEARNING_RATE"]) > 1e-3:
            campaign.history[-1] = replace(run, outcome=Outcome.CRASH, metric=None)
    assert sum(t.outcome is Outcome.CRASH for t in campaign.history) == 2  # LEARNING_RATE 0.002 and 0.004
    second = planner.propose(campaign.context(2, 16)).proposals
    rates = [float(p.params.get("LEARNING_RATE", 1e-3)) for p in second]
    assert max(rates) <= 1e-3, [
        p.hypothesis for p in second if float(p.params.get("LEARNING_RATE", 0)) > 1e-3
    ]
