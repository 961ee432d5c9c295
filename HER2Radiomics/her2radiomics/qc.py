"""QC overlay of the regions: axial slices through the lesion with lesion, shells, air and pectoralis contours.

One PNG (``qc_overlay.png`` next to ``regions.json``) lets a reviewer see in a second whether an automatic
exclusion must be erased or redrawn: three axial slices (the lesion's first, central and last slice, or fewer
for a thin lesion), cropped to the lesion + 40 mm, shown in the radiological convention (patient left on
the image right, anterior at the top) computed from the direction matrix, with contours of the lesion (red),
each shell (green, lighter for the outer ones), the air (cyan) and the pectoralis (yellow) masks. The title of
each exclusion gives its confidence and, below the review threshold, "REVIEW" in red.

``render_overlay`` returns the RGB array (for the Slicer panel's QA section, which can show it as an image);
``write_overlay`` writes the PNG. matplotlib (Agg backend, no display) draws the figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

QC_FILENAME = "qc_overlay.png"
CROP_MARGIN_MM = 40.0
COLOURS = {"lesion": "#ff2020", "air": "#00e5ff", "pectoralis": "#ffd400"}
SHELL_COLOURS = ("#00c853", "#64dd17", "#b2ff59", "#ccff90")


def _display(arr2d: np.ndarray, image: sitk.Image) -> np.ndarray:
    """Axial (y, x) slice -> display orientation: anterior at the top, patient left on the right (radiological)."""
    d = np.array(image.GetDirection(), float).reshape(3, 3)
    out = arr2d
    # index axis i (array x) and j (array y): their physical directions (columns of d)
    ax_i, ax_j = d[:, 0], d[:, 1]
    if abs(ax_i[1]) > abs(ax_i[0]):  # x runs A-P: transpose so rows are A-P
        out = out.T
        ax_i, ax_j = ax_j, ax_i
    if ax_j[1] < 0:  # rows must run anterior (LPS -y) -> posterior: top = anterior
        out = out[::-1, :]
    if ax_i[0] < 0:  # columns must run patient right -> left (LPS +x)
        out = out[:, ::-1]
    return out


def _slices(lesion: np.ndarray) -> list[int]:
    zs = np.nonzero(lesion.any(axis=(1, 2)))[0]
    if zs.size == 0:
        return []
    picks = sorted({int(zs[0]), int(zs[zs.size // 2]), int(zs[-1])})
    return picks


def render_overlay(image: sitk.Image, masks: Mapping[str, sitk.Image],
                   exclusions: Mapping[str, Mapping[str, Any]] | None = None, *, dpi: int = 90) -> np.ndarray:
    """RGB uint8 array (H x W x 3) of the QC overlay (see module docstring).

    ``masks``: ``intra`` (the lesion), ``peri{d}`` shells, ``air``, ``pectoralis`` (any may be missing), all on
    the image grid. ``exclusions``: the ``regions.json`` "exclusions" record (confidence, review, source).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arr = sitk.GetArrayViewFromImage(image).astype(np.float32)
    les = sitk.GetArrayViewFromImage(masks["intra"]) != 0
    zs = _slices(les)
    if not zs:
        zs = [arr.shape[0] // 2]
    sp = np.array(image.GetSpacing(), float)  # x y z
    # crop box (in-plane) around the lesion + margin
    if les.any():
        _, yy, xx = np.nonzero(les)
        my, mx = CROP_MARGIN_MM / sp[1], CROP_MARGIN_MM / sp[0]
        y0, y1 = max(0, int(yy.min() - my)), min(arr.shape[1], int(yy.max() + my) + 1)
        x0, x1 = max(0, int(xx.min() - mx)), min(arr.shape[2], int(xx.max() + mx) + 1)
    else:
        y0, y1, x0, x1 = 0, arr.shape[1], 0, arr.shape[2]
    body = arr[:, y0:y1, x0:x1]
    lo, hi = np.percentile(body, [1, 99.5]) if body.size else (0.0, 1.0)
    shells = sorted((k for k in masks if k.startswith("peri")), key=lambda k: float(k[4:].replace("_", ".")))
    fig = Figure(figsize=(4.2 * len(zs), 4.9), dpi=dpi)
    FigureCanvasAgg(fig)
    exclusions = exclusions or {}
    title = []
    for name in ("air", "pectoralis"):
        e = exclusions.get(name, {})
        conf = e.get("confidence")
        src = e.get("source", "")
        txt = f"{name} ({src})" if src else name
        if conf is not None:
            txt += f" conf {conf:.2f}"
        if e.get("review"):
            txt += " REVIEW"
        title.append(txt)
    fig.suptitle(" | ".join(title), fontsize=9,
                 color="red" if any(exclusions.get(n, {}).get("review") for n in ("air", "pectoralis")) else "black")
    aspect = sp[1] / sp[0]
    for n, z in enumerate(zs):
        ax = fig.add_subplot(1, len(zs), n + 1)
        ax.imshow(_display(arr[z, y0:y1, x0:x1], image), cmap="gray", vmin=lo, vmax=hi, aspect=aspect,
                  interpolation="nearest")
        # shells first, the lesion last (its border is the inner border of the first shell)
        layers = [(s, SHELL_COLOURS[min(i, len(SHELL_COLOURS) - 1)], 0.8) for i, s in enumerate(shells)]
        layers += [("air", COLOURS["air"], 1.0), ("pectoralis", COLOURS["pectoralis"], 1.0),
                   ("intra", COLOURS["lesion"], 1.2)]
        for key, colour, lw in layers:
            if key not in masks:
                continue
            m = _display(sitk.GetArrayViewFromImage(masks[key])[z, y0:y1, x0:x1] != 0, image)
            if m.any() and not m.all():
                ax.contour(m.astype(np.uint8), levels=[0.5], colors=[colour], linewidths=lw)
        ax.set_title(f"axial slice {z} (anterior up, patient left right)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = []
    from matplotlib.lines import Line2D

    for label, colour in [("lesion", COLOURS["lesion"])] + [(s, SHELL_COLOURS[min(i, 3)]) for i, s in enumerate(shells)] \
            + [("air", COLOURS["air"]), ("pectoralis", COLOURS["pectoralis"])]:
        handles.append(Line2D([], [], color=colour, label=label))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 0.94))
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def write_overlay(path: str | Path, image: sitk.Image, masks: Mapping[str, sitk.Image],
                  exclusions: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write the QC overlay PNG to ``path`` (see :func:`render_overlay`); returns the path."""
    import matplotlib.image as mpimg

    rgb = render_overlay(image, masks, exclusions)
    p = Path(path)
    mpimg.imsave(p, rgb, format="png")
    return p
