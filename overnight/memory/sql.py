"""MLflow's tables read with plain SQL: by `Memory` on a SQL store, and by `overnight status` on a SQLite file.

MLflow's own search builds an ORM object per tag, param and metric row, and reads every tag: at ten thousand trials
that took seconds per call. These queries read the runs, the tags a record is built from (READ_TAGS), the params and
the latest metrics as tuples. They take any `rows(query, values) -> list of tuples` with named `:parameters`: the
sqlite3 module's own `execute`, or SQLAlchemy's `text()` for a database server (whose drivers spell parameters
their own way).

No MLflow import here: `overnight status` reads a SQLite store through `read_status` with the stdlib alone (and a
PostgreSQL store through `status_of` with SQLAlchemy alone), since importing MLflow and letting it check the store's
schema cost about 2 s before the first query.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

from overnight.memory.records import (
    CHAMPION_TAG,
    KIND,
    READ_TAGS,
    RUN_NAME,
    CampaignStatus,
    Run,
    TrialRecord,
    campaign_status,
    last_night,
    trial_record,
)

Rows = Callable[[str, dict], list]  # (query, named values) -> rows as tuples


def read_runs(rows: Rows, experiment_id: str, match: dict[str, str], sqlite: bool) -> list[Run]:
    """The experiment's active runs whose tags equal `match`, oldest first (as MLflow orders: start time, run id).

    The last tag of `match` drives the query (its rows are read, the others looked up by run): put the narrowest
    last. MLflow indexes tags by key, not value, so every tag matched costs reading all rows of its key (ten
    thousand per key at ten thousand trials); the others cost one lookup per run found.

    Reading every trial, a plain scan of the tags (params, metrics) table beats looking each run's rows up through
    the run_uuid index by 2-3x on SQLite: the index holds no values, so every row costs a second lookup. A narrower
    read (one night, the agent runs, the crowned runs) takes the index."""
    *others, (key, value) = match.items()
    values: dict[str, object] = {"experiment": int(experiment_id), "active": "active", "k": key, "v": value}
    chosen = (
        "SELECT t.run_uuid FROM tags t WHERE t.key = :k AND t.value = :v AND EXISTS (SELECT 1 FROM runs r WHERE "
        "r.run_uuid = t.run_uuid AND r.experiment_id = :experiment AND r.lifecycle_stage = :active)"
    )
    for i, (other, wanted) in enumerate(others):
        chosen += (
            f" AND EXISTS (SELECT 1 FROM tags u{i} WHERE u{i}.key = :k{i} AND u{i}.run_uuid = t.run_uuid "
            f"AND u{i}.value = :v{i})"
        )
        values.update({f"k{i}": other, f"v{i}": wanted})
    return _read(rows, chosen, values, scan=sqlite and match == {KIND: "trial"})


def read_run(rows: Rows, run_id: str) -> Run | None:
    """One run by its id, whatever its experiment and lifecycle (as MLflow's get_run reads it), or None."""
    runs = _read(rows, "SELECT run_uuid FROM runs WHERE run_uuid = :run", {"run": run_id}, scan=False)
    return runs[0] if runs else None


def _read(rows: Rows, chosen: str, values: dict[str, object], scan: bool) -> list[Run]:
    """The runs whose ids the `chosen` subquery selects, in four plain queries."""
    values = {**values, **{f"r{i}": key for i, key in enumerate(READ_TAGS)}}
    read = ", ".join(f":r{i}" for i in range(len(READ_TAGS)))
    unindexed = " NOT INDEXED" if scan else ""
    found = {
        run_id: Run(run_id, name or "", start, status, uri, {}, {}, {})
        for run_id, name, start, status, uri in rows(
            f"SELECT run_uuid, name, start_time, status, artifact_uri FROM runs WHERE run_uuid IN ({chosen}) "
            "ORDER BY start_time ASC, run_uuid ASC",
            values,
        )
    }
    if not found:
        return []
    # Each query runs `chosen` again: a run that a wave records meanwhile (pipelined waves plan and record at
    # once) may be chosen by the later ones. The runs are those of the first query; later rows of others are not.
    for run_id, key, value in rows(
        f"SELECT run_uuid, key, value FROM tags{unindexed} WHERE key IN ({read}) AND run_uuid IN ({chosen})",
        values,
    ):
        if run_id in found:
            found[run_id].tags[key] = value
    for run_id, key, value in rows(
        f"SELECT run_uuid, key, value FROM params{unindexed} WHERE run_uuid IN ({chosen})", values
    ):
        if run_id in found:
            found[run_id].params[key] = value
    for run_id, key, value, is_nan in rows(
        f"SELECT run_uuid, key, value, is_nan FROM latest_metrics{unindexed} WHERE run_uuid IN ({chosen})",
        values,
    ):
        if run_id in found:
            found[run_id].metrics[key] = math.nan if is_nan else value
    return [  # a run without a name is named by its tag, as MLflow does
        run if run.name else dataclasses.replace(run, name=run.tags.get(RUN_NAME, ""))
        for run in found.values()
    ]


def experiment_id(rows: Rows, name: str) -> str | None:
    """The id of the active experiment of that name, or None."""
    found = rows(
        "SELECT experiment_id FROM experiments WHERE name = :name AND lifecycle_stage = :active",
        {"name": name, "active": "active"},
    )
    return str(found[0][0]) if found else None


def experiment_tag(rows: Rows, experiment: str, key: str) -> str | None:
    found = rows(
        "SELECT value FROM experiment_tags WHERE experiment_id = :experiment AND key = :key",
        {"experiment": int(experiment), "key": key},
    )
    return found[0][0] if found else None


def sqlite_file(tracking_uri: str) -> Path | None:
    """The file of a `sqlite:///` tracking URI, or None for any other store (a server, a URI with options)."""
    if not tracking_uri.startswith("sqlite:///") or "?" in tracking_uri:
        return None
    path = tracking_uri.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


def read_status(
    path: Path, campaign: str, metric: str
) -> tuple[CampaignStatus | None, TrialRecord | None, str]:
    """`Memory.status()` of a SQLite store, read directly and read-only; with the champion and the last night's
    improvement (`last_night`) when nothing runs.

    (None, None, "") when the file or the campaign does not exist yet. Raises sqlite3.Error when the file is not an
    MLflow store these queries can read (then open it through `Memory`, which creates or upgrades it)."""
    if not path.is_file():
        return None, None, ""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return status_of(
            lambda query, values: db.execute(query, values).fetchall(), campaign, metric, sqlite=True
        )
    finally:
        db.close()


def status_of(
    rows: Rows, campaign: str, metric: str, sqlite: bool
) -> tuple[CampaignStatus | None, TrialRecord | None, str]:
    """`read_status` on any SQL store `rows` reads (a SQLite file, a PostgreSQL database)."""
    experiment = experiment_id(rows, campaign)
    if experiment is None:
        return None, None, ""
    now = campaign_status(lambda match: read_runs(rows, experiment, match, sqlite=sqlite), metric)
    if now is not None:
        return now, None, ""
    champion = experiment_tag(rows, experiment, CHAMPION_TAG)
    run = read_run(rows, champion) if champion else None
    night = last_night(lambda match: read_runs(rows, experiment, match, sqlite=sqlite))
    return None, trial_record(run, metric) if run else None, night
