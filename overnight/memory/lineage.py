"""The champion's lineage, assembled from runs: plain functions over `Run` records, no MLflow.

Crowning a trial tags its run (`Memory.set_champion`): `was_champion`, the run it replaced (`champion_parent`),
why it won (`champion_why`) and its confirmed gain (metric `confirmed_gain`). `Memory` reads every run ever crowned
in one query, and the files of those on the chain; these functions walk and compare them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from overnight.memory.records import PREFIX, ChampionVersion, Run, trial_record
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


def versions(runs: Sequence[Run], files: Mapping[str, dict[str, str]], metric: str) -> list[ChampionVersion]:
    """The champion's lineage for a person to review, oldest first: the program as shipped (version 0), then each
    change that was crowned, with its files and its diffs from its parent and from the program as shipped.

    `runs` is the lineage newest first (as `chain` returns it), `files` the editable files of each by run id.
    A later night's baseline re-measures the champion without changing it: it is folded into the version it
    measured (same files), so every version after the first is a real change. Empty when `runs` is."""
    found: list[ChampionVersion] = []
    for run in reversed(runs):
        trial, mine = trial_record(run, metric), files[run.run_id]
        parent = found[-1] if found else None
        if parent is not None and mine == parent.files:
            continue  # a re-measurement of the same version
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
            )
        )
    return found
