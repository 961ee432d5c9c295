"""Benchmark: start-up time of the command line (target: every ``--help``, ``--version``, ``regions`` and ``extract`` < 0.5 s).

Each command line runs in a fresh interpreter, ``--runs`` times; the best and median wall times are printed
with the modules of the scientific stack it imported. ``regions`` is timed twice: ``regions --help``
(parsing only) and a ``regions`` run on a missing image, which imports what the command needs (SimpleITK,
SciPy's ndimage) and stops at its first check, i.e. the command's start-up before any work; ``extract`` on a
missing manifest likewise (it checks its options and reads the manifest before pandas, SciPy or pyradiomics).

    python benchmarks/bench_cli_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "HER2Radiomics"
TARGET_S = 0.5
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "matplotlib", "SimpleITK", "radiomics")
PROBE = ("import sys, contextlib, io\nfrom her2radiomics import cli\n"
         "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
         "    try:\n        cli.main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
         "print(' '.join(m for m in " + repr(HEAVY) + " if m in sys.modules))")


def run_once(argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(PKG) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, r.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = {
            "--help": ["--help"],
            "--version": ["--version"],
            "regions --help": ["regions", "--help"],
            "regions (missing image)": ["regions", str(Path(tmp) / "no.nrrd"), str(Path(tmp) / "no.nrrd"),
                                        "-o", str(Path(tmp) / "out")],
            "extract (missing manifest)": ["extract", str(Path(tmp) / "no.csv"), "-o", str(Path(tmp) / "F.csv")],
            **{f"{c} --help": [c, "--help"] for c in ("train", "evaluate", "compare", "study", "predict", "report",
                                                      "extract", "phantom", "demo")},
        }
        baseline = min(run_once_bare() for _ in range(args.runs))
        load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3] if Path("/proc/loadavg").exists() else "?"
        print(f"load average: {load}")
        print(f"bare interpreter start-up: {baseline:.3f} s")
        print(f"{'command line':<26} {'best s':>7} {'median s':>8}  target  imports")
        worst = 0.0
        for name, argv in lines.items():
            times, mods = [], ""
            for _ in range(args.runs):
                t, mods = run_once(argv)
                times.append(t)
            best = min(times)
            gated = name.endswith("--help") or name in ("--version", "regions (missing image)",
                                                              "extract (missing manifest)")  # every parse-only line
            if gated:
                worst = max(worst, best)
            ok = ("ok" if best < TARGET_S else "SLOW") if gated else "-"
            print(f"{name:<26} {best:>7.3f} {statistics.median(times):>8.3f}  {ok:<6}  {mods or '(none)'}")
    print(f"worst gated start-up {worst:.3f} s (target < {TARGET_S} s)")
    return 0


def run_once_bare() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
