"""Prefect tasks: thin wrappers over the core stages in overnight.loop (retries, artifacts; no domain logic)."""
