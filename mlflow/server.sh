#!/usr/bin/env bash
# A tracking server that several campaigns (or machines) share over HTTP. Point overnight at it with
# `tracking_uri: http://HOST:5000` in the campaign config, or MLFLOW_TRACKING_URI=http://HOST:5000.
# Usage: mlflow/server.sh [BACKEND_STORE_URI] [ARTIFACTS_DESTINATION]
#   defaults: sqlite:///$PWD/.overnight/server.db and $PWD/.overnight/server-artifacts
#   a team:   mlflow/server.sh postgresql://user@db/mlflow s3://bucket/overnight
set -euo pipefail
store=${1:-sqlite:///$PWD/.overnight/server.db}
artifacts=${2:-$PWD/.overnight/server-artifacts}
mkdir -p "$PWD/.overnight"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec mlflow server --backend-store-uri "$store" --artifacts-destination "$artifacts" \
  --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" --workers "${WORKERS:-1}"
