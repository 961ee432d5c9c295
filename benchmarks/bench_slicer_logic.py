"""Slicer logic on a full-size phantom (448 x 448 x 160, 0.74 x 0.74 x 1.2 mm) with real MRML (slicer-core).

Prints seconds for: image -> volume node, volume node -> image, one segment -> mask, one mask -> segment,
Generate shells (auto exclusions, 6 segments written), Recompute after an edit, and Undo; and the peak RSS.
Run: python benchmarks/bench_slicer_logic.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "HER2Radiomics"), str(ROOT / "Testing" / "Python")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args, _unknown = ap.parse_known_args()  # scripts/bench.sh may pass other benchmarks' options

    import mrml_scene
    import psutil

    from her2radiomics.phantom import make_phantom
    from HER2RadiomicsLib import mrml_bridge as mb
    from HER2RadiomicsLib.logic import PanelLogic

    ph = make_phantom(seed=0)
    print(f"phantom {ph.image.GetSize()} spacing {ph.image.GetSpacing()}")
    times: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def timed(name):
        t = time.perf_counter()
        yield
        times.setdefault(name, []).append(time.perf_counter() - t)

    for _ in range(args.repeat):
        ctx = mrml_scene.new_scene()
        with timed("image -> volume node"):
            vol = mb.volume_node_from_image(ph.image, "img")
        with timed("volume node -> image"):
            mb.image_from_volume_node(vol)
        logic = PanelLogic()
        seg = logic.setupSegmentation(vol)
        with timed("mask -> segment (lesion)"):
            mb.set_segment_from_mask(seg, "lesion", ph.lesion)
        with timed("segment -> mask (lesion)"):
            mb.mask_from_segment(seg, "lesion", vol)
        with timed("Generate shells (auto exclusions)"):
            logic.generateShells(vol, seg)
        with timed("Recompute shells (edited exclusions)"):
            logic.generateShells(vol, seg)
        with timed("Undo"):
            logic.undo(seg)
        ctx.close()
    for name, ts in times.items():
        print(f"{name:40s} median {statistics.median(ts):7.3f} s  (n={len(ts)})")
    print(f"peak RSS {psutil.Process().memory_info().rss / 2**20:.0f} MiB (current; ru_maxrss below)")
    import resource

    print(f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
