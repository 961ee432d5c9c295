"""Regenerate the overlay figures of docs/exclusions.md and docs/phantom.md (docs/img/*.png).

Run: ``HER2_SHARED_DATA=/work/shared/data python benchmarks/make_exclusion_figures.py`` (real-data figures are
skipped when the shared data folder is absent).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "HER2Radiomics"))

from her2radiomics import io  # noqa: E402
from her2radiomics.exclusions import detect_air, detect_pectoralis  # noqa: E402
from her2radiomics.phantom import make_phantom  # noqa: E402

IMG = ROOT / "docs" / "img"
DATA = Path(os.environ.get("HER2_SHARED_DATA", ROOT.parent / "shared" / "data"))


def A(img):
    return sitk.GetArrayFromImage(img)


def legend(ax, items):
    for c, n in items:
        ax.plot([], [], color=c, label=n)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.8)


def phantom_figure() -> None:
    ph = make_phantom(0, lesion_gap_mm=8.0, rim=0.7, heterogeneity=0.5)
    a, les, pec, air = A(ph.image), A(ph.lesion), A(ph.pectoralis), A(ph.air)
    zc, _, xc = (int(round(v)) for v in np.argwhere(les).mean(0))
    sp = ph.image.GetSpacing()
    vmax = np.percentile(a[air == 0], 99.0)
    fig, ax = plt.subplots(1, 3, figsize=(18, 6.6), gridspec_kw={"width_ratios": [1, 1, 0.75]})
    ax[0].imshow(a[zc], cmap="gray", vmax=vmax)
    ax[0].set_title(f"axial slice {zc} (through the lesion); anterior at the top")
    ax[1].imshow(a[zc], cmap="gray", vmax=vmax)
    for m, c in ((les, "r"), (pec, "y"), (air, "c")):
        ax[1].contour(m[zc], levels=[0.5], colors=c, linewidths=0.8)
    legend(ax[1], [("r", "lesion"), ("y", "pectoralis (truth)"), ("c", "air (truth)")])
    ax[1].set_title("ground-truth masks")
    ax[2].imshow(a[::-1, :, xc], cmap="gray", vmax=vmax, aspect=sp[2] / sp[1])
    ax[2].contour(les[::-1, :, xc], levels=[0.5], colors="r", linewidths=0.8)
    ax[2].contour(pec[::-1, :, xc], levels=[0.5], colors="y", linewidths=0.8)
    ax[2].set_title("sagittal through the lesion (superior up, anterior left)")
    for a_ in ax:
        a_.set_xticks([])
        a_.set_yticks([])
    fig.suptitle("her2radiomics phantom, seed 0, 448x448x160 @ 0.74x0.74x1.2 mm: prone, fat-suppressed post-contrast look")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(IMG / "phantom.png", dpi=70)
    plt.close(fig)

    # detection on the same phantom
    ex_air = detect_air(ph.image, ph.lesion)
    ex_pec = detect_pectoralis(ph.image, ph.lesion, 5.0, air=ex_air.mask)
    da, dp = A(ex_air.mask), A(ex_pec.mask)
    zl, yl, xl = (int(round(v)) for v in np.argwhere(les).mean(0))
    fig, ax = plt.subplots(1, 2, figsize=(16, 8))
    ax[0].imshow(a[zc], cmap="gray", vmax=vmax)
    ax[0].contour(da[zc], levels=[0.5], colors="c", linewidths=0.8)
    ax[0].contour(dp[zc], levels=[0.5], colors="m", linewidths=1.0)
    ax[0].contour(les[zc], levels=[0.5], colors="r", linewidths=0.8)
    legend(ax[0], [("c", "air (detected)"), ("m", "pectoralis (detected, lesion + 35 mm box)"), ("r", "lesion")])
    ax[0].set_title("detected masks, whole slice")
    h = 70
    ax[1].imshow(a[zc], cmap="gray", vmax=vmax)
    ax[1].contour(pec[zc], levels=[0.5], colors="y", linewidths=1.6)
    ax[1].contour(dp[zc], levels=[0.5], colors="m", linewidths=0.9)
    ax[1].contour(les[zc], levels=[0.5], colors="r", linewidths=0.8)
    ax[1].set_xlim(xl - h, xl + h)
    ax[1].set_ylim(yl + h, yl - h)
    legend(ax[1], [("y", "pectoralis truth"), ("m", "pectoralis detected"), ("r", "lesion")])
    ax[1].set_title("zoom: detected (magenta) vs truth (yellow)")
    for a_ in ax:
        a_.set_xticks([])
        a_.set_yticks([])
    fig.tight_layout()
    fig.savefig(IMG / "exclusions_phantom.png", dpi=60)
    plt.close(fig)


def duke_figure() -> None:
    folder = DATA / "duke_dicom"
    if not folder.exists():
        print("skip Duke figure: no", folder)
        return
    img = io.read_image(folder)
    air = detect_air(img)
    pec = detect_pectoralis(img, None, 5.0, air=air.mask)
    a, da, dp = A(img), A(air.mask), A(pec.mask)
    fig, ax = plt.subplots(1, 3, figsize=(18, 6.4))
    for k in range(3):
        ax[k].imshow(a[k], cmap="gray", vmax=np.percentile(a, 99.5))
        ax[k].contour(da[k], levels=[0.5], colors="c", linewidths=0.9)
        ax[k].contour(dp[k], levels=[0.5], colors="y", linewidths=0.9)
        ax[k].set_title(f"slice {k + 1} of 3 (rows run posterior -> anterior)")
        ax[k].set_xticks([])
        ax[k].set_yticks([])
    legend(ax[2], [("c", "air (detected)"), ("y", "pectoralis (detected)")])
    fig.suptitle("Duke Breast_MRI_002, three most superior pre-contrast T1 slices (0.586 x 0.586 x 3 mm, GE 3T): "
                 "automatic masks, no lesion given")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(IMG / "exclusions_duke.png", dpi=60)
    plt.close(fig)


def breast1_figure() -> None:
    d = DATA / "pyradiomics_breast1"
    if not d.exists():
        print("skip breast1 figure: no", d)
        return
    img = io.read_image(d / "breast1_image.nrrd")
    les = io.read_mask(d / "breast1_label.nrrd", img, "lesion")
    air = detect_air(img, les)
    pec = detect_pectoralis(img, les, 5.0)
    a, da, dl = A(img), A(air.mask), A(les)
    slices = [4, 9, 14, 18, 20]
    fig, ax = plt.subplots(1, len(slices), figsize=(3.2 * len(slices), 7))
    for i, k in enumerate(slices):
        ax[i].imshow(a[k], cmap="gray", vmax=np.percentile(a, 99.5))
        ax[i].contour(da[k], levels=[0.5], colors="c", linewidths=1.0)
        ax[i].contour(dl[k], levels=[0.5], colors="r", linewidths=1.0)
        ax[i].set_title(f"slice {k}")
        ax[i].set_xticks([])
        ax[i].set_yticks([])
    fig.suptitle("pyradiomics breast1 crop: air (cyan) only in a corner of slices 18-20; lesion (red); "
                 "pectoralis: none (" + pec.notes[0][:60] + "...)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(IMG / "exclusions_breast1.png", dpi=60)
    plt.close(fig)


def qc_figures() -> None:
    """QC overlays as ``her2radiomics regions`` writes them (qc_overlay.png): breast1, family A, two family-B cases."""
    from her2radiomics import qc
    from her2radiomics.regions import build_regions

    d = DATA / "pyradiomics_breast1"
    if d.exists():
        img = io.read_image(d / "breast1_image.nrrd")
        les = io.read_mask(d / "breast1_label.nrrd", img, "lesion")
        r = build_regions(img, les)
        qc.write_overlay(IMG / "qc_overlay_breast1.png", img, r.masks, r.exclusions)
    ph = make_phantom(11, (224, 224, 80), (1.48, 1.48, 2.4), lesion_gap_mm=4.0, rim=0.8)
    r = build_regions(ph.image, ph.lesion)
    qc.write_overlay(IMG / "qc_overlay_phantom.png", ph.image, r.masks, r.exclusions)
    sys.path.insert(0, str(ROOT / "Testing" / "Python"))
    import phantom_b as pb

    for name, kw in (("qc_overlay_family_b_nonfs.png", {"contrast": "nonfs", "density": "b", "lesion_kind": "deep",
                                                         "pec_thickness_mm": 15.0}),
                     ("qc_overlay_family_b_fs.png", {"contrast": "fs", "density": "c", "lesion_kind": "mid",
                                                      "pec_thickness_mm": 15.0, "fgt_like_muscle": True})):
        case = pb.make_case_b(3, **kw)
        r = build_regions(case.image, case.lesion)
        qc.write_overlay(IMG / name, case.image, r.masks, r.exclusions)


if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    phantom_figure()
    duke_figure()
    breast1_figure()
    qc_figures()
    print("figures written to", IMG)
