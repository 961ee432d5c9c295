#!/usr/bin/env bash
# The "fresh 3D Slicer" lane (issue 10): the panel in a Python 3.12 environment holding exactly what a new
# Slicer ships (Testing/FreshSlicer/slicer-<version>.txt) plus slicer-core for the MRML classes, and none of
# the packages Slicer does not bundle. Testing/Python/test_slicer_fresh_lane.py then opens the module, accepts
# the dependency prompt, lets the module's own installer put PyYAML + pandas into a temporary target from PyPI
# (once through a 5.10-like slicer.util.pip_install, once through a 5.12-like slicer.packaging.pip_ensure) and
# runs the whole workflow.
#
#   bash scripts/fresh_slicer_lane.sh [5.12|5.10|all]     (default: $HER2_FRESH_SLICER_VERSIONS or "5.12 5.10")
#
# Python 3.12: $PYTHON312, else python3.12 on PATH, else pyenv's newest 3.12. Without one the lane is skipped
# with a one-line reason (exit 0). The virtualenvs live in $HER2_FRESH_SLICER_VENVS (default
# ~/.cache/her2radiomics/fresh-slicer/slicer-<version>) and are rebuilt when the requirement files change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LANE="$ROOT/Testing/FreshSlicer"
# the lane's virtualenvs: outside the work tree, so that a fresh clone on the same machine reuses them (each is
# rebuilt from the files above whenever they change, and created from scratch where absent)
VENVS="${HER2_FRESH_SLICER_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/her2radiomics/fresh-slicer}"
mkdir -p "$VENVS"

find_python312() {
  local c
  for c in "${PYTHON312:-}" "$(command -v python3.12 2>/dev/null || true)"; do
    if [ -n "$c" ] && "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root 2>/dev/null || echo "$root")"
  fi
  for c in $(ls -d "$root"/versions/3.12.* 2>/dev/null | sort -V -r); do
    if [ -x "$c/bin/python3.12" ]; then echo "$c/bin/python3.12"; return 0; fi
  done
  return 1
}

versions="${1:-${HER2_FRESH_SLICER_VERSIONS:-5.12 5.10}}"
[ "$versions" = "all" ] && versions="5.12 5.10"

if ! PY312="$(find_python312)"; then
  echo "[fresh-slicer] skipped: Python 3.12 (Slicer 5.10/5.12's Python) not found; set PYTHON312=/path/to/python3.12"
  exit 0
fi

status=0
lane_start=$(date +%s)
for v in $versions; do
  reqs="$LANE/slicer-$v.txt"
  [ -f "$reqs" ] || { echo "error: no $reqs; use 5.10 or 5.12" >&2; exit 2; }
  venv="$VENVS/slicer-$v"
  want="$(cat "$reqs" "$LANE/slicer-core.txt" "$LANE/pyradiomics.txt" "$0" | sha256sum | cut -c1-16)"
  if [ ! -f "$venv/.lane-installed" ] || [ "$(cat "$venv/.lane-installed")" != "$want" ]; then
    echo "[fresh-slicer] creating $venv with Slicer $v's bundled packages ($("$PY312" --version))" >&2
    rm -rf "$venv"
    "$PY312" -m venv "$venv"
    log="$venv/pip-install.log"
    # SlicerRadiomics stand-in: what installing that extension adds (pyradiomics + its dependencies), in a folder
    # of its own that the test puts on the path only when it "installs the extension"; Slicer's packages pinned
    if ! { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" \
           && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LANE/slicer-core.txt" \
           && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --target "$venv/SlicerRadiomics" \
                -c "$reqs" -r "$LANE/pyradiomics.txt"; } > "$log" 2>&1; then
      grep -v "^WARNING: Location" "$log" | tail -n 20 >&2
      echo "error: creating the fresh-Slicer $v environment failed (log: $log); check network access to PyPI" >&2
      exit 2
    fi
    echo "$want" > "$venv/.lane-installed"
  fi
  echo "[fresh-slicer] Slicer $v packages: $("$venv/bin/python" -c 'import numpy, scipy, SimpleITK, sys; print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, scipy {scipy.__version__}, SimpleITK {SimpleITK.__version__}")')"
  # the installer meets Slicer 5.10's API (slicer.util.pip_install) and 5.12's (slicer.packaging.pip_ensure) on the
  # 5.12 packages; the 5.10 packages get 5.10's API. One pytest process per run: one fresh Slicer session each.
  apis="5.10.0 5.12.3"
  [ "$v" = "5.10" ] && apis="5.10.0"
  for api in $apis; do
    start=$(date +%s)
    # -p no:cacheprovider: the lane never writes into the source tree; the shared pip cache speeds up the installs
    if HER2_FRESH_SLICER="$v" HER2_FRESH_SLICER_INSTALLER="$api" HER2_FRESH_SLICER_RADIOMICS="$venv/SlicerRadiomics" \
        PYTHONNOUSERSITE=1 \
        "$venv/bin/python" -m pytest -p no:cacheprovider -q -s Testing/Python/test_slicer_fresh_lane.py; then
      echo "[fresh-slicer] Slicer $v packages, $api installer API: passed in $(( $(date +%s) - start )) s"
    else
      echo "[fresh-slicer] Slicer $v packages, $api installer API: FAILED after $(( $(date +%s) - start )) s" >&2
      status=1
    fi
  done
done
echo "[fresh-slicer] lane total $(( $(date +%s) - lane_start )) s (load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a))"
exit $status
