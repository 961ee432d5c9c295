"""Benchmark: DeLong CI coverage simulation and the speed of the statistics used in training.

Prints (1) the coverage of the 95 % DeLong interval on binormal data with known AUC for several AUCs
and sample sizes (the table in docs/statistics.md), (2) wall times of icc_columns on two-reader
feature tables of the paper's size and larger, and of fast vs structural DeLong covariance.

    python benchmarks/bench_stats.py [--reps 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "HER2Radiomics"))

import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from her2radiomics import stats  # noqa: E402

SCENARIOS = [(0.70, 50, 50), (0.80, 50, 50), (0.90, 50, 50), (0.80, 100, 100), (0.80, 20, 22), (0.90, 20, 22)]


def coverage(true_auc: float, m: int, n: int, reps: int, seed: int) -> float:
    mu = np.sqrt(2.0) * sps.norm.ppf(true_auc)
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(m), np.zeros(n)]
    hits = 0
    for _ in range(reps):
        s = np.r_[rng.normal(mu, 1.0, m), rng.normal(0.0, 1.0, n)]
        _, lo, hi = stats.delong_ci(y, s)
        hits += lo <= true_auc <= hi
    return hits / reps


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args, _ = ap.parse_known_args()

    print(f"DeLong 95% CI coverage, binormal, {args.reps} replicates, seed {args.seed}")
    print(" true AUC   events+non-events   coverage")
    for auc, m, n in SCENARIOS:
        print(f"   {auc:.2f}       {m:4d} + {n:<4d}         {coverage(auc, m, n, args.reps, args.seed):.4f}")

    rng = np.random.default_rng(0)
    for n_cases, n_feat in [(40, 7000), (210, 7000), (40, 30000)]:
        a = rng.normal(size=(n_cases, n_feat))
        b = a + 0.3 * rng.normal(size=(n_cases, n_feat))
        t = best_of(lambda a=a, b=b: stats.icc_columns(a, b, "2,1"))
        print(f"icc_columns {n_cases} cases x {n_feat} features: {t:.3f} s")

    for n_cases in (210, 1000):
        y = (rng.uniform(size=n_cases) < 0.4).astype(int)
        scores = rng.normal(size=(4, n_cases)) + y
        tf = best_of(lambda y=y, s=scores: stats.delong_covariance(y, s))
        ts = best_of(lambda y=y, s=scores: stats.delong_covariance_structural(y, s))
        print(f"DeLong covariance, 4 models x {n_cases} cases: fast {tf * 1e3:.2f} ms, structural {ts * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
