#!/usr/bin/env bash
# The browser lane (issue 17): `her2radiomics web` in a real headless Chromium (Testing/Python/test_web_browser.py).
#
#   bash scripts/web_lane.sh [pytest args]
#
# trame-slicer 2.0 (the `web` extra) needs slicer-core 5.11.x and slicer-layer-dm 2.0 (vtk 9.6.0) while the
# main suite's `test` extra pins slicer-core 5.13, so this lane has its own virtualenv with `.[web,webtest]`:
# $HER2_WEB_VENV, default ~/.cache/her2radiomics/web-venv (kept across clones, like the fresh-Slicer lane's); the
# project is reinstalled into it when pyproject.toml or the checkout's folder changes (the dependencies stay). As root, Debian's
# `chromium` and `xvfb` are installed when missing (Playwright never downloads a browser: the test drives
# /usr/bin/chromium). Without Chromium the test skips with the reason; without Xvfb it fails (the server's
# VTK views need a display). HER2_SKIP_WEB=1 skips the lane with a line saying so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "${HER2_SKIP_WEB:-0}" = "1" ]; then
  echo "[web-lane] skipped: HER2_SKIP_WEB=1"
  exit 0
fi
VENV="${HER2_WEB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/her2radiomics/web-venv}"

# system packages: the browser and the virtual display
need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[web-lane] installing ${need[*]} (Debian packages)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) >&2 \
      || echo "[web-lane] ${need[*]} could not be installed; the browser test will skip (no Chromium) or fail (no Xvfb)" >&2
  else
    echo "[web-lane] missing ${need[*]} and not root: install them (apt-get install ${need[*]})" >&2
  fi
fi

# the lane's virtualenv (the checkout's folder is a stamp input: the venv is shared between clones)
# shellcheck source=scripts/venv.sh
source "$ROOT/scripts/venv.sh"
her2_ensure_venv "$VENV" web,webtest "[web-lane]" .her2radiomics-web-installed "$ROOT"

start=$SECONDS
echo "[web-lane] browser test (Playwright + /usr/bin/chromium, Xvfb started by the test)" >&2
set +e
"$VENV/bin/python" -m pytest Testing/Python/test_web_browser.py -q -p no:cacheprovider "$@"
rc=$?
set -e
echo "[web-lane] done in $((SECONDS - start)) s (exit $rc)" >&2
exit "$rc"
