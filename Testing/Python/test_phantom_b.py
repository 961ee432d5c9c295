"""Phantom family B (Testing/Python/phantom_b.py) and the issue-11 scoring harness: the phantom is what it says.

Small cases (1 x 1 x 2 mm, 180 x 180 x 45 voxels, well under a second each) cached per module.
"""

from __future__ import annotations

import functools

import exclusion_scoring as es
import numpy as np
import phantom_b as pb
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

SP = (1.0, 1.0, 2.0)
FOV = (150.0, 150.0, 60.0)    # smaller than the default field of view: fast tests


@functools.cache
def case(seed: int = 7, **kw) -> pb.CaseB:
    kw.setdefault("spacing", SP)
    kw.setdefault("fov_mm", FOV)
    return pb.make_case_b(seed, **kw)


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


def points(img: sitk.Image, mask: np.ndarray) -> np.ndarray:
    return es.physical_points(img, np.nonzero(mask))


def min_distance(img: sitk.Image, a: np.ndarray, b: np.ndarray, reach_mm: float = 30.0) -> float:
    """Smallest physical distance between voxel centres of a (small) and b, searched within reach_mm of a."""
    sp = np.array(img.GetSpacing()[::-1])
    idx = np.nonzero(a)
    box = tuple(slice(max(0, int(i.min() - reach_mm / s)), int(i.max() + reach_mm / s) + 1)
                for i, s in zip(idx, sp, strict=True))
    bb = np.zeros_like(b)
    bb[box] = b[box]
    if not bb.any():
        return float("inf")
    d, _ = cKDTree(points(img, bb)).query(points(img, a))
    return float(d.min())


def test_truth_classes_disjoint_covering_and_present():
    c = case(7, lesion_kind="deep", pec_minor=True)
    lab = arr(c.labels)
    assert lab.max() < len(pb.CLASSES)                     # every voxel has exactly one known class
    counts = np.bincount(lab.ravel(), minlength=len(pb.CLASSES))
    for name in ("outside_air", "skin", "fat", "fibroglandular", "lesion", "pectoralis_major", "chest_wall", "lung"):
        assert counts[pb.CLASS[name]] > 0, name
    np.testing.assert_array_equal(arr(c.lesion) != 0, lab == pb.CLASS["lesion"])
    np.testing.assert_array_equal(arr(c.air) != 0, lab == pb.CLASS["outside_air"])
    np.testing.assert_array_equal(arr(c.pectoralis) != 0, lab == pb.CLASS["pectoralis_major"])
    # breast / non-breast / lesion partition the image
    b = c.array(*pb.BREAST_CLASSES)
    nb = c.array(*pb.NON_BREAST_CLASSES)
    assert not (b & nb).any() and np.array_equal(b | nb | (lab == pb.CLASS["lesion"]), np.ones_like(b))
    # air is outside the body: it touches the anterior face; lung never touches air
    lung = lab == pb.CLASS["lung"]
    d_air = ndimage.distance_transform_edt(lab != pb.CLASS["outside_air"], sampling=c.labels.GetSpacing()[::-1])
    assert d_air[lung].min() > 5.0


@pytest.mark.parametrize("kw", [dict(direction=pb.AXIAL_DUKE, spacing=(0.7, 0.7, 1.5)),
                                dict(oblique_deg=20.0, oblique_axis="z", spacing=(1.0, 1.0, 2.0)),
                                dict(oblique_deg=12.0, oblique_axis="x", spacing=(0.9, 0.9, 2.5))])
