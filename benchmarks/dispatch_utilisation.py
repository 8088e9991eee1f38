"""Dispatch overhead: how busy the workers are under `overnight run`, from its start to its exit, with confirmations.

    .venv/bin/python benchmarks/dispatch_utilisation.py [--workers 16 64] [--trial-s 30] [--waves 3]
        [--repeats 3] [--planner-s T/10] [--modes pipelined [synchronous]] [--no-bare] [--write]

Each invocation launches the real CLI, `overnight run CONFIG --waves W --wave-size N --time-budget T`, as a
subprocess (Python, Prefect's ephemeral API, the MLflow store and the campaign: all of it), on a copy of
benchmarks/programs/sleep_effects: trials sleep their budget, so 64 fit on two cores, and their score is a known
function of eight of the 32 knobs plus seeded noise (moving one lowers it by 5 noise sd). The planner is Claude
through the real `anthropic` client, answering from the local Messages API stand-in (tests/standins) after
`--planner-s` seconds per call (default T/10, as a model call would take). Each plan moves one knob per experiment,
two of them knobs with an effect, so screening finds promising trials and the engine runs confirmations and
re-measures its new champions; the table counts those runs (MLflow tag `overnight.role`) per invocation.

Figures, per invocation:
- end-to-end utilisation = trial busy time / (workers x wall time from just before Popen to the CLI's exit);
- the older figure, the same busy time over the wall time from the first trial's start to the last one's end;
- start-up (CLI start to first trial start) and shutdown (last trial end to exit), in seconds (the MLflow store
  is created before the clock starts, as a project's later nights find it, unless --fresh-store);
- the largest number of trials running at any instant, which must never exceed the workers (exit 1 if it does).
A trial's span is its process's, as the local backend leaves it in the trial's folder: from the pid file it writes
as it starts the process to the last write of its log (the metric line, printed last). MLflow's run times would not
do: a pipelined campaign creates a trial's run when it plans it. The bare baseline (one per worker count, optional)
is the limit on this machine: a thread pool launching the same subprocesses back to back, nothing else.

Each (workers, mode) runs `--repeats` invocations; the table gives the median and the range (min-max) of each
figure. `--write` replaces section 1 of benchmarks/RESULTS.md with the table, the command and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import logging
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "benchmarks" / "programs" / "sleep_effects"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## 1. Dispatch overhead and utilisation"
KNOBS, EFFECTIVE = 32, 8  # RATE_00 .. RATE_31; the first eight move the score (sleep_effects/train.py)
HITS_PER_WAVE = 2  # experiments of each plan that move a knob with an effect (confirm_top confirms 2 a wave)
GOAL = 0.95  # the goal: end-to-end utilisation, pipelined, at 16 and 64 workers
MODES = {"synchronous": False, "pipelined": True}
LABELS = {"synchronous": "waves in turn", "pipelined": "pipelined"}


@dataclass
class Invocation:
    """One `overnight run`, measured."""

    workers: int
    mode: str
    wall_s: float  # just before Popen to the CLI's exit
    busy_s: float  # the trials' process spans, summed
    first_start: float  # seconds after the CLI's start
    last_end: float
    max_running: int
    trials: int
    gaps: list[tuple[float, float, int]] = field(
        default_factory=list
    )  # the longest stretches under `workers`
    roles: dict[str, int] = field(default_factory=dict)

    @property
    def end_to_end(self) -> float:
        return self.busy_s / (self.workers * self.wall_s)

    @property
    def first_to_last(self) -> float:
        return self.busy_s / (self.workers * (self.last_end - self.first_start))

    @property
    def startup_s(self) -> float:
        return self.first_start

    @property
    def shutdown_s(self) -> float:
        return self.wall_s - self.last_end


def bare(workers: int, trial_s: float, waves: int) -> float:
    """Utilisation of a thread pool running workers x (waves + 1) sleeping trials, nothing else."""
    env = {**os.environ, "OVERNIGHT_TIME_BUDGET": str(trial_s), "OVERNIGHT_SEED": "0"}
    spans: list[tuple[float, float]] = []

    def one(_: int) -> None:
        start = time.monotonic()
        subprocess.run([sys.executable, "train.py"], cwd=PROGRAM, env=env, capture_output=True, check=True)
        spans.append((start, time.monotonic()))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(workers * (waves + 1))))
    busy = sum(end - start for start, end in spans)
    return busy / (workers * (max(e for _, e in spans) - min(s for s, _ in spans)))


def _texts(value: object):
    """Every string in a request body, in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def champion_values(body: dict) -> dict[str, str]:
    """The knobs' values as written in the champion's train.py that the prompt shows (1.0 where it shows none)."""
    values = {f"RATE_{index:02d}": "1.0" for index in range(KNOBS)}
    for text in _texts(body):
        shown = re.search(r'<file path="train.py">\n(.*?)</file>', text, re.S)
        if shown:
            values.update(dict(re.findall(r"^(RATE_\d\d) = (\S+)", shown[1], re.M)))
            break
    return values


