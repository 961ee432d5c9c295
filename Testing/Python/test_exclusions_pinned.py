"""Pinned outputs of the automatic exclusions (air + pectoralis): masks and records bit for bit.

The detectors are sped up without changing a single decision (issue 14 item 3 / issue 11 item 5): every
validation number in docs/exclusions.md stays valid only while the masks stay identical. This test pins, on
small phantoms of both families (``her2radiomics.phantom`` and the independent family B of phantom_b.py) across
contrasts (fat-suppressed, non-fat-suppressed, clipped and signed subtraction), spacings (block factors 1-3,
edge-padded blocks), orientations (axial identity, Duke's flipped in-plane axes, A-P along the array's x axis,
sagittal) and with / without a lesion (also the > 4 M voxel block path), the sha256 of both masks and the
confidence record, notes and numbers of each detector, as computed by the detector of 2026-12-02 (main at e14ce18).

A change of a digest means the detector's output changed: that is a new detector (bump DETECTOR_VERSION,
re-validate docs/exclusions.md), never a speed-up. The digests depend on numpy/scipy/SimpleITK floating point
(recorded with numpy 2.4.6, scipy 1.17.1 on x86-64); after an upgrade that changes them, check the change
on main first, then print new ones with ``python Testing/Python/test_exclusions_pinned.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "HER2Radiomics"))

from her2radiomics.exclusions import confidence_record, detect_air, detect_pectoralis  # noqa: E402
from her2radiomics.phantom import make_phantom  # noqa: E402

_DUKE = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
_AP_ALONG_X = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
_SAGITTAL = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)


def _case(name: str) -> tuple[sitk.Image, sitk.Image | None]:
    """The image and lesion (or None) of a pinned case."""
    import phantom_b as pb

    if name.startswith("a-"):
        kind = name[2:]
        if kind == "fs-f2-pad":
            ph = make_phantom(11, (147, 147, 32), (1.2, 1.2, 3.0), lesion_gap_mm=4.0)
        elif kind == "fs-f3-duke":
            ph = make_phantom(12, (130, 130, 20), (0.8, 0.8, 4.0), direction=_DUKE, lesion_gap_mm=3.0)
        elif kind == "fs-f2-ap-x":
            ph = make_phantom(13, (147, 147, 32), (1.2, 1.2, 3.0), direction=_AP_ALONG_X, lesion_gap_mm=5.0)
        elif kind == "fs-f1-sagittal":
            ph = make_phantom(23, (32, 96, 96), (3.0, 2.07, 2.07), direction=_SAGITTAL, lesion_gap_mm=5.0)
        elif kind.startswith("fs-gap"):  # the muscle near (12 mm) or beyond (25 mm) the confidence's reach
            ph = make_phantom(16, (147, 147, 32), (1.2, 1.2, 3.0), lesion_gap_mm=float(kind[6:]))
        elif kind == "signed-sub":
            ph = make_phantom(14, (147, 147, 32), (1.2, 1.2, 3.0), lesion_gap_mm=4.0)
            return sitk.Cast(ph.image, sitk.sitkFloat32) - 60.0, ph.lesion
        elif kind == "fs-no-lesion":
            ph = make_phantom(15, (147, 147, 32), (1.2, 1.2, 3.0))
            return ph.image, None
        elif kind == "fs-blocks-no-lesion":  # > 4 M voxels without a lesion: the block path of the pectoralis
            ph = make_phantom(26, (400, 400, 26), (0.83, 0.83, 6.8))
            return ph.image, None
        else:
            raise KeyError(name)
        return ph.image, ph.lesion
    contrast, _, kind = name[2:].partition("-")
    kw = {"fov_mm": (150.0, 150.0, 60.0), "spacing": (1.2, 1.2, 3.0), "pec_thickness_mm": 9.0}
    if kind == "duke":
        kw["direction"] = _DUKE
    elif kind == "oblique":
        kw.update(oblique_deg=15.0, ghosting=0.1)
    case = pb.make_case_b(41 + pb.CONTRASTS.index(contrast), contrast=contrast, lesion_kind="deep", **kw)
    return case.image, case.lesion


CASES = ["a-fs-f2-pad", "a-fs-f3-duke", "a-fs-f2-ap-x", "a-fs-f1-sagittal", "a-fs-gap12", "a-fs-gap25",
         "a-signed-sub", "a-fs-no-lesion", "a-fs-blocks-no-lesion", "b-fs-oblique", "b-nonfs-duke", "b-sub-duke", "b-nonfs-axial"]


def _json(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=lambda v: repr(v) if not isinstance(v, np.generic) else v.item())


def outputs(name: str) -> dict:
    """Digests of both masks, the confidence records and a digest of the notes + numbers of one case."""
    image, lesion = _case(name)
    air = detect_air(image, lesion)
    pec = detect_pectoralis(image, lesion, 5.0, air=air.mask)
    out = {}
    for key, ex in (("air", air), ("pec", pec)):
        m = sitk.GetArrayViewFromImage(ex.mask)
        assert m.dtype == np.uint8 and ex.mask.GetSize() == image.GetSize()
        out[key] = {"mask": hashlib.sha256(np.ascontiguousarray(m).tobytes()).hexdigest()[:20],
                    "voxels": int(np.count_nonzero(m)), "record": confidence_record(ex),
                    "info_notes": hashlib.sha256(_json([ex.info, ex.notes]).encode()).hexdigest()[:20]}
    return out


PINNED: dict[str, dict] = {
    'a-fs-f2-pad': {
        'air': {'mask': '2b59376547986f97856a', 'voxels': 321766, 'info_notes': 'df9432395a407687344b',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': 'c3183816280cd7015ef6', 'voxels': 7574, 'info_notes': '987c46fed450e977244c',
                'record': {'confidence': 0.255, 'review': True, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 1.0, 'span': 0.799, 'coverage': 0.255, 'continuity': 0.956, 'thickness': 1.0}, 'contrast': 'fat-suppressed'}},
    },
    'a-fs-f3-duke': {
        'air': {'mask': '5da791afb9350d83b887', 'voxels': 151741, 'info_notes': '4dbb50a45009444b4a4e',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': '258e1809f03f698af3cf', 'voxels': 13902, 'info_notes': '94d4e88974d2e9b6f2a8',
                'record': {'confidence': 0.871, 'review': False, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 0.871, 'span': 1.0, 'coverage': 0.936, 'continuity': 0.998, 'thickness': 0.912}, 'contrast': 'fat-suppressed'}},
    },
    'a-fs-f2-ap-x': {
        'air': {'mask': '3627e3c52229ed4f0e11', 'voxels': 304684, 'info_notes': '66e75afa3577a3d4c88c',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': 'f83c1d1740961a2f2dfc', 'voxels': 16089, 'info_notes': '1a7a90ad78064f5ca7cb',
                'record': {'confidence': 0.686, 'review': False, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 1.0, 'span': 1.0, 'coverage': 0.936, 'continuity': 0.969, 'thickness': 0.686}, 'contrast': 'fat-suppressed'}},
    },
    'a-fs-f1-sagittal': {
        'air': {'mask': '219ad7698b75767e4b1e', 'voxels': 131407, 'info_notes': 'e429e6fa63c5f051b927',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': 'b9c048de34d844a23811', 'voxels': 0, 'info_notes': '22d81088a29830d91498',
                'record': {'confidence': 0.0, 'review': True, 'review_below': 0.5, 'confidence_parts': {'axial': 0.0}, 'contrast': 'unknown'}},
    },
    'a-fs-gap12': {
        'air': {'mask': '1b069c15f37fe9d113b6', 'voxels': 303556, 'info_notes': '711db342dbeb3b84bafc',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': '5a96c1c062327cf3bea5', 'voxels': 10116, 'info_notes': '4af80e90a776603f6901',
                'record': {'confidence': 0.929, 'review': False, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 1.0, 'span': 1.0, 'coverage': 0.929, 'continuity': 1.0, 'thickness': 0.982}, 'contrast': 'fat-suppressed'}},
    },
    'a-fs-gap25': {
        'air': {'mask': '30080a4d081fcf3a928e', 'voxels': 303486, 'info_notes': 'c95f706a37d6d5624493',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': '7db56ecc32f4d17c3533', 'voxels': 9219, 'info_notes': '6fd63e32575f87d94841',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'coverage': 1.0}, 'contrast': 'fat-suppressed'}},
    },
    'a-signed-sub': {
        'air': {'mask': '2bc9fbc3c09cc51a7c07', 'voxels': 0, 'info_notes': '70ad16b02712c4a7e847',
                'record': {'confidence': 0.0, 'review': True, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0, 'magnitude_image': 0.0}}},
        'pec': {'mask': '2bc9fbc3c09cc51a7c07', 'voxels': 0, 'info_notes': '050e237afc6b78080816',
                'record': {'confidence': 0.0, 'review': True, 'review_below': 0.5, 'confidence_parts': {'contrast': 0.0}, 'contrast': 'subtraction'}},
    },
    'a-fs-no-lesion': {
        'air': {'mask': '13ca8f0e44cec6cf501c', 'voxels': 303662, 'info_notes': 'e05a84fa46dedad88618',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': '67951d5202577aa017e1', 'voxels': 62050, 'info_notes': '76162697140e2143900b',
                'record': {'confidence': 0.153, 'review': True, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'coverage': 0.815, 'continuity': 0.897, 'thickness': 0.153}, 'contrast': 'fat-suppressed'}},
    },
    'a-fs-blocks-no-lesion': {
        'air': {'mask': '9a4de3d31b0d9f9847f3', 'voxels': 1911402, 'info_notes': 'b89f885d23776373749d',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': 'e55175a23ae810bd5419', 'voxels': 216495, 'info_notes': '9070b2c5ebfa08477afe',
                'record': {'confidence': 0.136, 'review': True, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'coverage': 0.807, 'continuity': 0.873, 'thickness': 0.136}, 'contrast': 'fat-suppressed'}},
    },
    'b-fs-oblique': {
        'air': {'mask': 'c40ed91f3a1ba63a6a04', 'voxels': 210900, 'info_notes': 'cad615ced6dff11ba3a8',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': '85e08b5ea1ec09ce15d7', 'voxels': 6166, 'info_notes': '49aa8fafddd02045319f',
                'record': {'confidence': 0.0, 'review': True, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 0.0, 'span': 0.787, 'coverage': 0.33, 'continuity': 0.964, 'thickness': 0.974}, 'contrast': 'fat-suppressed'}},
    },
    'b-nonfs-duke': {
        'air': {'mask': '24374298300a2f53d99b', 'voxels': 124345, 'info_notes': 'f74743ef84662618f884',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': 'da1bdecbcf1922edcec5', 'voxels': 7588, 'info_notes': '745985c954adae985ec9',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 1.0, 'span': 1.0, 'coverage': 1.0, 'continuity': 1.0, 'thickness': 1.0}, 'contrast': 'non-fat-suppressed'}},
    },
    'b-sub-duke': {
        'air': {'mask': '6bba854a0873b6225531', 'voxels': 0, 'info_notes': '26389fde69c6ba7f42b1',
                'record': {'confidence': 0.0, 'review': True, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0, 'magnitude_image': 0.0}}},
        'pec': {'mask': '6bba854a0873b6225531', 'voxels': 0, 'info_notes': '1e2469fe2d41c0d89daf',
                'record': {'confidence': 0.0, 'review': True, 'review_below': 0.5, 'confidence_parts': {'calibration': 0.0}, 'contrast': 'unknown'}},
    },
    'b-nonfs-axial': {
        'air': {'mask': '6766393f48af54fb2297', 'voxels': 124348, 'info_notes': '88c11995275ae24d0c90',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'noise': 1.0, 'darkness': 1.0}}},
        'pec': {'mask': '87f3b990680e6a123c62', 'voxels': 7567, 'info_notes': '8a6d7d69d40a69e350e4',
                'record': {'confidence': 1.0, 'review': False, 'review_below': 0.5, 'confidence_parts': {'calibration': 1.0, 'contrast': 1.0, 'behind_lesion': 1.0, 'span': 1.0, 'coverage': 1.0, 'continuity': 1.0, 'thickness': 1.0}, 'contrast': 'non-fat-suppressed'}},
    },
}


@pytest.mark.parametrize("name", CASES)
def test_exclusions_are_bit_identical_to_the_pinned_detector(name):
    got = outputs(name)
    assert got == PINNED[name]


if __name__ == "__main__":
    import time

    print("PINNED: dict[str, dict] = {")
    for n in CASES:
        t0 = time.perf_counter()
        o = outputs(n)
        print(f"# {n}: {time.perf_counter() - t0:.2f} s", file=sys.stderr)
        print(f"    {n!r}: {{")
        for k, v in o.items():
            print(f"        {k!r}: {{'mask': {v['mask']!r}, 'voxels': {v['voxels']}, 'info_notes': {v['info_notes']!r},")
            print(f"                'record': {v['record']!r}}},")
        print("    },")
    print("}")