def test_geometry_spacing_direction(kw):
    c = pb.make_case_b(3, lesion_kind="mid", fov_mm=(120.0, 150.0, 45.0), **kw)
    sp = kw["spacing"]
    for img in (c.image, c.labels, c.lesion):
        assert img.GetSpacing() == pytest.approx(sp)
        assert img.GetSize() == tuple(int(round(f / s)) for f, s in zip((120, 150, 45), sp, strict=True))
        assert img.GetDirection() == pytest.approx(c.image.GetDirection())
        assert img.GetOrigin() == pytest.approx(c.image.GetOrigin())
    D = np.array(c.image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(D.T @ D, np.eye(3), atol=1e-9)
    base = np.array(kw.get("direction", pb.AXIAL_IDENTITY)).reshape(3, 3)
    angle = np.degrees(np.arccos(np.clip((np.trace(base.T @ D) - 1) / 2, -1, 1)))
    assert angle == pytest.approx(kw.get("oblique_deg", 0.0), abs=1e-6)
    # the anatomy lives in patient space: the lesion centre in LPS is where the metadata says
    lp = points(c.lesion, arr(c.lesion) != 0).mean(0)
    assert np.linalg.norm(lp - np.array(c.meta["lesion"]["centre_lps_mm"])) < 3.0
    # prone: air in front (anterior = -y in LPS) of the lesion, chest behind it
    air_y = points(c.labels, arr(c.labels) == pb.CLASS["outside_air"])[:, 1]
    lung_y = points(c.labels, arr(c.labels) == pb.CLASS["lung"])[:, 1]
    assert np.median(air_y) < lp[1] < np.median(lung_y)


def test_deterministic():
    a = pb.make_case_b(11, spacing=SP, fov_mm=FOV, ghosting=0.1, contrast="nonfs")
    b = pb.make_case_b(11, spacing=SP, fov_mm=FOV, ghosting=0.1, contrast="nonfs")
    c = pb.make_case_b(12, spacing=SP, fov_mm=FOV, ghosting=0.1, contrast="nonfs")
    np.testing.assert_array_equal(arr(a.image), arr(b.image))
    np.testing.assert_array_equal(arr(a.labels), arr(b.labels))
    assert a.meta == b.meta
    assert not np.array_equal(arr(a.labels), arr(c.labels))


@pytest.mark.parametrize("thick", [3.0, 15.0])
def test_deep_lesion_abuts_the_muscle(thick):
    c = case(21, lesion_kind="deep", pec_thickness_mm=thick)
    les, lab = arr(c.lesion) != 0, arr(c.labels)
    pec = lab == pb.CLASS["pectoralis_major"]
    assert c.meta["lesion"]["gap_to_pectoralis_mm"] <= 1.0
    assert not (les & pec).any()
    # continuous gap <= 1 mm -> voxel centres at most 1 mm + one voxel apart
    assert min_distance(c.lesion, les, pec) <= 1.0 + max(SP)
    # muscle of about the nominal thickness behind the lesion (count pectoralis voxels along A-P at the lesion)
    k, j, i = (int(round(v)) for v in np.median(np.nonzero(les), axis=1))
    column = pec[k, :, i]
    assert abs(column.sum() * SP[1] - thick) <= 0.35 * thick + 2 * SP[1]


def test_superficial_lesion_just_under_the_skin():
    c = case(22, lesion_kind="superficial")
    les = arr(c.lesion) != 0
    air = arr(c.labels) == pb.CLASS["outside_air"]
    g = c.meta["lesion"]["gap_to_skin_surface_mm"]
    assert 3.0 <= g <= 6.0
    d = min_distance(c.lesion, les, air)
    assert g - max(SP) <= d <= g + max(SP)
    assert c.meta["lesion"]["gap_to_pectoralis_mm"] > 10.0


def test_mid_lesion_far_from_skin_and_muscle():
    c = case(23, lesion_kind="mid")
    les, lab = arr(c.lesion) != 0, arr(c.labels)
    assert min_distance(c.lesion, les, lab == pb.CLASS["outside_air"]) >= 10.0 - max(SP)
    assert min_distance(c.lesion, les, lab == pb.CLASS["pectoralis_major"]) >= 10.0 - max(SP)


def _median(c: pb.CaseB, name: str) -> float:
    return float(np.median(arr(c.image)[c.array(name)]))


def test_contrasts():
    fs, nonfs, sub = (case(31, contrast=k, lesion_kind="mid") for k in pb.CONTRASTS)
    np.testing.assert_array_equal(arr(fs.labels), arr(sub.labels))     # same anatomy, other sequence
    les = _median(sub, "lesion")
    # subtraction: air and fat both near zero, the lesion bright
    assert _median(sub, "outside_air") < 0.05 * les and _median(sub, "fat") < 0.05 * les
    # fat suppression: muscle brighter than fat; without: fat brighter than muscle
    assert _median(fs, "pectoralis_major") > 1.5 * _median(fs, "fat")
    assert _median(nonfs, "fat") > 1.3 * _median(nonfs, "pectoralis_major")
    for c in (fs, nonfs):
        assert _median(c, "lung") < 0.2 * _median(c, "pectoralis_major")
        assert _median(c, "outside_air") < 0.1 * _median(c, "pectoralis_major")


def test_density_and_muscle_like_glandular_tissue():
    fr = [case(41, density=d, lesion_kind="mid").meta["fgt_fraction_in_fov"] for d in "abcd"]
    assert fr == sorted(fr) and fr[0] < 0.25 and fr[-1] > 0.6
    for contrast in ("fs", "sub"):
        c = case(42, density="c", fgt_like_muscle=True, contrast=contrast, lesion_kind="mid")
        ratio = _median(c, "fibroglandular") / _median(c, "pectoralis_major")
        assert 0.8 < ratio < 1.25, (contrast, ratio)


def test_ghosting_is_along_the_phase_encode_axis():
    clean = case(51, lesion_kind="mid", noise=0.0)
    ghost = case(51, lesion_kind="mid", noise=0.0, ghosting=0.2)          # pe_axis="LR": array axis x here
    np.testing.assert_array_equal(arr(clean.labels), arr(ghost.labels))
    diff = np.abs(arr(ghost.image).astype(float) - arr(clean.image))
    air = clean.array("outside_air")
    assert diff[air].mean() > 0.2                                         # ghosts reach the background
    # a ghost only spreads along the phase-encode lines of moving (thoracic) tissue: lines (slice, row) with
    # no chest-wall voxel within 10 rows (the fat and skin over the muscle move too) stay unchanged
    thorax = ~clean.array("outside_air", "skin", "fat", "fibroglandular", "lesion")
    moving_line = thorax.any(axis=2)
    near = ndimage.binary_dilation(moving_line, np.ones((1, 21), bool))
    assert (~near).sum() > 20
    assert diff[~near].max() <= 1.0 and diff[near].max() > 5.0


def test_harness_oracle_masks_score_perfectly_and_shell_matches_project():
    c = pb.make_case_b(61, spacing=SP, fov_mm=FOV, lesion_kind="deep", oblique_deg=18.0)
    s = es.score_case(c, air=c.air, pectoralis=c.pectoralis)
    assert s["shell_mismatch_voxels"] == 0     # brute-force physical distance == project's EDT shells
    assert s["dice_pec"] == 1.0 and s["keep"] == 1.0
    assert s["contamination"] == pytest.approx(s["oracle_contamination"])
    s_none = es.score_case(c, air=c.mask(), pectoralis=c.mask())   # empty masks: nothing excluded
    assert s_none["keep"] == 1.0 and s_none["contamination"] == pytest.approx(s["ideal_contamination"])
    assert s_none["dice_pec"] == 0.0 and "pec Dice" in " ".join(s_none["violations"])
    # the literal zone contains the lesion + 15 mm neighbourhood (evaluation_region) outside the lesion
    from her2radiomics.exclusions import evaluation_region
    box, d = es.truth_distances(c.lesion, 16.0)
    ev = evaluation_region(c.lesion, 5, 10)[box] & (d > 0)
    assert np.array_equal(ev, (d <= 15.0 + 1e-6) & (d > 0))   # 1e-6: rounding of lattice points exactly 15 mm away


def test_skin_thickening_pectoralis_minor_and_chest_wall():
    base = case(71, lesion_kind="superficial", pec_minor=True)
    thick = case(71, lesion_kind="superficial", pec_minor=True, skin_thickening_mm=3.0)
    no_minor = case(71, lesion_kind="superficial", pec_minor=False)
    vv = float(np.prod(SP))
    assert thick.array("skin").sum() * vv > base.array("skin").sum() * vv + 2000.0   # mm3
    # thickened skin over a superficial lesion: the lesion stays below it (gap > skin + 1 mm)
    assert thick.meta["lesion"]["gap_to_skin_surface_mm"] >= thick.meta["skin_mm"] + 1.0
    assert base.array("pectoralis_minor").any() and not no_minor.array("pectoralis_minor").any()
    # pectoralis minor lies behind (posterior to) the major
    y_maj = points(base.labels, base.array("pectoralis_major"))[:, 1]
    y_min = points(base.labels, base.array("pectoralis_minor"))[:, 1]
    assert np.median(y_min) > np.median(y_maj)
    assert base.array("chest_wall").sum() * vv > 5000.0          # ribs / intercostal layer present


def test_harness_on_family_a():
    """The harness also scores the project's own phantom (family A: lesion / air / pectoralis truth only)."""
    from her2radiomics.phantom import make_phantom
    ph = make_phantom(11, (160, 160, 48), (2.07, 2.07, 4.0))
    s = es.score_case(ph, air=ph.air, pectoralis=ph.pectoralis)
    assert s["shell_mismatch_voxels"] == 0 and s["keep"] == 1.0 and s["contamination"] == 0.0
    assert s["dice_pec"] == 1.0 or np.isnan(s["dice_pec"])


def test_write_case_b_round_trip(tmp_path):
    c = case(7, lesion_kind="deep", pec_minor=True)
    pb.write_case_b(c, tmp_path / "case")
    lab = sitk.ReadImage(str(tmp_path / "case" / "labels.nrrd"))
    np.testing.assert_array_equal(arr(lab), arr(c.labels))
    assert lab.GetDirection() == pytest.approx(c.labels.GetDirection())
    import json
    meta = json.loads((tmp_path / "case" / "meta.json").read_text(encoding="utf-8"))
    assert meta["classes"] == list(pb.CLASSES) and meta["lesion"]["kind"] == "deep"
