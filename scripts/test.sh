#!/usr/bin/env bash
# Install with the test extras, then lint, check the layering, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh test,skypilot,team  # SkyPilot: its tests run on a local Slurm cluster; team: PostgreSQL drivers
# Debian's Chromium for the browser test of both UIs (skipped with its reason when it cannot be installed).
if [ ! -x /usr/lib/chromium/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing chromium for the browser test ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "chromium could not be installed: the browser test will be skipped"
fi
# Debian's PostgreSQL (the team tests run MLflow and Prefect on a private server) and bubblewrap (the trial sandbox).
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v bwrap >/dev/null || missing+=(bubblewrap)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing ${missing[*]} ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
    || echo "${missing[*]} could not be installed: the tests that need them will be skipped"
fi
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
echo "ruff ..."; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "import layering ..."; .venv/bin/lint-imports
echo "pytest ..."; .venv/bin/pytest -q "$@"
