"""The champion's lineage, assembled from runs: plain functions over `Run` records, no MLflow.

Crowning a trial tags its run (`Memory.set_champion`): `was_champion`, the run it replaced (`champion_parent`),
why it won (`champion_why`) and its confirmed gain (metric `confirmed_gain`). `Memory` reads every run ever crowned
in one query, and the files of those on the chain; these functions walk and compare them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from overnight.memory.records import (
    HOLDOUT_PREFIX,
    HOLDOUT_STATUS,
    PREFIX,
    ChampionVersion,
    Run,
    trial_record,
)
from overnight.proposals import unified_diff

CROWNED = PREFIX + "was_champion"  # "true" on every run that was champion once
PARENT = PREFIX + "champion_parent"  # the run id of the champion it replaced ("" for the first)
WHY = PREFIX + "champion_why"  # the verdict that crowned it


def chain(champion: str, crowned: Mapping[str, Run], read: Callable[[str], Run]) -> list[Run]:
    """The champion's run and its predecessors', newest first, along their parent tags.

    `crowned` holds the runs ever crowned, by run id; a run missing there (e.g. a deleted one, which searches no
    longer find) is read by id with `read`."""
    runs = []
    while champion:
        run = crowned.get(champion) or read(champion)
        runs.append(run)
        champion = run.tags.get(PARENT, "")
    return runs


def versions(
    runs: Sequence[Run], files: Mapping[str, dict[str, str]], metric: str, goal: str
) -> list[ChampionVersion]:
    """The champion's lineage for a person to review, oldest first: the program as shipped (version 0), then each
    change that was crowned, with its files and its diffs from its parent and from the program as shipped, and its
    holdout beside its metric (`goal`: minimize | maximize, to say which way is worse).

    `runs` is the lineage newest first (as `chain` returns it), `files` the editable files of each by run id.
    A later night's baseline re-measures the champion without changing it: it is folded into the version it
    measured (same files), lending it its holdout if the version had none, so every version after the first is a
    real change. Empty when `runs` is."""
    found: list[ChampionVersion] = []
    for run in reversed(runs):
        trial, mine = trial_record(run, metric), files[run.run_id]
        parent = found[-1] if found else None
        if parent is not None and mine == parent.files:  # a re-measurement of the same version
            if parent.holdout_status != "ok" and run.tags.get(HOLDOUT_STATUS):
                found[-1] = replace(parent, **_holdout(run, metric))
            continue
        found.append(
            ChampionVersion(
                version=len(found),
                trial_id=trial.trial_id,
                hypothesis=trial.hypothesis,
                run_id=trial.run_id,
                parent_run_id=parent.run_id if parent else "",
                metric=trial.metric,
                confirmed_gain=run.metrics.get("confirmed_gain") if parent else None,
                verdict=run.tags.get(WHY, ""),
                files=mine,
                step_diff=unified_diff(parent.files, mine) if parent else "",
                cumulative_diff=unified_diff(found[0].files, mine) if parent else "",
                **_holdout(run, metric),
            )
        )
    return [
        replace(v, holdout_worse=_holdout_worse(v, found[v.version - 1], goal)) if v.version else v
        for v in found
    ]


def _holdout(run: Run, metric: str) -> dict[str, object]:
    """The holdout fields of a version from its run: the value and how the measurement went."""
    return {
        "holdout": run.metrics.get(HOLDOUT_PREFIX + metric),
        "holdout_status": run.tags.get(HOLDOUT_STATUS, ""),
    }


def _holdout_worse(version: ChampionVersion, parent: ChampionVersion, goal: str) -> bool:
    """Better than its parent on validation, worse on the holdout: the sign that a gain may not be real."""
    if None in (version.metric, parent.metric, version.holdout, parent.holdout):
        return False
    sign = 1 if goal == "minimize" else -1
    return sign * (version.metric - parent.metric) < 0 < sign * (version.holdout - parent.holdout)
