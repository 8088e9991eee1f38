"""What a campaign left in a Prefect server, read through its REST API: the flow run, its wave subflows, their task
runs."""

from __future__ import annotations

import httpx


def _all(api: httpx.Client, what: str, body: dict) -> list[dict]:
    """Every object a filter matches, page by page (the API answers 200 at most per call)."""
    found: list[dict] = []
    while True:
        page = api.post(f"/{what}/filter", json={**body, "limit": 200, "offset": len(found)})
        page = page.raise_for_status().json()
        found.extend(page)
        if len(page) < 200:
            return found


def campaign_runs(api_url: str, config_path: str) -> dict:
    """The campaign's flow runs for this config, the wave subflow runs under them, and all their task runs."""
    with httpx.Client(base_url=api_url, timeout=60) as api:
        flows = [
            run
            for run in _all(api, "flow_runs", {"flow_runs": {"parent_task_run_id": {"is_null_": True}}})
            if run["parameters"].get("config_path") == config_path
        ]
        parents = [run["id"] for run in flows]
        subflows = (
            _all(api, "flow_runs", {"flow_runs": {"parent_flow_run_id": {"any_": parents}}}) if flows else []
        )
        ids = parents + [run["id"] for run in subflows]
        tasks = _all(api, "task_runs", {"flow_runs": {"id": {"any_": ids}}}) if ids else []
    return {"flows": flows, "subflows": subflows, "tasks": tasks}
