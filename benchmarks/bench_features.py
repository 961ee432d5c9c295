"""Feature-extraction benchmark: wall time and peak RSS per case on a 448 x 448 x 160 phantom.

    python benchmarks/bench_features.py [--repeats 3] [--size 448 448 160] [--skip-full]

Variants, each in a FRESH subprocess (so peak RSS is that variant's own: VmHWM from /proc):
  (a) pyradiomics' RadiomicsFeatureExtractor(default params).execute on the FULL image for one region (intra):
      what a SlicerRadiomics-style call does (filters run on the whole volume);
  (b) pyradiomics' execute on a per-region crop (region bbox + the same margin), once per region, 4 regions;
  (c) this engine: features.extract_case for the 4 regions (one crop, one filter pass per case).
Prints per-variant times (median over --repeats for b and c), peak RSS, and the ratios (a)/(c) per region and
(b)/(c). Targets (issue 4): (c) <= 3 s median per case, (b)/(c) >= 1.5, (a)/(c) per region >= 50, RSS <= 1 GB.
The regions (lesion + 1/3/5 mm shells minus air/pectoralis) are built once, before timing, and stored as NRRD.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "HER2Radiomics"))

REGIONS = ("intra", "peri1", "peri3", "peri5")


def build_case(size: tuple[int, int, int], workdir: Path) -> str:
    """Write image.nrrd and one NRRD per region into workdir; returns a description of the case."""
    import numpy as np
    import SimpleITK as sitk

    from her2radiomics.regions import build_regions

    try:
        from her2radiomics.phantom import make_phantom
    except ImportError:
        make_phantom = None
    if make_phantom is not None:
        ph = make_phantom(seed=0, size=size)
        image, lesion, air, pect = ph.image, ph.lesion, ph.air, ph.pectoralis
        desc = f"her2radiomics.phantom.make_phantom(seed=0, size={size})"
    else:  # textured stand-in until the phantom module lands: correlated noise + heterogeneous 8 mm lesion
        from scipy import ndimage

        rng = np.random.default_rng(0)
        shape = tuple(reversed(size))
        tex = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (1.0, 1.6, 1.6))
        sp = (0.74, 0.74, 1.2)
        zc, yc, xc = (n // 2 for n in shape)
        z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        r = np.sqrt(((z - zc) * sp[2]) ** 2 + ((y - yc) * sp[1]) ** 2 + ((x - xc) * sp[0]) ** 2)
        les = r <= 8.0
        arr = 400 + 900 * tex + les * (500 + 1500 * tex)
        image = sitk.GetImageFromArray(np.clip(arr, 0, 4000).astype(np.int16))
        image.SetSpacing(sp)
        lesion = sitk.GetImageFromArray(les.astype(np.uint8))
        lesion.CopyInformation(image)
        air = pect = None
        desc = f"synthetic textured volume {size}, spacing 0.74 x 0.74 x 1.2 mm, 8 mm lesion"
    regions = build_regions(image, lesion, (1.0, 3.0, 5.0), air=air, pectoralis=pect, auto_exclusions=False)
    sitk.WriteImage(image, str(workdir / "image.nrrd"))
    for name, m in regions.feature_masks().items():
        sitk.WriteImage(m, str(workdir / f"{name}.nrrd"), True)
    return desc


def _peak_rss_mb() -> float:
    """Peak resident set of THIS process image (VmHWM; ru_maxrss would include the parent's peak at fork)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_variant(variant: str, workdir: Path, repeats: int) -> dict:
    import SimpleITK as sitk

    from her2radiomics import features
    from her2radiomics.geometry import bbox_zyx, crop, expand_bbox_mm

    # ITK would start one thread per host core it sees (8 here) on a 2-core allowance; every variant gets the
    # same limit, as the cohort workers do (features.set_threads)
    features.set_threads(len(os.sched_getaffinity(0)))
    params = features.load_params()
    image = sitk.ReadImage(str(workdir / "image.nrrd"))
    masks = {n: sitk.ReadImage(str(workdir / f"{n}.nrrd")) for n in REGIONS}
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    features._quiet_radiomics()
    times, cpu, n_feat, extra = [], [], 0, {}
    if variant == "a":
        ext = RadiomicsFeatureExtractor(params)
        t, c = time.perf_counter(), time.process_time()
        out = ext.execute(image, masks["intra"])
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        n_feat = sum(not k.startswith("diagnostics_") for k in out)
    elif variant == "b":
        ext = RadiomicsFeatureExtractor(params)
        margin, extra_vox = features.crop_margin(params)
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            n_feat = 0
            for m in masks.values():
                arr = sitk.GetArrayViewFromImage(m)
                bb = expand_bbox_mm(bbox_zyx(arr), image.GetSpacing(), margin, arr.shape, extra_vox)
                out = ext.execute(crop(image, bb), crop(m, bb))
                n_feat += sum(not k.startswith("diagnostics_") for k in out)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    elif variant == "c":
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            out = features.extract_case(image, masks, params, info=extra)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            n_feat = len(out)
        extra = {"crop_size_xyz": extra["crop_size_xyz"], "voxels": extra["voxels"]}
    else:
        raise SystemExit(f"unknown variant {variant}")
    return {"variant": variant, "times": times, "median": statistics.median(times), "cpu": statistics.median(cpu),
            "peak_rss_mb": _peak_rss_mb(), "n_features": n_feat, **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=3, default=[448, 448, 160], metavar=("X", "Y", "Z"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-full", action="store_true", help="skip variant (a) (about 1 minute and 5 GB)")
    ap.add_argument("--variants", nargs="+", choices=["a", "b", "c"], default=["c", "b", "a"])
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, Path(args.workdir), args.repeats)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        desc = build_case(tuple(args.size), work)
        print(f"case: {desc} (built in {time.perf_counter() - t:.1f} s)")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
        res = {}
        for v in args.variants:
            if v == "a" and args.skip_full:
                continue
            r = subprocess.run([sys.executable, __file__, "--variant", v, "--workdir", str(work), "--repeats",
                                str(args.repeats)], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                print(f"variant {v} failed:\n{r.stderr}")
                return 1
            res[v] = json.loads(r.stdout.strip().splitlines()[-1])
            x = res[v]
            print(f"({v}) {LABELS[v]}: median {x['median']:.2f} s per case (runs: "
                  f"{', '.join(f'{s:.2f}' for s in x['times'])}; CPU {x['cpu']:.2f} s), peak RSS {x['peak_rss_mb']:.0f} MB, "
                  f"{x['n_features']} features")
            if "crop_size_xyz" in x:
                print(f"    crop {tuple(x['crop_size_xyz'])} voxels; region voxels {x['voxels']}")
        if "c" not in res:
            return 0
        c = res["c"]["median"]
        print(f"(c) per region: {c / len(REGIONS):.2f} s; target (c) <= 3 s per case: "
              f"{'met' if c <= 3 else 'MISSED'}; peak RSS <= 1 GB: {'met' if res['c']['peak_rss_mb'] <= 1024 else 'MISSED'}")
        if "b" in res:
            print(f"(b)/(c) = {res['b']['median'] / c:.2f} (target >= 1.5)")
        if "a" in res:
            print(f"(a)/(c) per region = {res['a']['median'] / (c / len(REGIONS)):.1f} (target >= 50)")
        print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


LABELS = {
    "a": "pyradiomics execute, full image, 1 region",
    "b": "pyradiomics execute, per-region crop, 4 regions",
    "c": "her2radiomics extract_case, 4 regions",
}

if __name__ == "__main__":
    raise SystemExit(main())
