#!/usr/bin/env bash
# Install overnight into ./.venv (created if missing). torch comes first, so pip never pulls a build you did not choose:
# TORCH_SPEC picks it (default torch==2.13.0; e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124").
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}   # "test": pytest, ruff, import-linter; "skypilot": the GPU backend; "test,skypilot": both

pip_install() {
  .venv/bin/pip install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "Installing ${TORCH_SPEC:-torch==2.13.0} ..."
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
  pip_install ${TORCH_SPEC:-torch==2.13.0}
fi
echo "Installing overnight${extras:+ [$extras]} ..."
constraints=()
case ",$extras," in *,skypilot,*) constraints=(-c scripts/skypilot-constraints.txt) ;; esac
pip_install -e ".${extras:+[$extras]}" "${constraints[@]}"
