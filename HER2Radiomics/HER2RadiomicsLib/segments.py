"""The HER2Radiomics segments: fixed names, colours, roles and provenance tags.

One segmentation node holds ``lesion``, the shells ``peri{d}`` (default ``peri1``, ``peri3``,
``peri5``) and the exclusions ``air`` and ``pectoralis``. Names and colours are fixed so that a
radiologist recognises them in every session; any other segment in the node is left untouched.

Provenance lives in segment tags (saved in the .seg.nrrd header):

* ``HER2Radiomics.role``: ``lesion`` | ``shell`` | ``exclusion``
* ``HER2Radiomics.source`` (exclusions): ``none`` (empty placeholder, never detected), ``auto``
  (written by a detector) or ``user`` (painted from scratch by the user)
* ``HER2Radiomics.autoHash``: digest of the mask a detector wrote; when the segment no longer
  matches it the user has edited it (reported as ``auto, edited``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import SimpleITK as sitk

from her2radiomics.regions import EXCLUSIONS, shell_name

from . import mrml_bridge

LESION = "lesion"
ROLE_TAG = "HER2Radiomics.role"
SOURCE_TAG = "HER2Radiomics.source"
AUTO_HASH_TAG = "HER2Radiomics.autoHash"

#: fixed colours (RGB 0-1): red lesion, warm-to-cool shells, cyan air, brown pectoralis
FIXED_COLORS: dict[str, tuple[float, float, float]] = {
    LESION: (0.90, 0.16, 0.16),
    "peri1": (0.99, 0.85, 0.20),
    "peri3": (0.30, 0.80, 0.42),
    "peri5": (0.25, 0.52, 0.96),
    "air": (0.55, 0.90, 1.00),
    "pectoralis": (0.62, 0.36, 0.20),
}

# colour ramp for shells at other distances (yellow 1 mm -> blue 10 mm), interpolated linearly
_RAMP_MM = (1.0, 3.0, 5.0, 10.0)
_RAMP_RGB = ((0.99, 0.85, 0.20), (0.30, 0.80, 0.42), (0.25, 0.52, 0.96), (0.55, 0.30, 0.85))


def shell_color(d: float) -> tuple[float, float, float]:
    """Colour of the ``d`` mm shell: fixed for 1/3/5 mm, interpolated on the ramp otherwise."""
    name = shell_name(d)
    if name in FIXED_COLORS:
        return FIXED_COLORS[name]
    rgb = [float(np.interp(d, _RAMP_MM, [c[i] for c in _RAMP_RGB])) for i in range(3)]
    return (rgb[0], rgb[1], rgb[2])


def segment_plan(distances) -> list[tuple[str, tuple[float, float, float], str]]:
    """(name, colour, role) of every HER2Radiomics segment, in display order."""
    plan = [(LESION, FIXED_COLORS[LESION], "lesion")]
    plan += [(shell_name(d), shell_color(d), "shell") for d in distances]
    plan += [(name, FIXED_COLORS[name], "exclusion") for name in EXCLUSIONS]
    return plan


def get_tag(segment, key: str) -> str:
    """A segment tag's value ('' when unset)."""
    import vtk

    value = vtk.reference("")
    return str(value) if segment.GetTag(key, value) else ""


def mask_digest(mask: sitk.Image) -> str:
    """Digest of a binary mask's voxels (geometry is the segmentation's, not hashed)."""
    arr = np.packbits(sitk.GetArrayViewFromImage(mask).astype(bool).ravel())
    return "sha256:" + hashlib.sha256(arr.tobytes()).hexdigest()


def ensure_segments(segmentation_node, distances) -> dict[str, str]:
    """Create missing HER2Radiomics segments (empty), fix names/colours/roles; return name -> segment ID.

    Existing segments keep their voxels; segments that are not ours are not touched.
    """
    ids = {}
    for name, color, role in segment_plan(distances):
        sid = mrml_bridge.ensure_segment(segmentation_node, name, color)
        seg = segmentation_node.GetSegmentation().GetSegment(sid)
        seg.SetTag(ROLE_TAG, role)
        if role == "exclusion" and not get_tag(seg, SOURCE_TAG):
            seg.SetTag(SOURCE_TAG, "none")
        ids[name] = sid
    _order(segmentation_node.GetSegmentation(), [name for name, _, _ in segment_plan(distances)])
    return ids


def _order(segmentation, plan: list[str]) -> None:
    """Put our segments in plan order in the slots they occupy; other segments keep their positions."""
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    ours = [n for n in plan if n in names]
    queue = iter(ours)
    desired = [next(queue) if n in ours else n for n in names]
    if desired == names:
        return
    for index, name in enumerate(desired):
        segmentation.SetSegmentIndex(segmentation.GetSegmentIdBySegmentName(name), index)


def exclusion_state(segmentation_node, name: str, mask: sitk.Image | None) -> str:
    """Provenance of an exclusion segment: none | auto | auto, edited | user."""
    sid = mrml_bridge.segment_id(segmentation_node, name)
    if not sid:
        return "none"
    seg = segmentation_node.GetSegmentation().GetSegment(sid)
    source = get_tag(seg, SOURCE_TAG) or "user"
    empty = mask is None or not sitk.GetArrayViewFromImage(mask).any()
    if source == "none":
        return "none" if empty else "user"
    if source == "auto" and mask is not None and mask_digest(mask) != get_tag(seg, AUTO_HASH_TAG):
        return "auto, edited"
    return source
