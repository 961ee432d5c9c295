"""Figure of phantom family B with the project's automatic exclusions: docs/img/phantom_b.png.

Run from the repository root: ``python benchmarks/make_phantom_b_figure.py [--out docs/img/phantom_b.png]``.
Top row: one anatomy (seed 5, deep lesion, 9 mm pectoralis) in the three contrasts, and an oblique
superficial case; bottom row: the truth label map of each, with the true pectoralis major (green), the
detected pectoralis (magenta), the detected air (cyan) and the lesion (red), on the axial slice through the
lesion centre (array slice; the oblique case is rotated in-plane).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "HER2Radiomics"))
sys.path.insert(0, str(ROOT / "Testing" / "Python"))

import phantom_b as pb  # noqa: E402

from her2radiomics.regions import build_regions  # noqa: E402

CASES = [
    ("fs, deep lesion", dict(seed=5, contrast="fs", lesion_kind="deep")),
    ("non-fs, same anatomy", dict(seed=5, contrast="nonfs", lesion_kind="deep")),
    ("subtraction, same anatomy", dict(seed=5, contrast="sub", lesion_kind="deep")),
    ("fs, superficial, oblique 20 deg,\nFGT ~ muscle, ghosting", dict(seed=9, contrast="fs", lesion_kind="superficial",
                                                                       oblique_deg=20.0, fgt_like_muscle=True,
                                                                       density="c", ghosting=0.15)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "phantom_b.png")
    args = ap.parse_args()
    fig, axes = plt.subplots(2, len(CASES), figsize=(4.2 * len(CASES), 8.4))
    cmap = plt.get_cmap("tab20", 20)
    for col, (title, kw) in enumerate(CASES):
        kw = dict(kw)
        case = pb.make_case_b(kw.pop("seed"), **kw)
        reg = build_regions(case.image, case.lesion, (1.0, 3.0, 5.0))
        img = sitk.GetArrayFromImage(case.image)
        lab = sitk.GetArrayFromImage(case.labels)
        les = sitk.GetArrayFromImage(case.lesion)
        k = int(round(np.median(np.nonzero(les)[0])))
        lo, hi = np.percentile(img[k], [1, 99.5])
        axes[0, col].imshow(img[k], cmap="gray", vmin=lo, vmax=hi)
        axes[0, col].set_title(title, fontsize=10)
        axes[1, col].imshow(lab[k], cmap=cmap, vmin=0, vmax=19, interpolation="nearest")
        for ax in axes[:, col]:
            ax.contour(les[k], [0.5], colors="red", linewidths=1.0)
            ax.contour(lab[k] == pb.CLASS["pectoralis_major"], [0.5], colors="lime", linewidths=0.8)
            ax.contour(sitk.GetArrayFromImage(reg.masks["pectoralis"])[k], [0.5], colors="magenta", linewidths=1.0)
            ax.contour(sitk.GetArrayFromImage(reg.masks["air"])[k], [0.5], colors="cyan", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
    names = ", ".join(f"{i}={n}" for i, n in enumerate(pb.CLASSES))
    fig.suptitle("Phantom family B - contours: lesion red, true pectoralis major green, detected pectoralis magenta, "
                 "detected air cyan (main's detectors)", fontsize=10)
    fig.text(0.5, 0.01, f"label colours (tab20): {names}", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.96))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    print(args.out)


if __name__ == "__main__":
    main()
