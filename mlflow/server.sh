#!/usr/bin/env bash
# A tracking server that several campaigns (or machines) share over HTTP. Point overnight at it with
# `tracking_uri: http://HOST:5000` in the campaign config, or MLFLOW_TRACKING_URI=http://HOST:5000.
# Usage: mlflow/server.sh [BACKEND_STORE_URI] [ARTIFACTS_DESTINATION]
#   defaults: sqlite:///$PWD/.overnight/server.db and $PWD/.overnight/server-artifacts (one person, one machine)
#
# A team: the runs in PostgreSQL, the artifacts on storage every machine reaches, several workers.
#   pip install -e '.[team]'                       # the PostgreSQL drivers (psycopg, asyncpg)
#   createdb -h db -U overnight mlflow             # once; MLflow creates its tables on first start
#   HOST=0.0.0.0 WORKERS=4 mlflow/server.sh postgresql://overnight@db:5432/mlflow /shared/mlflow-artifacts
# (a password goes in ~/.pgpass or PGPASSWORD rather than the URI; s3://bucket/prefix works as the artifact root).
# Environment: HOST (127.0.0.1), PORT (5000), WORKERS (1; a team's server: 2-4 per core it may use).
set -euo pipefail
store=${1:-sqlite:///$PWD/.overnight/server.db}
artifacts=${2:-$PWD/.overnight/server-artifacts}
case "$store" in sqlite:*) mkdir -p "$PWD/.overnight" ;; esac
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec mlflow server --backend-store-uri "$store" --artifacts-destination "$artifacts" \
  --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" --workers "${WORKERS:-1}"
