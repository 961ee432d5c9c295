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
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.her2radiomics-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[setup] installing her2radiomics and its pinned dependencies into $VENV (first run takes ~1-2 min)" >&2
  # (the grep drops pip's notes about absent local mirrors configured on some machines)
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
  if ! "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]" > "$VENV/pip-install.log" 2>&1; then
    grep -v "^WARNING: Location" "$VENV/pip-install.log" | tail -n 20 >&2
    echo "error: installing the project's dependencies failed (log: $VENV/pip-install.log); check network access to PyPI and a C compiler" >&2
    exit 2
  fi
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
