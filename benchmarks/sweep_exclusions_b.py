"""Issue-11 sweep: the project's automatic air / pectoralis exclusions on phantom families A and B.

Run from the repository root: ``python benchmarks/sweep_exclusions_b.py [--quick] [--family A B] [--out x.csv]``.

Family B (``Testing/Python/phantom_b.py``, independent anatomy + MR-physics intensity model) runs the full
factorial contrast {fs, nonfs, sub} x ACR density {a, b, c, d} x lesion kind {deep, superficial, mid} x
pectoralis major {3, 15} mm = 72 cases (``phantom_b.sweep_configs``; ``--quick``: the 18 of them with one
density per contrast x kind x thickness, cycling a-d). From each case's index are drawn spacing (0.7 x 0.7 x 1.5 or 1 x 1 x 2 mm), direction (identity, Duke-like flipped, or an
oblique 15-25 degree in-plane rotation), fibroglandular tissue at muscle intensity (every other case),
pectoralis minor, skin thickening, bias amplitude and motion ghosting. Family A (``her2radiomics.phantom``,
fat-suppressed look only) runs configurations of ``benchmarks/sweep_exclusions.py`` (its breast truth is
approximate, see exclusion_scoring).

Per case: ``regions.build_regions(image, lesion, (1, 3, 5))`` with automatic exclusions (exactly what the
``regions`` command does), scored by ``exclusion_scoring.score_case``: pectoralis / air Dice within 10 mm of the
5 mm shell, the fraction of true breast tissue the 5 mm shell keeps, and its air / muscle fraction. Prints
per case, then min / 5th percentile / median per family and contrast, the flagged fraction (when the
detectors report ``review``) and the violating cases.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "HER2Radiomics"))
sys.path.insert(0, str(ROOT / "Testing" / "Python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import exclusion_scoring as es  # noqa: E402
import phantom_b as pb  # noqa: E402

from her2radiomics.errors import UserError  # noqa: E402
from her2radiomics.regions import build_regions  # noqa: E402

METRICS = ("dice_pec", "dice_air", "keep", "contamination")


def configs_b(quick: bool) -> list[dict]:
    return [{"family": "B", **c} for c in pb.sweep_configs(quick)]


def configs_a(quick: bool) -> list[dict]:
    from sweep_exclusions import configs
    return [{"family": "A", "contrast": "fs", **c} for c in configs(8 if quick else 12, 2026)]


def build(cfg: dict):
    if cfg["family"] == "B":
        return pb.make_case_b(cfg["seed"], **cfg["kwargs"])
    from her2radiomics.phantom import make_phantom
    return make_phantom(cfg["seed"], cfg["size"], cfg["spacing"], breast_scale=cfg["breast_scale"],
                        lesion_gap_mm=cfg["lesion_gap_mm"], lesion_radius_mm=cfg["lesion_radius_mm"])


def describe(cfg: dict) -> str:
    if cfg["family"] == "B":
        k = cfg["kwargs"]
        geo = "obl" if k["oblique_deg"] else ("duke" if k["direction"] == pb.AXIAL_DUKE else "id")
        return (f"B{cfg['i']:02d} {k['contrast']:5s} {k['density']} {k['lesion_kind']:11s} pec{k['pec_thickness_mm']:>4.0f} "
                f"{'fgt~m' if k['fgt_like_muscle'] else '     '} {geo:4s} sp{k['spacing'][0]:.1f}")
    return f"A{cfg['i']:02d} fs    - gap{cfg['lesion_gap_mm']:>4.1f}mm  r{cfg['lesion_radius_mm']:4.1f} sp{cfg['spacing'][0]:.2f}"


LIMITS = {"dice_pec": (es.PEC_DICE_MIN, 1), "dice_air": (es.AIR_DICE_MIN, 1), "keep": (es.KEEP_MIN, 1),
          "contamination": (es.CONTAM_MAX, -1), "dice_pec_band": (es.PEC_DICE_MIN, 1),
          "dice_air_band": (es.AIR_DICE_MIN, 1)}


def pct(x: list[float], sense: int = 1, limit: float | None = None) -> str:
    """min / p5 / median (higher is better) or max / p95 / median (contamination), and how many miss the limit."""
    v = np.array([t for t in x if t is not None and np.isfinite(t)], float)
    if not v.size:
        return "n/a (0)"
    worst, tail = (v.min(), np.percentile(v, 5)) if sense > 0 else (v.max(), np.percentile(v, 95))
    bad = int(np.sum(v < limit)) if sense > 0 else int(np.sum(v > limit))
    return f"{worst:.3f} / {tail:.3f} / {np.median(v):.3f}  (n={v.size}, {bad} miss the {limit:g} limit)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="18 family-B + 8 family-A configurations")
    ap.add_argument("--family", nargs="+", default=["A", "B"], choices=["A", "B"])
    ap.add_argument("--only", nargs="*", help="run only these case ids (e.g. B03 A05)")
    ap.add_argument("--out", type=Path, help="also write the per-case table as CSV")
    ap.add_argument("--sub-exclusion-image", action="store_true",
                    help="on subtraction cases detect the exclusions on the pre-contrast phase "
                         "(build_regions(exclusion_image=...), where the installed her2radiomics has it)")
    args = ap.parse_args()
    cfgs = (configs_a(args.quick) if "A" in args.family else []) + (configs_b(args.quick) if "B" in args.family else [])
    rows = []
    t_all = time.perf_counter()
    print("case                                           pecDice airDice keep%  contam%  (ideal/oracle contam%)  flag  s")
    for cfg in cfgs:
        label = describe(cfg)
        if args.only and label.split()[0] not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            case = build(cfg)
        except (UserError, ValueError) as exc:
            print(f"{label}: skipped ({exc})", flush=True)
            continue
        t1 = time.perf_counter()
        extra = {}
        if args.sub_exclusion_image and getattr(case, "pre", None) is not None and cfg.get("kwargs", cfg)["contrast"] == "sub":
            if "exclusion_image" not in inspect.signature(build_regions).parameters:
                raise SystemExit("error: this her2radiomics has no build_regions(exclusion_image=...); "
                                 "run without --sub-exclusion-image")
            extra["exclusion_image"] = case.pre
        reg = build_regions(case.image, case.lesion, (1.0, 3.0, 5.0), **extra)
        t2 = time.perf_counter()
        s = es.score_case(case, reg)
        row = dict({k: v for k, v in cfg.items() if k != "kwargs"}, **cfg.get("kwargs", {}), id=label.split()[0], **{k: v for k, v in s.items() if k != "violations"},
                   violations="; ".join(s["violations"]), t_build=t1 - t0, t_detect=t2 - t1,
                   t_score=time.perf_counter() - t2)
        rows.append(row)
        f = lambda v: " n/a " if not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
        print(f"{label:46s} {f(s['dice_pec'])}   {f(s['dice_air'])}   {100 * s['keep']:5.1f}  {100 * s['contamination']:5.1f}"
              f"    ({100 * s['ideal_contamination']:4.1f}/{100 * s['oracle_contamination']:4.1f})"
              f"          {'R' if s['flagged'] else '-'}  {time.perf_counter() - t0:.1f}"
              f"  {'  <- ' + '; '.join(s['violations']) if s['violations'] else ''}", flush=True)
    print(f"\n{len(rows)} cases in {time.perf_counter() - t_all:.0f} s")
    print("\ndistribution: min / p5 / median (Dice, keep) or max / p95 / median (contamination)")
    groups = sorted({(r["family"], r["contrast"]) for r in rows})
    for fam, con in groups + [(f, "all") for f in sorted({r["family"] for r in rows})]:
        sel = [r for r in rows if r["family"] == fam and (con == "all" or r["contrast"] == con)]
        print(f"family {fam} {con:5s} (n={len(sel)})")
        for m in (*METRICS, "dice_pec_band", "dice_air_band"):
            lim, sense = LIMITS[m]
            print(f"   {m:14s} {pct([r[m] for r in sel], sense, lim)}")
        bad = [r for r in sel if r["violations"]]
        flagged = [r for r in sel if r["flagged"]]
        unflagged_bad = [r for r in bad if not r["flagged"]]
        shell_bad = [r for r in sel if not r["flagged"] and (r["keep"] < es.KEEP_MIN or r["contamination"] > es.CONTAM_MAX)]
        print(f"   violating {len(bad)}/{len(sel)}; flagged {len(flagged)}/{len(sel)}; violating and not flagged "
              f"{len(unflagged_bad)}; not flagged but failing the shell criteria (keep / air+muscle) {len(shell_bad)}")
    print("\nviolations:")
    for r in rows:
        if r["violations"]:
            print(f"  {r['id']}: {r['violations']}{'  [flagged]' if r['flagged'] else ''}")
    if args.out and rows:
        keys = sorted({k for r in rows for k in r})
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