def planner_standin(workers: int, delay_s: float):
    """The Messages API stand-in. Each plan, after `delay_s`, is `workers` one-knob changes of the champion:
    the first HITS_PER_WAVE move knobs with an effect that the champion has not moved yet (taken in turn from one
    plan to the next), the others knobs without one; every value is new, so no proposal repeats a trial.
    Each plan and each reflection is one call."""
    sys.path.insert(0, str(ROOT / "tests"))
    from standins.messages_api import MessagesAPI, tool_answer, tool_calls

    values = itertools.count(2)
    plans = itertools.count()

    def wave(body: dict) -> dict:
        time.sleep(delay_s)
        current = champion_values(body)
        plan = next(plans)
        fresh = [f"RATE_{(plan * HITS_PER_WAVE + i) % EFFECTIVE:02d}" for i in range(EFFECTIVE)]
        hits = [knob for knob in fresh if current[knob] == "1.0"][:HITS_PER_WAVE]
        nulls = [f"RATE_{index:02d}" for index in range(EFFECTIVE, KNOBS)]
        knobs = hits + [nulls[i % len(nulls)] for i in range(workers - len(hits))]
        experiments = []
        for knob in knobs:
            value = next(values)
            effect = knob in hits
            experiments.append(
                {
                    "hypothesis": f"{knob} = {value}",
                    "rationale": "a knob with an effect" if effect else "a knob that does nothing",
                    "expected_effect": "lower score" if effect else "none",
                    "edits": [
                        {
                            "path": "train.py",
                            "search": f"{knob} = {current[knob]}",
                            "replace": f"{knob} = {value}.0",
                        }
                    ],
                }
            )
        return {"experiments": experiments}

    def insights(body: dict) -> dict:
        time.sleep(delay_s)
        return {"learned": ["RATE_00 .. RATE_07 lower the score"], "dead_ends": [], "next_directions": []}

    api = MessagesAPI()
    api.script("WaveAnswer", tool_answer(wave))
    # The research round (memory tools offered, none forced) routes to the first memory tool's queue: answered
    # there at once with the wave, as a model that queries nothing would, so each plan is one call.
    api.script_default(tool_calls(lambda body: [("WaveAnswer", wave(body))]))
    api.script("Insights", tool_answer(insights))
    return api


def cli() -> list[str]:
    script = Path(sys.executable).parent / "overnight"
    return [str(script)] if script.exists() else [sys.executable, "-m", "overnight.cli"]


