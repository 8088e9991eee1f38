#!/usr/bin/env bash
# Open the MLflow UI on the local store that `overnight run` writes (.overnight/mlflow.db in the folder you ran it from).
# Usage: mlflow/ui.sh [path/to/mlflow.db]   (PORT=5000 by default)
set -euo pipefail
store=$(realpath "${1:-.overnight/mlflow.db}")
[ -f "$store" ] || { echo "No MLflow store at $store: run 'overnight run' first, or pass the store's path." >&2; exit 1; }
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false  # no background job runners to orphan when you stop it
exec mlflow ui --backend-store-uri "sqlite:///$store" --host 127.0.0.1 --port "${PORT:-5000}" --workers 1
