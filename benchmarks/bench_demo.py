"""Benchmark: the full demo (README main job; target <= 180 s on 2 cores) and prediction throughput.

Runs ``her2radiomics demo`` in a fresh process into a temporary folder and prints its wall time, peak RSS and the
per-phase times it records (demo_summary.json); then times ``prediction.predict`` on 10,000 synthetic cases.

    python benchmarks/bench_demo.py [--quick] [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "HER2Radiomics"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from her2radiomics.demo import shipped_card_path  # noqa: E402
from her2radiomics.modelcard import load_model_card  # noqa: E402
from her2radiomics.prediction import predict  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="write the demo here instead of a temporary folder")
    args, _ = ap.parse_known_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "demo"
        env = dict(os.environ, PYTHONPATH=str(ROOT / "HER2Radiomics") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "her2radiomics", "demo", "-o", str(out), "--no-progress", "--jobs", str(args.jobs)]
        if args.quick:
            cmd.append("--quick")
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            print(r.stderr[-2000:])
            return 1
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = json.loads((out / "demo_summary.json").read_text(encoding="utf-8"))
        print(f"demo{' --quick' if args.quick else ''} (jobs {args.jobs}, {os.cpu_count()} CPUs): wall {wall:.1f} s "
              f"(target <= 180 s), peak RSS of the largest process {rss:.0f} MB")
        for k, v in summary["seconds"].items():
            print(f"  {k:<9} {v:6.1f} s")
        print(f"  chosen: {summary['chosen']}")
        for task, sets in summary["aucs"].items():
            for fs, aucs in sets.items():
                print(f"  {task} {fs:<12} " + "  ".join(f"{s} {a:.3f}" for s, a in aucs.items()))

    card1, card2 = load_model_card(shipped_card_path("stage1")), load_model_card(shipped_card_path("stage2"))
    feats = sorted(set(card1["features"]) | set(card2["features"]))
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(1.0, 0.1, (10_000, len(feats))), columns=feats)
    df.insert(0, "case_id", [f"c{i}" for i in range(len(df))])
    t = time.perf_counter()
    pred = predict(df, card1, card2)
    print(f"predict: {len(df)} cases x {len(feats)} features in {time.perf_counter() - t:.2f} s "
          f"({len(pred.contributions)} contribution rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
