#!/usr/bin/env bash
# Install with the test extras, then lint, check the layering, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh test
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
echo "ruff ..."; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "import layering ..."; .venv/bin/lint-imports
echo "pytest ..."; .venv/bin/pytest -q "$@"
