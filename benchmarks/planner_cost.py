"""Planner cost: prompt tokens per wave and dollars per experiment of the Claude planner, with prompt caching off,
5-minute and 1-hour.

    .venv/bin/python benchmarks/planner_cost.py [--waves 10] [--wave-size 16] [--wave-minutes 12 17] [--seed 0]
        [--crown-every 3] [--lookups 0]

A night of the default program (overnight/programs/tiny_gpt with its campaign, `overnight.config.default_config_path()`)
at `--wave-size` trials a wave for `--waves` waves, 5-minute trials (trial.time_budget_s 300). Each wave is planned by
the real `ClaudePlanner.propose` and reflected on by the real `ClaudePlanner.reflect`, through the real `anthropic`
client and `instructor`, against the local Messages API stand-in (tests/standins/messages_api.py), which keeps a prompt
cache the way the API does and reports its usage: the tokens are its estimate of 4 characters per token. Its answers
are scripted: `--wave-size` valid experiments a wave, each an edit of one of train.py's UPPER_CASE constants
(`overnight.program.set_constant`) to a value no earlier experiment used, with a hypothesis, a rationale and an
expected effect of a few dozen words; a reflection of a few lines. Claude plans in one conversation where it may
query the memory before it answers: here it makes `--lookups` rounds of one query each (a search of the trials that
moved one knob, answered from the real MLflow store), then answers in the same conversation.

The memory is a real MLflow store, written as the engine writes it (`Memory.start_trial`, `finish_trial` with the
script's `name: value` lines, `record_decision` with the verdict's numbers, `set_champion`, `finish_wave`): the
baseline's copies, then every wave's trials, so the history in the prompt grows by `--wave-size` trials a wave. Every
`--crown-every`-th wave crowns its best trial (so the champion's files, the cached part of the prompt, change), one
trial a wave crashes with a traceback, the rest are discarded; the metrics are drawn with `--seed`.

Each cache setting plans the same night: the history is written once, and at each wave the same context goes to one
planner per setting, each with its own stand-in (so its own cache) and its own clock. Between a wave's plan and its
reflection, and so between one plan and the next, that clock moves on by the wave's duration (`--wave-minutes`: a
wave of 5-minute trials with its screening, confirmation and re-measurement rounds takes about 12 to 17 minutes).
Cache off does not depend on the duration and runs once. A wave's calls are whatever `propose` and `reflect` made
(validation retries, memory queries, repairs: every call's usage is in the Plan and the Reflection they return),
priced with `overnight.pricing.cost_usd` for the configured model.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run against this checkout, not an installed copy
sys.path.insert(0, str(ROOT / "tests"))  # the Messages API stand-in

# fmt: off
SKYPILOT_USD, SKYPILOT_EXPERIMENTS = 9.0, 910  # their published run: about $9 of Claude for about 910 experiments
TRIAL_S = 300                                   # 5-minute trials, as autoresearch's
# Knobs the scripted experiments move, each from its shipped value up in small steps (all floats, so never repeated).
STEPS = {"LEARNING_RATE": 5e-5, "MLP_RATIO": 0.125, "DROPOUT": 0.01, "WEIGHT_DECAY": 0.01, "WARMUP_FRAC": 0.005,
         "WARMDOWN_FRAC": 0.01, "GRAD_CLIP": 0.05}
# fmt: on


@dataclass
class Setting:
    """One way of caching, with its own stand-in, clock and planner; the usage of each wave it planned."""

    cache: str
    minutes: float | None  # None: the cache is off, so the wave's duration does not matter
    api: object
    clock: object
    planner: object
    waves: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "cache off" if self.minutes is None else f"cache {self.cache}, {self.minutes:g}-minute waves"


def settings_for(config, wave_minutes: list[float], stack) -> list[Setting]:
    import anthropic
    from standins.messages_api import TEST_KEY, Clock, MessagesAPI, text_answer

    from overnight.planners.claude import ClaudePlanner

    found = []
    for cache, minutes in [("off", None)] + [(c, m) for c in ("5m", "1h") for m in wave_minutes]:
        clock = Clock()
        api = stack.enter_context(MessagesAPI(clock=clock))
        api.script_default(text_answer("The summary in the prompt is enough; no lookup needed."))
        mine = config.model_copy(update={"planner": config.planner.model_copy(update={"cache": cache})})
        client = anthropic.Anthropic(api_key=TEST_KEY, base_url=api.base_url, max_retries=0)
        found.append(Setting(cache, minutes, api, clock, ClaudePlanner(mine, client=client)))
    return found


# --- the scripted answers ----------------------------------------------------------------------------------------


class Ideas:
    """Valid experiments, none repeating an earlier one: knob after knob, each one step further from its shipped
    value than the last value it was given (so no value comes back, on whichever champion)."""

    def __init__(self, shipped: dict[str, str]):
        from overnight.program import constants

        found = constants(shipped["train.py"])
        self.shipped = {name: float(found[name].literal) for name in STEPS}
        self.moves = dict.fromkeys(STEPS, 0)
        self.turn = 0

    def wave(self, files: dict[str, str], n: int) -> dict:
        """n experiments on the champion's `files`."""
        from overnight.program import set_constant

        experiments = []
        for _ in range(n):
            name = list(STEPS)[self.turn % len(STEPS)]
            self.turn += 1
            self.moves[name] += 1
            value = float(f"{self.shipped[name] + STEPS[name] * self.moves[name]:.6g}")
            edit = set_constant("train.py", files["train.py"], name, value)
            experiments.append(
                {
                    "hypothesis": f"{name} -> {value:g}: a step past the value the last waves favoured",
                    "rationale": (
                        f"The trials so far suggest {name} is not yet at its best for a 5-minute budget: the loss "
                        "was still falling at the end of the champion's run and the nearby settings tried gained a "
                        "little each time. A further step tests whether the trend holds or has turned; the result "
                        "also tells the next waves how sensitive val_bpb is to this knob."
                    ),
                    "expected_effect": "-0.005 to -0.01 val_bpb",
                    "edits": [{"path": "train.py", "search": edit.search, "replace": edit.replace}],
                }
            )
        return {"experiments": experiments}