def write_config(folder: Path, workers: int, trial_s: float, waves: int, pipeline: bool) -> Path:
    """The campaign's YAML, with what `overnight run` has no flag for written in (JSON is YAML)."""
    program = folder / "program"
    shutil.copytree(PROGRAM, program)
    text = (PROGRAM / "campaign.yaml").read_text()
    knobs = text[text.index("knobs:") :]
    settings = {
        "name": f"dispatch-{workers}-{'pipelined' if pipeline else 'synchronous'}",
        "program": "program",
        "editable": ["train.py"],
        "command": "python train.py",
        "metric": {"name": "score", "goal": "minimize"},
        "trial": {"time_budget_s": trial_s, "timeout_s": trial_s * 4 + 60},
        "wave_size": workers,
        "pipeline": pipeline,
        "baseline_repeats": min(workers, 64),
        "budget": {"waves": waves},
        "planner": {"kind": "claude"},
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "state_dir": str(folder / "state"),
    }
    config = folder / "campaign.yaml"
    config.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items()) + knobs)
    return config


def campaign(
    workers: int,
    trial_s: float,
    waves: int,
    folder: Path,
    mode: str,
    planner_s: float,
    fresh_store: bool = False,
) -> Invocation:
    """One `overnight run` of the campaign, its spans read back from MLflow and the trial folders. Unless
    `fresh_store`, the MLflow store is created (its schema migrated, ~7 s here) before the clock starts, as every
    night after a project's first finds it."""
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True)
    config = write_config(folder, workers, trial_s, waves, MODES[mode])
    if not fresh_store:
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its notes on creating the tables
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    argv = [*cli(), "run", str(config), "--waves", str(waves), "--wave-size", str(workers)]
    argv += ["--time-budget", f"{trial_s:g}"]
    with planner_standin(workers, planner_s) as api, open(folder / "cli.log", "wb") as log:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": api.base_url,
            "ANTHROPIC_API_KEY": "benchmark-" + "stand-in-key",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        started = time.time()
        code = subprocess.run(argv, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        ended = time.time()
    if code != 0:
        tail = (folder / "cli.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"`{shlex.join(argv)}` exited {code}:\n{tail}")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"dispatch-{workers}-{mode}")
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`overnight.kind` = 'trial'", max_results=50_000
    )
    spans, roles = [], {}
    for run in runs:
        role = run.data.tags.get("overnight.role", "candidate")
        roles[role] = roles.get(role, 0) + 1
        where = run.data.tags.get("overnight.where", "")
        trial = Path(where.split(":", 1)[1]) if ":" in where else None
        if trial is None or not (trial / ".overnight_pid").exists() or not (trial / "run.log").exists():
            continue  # never launched (an invalid proposal)
        spans.append(
            (
                (trial / ".overnight_pid").stat().st_mtime - started,
                (trial / "run.log").stat().st_mtime - started,
            )
        )
    if not spans:
        raise SystemExit(f"no trial of {folder} left a span")
    return Invocation(
        workers=workers,
        mode=mode,
        wall_s=ended - started,
        busy_s=sum(end - start for start, end in spans),
        first_start=min(start for start, _ in spans),
        last_end=max(end for _, end in spans),
        max_running=max_overlap(spans),
        trials=len(spans),
        gaps=underused(spans, workers),
        roles=roles,
    )


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (one that ends as another starts does not count as overlapping)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in events:  # at equal times, ends (-1) sort before starts (+1)
        running += step
        most = max(most, running)
    return most


def underused(
    spans: list[tuple[float, float]], workers: int, keep: int = 3
) -> list[tuple[float, float, int]]:
    """The `keep` longest stretches with fewer than `workers` trials running, as (from, to, least running) in
    seconds after the CLI's start, between the first trial's start and the last one's end."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    stretches, running, since, least = [], 0, None, workers
    for when, step in events:
        running += step
        if since is not None and running >= workers:
            stretches.append((since, when, least))
            since = None
        elif since is None and running < workers:
            since, least = when, running
        least = min(least, running)
    if since is not None:
        stretches.append((since, events[-1][0], least))
    return sorted(stretches, key=lambda s: s[0] - s[1])[:keep]


def spread(values: list[float], form: str) -> str:
    """Median and range of some figures, e.g. '97.1% (96.5-97.8%)'."""
    low, mid, high = min(values), statistics.median(values), max(values)
    text = form.format(mid)
    if len(values) == 1:
        return text
    unit = "%" if form.endswith("%") else ""
    return f"{text} ({form.format(low).rstrip('%')}-{form.format(high).rstrip('%')}{unit})"


def table(
    rows: dict[tuple[int, str], list[Invocation]], limits: dict[int, float], trial_s: float, waves: int
):
    head = (
        "| workers | mode | invocations | end to end | first start to last end | start-up s | shutdown s "
        "| wall s | trials | confirmation runs | champion re-measurements | most running at once | bare pool |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for (workers, mode), runs in rows.items():
        lines.append(
            f"| {workers} | {LABELS[mode]} | {len(runs)} "
            f"| {spread([r.end_to_end * 100 for r in runs], '{:.1f}%')} "
            f"| {spread([r.first_to_last * 100 for r in runs], '{:.1f}%')} "
            f"| {spread([r.startup_s for r in runs], '{:.1f}')} "
            f"| {spread([r.shutdown_s for r in runs], '{:.1f}')} "
            f"| {spread([r.wall_s for r in runs], '{:.0f}')} "
            f"| {spread([r.trials for r in runs], '{:.0f}')} "
            f"| {spread([r.roles.get('confirmation', 0) for r in runs], '{:.0f}')} "
            f"| {spread([r.roles.get('champion', 0) for r in runs], '{:.0f}')} "
            f"| {max(r.max_running for r in runs)} of {workers} "
            f"| {f'{limits[workers]:.1%}' if workers in limits else '-'} |"
        )
    return "\n".join(lines)


def verdicts(rows: dict[tuple[int, str], list[Invocation]]) -> list[str]:
    """The goal's verdict per worker count, computed from the pipelined figures."""
    lines = []
    for (workers, mode), runs in rows.items():
        if mode != "pipelined":
            continue
        figures = [r.end_to_end for r in runs]
        confirmed = all(r.roles.get("confirmation", 0) > 0 for r in runs)
        met = statistics.median(figures) >= GOAL and confirmed
        why = "" if confirmed else "; confirmations did not run in every invocation"
        lines.append(
            f"- {workers} workers, pipelined: goal >= {GOAL:.0%} end to end with confirmations running: "
            f"**{'met' if met else 'not met'}** (median {statistics.median(figures):.1%}, range "
            f"{min(figures):.1%}-{max(figures):.1%} over {len(runs)} invocations{why})"
        )
    return lines


def machine() -> str:
    import prefect

    import mlflow

    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, Prefect {prefect.__version__}, MLflow {mlflow.__version__}"
    )


