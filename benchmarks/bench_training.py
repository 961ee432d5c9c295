"""Benchmark: train the four feature sets of one stage on 210 cases x 7,000 features (synthetic, planted signal).

Target (issue 5): <= 60 s in total. Run: ``python benchmarks/bench_training.py [--cases 210] [--per-region 1750]``.
Prints the time per feature set, the selected counts and test AUCs (the planted signal sits in intra_f0..f2 and
peri3_f0..f2, so intra+peri3 should score best).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "HER2Radiomics"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing" / "Python"))  # the synthetic tables

from modeling_synth import synthetic_cohort  # noqa: E402

from her2radiomics import fitting, splits, study, targets  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=210)
    ap.add_argument("--per-region", type=int, default=1750)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    feats, labels = synthetic_cohort(n_cases=args.cases, n_per_region=args.per_region, seed=args.seed,
                                   effect=1.0, missing_rate=0.001)
    lab = labels.set_index("case_id")
    target = targets.Targets(y=lab["label"], center=lab["center"], classes={"event": "1", "reference": ["0"]})
    data = targets.join_labels(feats, target, targets.LabelSpec())
    rows = splits.make_splits(data.y, test_size=0.3, seed=args.seed)
    t_data = time.perf_counter() - t0
    print(f"data: {args.cases} cases x {feats.shape[1] - 1} features ({t_data:.1f} s to generate); "
          f"cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    t1 = time.perf_counter()
    for fs in study.STUDY_SETS:
        ts = time.perf_counter()
        res = fitting.train(data, fitting.TrainConfig(task="stage1", feature_set=fs, seed=args.seed), splits=rows)
        sel = res.card["selection"]
        print(f"  {fs:<12} {sel['candidates']:>5} candidates -> {sel['n_selected']:>3} selected  "
              f"train AUC {res.card['metrics']['train']['auc']:.3f}  test AUC {res.card['metrics']['test']['auc']:.3f}  "
              f"{time.perf_counter() - ts:6.1f} s")
    total = time.perf_counter() - t1
    print(f"training 4 feature sets: {total:.1f} s (target <= 60 s) -> {'OK' if total <= 60 else 'TOO SLOW'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
