"""Benchmark: phantom generation and automatic air + pectoralis detection on the full-size phantom.

Run: ``python benchmarks/bench_exclusions.py [--seeds 0 1 2 3 4] [--repeats 3]`` from the repository root.
Prints the load average (timings on a shared machine scale with it; issue-11/14 target: air + pectoralis
<= 0.5 s on an idle core, judged on the CPU-time median, which the load inflates least) and the median runtime of ``detect_air`` + ``detect_pectoralis`` on 448 x 448 x 160 voxels
(0.74 x 0.74 x 1.2 mm), the phantom generation time (full size and 96 x 96 x 40), the peak resident
memory, and per seed the Dice of both masks against the phantom's ground truth. Pectoralis Dice is
computed within the evaluation region (voxels within 5 + 10 mm of the lesion); "n/a" when the muscle
lies farther than that from the lesion (random gap), so a second pass forces a 6 mm gap.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "HER2Radiomics"))

from her2radiomics.exclusions import detect_air, detect_pectoralis, dice, evaluation_region  # noqa: E402
from her2radiomics.phantom import make_phantom  # noqa: E402

#: air + pectoralis on 448 x 448 x 160, one idle core (issue 11 build item 5 / issue 14 build item 3)
TARGET_S = 0.5


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def arr(img):
    return sitk.GetArrayViewFromImage(img) != 0


def run_case(seed: int, gap: float | None) -> dict:
    t0 = time.perf_counter()
    ph = make_phantom(seed, lesion_gap_mm=gap)
    t_ph = time.perf_counter() - t0
    t0 = time.perf_counter()
    air = detect_air(ph.image, ph.lesion)
    t_air = time.perf_counter() - t0
    t0 = time.perf_counter()
    pec = detect_pectoralis(ph.image, ph.lesion, 5.0, air=air.mask)
    t_pec = time.perf_counter() - t0
    region = evaluation_region(ph.lesion, 5.0, 10.0)
    truth = arr(ph.pectoralis) & region
    d_pec = dice(arr(pec.mask) & region, truth) if truth.any() else None
    return {"seed": seed, "gap": ph.meta["lesion"]["gap_to_pectoralis_mm"], "t_phantom": t_ph, "t_air": t_air,
            "t_pec": t_pec, "dice_air": dice(arr(air.mask), arr(ph.air)), "dice_pec": d_pec,
            "truth_voxels": int(truth.sum()), "notes": air.notes + pec.notes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with open("/proc/loadavg", encoding="utf-8") as fh:
        print(f"load average: {fh.read().split()[:3]} on {os.cpu_count()} CPUs")

    small = []
    for i in range(10):
        t0 = time.perf_counter()
        make_phantom(i, (96, 96, 40), (3.45, 3.45, 4.8))
        small.append(time.perf_counter() - t0)
    print(f"phantom 96x96x40 @ 3.45x3.45x4.8 mm: median {statistics.median(small):.3f} s over 10 seeds")

    t0 = time.perf_counter()
    ph = make_phantom(args.seeds[0], lesion_gap_mm=6.0)
    print(f"phantom 448x448x160: {time.perf_counter() - t0:.2f} s; peak RSS after generation {peak_rss_mb():.0f} MB")
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        air = detect_air(ph.image, ph.lesion)
        detect_pectoralis(ph.image, ph.lesion, 5.0, air=air.mask)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(f"peak RSS after detection {peak_rss_mb():.0f} MB (image + masks held)")
    t_alone = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        detect_pectoralis(ph.image, ph.lesion, 5.0)
        t_alone.append(time.perf_counter() - t0)
    print(f"confidence: air {air.info.get('confidence')} pectoralis "
          f"{detect_pectoralis(ph.image, ph.lesion, 5.0, air=air.mask).info.get('confidence')}")
    print(f"detect_air + detect_pectoralis, 448x448x160: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, n={len(times)}, CPU {statistics.median(cpu):.3f} s); "
          f"detect_pectoralis alone (own coarse air): "
          f"median {statistics.median(t_alone):.3f} s")
    cpu_med = statistics.median(cpu)
    print(f"target (issue 11/14) <= {TARGET_S} s on an idle core: CPU median {cpu_med:.3f} s -> "
          f"{'met' if cpu_med <= TARGET_S else 'NOT met'} (wall time grows with the load average)")

    print("\nseed  gap_mm  phantom_s  air_s  pec_s  dice_air  dice_pec(<=15 mm)  truth_vox  notes")
    for gap in (None, 6.0):
        for seed in args.seeds:
            r = run_case(seed, gap)
            dp = "n/a" if r["dice_pec"] is None else f"{r['dice_pec']:.3f}"
            print(f"{r['seed']:>4}  {r['gap']:>6.1f}  {r['t_phantom']:>9.2f}  {r['t_air']:>5.2f}  {r['t_pec']:>5.2f}  "
                  f"{r['dice_air']:>8.4f}  {dp:>17}  {r['truth_voxels']:>9}  {'; '.join(r['notes'])[:80]}")
    print(f"\npeak RSS overall {peak_rss_mb():.0f} MB (includes the Dice evaluation)")


if __name__ == "__main__":
    main()
