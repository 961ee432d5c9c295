#!/usr/bin/env bash
# The main job: set up (first run only) and run the demo on embedded data.
# Usage: bash scripts/demo.sh [OUTPUT_DIR]   (default: demo_output/)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec her2radiomics demo -o "${1:-demo_output}"
