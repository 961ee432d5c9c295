#!/usr/bin/env bash
# Run every benchmark in benchmarks/ (speed and memory targets; results printed, not asserted).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
status=0
for b in benchmarks/bench_*.py; do
  [ -e "$b" ] || continue
  echo "== $b"
  python "$b" "$@" || status=1
done
exit $status