METHOD = """\
Each invocation launches the real CLI, `overnight run`, as a subprocess (Python, Prefect's ephemeral API, the
MLflow store and the campaign), on a copy of benchmarks/programs/sleep_effects: trials sleep their budget and
score a known function of eight of their 32 knobs plus seeded noise (moving one lowers the score by 5 noise
sd; the other 24 do nothing). The planner is Claude through the real `anthropic` client, answering from the
local Messages API stand-in (tests/standins) after T/10 per call; each plan moves one knob per experiment, two
of them knobs with an effect, so screening finds promising trials and the engine runs confirmations and
re-measures its new champions (counted from the trial runs' `overnight.role` tag). End to end = trial busy
time / (workers x wall time from just before the CLI starts to its exit); "first start to last end" is the
same busy time over the trials' own span; the start-up and shutdown columns are the seconds before the first
trial and after the last (the MLflow store is created before the clock starts, as a project's nights after its
first find it, unless `--fresh-store`). A trial's span is its process's (the pid file the backend writes at
launch, the log's last write); "most running at once" is the largest number of spans open at one instant,
checked against the workers. Each figure is the median over the invocations, with its range in brackets. The
bare pool is a thread pool running the same trial processes back to back, nothing else: the limit on this
machine. Modes: `pipeline: true` (the next wave planned while this one runs) and `pipeline: false` (waves in
turn)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--trial-s", type=float, default=30.0, help="T: each trial's sleep")
    parser.add_argument("--waves", type=int, default=3, help="waves after the baseline")
    parser.add_argument("--repeats", type=int, default=3, help="invocations per worker count and mode")
    parser.add_argument(
        "--planner-s", type=float, default=None, help="each model call's delay (default T/10)"
    )
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["pipelined"])
    parser.add_argument(
        "--fresh-store",
        action="store_true",
        help="let `overnight run` create its MLflow store inside the measured time (a project's first night)",
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare thread pool's run")
    parser.add_argument("--write", action="store_true", help="replace section 1 of benchmarks/RESULTS.md")
    parser.add_argument(
        "--keep", type=Path, help="keep each invocation's folder (config, MLflow, trials) here"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    planner_s = args.trial_s / 10 if args.planner_s is None else args.planner_s
    command = ".venv/bin/python benchmarks/dispatch_utilisation.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    began = time.time()
    rows: dict[tuple[int, str], list[Invocation]] = {}
    limits: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="dispatch-") as temporary:
        scratch = args.keep or temporary
        for workers in args.workers:
            if not args.no_bare:
                limits[workers] = bare(workers, args.trial_s, args.waves)
                print(f"{workers} workers: bare thread pool {limits[workers]:.1%}", flush=True)
            for repeat, mode in itertools.product(range(args.repeats), args.modes):
                folder = Path(scratch) / f"{workers}-{mode}-{repeat}"
                run = campaign(workers, args.trial_s, args.waves, folder, mode, planner_s, args.fresh_store)
                rows.setdefault((workers, mode), []).append(run)
                print(
                    f"{workers} workers, {mode} #{repeat + 1}: end to end {run.end_to_end:.1%}, first start to "
                    f"last end {run.first_to_last:.1%}; start-up {run.startup_s:.1f} s, shutdown "
                    f"{run.shutdown_s:.1f} s, wall {run.wall_s:.0f} s; {run.trials} trials "
                    f"({', '.join(f'{n} {role}' for role, n in sorted(run.roles.items()))}); "
                    f"most running at once {run.max_running} of {workers}; longest stretches under {workers}: "
                    + ", ".join(f"{a:.1f}-{b:.1f} s (down to {n})" for a, b, n in run.gaps),
                    flush=True,
                )
    body = table(rows, limits, args.trial_s, args.waves)
    lines = verdicts(rows)
    took = time.time() - began
    print(f"\nMachine: {machine()}\nDate: {datetime.date.today().isoformat()}")
    print(f"Command: `{command}` ({took:.0f} s)")
    print(f"T = {args.trial_s:g} s, {args.waves} waves + baseline, planner {planner_s:g} s per model call\n")
    print(body)
    print("\n".join(["", *lines]))
    over = [r for runs in rows.values() for r in runs if r.max_running > r.workers]
    if over:
        raise SystemExit(
            "FAILED: more trials than workers ran at once: "
            + "; ".join(f"{r.max_running} running with {r.workers} workers ({r.mode})" for r in over)
        )
    if args.write:
        section = f"""{SECTION}

Issue 8: at 16 and 64 workers, T = 30 s, a planner as slow as a model call (10% of T), utilisation >= 95% from
`overnight run`'s start to its exit, with confirmations running.

- Machine: {machine()}. Date: {datetime.date.today().isoformat()}.
- Command: `{command}` ({took / 60:.0f} minutes): T = {args.trial_s:g} s, {args.waves} waves after the baseline,
  {planner_s:g} s per model call, {args.repeats} invocations per row.

{METHOD}

{body}

{chr(10).join(lines)}
"""
        from benchmarks.results import write_section  # the repository root is on sys.path (see the end)

        write_section(SECTION, section, args.results)
        print(f"\nwrote {SECTION!r} in {args.results}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