def insights(wave: int) -> dict:
    return {
        "learned": [
            f"Wave {wave}: most one-knob steps landed within the noise floor of the champion (about 0.01 val_bpb).",
            "Steps of the learning rate and of the warmdown fraction moved val_bpb the most, in both directions.",
            "The crash was a configuration error, not a dead end: the change itself is still worth a trial.",
        ],
        "dead_ends": ["Dropout above 0.05 costs more than it regularises at this budget."],
        "next_directions": [
            "Combine the best learning-rate step with a longer warmdown.",
            "Try a wider MLP at the current depth.",
            "Re-test the near-misses of this wave on the new champion.",
        ],
    }


# --- the memory, written as the engine would -------------------------------------------------------------------------


class Night:
    """One agent run of the default campaign in a real MLflow store, trial by trial as the engine writes it."""

    def __init__(self, config, folder: Path, seed: int):
        from overnight.memory.store import Memory
        from overnight.program import read_files

        self.config = config
        self.memory = Memory(
            f"sqlite:///{folder / 'mlflow.db'}",
            config.name,
            "minimize",
            "val_bpb",
            artifact_root=folder / "art",
        )
        self.shipped = read_files(config.program, config.editable)
        self.rng = random.Random(seed)
        self.agent = self.memory.start_agent_run("planner cost", {"planner": "claude"})
        self.champion = None  # its TrialRecord

    def _trial(
        self, wave_run: str, wave: int, trial_id: str, proposal, before, files, role="candidate", seed=0
    ) -> str:
        from overnight.proposals import fingerprint, unified_diff
        from overnight.wave.plan import knob_values

        return self.memory.start_trial(
            wave_run_id=wave_run,
            agent_run_id=self.agent,
            trial_id=trial_id,
            wave=wave,
            hypothesis=proposal.hypothesis,
            rationale=proposal.rationale,
            expected=proposal.expected,
            source=proposal.source,
            params=knob_values(self.config, files),
            files=files,
            diff=unified_diff(before, files),
            fingerprint=fingerprint(files),
            parent_champion=self.champion.run_id if self.champion else "",
            role=role,
            seed=seed,
            budget_s=TRIAL_S,
        )

    def _finish(self, run_id: str, trial_id: str, val_bpb: float | None) -> None:
        from overnight.trial import Outcome, TrialResult, parse_metrics

        if val_bpb is None:
            log = (
                "[progress] step 120 10s loss 3.4120\nTraceback (most recent call last):\n"
                '  File "train.py", line 171, in <module>\n    logits = model(x)\n'
                "RuntimeError: mat1 and mat2 shapes cannot be multiplied (16x96 and 128x96)\n"
            )
            result = TrialResult(trial_id, Outcome.CRASH, {}, 14.0, 1, log, "exited with status 1")
        else:
            steps = self.rng.randint(5200, 5600)
            log = (
                f"[progress] step {steps - 200} 290s loss {val_bpb * 0.69:.4f}\nval_bpb: {val_bpb:.6f}\n"
                f"training_seconds: {TRIAL_S - 0.4:.1f}\nnum_steps: {steps}\nnum_params: 1245312\n"
                f"tokens_seen: {steps * 16 * 256}\npeak_memory_mb: {self.rng.uniform(900, 1100):.1f}\n"
            )
            result = TrialResult(
                trial_id, Outcome.OK, parse_metrics(log), TRIAL_S + 12.0, 0, log, "", {"hardware": "H100"}
            )
        self.memory.finish_trial(run_id, result)

    def baseline(self) -> None:
        from overnight.policy import noise_floor
        from overnight.proposals import Proposal

        wave_run = self.memory.start_wave(self.agent, 0)
        runs = []
        for copy in range(self.config.baseline_repeats):
            proposal = Proposal(
                hypothesis="baseline: the program as shipped" + (f" (seed {copy})" if copy else ""),
                rationale="measures the starting point of this agent run",
                source="baseline",
            )
            trial_id = "baseline" + (f"-s{copy}" if copy else "")
            run_id = self._trial(
                wave_run, 0, trial_id, proposal, self.shipped, self.shipped, "baseline", seed=copy
            )
            self._finish(run_id, trial_id, 1.95 + self.rng.gauss(0, 0.01))
            runs.append(run_id)
            why = (
                "the program as shipped" if not copy else "another seed of the baseline: measures seed noise"
            )
            self.memory.record_decision(run_id, "baseline" if not copy else "baseline_repeat", why)
        self.memory.set_champion(runs[0], "")
        floor = noise_floor(
            self.memory.trials(self.agent), TRIAL_S
        )  # the copies' spread, as the engine keeps it
        if floor is not None:
            self.memory.record_noise_floor(self.agent, floor, wave=0)
        self.memory.finish_wave(wave_run, {}, "Baseline.", [])
        self.champion = self.memory.champion()

    def start_wave(self, wave: int) -> str:
        return self.memory.start_wave(self.agent, wave)

    def record(self, wave_run: str, wave: int, proposals, crown: bool):
        """The wave's trials, their results and decisions (the best crowned when `crown`); the FinishedWave."""
        from overnight.planners.base import FinishedWave
        from overnight.policy import Decision
        from overnight.proposals import apply_proposal

        before = self.champion
        files = self.memory.champion_files()
        runs = []
        for index, proposal in enumerate(proposals):
            trial_id = f"w{wave}-t{index}"
            changed = apply_proposal(files, proposal, self.config.editable)
            run_id = self._trial(wave_run, wave, trial_id, proposal, files, changed)
            crashed = index == len(proposals) - 1
            gain = None if crashed else self.rng.gauss(-0.01, 0.012)  # positive = better
            if crown and index == 0:
                gain = 0.035
            self._finish(run_id, trial_id, None if gain is None else before.metric - gain)
            runs.append((run_id, trial_id, gain))
        decisions = []
        for run_id, trial_id, gain in runs:
            if gain is None:
                decision = Decision(run_id, trial_id, "failed", "crash: exited with status 1", None)
            else:
                se = 0.012
                p = 0.5 * math.erfc(gain / se / math.sqrt(2))
                numbers = {"stage": "screen", "gain": gain, "se": se, "p_value": p, "rule": "t_test"}
                kept = crown and run_id == runs[0][0]
                verdict = "keep" if kept else ("inconclusive" if gain > 0 else "discard")
                reason = f"gain {gain:+.4f} ± {se:.4f} val_bpb (p = {p:.3f})"
                decision = Decision(run_id, trial_id, verdict, reason, -gain, numbers)
            self.memory.record_decision(run_id, decision.decision, decision.reason, decision.numbers)
            decisions.append(decision)
        if crown:
            self.memory.set_champion(
                runs[0][0], before.run_id, 0.035, "confirmed by 2 new-seed runs (p = 0.004)"
            )
            self.champion = self.memory.champion()
        trials = tuple(self.memory.wave_trials(wave_run))
        by_run = {d.run_id: d for d in decisions}
        return FinishedWave(
            wave,
            "val_bpb",
            "minimize",
            before,
            self.champion,
            trials,
            tuple(by_run[t.run_id] for t in trials if t.run_id in by_run),
        )


