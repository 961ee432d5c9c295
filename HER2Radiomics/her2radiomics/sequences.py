"""Several MRI sequences per case (DCE, T2-weighted, ADC/DWI): manifest columns, lesion transfer, feature sets.

Manifest: ``image_<seq>`` (e.g. ``image_dce``, ``image_t2``, ``image_adc``) and optional ``lesion_<seq>``. A
sequence without its own lesion gets the reference sequence's lesion (the one of ``image``/``lesion`` or of the
first sequence) brought onto its grid through physical space (:func:`lesion_on_grid`: nearest neighbour, each
target voxel centre takes the label of the source voxel containing it), with a warning when the fields of view do
not fully overlap and the resulting volume reported. Shells and exclusions are then computed on each sequence's
own grid. Feature columns are ``{seq}_{region}_{feature}``; a feature set ``dce+t2:intra+peri3`` selects the
columns of those sequences and regions (:func:`parse_feature_set`, :func:`feature_columns`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError

_SEQ = re.compile(r"[a-z][a-z0-9]*")
_REGION = re.compile(r"intra|peri\d+(?:\.\d+)?")


@dataclass
class LesionTransfer:
    """A lesion brought onto another sequence's grid, with what was lost."""

    mask: sitk.Image
    source_volume_mm3: float
    volume_mm3: float
    outside_fov_fraction: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"source_volume_mm3": self.source_volume_mm3, "volume_mm3": self.volume_mm3,
                "outside_fov_fraction": self.outside_fov_fraction, "warnings": list(self.warnings),
                "method": "nearest neighbour through physical space (identity transform)"}


def _inside_fraction(src_mask: np.ndarray, src: sitk.Image, target: sitk.Image) -> float:
    """Fraction of the source lesion's voxel centres that fall inside the target image's field of view (the
    target voxels' extent: index -0.5 .. size - 0.5 along every axis)."""
    idx = np.argwhere(src_mask)[:, ::-1].astype(float)   # (i, j, k)
    if idx.size == 0:
        return 0.0
    d_s = np.asarray(src.GetDirection(), float).reshape(3, 3)
    pts = np.asarray(src.GetOrigin()) + (idx * np.asarray(src.GetSpacing())) @ d_s.T
    d_t = np.asarray(target.GetDirection(), float).reshape(3, 3)
    cont = ((pts - np.asarray(target.GetOrigin())) @ d_t) / np.asarray(target.GetSpacing())   # continuous index
    size = np.asarray(target.GetSize(), float)
    inside = np.all((cont >= -0.5) & (cont < size - 0.5), axis=1)
    return float(inside.mean())


def lesion_on_grid(lesion: sitk.Image, target: sitk.Image, what: str = "sequence") -> LesionTransfer:
    """The lesion (0/1 on its own grid) on ``target``'s grid: nearest neighbour through physical space.

    Warns when part of the lesion lies outside the target's field of view; UserError when none of it is inside
    or when the lesion vanishes on the coarser grid (no target voxel centre falls inside it).
    """
    src_arr = sitk.GetArrayViewFromImage(lesion) != 0
    v_src = float(np.count_nonzero(src_arr) * np.prod(lesion.GetSpacing()))
    if v_src == 0:
        raise UserError("lesion mask is empty (no non-zero voxel); draw the lesion or choose the right --label")
    inside = _inside_fraction(src_arr, lesion, target)
    if inside == 0:
        raise UserError(f"the lesion lies outside the field of view of the {what} image (the fields of view do not "
                        f"overlap there); give a lesion drawn on the {what} image (lesion_{what} column)")
    src01 = sitk.GetImageFromArray(src_arr.astype(np.uint8))
    src01.CopyInformation(lesion)
    out = sitk.Resample(src01, target, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(out)))
    vol = float(n * np.prod(target.GetSpacing()))
    if n == 0:
        raise UserError(f"the lesion ({v_src:.1f} mm3) has no voxel on the {what} grid (spacing "
                        f"{tuple(round(s, 3) for s in target.GetSpacing())} mm); give a lesion drawn on the {what} "
                        f"image (lesion_{what} column)")
    warnings = []
    if inside < 1:
        warnings.append(f"{what}: {100 * (1 - inside):.1f} % of the lesion lies outside the {what} field of view; the "
                        f"transferred lesion is cut there ({vol:.1f} of {v_src:.1f} mm3)")
    warnings.append(f"{what}: lesion resampled from the reference grid (nearest neighbour): {vol:.1f} mm3 "
                    f"(reference {v_src:.1f} mm3, {100 * (vol / v_src - 1):+.1f} %)")
    return LesionTransfer(out, v_src, vol, 1 - inside, warnings)


# ------------------------------------------------------------------------------------------------ feature sets
def parse_feature_set(feature_set: str) -> tuple[list[str], list[str]]:
    """``"dce+t2:intra+peri3"`` -> (["dce", "t2"], ["intra", "peri3"]); ``"intra+peri3"`` -> ([], [...])."""
    if ":" not in feature_set:
        regions = [r.strip() for r in feature_set.split("+")]
        seqs: list[str] = []
    else:
        left, right = feature_set.split(":", 1)
        seqs = [s.strip() for s in left.split("+")]
        regions = [r.strip() for r in right.split("+")]
        if not all(_SEQ.fullmatch(s) for s in seqs):
            raise UserError(f"feature set {feature_set!r}: sequences are names like dce, t2, adc joined by '+' "
                            "before the ':' (e.g. dce+t2:intra+peri3)")
    if not all(_REGION.fullmatch(r) for r in regions):
        raise UserError(f"feature set {feature_set!r}: regions are intra or peri<d> joined by '+' (e.g. "
                        "dce+t2:intra+peri3)")
    return seqs, regions


def feature_columns(columns: Sequence[str], feature_set: str, exclude: Iterable[str] = ()) -> list[str]:
    """Columns ``{seq}_{region}_*`` of a multi-sequence feature set, in table order (kinetic columns left out)."""
    from her2radiomics.kinetics import is_kinetic_column

    seqs, regions = parse_feature_set(feature_set)
    if not seqs:
        raise UserError(f"feature set {feature_set!r} names no sequence; use e.g. dce+t2:intra+peri3")
    excl = set(exclude)
    prefixes = [f"{s}_{r}_" for s in seqs for r in regions]
    absent = [p for p in prefixes if not any(c.startswith(p) for c in columns)]
    if absent:
        raise UserError(f"feature set {feature_set!r} needs columns '{absent[0]}*' that the features table lacks; "
                        "check the manifest's image_<seq> columns or choose another --feature-set")
    return [c for c in columns if c.startswith(tuple(prefixes)) and c not in excl and not is_kinetic_column(c)]
