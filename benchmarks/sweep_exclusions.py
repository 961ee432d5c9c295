"""Robustness sweep: automatic air + pectoralis masks on random phantom configurations.

Run: ``python benchmarks/sweep_exclusions.py [--n 40] [--seed 2026] [--out sweep.csv]`` from the repository
root. Each configuration draws (from one seeded generator, so the list is reproducible): a phantom seed,
an in-plane size 192-320 voxels (x and y independently), in-plane spacing 0.6-1.0 mm, slice spacing
1.0-3.0 mm (slices covering ~60-110 mm), breast_scale 0.7-1.3, lesion_gap_mm 2-12 and lesion radius
5-12 mm (a configuration whose lesion does not fit in the breast is skipped). Per configuration it prints the Dice of ``detect_air`` against the phantom's air (whole image)
and of ``detect_pectoralis`` against the phantom's muscle within the evaluation region (voxels within
5 + 10 mm of the lesion), both without and with the ``air=`` mask from ``detect_air`` passed in; then
the distribution (min / 5th percentile / median) and the failures (air < 0.95, pectoralis < 0.85, the
issue-3 thresholds), with each mask's confidence and review flag (issue 11).

Both phantom families (this family A and the independent family B of Testing/Python/phantom_b.py), scored on
the shell criteria of issue 11: ``python benchmarks/sweep_exclusions_b.py [--quick]``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "HER2Radiomics"))

from her2radiomics.errors import UserError  # noqa: E402
from her2radiomics.exclusions import detect_air, detect_pectoralis, dice, evaluation_region  # noqa: E402
from her2radiomics.phantom import make_phantom  # noqa: E402

AIR_MIN, PEC_MIN = 0.95, 0.85


def configs(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sxy = float(rng.uniform(0.6, 1.0))
        sz = float(rng.uniform(1.0, 3.0))
        nz = int(round(rng.uniform(60.0, 110.0) / sz))
        out.append({"i": i, "seed": int(rng.integers(0, 10_000)),
                    "size": (int(rng.integers(192, 321)), int(rng.integers(192, 321)), nz),
                    "spacing": (round(sxy, 3), round(sxy, 3), round(sz, 2)),
                    "breast_scale": round(float(rng.uniform(0.7, 1.3)), 2),
                    "lesion_gap_mm": round(float(rng.uniform(2.0, 12.0)), 1),
                    "lesion_radius_mm": round(float(rng.uniform(5.0, 12.0)), 1)})
    return out


def run(cfg: dict) -> dict:
    ph = make_phantom(cfg["seed"], cfg["size"], cfg["spacing"], breast_scale=cfg["breast_scale"],
                      lesion_gap_mm=cfg["lesion_gap_mm"], lesion_radius_mm=cfg["lesion_radius_mm"])
    a = lambda img: sitk.GetArrayViewFromImage(img) != 0  # noqa: E731
    t0 = time.perf_counter()
    air = detect_air(ph.image, ph.lesion)
    pec_own = detect_pectoralis(ph.image, ph.lesion, 5.0)
    pec_air = detect_pectoralis(ph.image, ph.lesion, 5.0, air=air.mask)
    dt = time.perf_counter() - t0
    region = evaluation_region(ph.lesion, 5.0, 10.0)
    truth = a(ph.pectoralis) & region
    ok = truth.sum() >= 20
    return dict(cfg, gap_true=ph.meta["lesion"]["gap_to_pectoralis_mm"], truth_voxels=int(truth.sum()),
                dice_air=dice(a(air.mask), a(ph.air)),
                dice_pec=dice(a(pec_own.mask) & region, truth) if ok else float("nan"),
                dice_pec_air=dice(a(pec_air.mask) & region, truth) if ok else float("nan"),
                dist_mm=pec_own.info.get("distance_to_lesion_mm"), seconds=dt,
                conf_air=air.info.get("confidence"), conf_pec=pec_air.info.get("confidence"),
                review=bool(air.info.get("review")) or bool(pec_air.info.get("review")))


def summary(name: str, v: list[float]) -> str:
    x = np.array([t for t in v if np.isfinite(t)])
    if not x.size:
        return f"{name}: no values"
    return (f"{name}: n={x.size} min={x.min():.3f} p5={np.percentile(x, 5):.3f} median={np.median(x):.3f} "
            f"mean={x.mean():.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--only", type=int, nargs="*", help="run only these configuration indices")
    ap.add_argument("--out", type=Path, help="also write the per-configuration table as CSV")
    args = ap.parse_args()
    rows = []
    print("  i  seed size          spacing            scale gap  r    true_gap air    pec    pec(air=) dist   s")
    for cfg in configs(args.n, args.seed):
        if args.only and cfg["i"] not in args.only:
            continue
        try:
            r = run(cfg)
        except UserError as exc:  # the phantom cannot hold this lesion in this field of view
            print(f"{cfg['i']:3d} skipped: {exc}", flush=True)
            continue
        rows.append(r)
        print(f"{r['i']:3d} {r['seed']:5d} {str(r['size']):13s} {str(r['spacing']):18s} {r['breast_scale']:.2f}  "
              f"{r['lesion_gap_mm']:4.1f} {r['lesion_radius_mm']:4.1f} {r['gap_true']:6.2f}  {r['dice_air']:.3f}  "
              f"{r['dice_pec']:.3f}  {r['dice_pec_air']:.3f}     {r['dist_mm']!s:6s} {r['seconds']:.1f}"
              f"  conf {r['conf_air']}/{r['conf_pec']}{' REVIEW' if r['review'] else ''}", flush=True)
    print(summary("air", [r["dice_air"] for r in rows]))
    print(summary("pectoralis (own air)", [r["dice_pec"] for r in rows]))
    print(summary("pectoralis (air=detect_air)", [r["dice_pec_air"] for r in rows]))
    fails = [r for r in rows if r["dice_air"] < AIR_MIN or r["dice_pec"] < PEC_MIN or r["dice_pec_air"] < PEC_MIN]
    print(f"failures (air < {AIR_MIN} or pectoralis < {PEC_MIN}): {len(fails)} of {len(rows)}; flagged for review: "
          f"{sum(r['review'] for r in rows)}; failures not flagged: {sum(not r['review'] for r in fails)}")
    for r in fails:
        print(f"  i={r['i']} seed={r['seed']} size={r['size']} spacing={r['spacing']} scale={r['breast_scale']} "
              f"gap={r['lesion_gap_mm']} r={r['lesion_radius_mm']}: air {r['dice_air']:.3f} pec {r['dice_pec']:.3f} "
              f"pec(air=) {r['dice_pec_air']:.3f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
