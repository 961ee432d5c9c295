"""One case with several sequences (manifest ``image_<seq>`` / ``lesion_<seq>``): regions and features per sequence.

The *reference* sequence is the first ``image_<seq>`` column whose lesion is given (``lesion_<seq>``, or the
``lesion`` column, which belongs to the first sequence). Its lesion goes to every sequence without its own
(:func:`her2radiomics.sequences.lesion_on_grid`: nearest neighbour through physical space, FOV warning, volume
reported). The exclusions (user masks of the manifest, on the reference grid, or detected automatically on the
reference image) are brought onto each grid the same way, because the air / pectoralis detectors are tuned to
fat-suppressed T1 post-contrast images, not to T2 or ADC maps. The shells are then computed on each sequence's
own grid (exact EDT with that grid's spacing) and the features are named ``{seq}_{region}_{feature}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.manifest import SequenceInput


def _nearest(mask: sitk.Image, target: sitk.Image) -> sitk.Image:
    return sitk.Resample(mask, target, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def compute_sequences(seqs: Sequence[SequenceInput], params: dict, distances: Sequence[float], *,
                      auto_exclusions: bool, air: Path | None, pectoralis: Path | None, label: int | None,
                      case_workers: int | None = 1) -> tuple[dict[str, float], dict[str, str], list[str], dict]:
    """Features ``{seq}_{region}_*`` of every sequence, missing regions, warnings and per-sequence lesion info."""
    from her2radiomics.features import extract_case, region_problem
    from her2radiomics.io import read_image, read_mask
    from her2radiomics.regions import build_regions
    from her2radiomics.sequences import lesion_on_grid

    ref = next((s for s in seqs if s.lesion is not None), None)
    if ref is None:
        raise UserError("no sequence of this case has a lesion; fill the lesion column (the first sequence's lesion) "
                        "or a lesion_<seq> column")
    ref_img = read_image(ref.image, f"{ref.name} image")
    ref_les = read_mask(ref.lesion, ref_img, f"lesion ({ref.name})", label=label)
    ref_air = read_mask(air, ref_img, "air mask") if air else None
    ref_pect = read_mask(pectoralis, ref_img, "pectoralis mask") if pectoralis else None
    if auto_exclusions and (ref_air is None or ref_pect is None):
        r0 = build_regions(ref_img, ref_les, tuple(distances), air=ref_air, pectoralis=ref_pect)
        ref_air = ref_air if ref_air is not None else r0.masks["air"]
        ref_pect = ref_pect if ref_pect is not None else r0.masks["pectoralis"]
    feats: dict[str, float] = {}
    missing: dict[str, str] = {}
    warnings: list[str] = []
    info: dict[str, Any] = {"reference": ref.name}
    for s in seqs:
        img = ref_img if s is ref else read_image(s.image, f"{s.name} image")
        if s is ref:
            les, how = ref_les, "given"
        elif s.lesion is not None:
            les, how = read_mask(s.lesion, img, f"lesion ({s.name})", label=label), "given"
        else:
            tr = lesion_on_grid(ref_les, img, s.name)
            les, how = tr.mask, "resampled"
            warnings.extend(tr.warnings)
            info[s.name] = tr.to_json()
        a = None if ref_air is None else (ref_air if s is ref else _nearest(ref_air, img))
        p = None if ref_pect is None else (ref_pect if s is ref else _nearest(ref_pect, img))
        regs = build_regions(img, les, tuple(distances), air=a, pectoralis=p, auto_exclusions=False)
        info.setdefault(s.name, {})["lesion"] = how
        info[s.name]["lesion_volume_mm3"] = regs.stats["intra"]["volume_mm3"]
        warnings.extend(f"{s.name}: {w}" for w in regs.warnings)
        masks = dict(regs.feature_masks())
        for name in list(masks)[1:]:
            reason = regs.stats[name].get("empty_reason")
            if reason is None:
                problem = region_problem(masks[name], params)
                reason = f"{name} cannot be used by pyradiomics: {problem}" if problem else None
            if reason:
                missing[f"{s.name}_{name}"] = reason
                del masks[name]
        f = extract_case(img, masks, params, case_workers=case_workers)
        names = [k[len("intra_"):] for k in f if k.startswith("intra_")]
        for reg in regs.feature_masks():
            if f"{s.name}_{reg}" in missing:
                feats.update({f"{s.name}_{reg}_{n}": float("nan") for n in names})
            else:
                feats.update({f"{s.name}_{k}": v for k, v in f.items() if k.startswith(f"{reg}_")})
    return feats, missing, warnings, info
