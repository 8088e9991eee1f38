"""Prefect tasks: thin wrappers over the stages of a wave in overnight/wave/ (retries, artifacts; no domain logic)."""
