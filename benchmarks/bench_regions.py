"""Benchmark: exact 1/3/5 mm shells on a 448 x 448 x 160 volume (0.74 x 0.74 x 1.2 mm).

Target (issue 2): build_regions (shells only, auto_exclusions=False) well under 1 s.
Uses her2radiomics.phantom.make_phantom when it exists, else a synthetic volume with a ~15 mm
ellipsoid lesion. Prints the median of 5 runs and the process's peak RSS.

    python benchmarks/bench_regions.py [--runs 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "HER2Radiomics"))

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from her2radiomics.regions import build_regions, compute_shells  # noqa: E402

SIZE = (448, 448, 160)
SPACING = (0.74, 0.74, 1.2)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def synthetic() -> tuple[sitk.Image, sitk.Image, str]:
    try:
        from her2radiomics.phantom import make_phantom
    except ImportError:
        pass
    else:
        ph = make_phantom(seed=0, size=SIZE, spacing=SPACING, lesion_radius_mm=7.5)
        return ph.image, ph.lesion, "phantom.make_phantom(seed=0, lesion_radius_mm=7.5)"
    nz, ny, nx = SIZE[::-1]
    rng = np.random.default_rng(0)
    img = sitk.GetImageFromArray(rng.integers(0, 1000, (nz, ny, nx), dtype=np.int16))
    img.SetSpacing(SPACING)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    c = (nz * 0.55, ny * 0.4, nx * 0.3)
    semi = (6.5, 8.0, 7.5)   # mm, z y x: a ~15 mm lesion
    sz, sy, sx = SPACING[::-1]
    les = (((z - c[0]) * sz / semi[0]) ** 2 + ((y - c[1]) * sy / semi[1]) ** 2 + ((x - c[2]) * sx / semi[2]) ** 2) <= 1
    lesion = sitk.GetImageFromArray(les.astype(np.uint8))
    lesion.CopyInformation(img)
    return img, lesion, "synthetic ellipsoid (semi-axes 7.5 x 8 x 6.5 mm)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    image, lesion, what = synthetic()
    n_lesion = int(sitk.GetArrayViewFromImage(lesion).sum())
    rss0 = _rss_mb()
    times, shell_times = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        r = build_regions(image, lesion, (1, 3, 5), auto_exclusions=False)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        compute_shells(lesion, (1, 3, 5))
        shell_times.append(time.perf_counter() - t)
    print(f"input: {what}; {SIZE[0]}x{SIZE[1]}x{SIZE[2]} at {SPACING} mm; lesion {n_lesion} voxels")
    print("regions: " + ", ".join(f"{k} {v['voxels']} vox" for k, v in r.stats.items()))
    print(f"build_regions (intra + 3 shells + empty exclusions): median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs); target < 1 s")
    print(f"compute_shells only: median {statistics.median(shell_times):.3f} s")
    print(f"peak RSS {_rss_mb():.0f} MB (inputs loaded: {rss0:.0f} MB)")


if __name__ == "__main__":
    main()
