"""The campaign's memory in MLflow, and the plain records read from it.

- `store.py`: `Memory`, every write and read of MLflow (the only module of overnight that imports it);
- `records.py`: frozen records (`TrialRecord`, `Run`, `ChampionVersion`...) and the MLflow tags they are built from;
- `snapshot.py`: `MemorySnapshot`, the frozen view of the past a planner reads;
- `lineage.py`: the champion's lineage and versions, assembled from runs by plain functions;
- `sql.py`: the read queries on a SQL store, used by `overnight status` on SQLite without importing MLflow.

Only `store.py` imports MLflow. Import from the module you need (`from overnight.memory.store import Memory`): this
package imports nothing, so a planner that reads records never pays for MLflow.
"""
