#!/usr/bin/env bash
# Set up (first run only) and run the lint + test suite. Extra arguments go to pytest (and skip the
# fresh-Slicer lane, scripts/fresh_slicer_lane.sh; HER2_SKIP_FRESH_SLICER=1 skips it too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
# Headless Chromium for the report rendering test: installed from Debian's packages when we are root
# and it is missing; without it those tests skip with a reason.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing chromium for the report rendering test" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) >&2 \
    || echo "[setup] chromium could not be installed; browser tests will skip" >&2
fi
# R from Debian's packages, the independent reference of the statistics tests (glm, pROC, sva::ComBat): installed
# the same way when we are root and Rscript is missing; without it those comparisons skip with a reason.
if ! command -v Rscript >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing R (r-base-core, r-cran-proc, r-bioc-sva) for the reference comparisons" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      r-base-core r-cran-proc r-bioc-sva >/dev/null) >&2 \
    || echo "[setup] R could not be installed; the R comparisons will skip" >&2
fi
ruff check HER2Radiomics Testing benchmarks
if [ "$#" -gt 0 ] || [ "${HER2_SKIP_FRESH_SLICER:-0}" = "1" ]; then
  exec python -m pytest "$@"
fi
# The fresh-Slicer lane (Python 3.12 with only what Slicer 5.12 / 5.10 bundles; skips with a reason without
# Python 3.12), then the main suite, so that pytest's closing line is the main suite's.
lane=0
bash "$ROOT/scripts/fresh_slicer_lane.sh" || lane=$?
# The browser lane (trame-slicer + Playwright on the system's Chromium, its own venv; HER2_SKIP_WEB=1 skips it)
web=0
bash "$ROOT/scripts/web_lane.sh" || web=$?
python -m pytest && main=0 || main=$?
if [ "$lane" -ne 0 ]; then
  echo "error: the fresh-Slicer lane failed (bash scripts/fresh_slicer_lane.sh)" >&2
  exit "$lane"
fi
if [ "$web" -ne 0 ]; then
  echo "error: the browser lane failed (bash scripts/web_lane.sh)" >&2
  exit "$web"
fi
exit "$main"
