"""Automatic extramammary air and pectoralis-major masks (placeholder until issue 3 lands)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk


@dataclass
class Exclusion:
    mask: sitk.Image
    notes: list[str] = field(default_factory=list)


def _empty(image: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(np.zeros(tuple(reversed(image.GetSize())), np.uint8))
    m.CopyInformation(image)
    return m


def detect_air(image: sitk.Image, lesion: sitk.Image | None = None) -> Exclusion:
    return Exclusion(_empty(image), ["automatic air detection not available yet; mask left empty"])


def detect_pectoralis(image: sitk.Image, lesion: sitk.Image | None = None, reach_mm: float = 5.0) -> Exclusion:
    return Exclusion(_empty(image), ["automatic pectoralis detection not available yet; mask left empty"])
