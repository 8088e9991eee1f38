#!/usr/bin/env bash
# A Prefect server a team shares, on PostgreSQL: every campaign's flow runs, waves and trials in one UI, and a
# nightly deployment's schedule that outlives any one machine. Point a campaign at it with
# `prefect_api_url: http://HOST:4200/api` in its config (or PREFECT_API_URL=http://HOST:4200/api).
# Usage: deployments/prefect-server.sh [DATABASE_URL]
#   default: Prefect's own SQLite file under PREFECT_HOME (~/.prefect), for one machine
#   a team:  pip install -e '.[team]'              # asyncpg, Prefect's PostgreSQL driver
#            createdb -h db -U overnight prefect   # once; the server creates its tables on first start
#            HOST=0.0.0.0 deployments/prefect-server.sh postgresql+asyncpg://overnight@db:5432/prefect
# (a password: postgresql+asyncpg://overnight:PASSWORD@db:5432/prefect, or PREFECT_API_DATABASE_PASSWORD).
# Environment: HOST (127.0.0.1), PORT (4200).
set -euo pipefail
if [ -n "${1:-}" ]; then
  case "$1" in
    postgresql+asyncpg://*) ;;
    postgresql://*) set -- "postgresql+asyncpg://${1#postgresql://}" ;;  # Prefect's server speaks asyncpg only
    *) echo "expected postgresql+asyncpg://USER@HOST:PORT/DATABASE, got $1" >&2; exit 2 ;;
  esac
  export PREFECT_API_DATABASE_CONNECTION_URL="$1"
fi
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
exec prefect server start --host "${HOST:-127.0.0.1}" --port "${PORT:-4200}"