# --- the night -------------------------------------------------------------------------------------------------------


def run(args) -> tuple[list[Setting], object, float]:
    from contextlib import ExitStack

    from standins.messages_api import tool_answer, tool_calls

    from overnight.budget import budget_left
    from overnight.config import default_config_path, load_config
    from overnight.wave.plan import plan_context

    overrides = {
        "wave_size": args.wave_size,
        "budget": {"waves": args.waves},
        "trial": {"time_budget_s": TRIAL_S, "timeout_s": TRIAL_S * 2},
        "planner": {"kind": "claude"},
    }
    config = load_config(default_config_path(), overrides)
    started = time.time()
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        config = config.model_copy(update={"name": "planner-cost"})
        night = Night(config, Path(folder), args.seed)
        settings = settings_for(config, args.wave_minutes, stack)
        ideas = Ideas(night.shipped)
        night.baseline()
        for wave in range(1, args.waves + 1):
            wave_run = night.start_wave(wave)
            answer = ideas.wave(night.memory.champion_files(), args.wave_size)
            left = budget_left(config, night.memory, night.agent, wave - 1)
            context = plan_context(config, night.memory, wave, args.wave_size, left)
            plans = []
            for setting in settings:
                lookups = [
                    tool_calls(("search_trials", {"knob": list(STEPS)[n % len(STEPS)]}))
                    for n in range(args.lookups)
                ]
                setting.api.script("search_trials", *lookups, tool_calls(("WaveAnswer", answer)))
                setting.api.script(
                    "WaveAnswer", tool_answer(answer)
                )  # instructor's call, should one be needed
                setting.api.script("Insights", tool_answer(insights(wave)))
                plan = setting.planner.propose(context)
                if plan.note or any(p.source != "claude" for p in plan.proposals):
                    raise SystemExit(f"wave {wave}, {setting.label}: not Claude's plan: {plan.note}")
                plans.append(plan)
            finished = night.record(wave_run, wave, plans[0].proposals, wave % args.crown_every == 0)
            after = plan_context(
                config, night.memory, wave, 0
            )  # what a reflection reads, as the engine builds it
            reflections = []
            for setting, plan in zip(settings, plans, strict=True):
                setting.clock.advance((setting.minutes or 0) * 60)  # the wave runs
                reflections.append(setting.planner.reflect(finished, after))
                setting.waves.append({"plan": plan.usage, "reflect": reflections[-1].usage})
            night.memory.finish_wave(wave_run, {}, reflections[0].markdown, [])  # the next plans read it
            print(f"wave {wave} of {args.waves} planned {len(settings)} ways", file=sys.stderr, flush=True)
    return settings, config, time.time() - started


