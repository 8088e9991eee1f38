"""Memory at scale: how fast the campaign's memory answers once MLflow holds thousands of trials.

One command writes a realistic store through the real `Memory` API (nights x waves x trials, each trial with params,
metrics, tags, a diff, its files and a log tail, decisions, champions and their lineage; the newest night left running
with a wave and some trials in flight), then times what is read from it:

- the planner's read of a wave: `memory.snapshot()` (what `overnight.wave.plan.plan_context` calls) and its digest (`overnight.planners.prompts.digest`);
- the per-wave queries (overnight.budget, overnight.agent_run): `agent_run_trials`, `trials_left`, `budget_left`, `summarise`'s queries;
- `overnight report` (in process, and the CLI end to end as a subprocess);
- `overnight status`: `Memory.status()`, the direct read of the SQLite file the command makes (`overnight.memory.sql`, no MLflow),
  and the CLI end to end;
- Python start-up and imports alone (`overnight --help`), to be subtracted from the CLI figures.

Each in-process query is timed cold (a fresh `Memory`, as each wave and each CLI command opens one) and warm (the
same `Memory` again); every figure is the median of --repeats runs.

    python benchmarks/memory_scale.py [--trials 10000] [--store PATH] [--repeats 5]
    python benchmarks/memory_scale.py --trials 100000 --postgres postgresql://USER@HOST:PORT/DB [--writers 2]

The store is reused when it already holds the requested layout (writing 10,000 trials takes a while on SQLite).
With --postgres the MLflow store is that PostgreSQL database (created empty with createdb; artifacts stay under
--store) and `overnight status` reads it with SQLAlchemy alone; --writers N writes the nights in N processes at
once (each through `Memory`: real MLflow rows), so that 100,000 trials take less long; --results writes the tables
to the PostgreSQL section of benchmarks/RESULTS.md.

Writing through `Memory` runs at about 15 trials/s on a small machine (100,000 trials: two hours), so a store that
large is grown from one written through `Memory`:

    python benchmarks/memory_scale.py --trials 10000 --postgres URI --writers 4 --replicate-to 100000

copies its finished nights inside PostgreSQL (INSERT ... SELECT over runs, tags, params, metrics, latest_metrics)
until it holds 100,000 trials: copy c holds every finished night (the last copy the oldest ones only) moved c
spans earlier, its runs with new ids (md5(old id || ':' || c)) and every tag naming a run remapped to the copy's, so
MLflow, `Memory` and `overnight status` read the copies as older nights of the same campaign (see
replicate_nights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run against this checkout, not an installed copy

SECTION = "## 8. Memory at scale on PostgreSQL"  # --results --postgres writes this section of RESULTS.md
# fmt: off
CAMPAIGN = "memory-scale"     # the experiment's name
METRIC = "val_bpb"            # the trials' metric (minimize)
NIGHTS = 20                   # agent runs
WAVES = 25                    # waves per night, the baseline (wave 0) included
RUNNING_TRIALS = 6            # trials left running in the newest night's last wave
PROGRAM = ROOT / "overnight" / "programs" / "tiny_gpt"  # its train.py is every trial's file
KNOBS = {"LEARNING_RATE": [3e-4, 1e-3, 2e-3, 4e-3], "BATCH_SIZE": [8, 16, 32], "DEPTH": [2, 3, 4, 5],
         "WIDTH": [64, 96, 128], "WEIGHT_DECAY": [0.0, 0.1, 0.2], "WARMUP_FRAC": [0.0, 0.05, 0.1]}
# fmt: on


# --- writing the store -----------------------------------------------------------------------------------------------


def layout(trials: int) -> tuple[int, int, int]:
    """Nights, waves per night and trials per wave for about `trials` trials."""
    nights, waves = NIGHTS, WAVES
    while nights > 1 and trials < nights * waves * 2:
        nights //= 2
    per_wave = max(2, round(trials / (nights * waves)))
    return nights, waves, per_wave


POSTGRES = os.environ.get(
    "MEMORY_SCALE_POSTGRES", ""
)  # --postgres: the store's URI, for the writer processes too


def store_uri(store: Path) -> str:
    return POSTGRES or f"sqlite:///{store / 'mlflow.db'}"


def open_memory(store: Path):
    from overnight.memory.store import Memory

    return Memory(store_uri(store), CAMPAIGN, "minimize", METRIC, artifact_root=store / "artifacts")


def write_store(store: Path, trials: int, seed: int = 0, only: list[int] | None = None) -> dict:
    """Write the campaign through Memory as the loop would (the nights in `only`, else all); returns what was
    written."""
    from overnight.pricing import Usage
    from overnight.proposals import unified_diff
    from overnight.trial import Outcome, TrialResult

    nights, waves, per_wave = layout(trials)
    store.mkdir(parents=True, exist_ok=True)
    memory = open_memory(store)
    rng = random.Random(seed)
    source = (PROGRAM / "train.py").read_text()
    champion, champion_knobs, champion_value = "", {k: v[1] for k, v in KNOBS.items()}, 2.9
    written, started = 0, time.perf_counter()

    def files_for(knobs: dict) -> dict[str, str]:
        text = source
        for name, value in knobs.items():
            line = next(line for line in text.splitlines() if line.startswith(f"{name} ="))
            text = text.replace(line, f"{name} = {value!r}", 1)
        return {"train.py": text}

    base_files = files_for(champion_knobs)
    for night in range(nights) if only is None else only:
        rng = random.Random(seed + night) if only is not None else rng  # a writer of its own: its own draws
        last_night = night == nights - 1
        agent = memory.start_agent_run(
            f"offline 2026-11-{night + 1:02d} 22:00",
            {"planner": "offline", "wave_size": per_wave, "budget_waves": waves - 1, "metric": METRIC},
            description=f"Agent run of campaign {CAMPAIGN}",
            owner=f"bench:{night}",
        )
        for wave in range(waves):
            last_wave = last_night and wave == waves - 1
            wave_run = memory.start_wave(agent, wave)
            memory.record_plan(wave_run, "", Usage(4000, 800, 0, 0, 1), 0.02, "offline")
            table, kept = [], None
            for i in range(per_wave):
                trial_id = f"{agent[:8]}-w{wave}-t{i}"
                knobs = dict(champion_knobs)
                if wave > 0:
                    for name in rng.sample(sorted(KNOBS), 2):
                        knobs[name] = rng.choice(KNOBS[name])
                hypothesis = (
                    "baseline"
                    if wave == 0
                    else ", ".join(
                        f"{k} {champion_knobs[k]} -> {v}" for k, v in knobs.items() if v != champion_knobs[k]
                    )
                    or "re-measure the champion"
                )
                if wave > 0 and i == per_wave - 1 and not last_wave:
                    memory.record_invalid(
                        wave_run_id=wave_run,
                        agent_run_id=agent,
                        trial_id=trial_id,
                        wave=wave,
                        hypothesis=hypothesis,
                        reason="search text not found in train.py",
                        proposal_json=json.dumps({"hypothesis": hypothesis, "edits": []}),
                    )
                    written += 1
                    continue
                files = files_for(knobs)
                role = "baseline" if wave == 0 else ("confirmation" if i >= per_wave - 4 else "candidate")
                run_id = memory.start_trial(
                    wave_run_id=wave_run,
                    agent_run_id=agent,
                    trial_id=trial_id,
                    wave=wave,
                    hypothesis=hypothesis,
                    rationale="Turn two knobs around the champion (TPE, history rebuilt from MLflow).",
                    params=knobs,
                    expected="lower val_bpb by about 0.02",
                    source="offline",
                    files=files,
                    diff=unified_diff(base_files, files),
                    fingerprint=f"{hash(tuple(sorted(knobs.items()))) & 0xFFFFFFFF:08x}",
                    parent_champion=champion,
                    role=role,
                    seed=rng.randrange(1000),
                    budget_s=30,
                    measures=champion if role == "confirmation" else "",
                )
                written += 1
                if last_wave and i >= per_wave - RUNNING_TRIALS:
                    memory.record_dispatch(run_id, f"local {os.uname().nodename} /tmp/work/{trial_id}")
                    continue  # left running: `overnight status` shows these
                draw = rng.random() if wave > 0 else 0.0  # a night whose baseline fails stops there
                outcome = (
                    Outcome.OK
                    if draw < 0.86
                    else Outcome.CRASH
                    if draw < 0.91
                    else Outcome.TIMEOUT
                    if draw < 0.94
                    else Outcome.NAN
                    if draw < 0.97
                    else Outcome.NO_METRIC
                )
                value = champion_value + rng.gauss(0.01, 0.03)
                metrics = (
                    {METRIC: value, "train_loss": value * 0.69, "steps": 300.0 + i, "tokens_per_s": 1e4}
                    if outcome is Outcome.OK
                    else {}
                )
                memory.finish_trial(
                    run_id,
                    TrialResult(
                        trial_id,
                        outcome,
                        metrics,
                        30.0 + rng.random() * 5,
                        0 if outcome is Outcome.OK else 1,
                        "step 300 | loss 2.01\n" * 40
                        + (f"{METRIC}: {value:.4f}\n" if metrics else "Traceback\n"),
                        "" if outcome is Outcome.OK else f"{outcome.value}: exited with status 1",
                        placement={"hardware": "cpu"},
                    ),
                )
                if outcome is not Outcome.OK:
                    table.append({"trial": trial_id, "outcome": outcome.value})
                    continue
                if wave == 0:
                    decision = "baseline" if i == 0 else "baseline_repeat"
                    memory.record_decision(run_id, decision, "the night's starting point")
                    if i == 0:
                        memory.set_champion(run_id, champion)
                        champion, champion_value = run_id, value
                    continue
                gain = champion_value - value
                decision = "keep" if (role == "candidate" and gain > 0.05 and kept is None) else "discard"
                memory.record_decision(
                    run_id,
                    decision,
                    f"gain {gain:.4f} vs threshold 0.05",
                    {
                        "stage": "screen" if role == "candidate" else "confirm",
                        "gain": gain,
                        "se": 0.01,
                        "threshold": 0.05,
                        "rule": "t_test",
                    },
                )
                if decision == "keep":
                    kept = (run_id, knobs, value, gain)
                table.append({"trial": trial_id, "outcome": "ok", METRIC: value, "decision": decision})
            if last_wave:
                break  # the wave in flight
            if kept:
                run_id, knobs, value, gain = kept
                memory.set_champion(run_id, champion, gain, f"gain {gain:.4f} > 0.05: p = 0.01")
                champion, champion_knobs, champion_value = run_id, knobs, value
                base_files = files_for(champion_knobs)
            memory.record_reflection_usage(wave_run, Usage(3000, 600, 0, 0, 1), 0.015)
            memory.record_noise_floor(agent, _Floor(), wave)
            reflection = (
                f"## Wave {wave}\n\n{len(table)} trials; champion {champion_value:.4f}.\n" + "- a note\n" * 10
            )
            memory.finish_wave(
                wave_run, {"trials": len(table), "champion_" + METRIC: champion_value}, reflection, table
            )
            print(
                f"  night {night + 1}/{nights} wave {wave}: {written} trials written, "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        if not last_night:
            memory.finish_agent_run(agent, {"trials": per_wave * waves}, f"# Night {night + 1}\n")
    info = {
        "trials": written,
        "nights": nights,
        "waves": waves,
        "per_wave": per_wave,
        "write_s": round(time.perf_counter() - started, 1),
    }
    (store / "layout.json").write_text(json.dumps(info, indent=2))
    return info


class _Floor:
    def as_dict(self) -> dict[str, float]:
        return {"noise_sigma": 0.012, "noise_n": 3.0, "noise_dof": 2.0}


def write_config(store: Path) -> Path:
    """A campaign config pointing at the store, for the CLI commands."""
    path = store / "campaign.yaml"
    path.write_text(
        (PROGRAM / "campaign.yaml")
        .read_text()
        .replace("name: tiny-gpt-shakespeare", f"name: {CAMPAIGN}")
        .replace("program: .", f"program: {PROGRAM}")
        .replace("holdout_data: ../", f"holdout_data: {PROGRAM.parent}/")  # it was relative to the program
        + f"tracking_uri: {store_uri(store)}\nstate_dir: {store / 'state'}\n"
    )
    return path


# --- growing the store in SQL (PostgreSQL) ---------------------------------------------------------------------------

DAY_MS = 86_400_000
# Every table whose rows belong to a run (column run_uuid), and what a copy's row changes: its run id, a tag value
# that names a run of the night (remapped), a time (shifted). `m` is the copy's row of copy_map, `x` the run a tag
# value names (NULL when it names none). MLflow's other run-keyed tables (inputs, logged models, assessments, model
# versions) hold no rows in this store: replicate_nights refuses a store where they do.
COPIED_TABLES = {
    "runs": {
        "run_uuid": "m.new",
        "name": "CASE WHEN t.run_uuid = m.root THEN t.name || ' copy ' || m.c "
        "ELSE replace(t.name, left(m.root, 8), left(m.new_root, 8)) END",
        "start_time": "t.start_time - m.shift",
        "end_time": "t.end_time - m.shift",
    },
    "tags": {
        "run_uuid": "m.new",
        "value": "COALESCE(x.new, CASE WHEN t.key = 'mlflow.runName' AND t.run_uuid = m.root "
        "THEN t.value || ' copy ' || m.c ELSE replace(t.value, left(m.root, 8), left(m.new_root, 8)) END)",
    },
    "params": {"run_uuid": "m.new"},
    "metrics": {"run_uuid": "m.new", "timestamp": "t.timestamp - m.shift"},
    "latest_metrics": {"run_uuid": "m.new", "timestamp": "t.timestamp - m.shift"},
}
UNCOPIED_TABLES = ("inputs", "logged_models", "logged_model_metrics", "assessments", "model_versions")


def replicate_nights(target: int) -> dict:
    """Grow the PostgreSQL store to `target` trials by copying its finished nights (agent runs with their waves and
    trials) inside PostgreSQL. Copy c holds every finished night (the last copy the oldest ones only), moved c spans
    earlier (a span: the days the nights started in, plus one), so the copies are older nights, in their order; every
    run gets the id md5(old id || ':' || c), every tag value naming a copied run (mlflow.parentRunId,
    overnight.agent_run_id, overnight.parent_champion, overnight.champion_parent across nights, ...) names its copy
    c, the night's 8-character prefix in trial ids and run names is replaced by its copy's, and the agent run is
    named '<name> copy c'. The copies keep their original's artifact_uri (they read its files). The night left
    running is not copied."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES)
    started = time.perf_counter()
    with engine.begin() as db:
        rows = lambda query, **values: db.execute(sqlalchemy.text(query), values).all()  # noqa: E731
        _refuse_uncopied(rows)
        experiment = rows("SELECT experiment_id FROM experiments WHERE name = :n", n=CAMPAIGN)[0][0]
        nights, have, copies_made = _finished_nights(rows, experiment)
        plan = _copy_plan(nights, have, target, copies_made)
        if not plan:
            return {"copied_trials": 0, "copy_s": 0.0}
        _make_copy_map(db, rows, plan)
        for table, changed in COPIED_TABLES.items():
            db.execute(sqlalchemy.text(_copy_rows_sql(rows, table, changed)))
            print(f"  copied the {table} rows, {time.perf_counter() - started:.0f} s", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
        db.execute(sqlalchemy.text("ANALYZE"))  # the planner's statistics, as autovacuum would soon have them
    engine.dispose()
    copied = sum(trials for _, trials, _, _ in plan)
    return {
        "copied_trials": copied,
        "night_copies": len(plan),
        "copies": plan[-1][2] - copies_made,
        "copy_s": round(time.perf_counter() - started, 1),
    }


def _refuse_uncopied(rows) -> None:
    for table in UNCOPIED_TABLES:
        if rows(f"SELECT count(*) FROM {table}")[0][0]:
            sys.exit(f"the store has rows in {table}, which --replicate-to does not copy")


def _finished_nights(rows, experiment: int) -> tuple[list[tuple[str, int, int]], int, int]:
    """The finished agent runs as (run id, its trials, its start time), oldest first; the experiment's trials; and
    the highest copy number in the store (a new copy's number goes on from there)."""
    trials_by_agent = dict(
        rows(
            "SELECT a.value, count(*) FROM tags a JOIN tags k ON k.run_uuid = a.run_uuid AND k.key = 'overnight.kind' "
            "AND k.value = 'trial' JOIN runs r ON r.run_uuid = a.run_uuid AND r.experiment_id = :e "
            "WHERE a.key = 'overnight.agent_run_id' GROUP BY a.value",
            e=experiment,
        )
    )
    agents = rows(
        "SELECT r.run_uuid, r.start_time, substring(r.name from ' copy ([0-9]+)$') FROM runs r JOIN tags k ON k.run_uuid = r.run_uuid "
        "AND k.key = 'overnight.kind' AND k.value = 'agent_run' JOIN tags s ON s.run_uuid = r.run_uuid "
        "AND s.key = 'overnight.status' AND s.value = 'finished' WHERE r.experiment_id = :e ORDER BY r.start_time",
        e=experiment,
    )
    originals = [(run, trials_by_agent.get(run, 0), start) for run, start, copy in agents if not copy]
    return (
        originals,
        sum(trials_by_agent.values()),
        max((int(copy) for _, _, copy in agents if copy), default=0),
    )


def _copy_plan(nights, have: int, target: int, copies_made: int) -> list[tuple[str, int, int, int]]:
    """(night's agent run, its trials, copy number, shift in ms) for each night copied, until the store holds
    `target` trials: each copy the finished nights oldest first, copy c moved c spans earlier."""
    if not sum(trials for _, trials, _ in nights):
        return []
    starts = [start for _, _, start in nights]
    span_ms = ((max(starts) - min(starts)) // DAY_MS + 1) * DAY_MS
    plan, c = [], copies_made
    while have < target:
        c += 1
        for agent, trials, _ in nights:
            if have >= target:
                break
            plan.append((agent, trials, c, c * span_ms))
            have += trials
    return plan


def _make_copy_map(db, rows, plan) -> None:
    """copy_map(old, new, c, shift, root, new_root): every run of every night copy (a night: its agent run and the
    runs below it by mlflow.parentRunId)."""
    import sqlalchemy

    db.execute(sqlalchemy.text("CREATE TEMP TABLE copy_nights (agent varchar(32), c int, shift bigint)"))
    db.execute(
        sqlalchemy.text("INSERT INTO copy_nights VALUES (:a, :c, :s)"),
        [{"a": agent, "c": c, "s": shift} for agent, _, c, shift in plan],
    )
    db.execute(
        sqlalchemy.text(
            "CREATE TEMP TABLE copy_map AS WITH RECURSIVE tree(run_uuid, root) AS ("
            "SELECT DISTINCT agent, agent FROM copy_nights UNION ALL SELECT p.run_uuid, tree.root FROM tags p "
            "JOIN tree ON p.key = 'mlflow.parentRunId' AND p.value = tree.run_uuid) "
            "SELECT tree.run_uuid AS old, md5(tree.run_uuid || ':' || n.c) AS new, n.c, n.shift, tree.root, "
            "md5(tree.root || ':' || n.c) AS new_root FROM tree JOIN copy_nights n ON n.agent = tree.root"
        )
    )
    db.execute(sqlalchemy.text("CREATE INDEX ON copy_map (old, c)"))
    db.execute(sqlalchemy.text("ANALYZE copy_map"))
    print(
        f"  {rows('SELECT count(*) FROM copy_map')[0][0]} runs to copy in {len(plan)} night copies",
        flush=True,
    )


def _copy_rows_sql(rows, table: str, changed: dict[str, str]) -> str:
    """INSERT ... SELECT of a table's rows for every copied run, its columns as MLflow's schema has them."""
    columns = [
        name
        for (name,) in rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = :t ORDER BY ordinal_position",
            t=table,
        )
    ]
    values = ", ".join(changed.get(column, f"t.{column}") for column in columns)
    names = ", ".join(f'"{column}"' for column in columns)
    named_run = " LEFT JOIN copy_map x ON x.old = t.value AND x.c = m.c" if table == "tags" else ""
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM {table} t JOIN copy_map m ON m.old = t.run_uuid{named_run}"


# --- timing ----------------------------------------------------------------------------------------------------------


def median_s(fn, repeats: int) -> float:
    """The median wall time of fn()."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def median_wall_cpu(fn, memories: list) -> tuple[float, float]:
    """Median wall and CPU seconds of fn(memory) over the memories. The CPU time is this process's own: on a
    machine shared with other work it is the steadier figure (the queries are single-threaded, SQLite in process)."""
    wall, cpu = [], []
    for memory in memories:
        started, started_cpu = time.perf_counter(), time.process_time()
        fn(memory)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def time_queries(store: Path, repeats: int) -> dict[str, float]:
    """In-process timings, cold (a fresh Memory each time) and warm (the same Memory again)."""
    import tempfile

    from overnight.budget import budget_left, trials_left
    from overnight.config import load_config
    from overnight.planners.prompts import digest
    from overnight.report import write_report

    config = load_config(write_config(store))
    agent_run = open_memory(store).status().agent_run_id
    scratch = Path(tempfile.mkdtemp())

    queries = {
        "snapshot + digest (planner, each wave)": lambda m: digest(m.snapshot()),
        "agent_run_trials": lambda m: m.trials(agent_run_id=agent_run),
        "trials_left + budget_left": lambda m: (
            trials_left(config, m, agent_run, 3),
            budget_left(config, m, agent_run, 3),
        ),
        "summarise's queries": lambda m: (
            m.trials(agent_run_id=agent_run),
            m.champion(),
            m.champion_files(),
            m.spend_usd(agent_run),
            m.lineage(),
        ),
        "status()": lambda m: m.status(),
        "status read directly (store_sql.read_status)": lambda m: read_status_directly(store),
        "report (write_report)": lambda m: write_report(m, scratch),
    }
    results = {}
    for name, query in queries.items():
        fresh = [open_memory(store) for _ in range(repeats)]  # cold: each a Memory as a new wave opens it
        results[f"{name} | cold"], results[f"{name} | cold cpu"] = median_wall_cpu(query, fresh)
        # warm: the same Memory asked again (the last cold one, so its first call is already done)
        results[f"{name} | warm"], results[f"{name} | warm cpu"] = median_wall_cpu(
            query, [fresh[-1]] * repeats
        )
        print(
            f"  {name}: cold {results[f'{name} | cold']:.3f} s (cpu {results[f'{name} | cold cpu']:.3f}), "
            f"warm {results[f'{name} | warm']:.3f} s (cpu {results[f'{name} | warm cpu']:.3f})",
            flush=True,
        )
    return results


def read_status_directly(store: Path):
    """What `overnight status` reads: the SQLite file with the stdlib, or PostgreSQL with SQLAlchemy alone."""
    from overnight.memory import sql as store_sql

    if not POSTGRES:
        return store_sql.read_status(store / "mlflow.db", CAMPAIGN, METRIC)
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES)
    try:
        with engine.connect() as db:
            rows = lambda query, values: db.execute(sqlalchemy.text(query), values).all()  # noqa: E731
            return store_sql.status_of(rows, CAMPAIGN, METRIC, sqlite=False)
    finally:
        engine.dispose()


def write_in_parallel(store: Path, trials: int, writers: int) -> dict:
    """The nights in `writers` processes at once: the others in the writers, the newest (left running) here
    meanwhile. The store's tables and the experiment are made first, so the writers never race to make them."""
    nights = layout(trials)[0]
    store.mkdir(parents=True, exist_ok=True)
    open_memory(store)
    started = time.perf_counter()
    shares = [list(range(w, nights - 1, writers - 1)) for w in range(writers - 1)]
    command = [sys.executable, __file__, "--trials", str(trials), "--store", str(store), "--write-nights"]
    processes = [
        subprocess.Popen(
            [*command, ",".join(map(str, share))], env={**os.environ, "MEMORY_SCALE_POSTGRES": POSTGRES}
        )
        for share in shares
        if share
    ]
    info = write_store(store, trials, only=[nights - 1])
    if any(process.wait() for process in processes):
        sys.exit("a writer failed")
    info["trials"] = trials  # the layout's count (each process counted its own)
    info["write_s"] = round(time.perf_counter() - started, 1)
    info["writers"] = writers
    (store / "layout.json").write_text(json.dumps(info, indent=2))
    return info


def time_cli(store: Path, repeats: int) -> dict[str, float]:
    """The CLI end to end, as a person runs it (a new Python process each time)."""
    config = write_config(store)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-c", "from overnight.cli import main; main()"]
    out = store / "state" / "report-cli"
    commands = {
        "overnight --help (start-up + imports)": [*base, "--help"],
        "overnight status": [*base, "status", str(config)],
        "overnight report": [*base, "report", str(config), "--out", str(out)],
    }
    results = {}
    for name, command in commands.items():

        def run(command=command):
            subprocess.run(command, env=env, check=True, capture_output=True)

        results[name] = median_s(run, repeats)
        print(f"  {name}: {results[name]:.2f} s", flush=True)
    # What every command pays before its first query: Python, the imports, opening the store (MLflow checks its
    # schema). Subtract it from the CLI figures to get the queries' share.
    opening = (
        "import sys, overnight.cli, overnight.agent_run, overnight.report; from overnight.memory.store import Memory; "
        "Memory(sys.argv[1], sys.argv[2], 'minimize', sys.argv[3])"
    )
    uri = store_uri(store)
    results["python + imports + open the store"] = median_s(
        lambda: subprocess.run([sys.executable, "-c", opening, uri, CAMPAIGN, METRIC], env=env, check=True),
        repeats,
    )
    print(f"  python + imports + open the store: {results['python + imports + open the store']:.2f} s")
    return results


def replicate(store: Path, info: dict, target: int) -> dict:
    """--replicate-to: grow the store in SQL to `target` trials; what was copied is added to layout.json."""
    if not POSTGRES:
        sys.exit("--replicate-to copies nights inside PostgreSQL: give --postgres")
    print(f"Copying nights in SQL until the store holds {target} trials...")
    copied = replicate_nights(target)
    info = {
        **info,
        "copied_trials": info.get("copied_trials", 0) + copied["copied_trials"],
        "night_copies": info.get("night_copies", 0) + copied.get("night_copies", 0),
        "copies": info.get("copies", 0) + copied.get("copies", 0),
        "copy_s": round(info.get("copy_s", 0) + copied["copy_s"], 1),
    }
    (store / "layout.json").write_text(json.dumps(info, indent=2))
    print(f"Copied {copied['copied_trials']} trials in {copied['copy_s']:.0f} s.")
    return info


def section_text(record: dict, store: dict, args, tables: str) -> str:
    """Section 8 of RESULTS.md: how the store was built, where and when it was timed, and the tables."""
    written, copied = store.get("writers", 1), store.get("copied_trials", 0)
    built = (
        f"{store['trials']:,} trials ({store['nights']} nights x {store['waves']} waves x {store['per_wave']} "
        f"trials), written through `Memory` by {written} process(es) in {store['write_s']:.0f} s "
        f"({store['trials'] / store['write_s']:.0f} trials/s)"
    )
    if copied:
        built = (
            f"{store['trials'] + copied:,} trials: {built}; then {copied:,} more copied inside PostgreSQL "
            f"(`--replicate-to`: {store['copies']} copies of its finished nights, {store['night_copies']} nights "
            f"in all, each a distinct older night of the campaign with new run ids and its run-id tags remapped) "
            f"in {store['copy_s']:.0f} s"
        )
    replicated = f" --replicate-to {args.replicate_to}" if args.replicate_to else ""
    return (
        f"{SECTION}\n\n"
        f"- **Machine**: {record['machine']}, shared with other work; PostgreSQL 15 on the same machine.\n"
        f"- **Date**: {record['date']}.\n"
        f"- **Store**: {built}.\n"
        f"- **Command**: `nice -n 19 .venv/bin/python benchmarks/memory_scale.py --trials {args.trials} "
        f"--postgres postgresql://USER@127.0.0.1:PORT/DB --writers {written}{replicated} --repeats {args.repeats} "
        f"--results`\n\n{tables}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000, help="trials to write (default 10000)")
    parser.add_argument("--store", type=Path, default=ROOT / ".overnight" / "bench" / "memory_scale")
    parser.add_argument("--repeats", type=int, default=5, help="runs per timing; the median is reported")
    parser.add_argument("--label", default="", help="name of this measurement in results.json (e.g. before)")
    parser.add_argument("--postgres", default="", help="the MLflow store: postgresql://USER@HOST:PORT/DB")
    parser.add_argument("--writers", type=int, default=1, help="processes writing the nights at once")
    parser.add_argument("--write-nights", default="", help=argparse.SUPPRESS)  # a writer process's nights
    parser.add_argument("--results", action="store_true", help="write the tables to benchmarks/RESULTS.md")
    parser.add_argument(
        "--replicate-to",
        type=int,
        default=0,
        help="with --postgres: grow the store to this many trials in SQL",
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    global POSTGRES
    POSTGRES = args.postgres or POSTGRES
    store = args.store.resolve()
    if args.write_nights:
        write_store(store, args.trials, only=[int(n) for n in args.write_nights.split(",")])
        return
    existing = json.loads((store / "layout.json").read_text()) if (store / "layout.json").is_file() else None
    if existing and layout(args.trials) == (existing["nights"], existing["waves"], existing["per_wave"]):
        print(f"Reusing the store at {store}: {existing['trials']} trials.")
    else:
        if existing or (store / "mlflow.db").exists():
            sys.exit(f"{store} holds another layout: remove it or choose another --store")
        print(
            f"Writing {args.trials} trials to {store_uri(store)} (nights x waves x trials: {layout(args.trials)})..."
        )
        existing = (
            write_in_parallel(store, args.trials, args.writers)
            if args.writers > 1
            else write_store(store, args.trials)
        )
        print(f"Written in {existing['write_s']:.0f} s.")
    if args.replicate_to:
        existing = replicate(store, existing, args.replicate_to)
    print(f"Timing (median of {args.repeats})...")
    results = {**time_queries(store, args.repeats), **time_cli(store, args.repeats)}
    record = {
        "label": args.label,
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "store": existing,
        "repeats": args.repeats,
        "seconds": {k: round(v, 3) for k, v in results.items()},
    }
    history = store / "results.json"
    previous = json.loads(history.read_text()) if history.is_file() else []
    history.write_text(json.dumps([*previous, record], indent=2))
    lines = ["| query (in process) | cold s | cold cpu s | warm s | warm cpu s |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(k.split(" | ")[0] for k in results if " | " in k):
        cells = " | ".join(
            f"{results[f'{name} | {kind}']:.3f}" for kind in ("cold", "cold cpu", "warm", "warm cpu")
        )
        lines.append(f"| {name} | {cells} |")
    lines += ["", "| command (new process) | s |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in results.items() if " | " not in name]
    tables = "\n".join(lines)
    print("\n" + tables)
    if args.results and POSTGRES:  # the SQLite section (3) is written by hand, with its before/after figures
        from benchmarks.results import write_section  # the repository root is on sys.path (above)

        write_section(SECTION, section_text(record, existing, args, tables))
        print(f"Wrote the section '{SECTION}' of benchmarks/RESULTS.md.")


if __name__ == "__main__":
    main()
