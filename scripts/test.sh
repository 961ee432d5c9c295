#!/usr/bin/env bash
# Set up (first run only) and run the lint + test suite. Extra arguments go to pytest.
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
ruff check HER2Radiomics Testing benchmarks
exec python -m pytest "$@"
