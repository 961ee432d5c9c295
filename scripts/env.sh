#!/usr/bin/env bash
# Create (once) and refresh (when pyproject.toml changes) the project's virtualenv in .venv,
# installing the project and its pinned dependencies from pyproject.toml. Sourced by demo.sh and test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HER2_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "error: Python 3.10 or newer is needed (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.10+" >&2
  exit 2
fi
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
her2_ensure_venv "$VENV" test "[setup]" .her2radiomics-installed
export PATH="$VENV/bin:$PATH"