def report(settings: list[Setting], config, args, seconds: float, command: str) -> str:
    import anthropic
    import instructor

    import mlflow
    from overnight.pricing import Usage, cost_usd, price_of

    model = config.planner.model
    inp, out, write, read = price_of(model)
    experiments = args.waves * args.wave_size
    lines = [
        "## Planner cost: tokens per wave and dollars per experiment",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"anthropic {anthropic.__version__}, instructor {instructor.__version__}, MLflow {mlflow.__version__}",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Command: `{command}` ({seconds:.0f} s)",
        f"- Seed: {args.seed} (the scripted trials' metrics); {args.waves} waves x {args.wave_size} trials of "
        f"{TRIAL_S // 60} minutes on the default program, a new champion every {args.crown_every} waves, one crash "
        "a wave",
        f"- Model: {model} at ${inp:g} / ${out:g} per million input / output tokens, cache writes ${write:g} "
        f"(5 minutes) and ${inp * 2:g} (1 hour), reads ${read:g} (overnight.pricing)",
        "",
    ]
    for setting in settings:
        lines += [
            f"### {setting.label}",
            "",
            "| wave | input | cache write | cache read | output | calls | plan $ | reflect $ | wave $ |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for number, wave in enumerate(setting.waves, start=1):
            u = wave["plan"] + wave["reflect"]
            plan_usd, reflect_usd = cost_usd(model, wave["plan"]), cost_usd(model, wave["reflect"])
            lines.append(
                f"| {number} | {u.input_tokens:,} | {u.cache_creation_tokens:,} | {u.cache_read_tokens:,} | "
                f"{u.output_tokens:,} | {u.calls} | {plan_usd:.4f} | {reflect_usd:.4f} | "
                f"{plan_usd + reflect_usd:.4f} |"
            )
        lines.append("")
    sky = SKYPILOT_USD / SKYPILOT_EXPERIMENTS
    lines += [
        "### The night",
        "",
        "| setting | prompt tokens per wave | of them read from the cache | output tokens per wave | calls | "
        "night $ | vs cache off | of it output | of it reflecting | $ per experiment | vs SkyPilot's |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    uncached = None
    for setting in settings:
        total = sum((w["plan"] + w["reflect"] for w in setting.waves), Usage())
        reflecting = cost_usd(model, sum((w["reflect"] for w in setting.waves), Usage()))
        usd = cost_usd(model, total)
        uncached = usd if uncached is None else uncached  # the first setting is cache off
        lines.append(
            f"| {setting.label} | {total.prompt_tokens / args.waves:,.0f} | "
            f"{total.cache_read_tokens / max(total.prompt_tokens, 1):.0%} | {total.output_tokens / args.waves:,.0f} | "
            f"{total.calls} | {usd:.3f} | {usd / uncached - 1:+.0%} | {total.output_tokens * out / 1e6 / usd:.0%} | "
            f"{reflecting / usd:.0%} | "
            f"{usd / experiments:.5f} | "
            f"{usd / experiments / sky:.0%} |"
        )
    lines += [
        f"| SkyPilot's published run | | | | | ~{SKYPILOT_USD:g} for ~{SKYPILOT_EXPERIMENTS} experiments | | | | "
        f"~{sky:.4f} | 100% |",
        "",
    ]
    for cache in ("5m", "1h"):
        group = [s for s in settings if s.cache == cache]
        if len(group) > 1 and all(s.waves == group[0].waves for s in group):
            durations = " and ".join(f"{s.minutes:g}" for s in group)
            lines.append(
                f"With cache {cache}, the {durations}-minute waves give the same figures: an entry lives 5 minutes "
                "or an hour from its last read, and no duration tried crosses the one in use."
            )
    lines += [
        "",
        "What flatters these figures (read them as a floor, not a forecast):",
        "",
        "- Tokens are the stand-in's estimate, 4 characters per token of the JSON sent, not a tokenizer's count; "
        "code and JSON often run at fewer characters per token, so real counts are likely higher.",
        "- The scripted answers are short and valid the first time: a real model writes longer rationales, may "
        "think first, and a rejected answer is retried at full price (each retry is one more call here, when it "
        "happens).",
        f"- Claude made {args.lookups} rounds of memory queries a wave here and answered validly in the same "
        "conversation; a real model may query more, and an answer that cannot run costs instructor's call and its "
        "retries on top.",
        "- The history is one night of this benchmark's trials with short logs; a campaign of several nights has "
        "more of it in every prompt (up to planner.max_prompt_tokens).",
        "",
        "And one that does not: experiments are the planned trials only; the engine's confirmation and "
        "re-measurement runs need no planning and are not counted, though they are training runs too.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--wave-size", type=int, default=16)
    parser.add_argument(
        "--wave-minutes", type=float, nargs="+", default=[12, 17], help="a wave's duration, one night each"
    )
    parser.add_argument("--crown-every", type=int, default=3, help="a new champion every this many waves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lookups", type=int, default=0, help="rounds of one memory query before each answer"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    settings, config, seconds = run(args)
    command = " ".join(
        [".venv/bin/python benchmarks/planner_cost.py", *(sys.argv[1:] if argv is None else argv)]
    )
    print(report(settings, config, args, seconds, command))


if __name__ == "__main__":
    main()
