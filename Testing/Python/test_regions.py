"""Peritumoral shells, region statistics and the `regions` CLI against independent references.

The reference is a brute-force second implementation: every voxel's physical LPS position
(direction @ (index * spacing) + origin, checked against SimpleITK's TransformIndexToPhysicalPoint)
against every lesion voxel's, with the same boundary rule (distance <= d + 1e-6 mm).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from her2radiomics import exclusions, io, regions
from her2radiomics.errors import UserError
from her2radiomics.regions import BOUNDARY_EPS_MM, build_regions, compute_shells, shell_name

DISTANCES = (0.5, 1.0, 1.8, 2.3, 3.7)   # 1.8 = 2 x 0.9 and 2.3 = 1 slice: voxels exactly on the boundary


# ---------------------------------------------------------------- reference implementation
def physical_points(img: sitk.Image, idx_zyx: np.ndarray) -> np.ndarray:
    """LPS positions (N, 3) of (z, y, x) indices, which may lie outside the image."""
    ijk = idx_zyx[:, ::-1].astype(float)
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    return (d @ (ijk * np.asarray(img.GetSpacing())).T).T + np.asarray(img.GetOrigin())


def min_distance_to_lesion(img: sitk.Image, lesion: np.ndarray, idx_zyx: np.ndarray) -> np.ndarray:
    les = physical_points(img, np.argwhere(lesion))
    pts = physical_points(img, idx_zyx)
    out = np.empty(len(pts))
    for s in range(0, len(pts), 4096):
        diff = pts[s:s + 4096, None, :] - les[None, :, :]
        out[s:s + 4096] = np.sqrt((diff**2).sum(-1)).min(1)
    return out


def brute_shells(img: sitk.Image, lesion: np.ndarray, distances) -> dict[str, np.ndarray]:
    shape = lesion.shape
    idx = np.indices(shape).reshape(3, -1).T
    dist = min_distance_to_lesion(img, lesion, idx).reshape(shape)
    return {shell_name(d): (dist <= d + BOUNDARY_EPS_MM) & ~lesion for d in distances}


def brute_clipped(img: sitk.Image, lesion: np.ndarray, distances) -> dict[str, int]:
    """Ideal-shell lattice points outside the image, on a lattice extended beyond every border."""
    m = int(np.ceil(max(distances) / min(img.GetSpacing()))) + 2
    shape = np.array(lesion.shape)
    ext = np.indices(shape + 2 * m).reshape(3, -1).T - m
    outside = np.any((ext < 0) | (ext >= shape), axis=1)
    dist = min_distance_to_lesion(img, lesion, ext[outside])
    return {shell_name(d): int(np.count_nonzero(dist <= d + BOUNDARY_EPS_MM)) for d in distances}


def random_case(seed: int, touch_border: bool = False) -> tuple[sitk.Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (8, 10, 12)   # z, y, x
    spacing = list(rng.permutation([0.6, 0.9, 2.3]))
    img = sitk.GetImageFromArray(rng.integers(0, 100, shape).astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(tuple(rng.uniform(-80, 80, 3)))
    img.SetDirection(tuple(Rotation.random(random_state=seed).as_matrix().ravel()))
    lesion = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):     # 1-3 blobs, often separate components
        c = rng.integers(2, np.array(shape) - 2)
        r = rng.integers(0, 3, 3)
        lesion[tuple(slice(max(0, ci - ri), ci + ri + 1) for ci, ri in zip(c, r, strict=True))] = True
    if touch_border:
        lesion[0, rng.integers(0, 10), rng.integers(0, 12)] = True
        lesion[rng.integers(0, 8), rng.integers(0, 10), -1] = True
    return img, lesion


def mask_image(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(arr.astype(np.uint8))
    m.CopyInformation(ref)
    return m


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


# ---------------------------------------------------------------- shells == brute force
def test_reference_positions_match_simpleitk():
    img, _ = random_case(3)
    idx = np.array([[0, 0, 0], [7, 9, 11], [3, 5, 2]])
    want = [img.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in idx]
    np.testing.assert_allclose(physical_points(img, idx), want, atol=1e-9)


@pytest.mark.parametrize("seed,touch", [(0, False), (1, False), (2, True), (3, False), (4, True), (5, True)])
def test_shells_equal_brute_force(seed, touch):
    img, lesion = random_case(seed, touch)
    assert not np.allclose(np.asarray(img.GetDirection()).reshape(3, 3), np.eye(3), atol=0.1)
    shells = compute_shells(mask_image(lesion, img), DISTANCES)
    ref = brute_shells(img, lesion, DISTANCES)
    assert list(shells) == [shell_name(d) for d in DISTANCES]
    for name, want in ref.items():
        got = arr(shells[name]).astype(bool)
        assert shells[name].GetPixelID() == sitk.sitkUInt8
        d = float(name[4:])
        assert (got.sum() > 0) == (d >= min(img.GetSpacing()))   # 0.5 mm < every spacing: empty shell
        np.testing.assert_array_equal(got, want, err_msg=f"{name} seed {seed}")
    # nested, never overlapping the lesion
    names = list(shells)
    for a, b in zip(names, names[1:], strict=False):
        assert not np.any(arr(shells[a]) & ~arr(shells[b]))
    assert not any(np.any(arr(s).astype(bool) & lesion) for s in shells.values())


@settings(max_examples=30, deadline=None)
@given(
    spacing=st.tuples(*[st.floats(0.3, 3.0)] * 3),
    angles=st.tuples(*[st.floats(-3.14, 3.14)] * 3),
    d=st.floats(0.2, 4.0),
    seed=st.integers(0, 2**16),
)
def test_shells_equal_brute_force_property(spacing, angles, d, seed):
    rng = np.random.default_rng(seed)
    lesion = rng.random((5, 6, 7)) < 0.08
    lesion[2, 3, 3] = True
    img = sitk.Image(7, 6, 5, sitk.sitkUInt8)
    img.SetSpacing(spacing)
    img.SetOrigin((-3.0, 12.5, 40.0))
    img.SetDirection(tuple(Rotation.from_euler("zyx", angles).as_matrix().ravel()))
    r = build_regions(img, mask_image(lesion, img), (d,), auto_exclusions=False)
    name = shell_name(d)
    np.testing.assert_array_equal(arr(r.masks[name]).astype(bool), brute_shells(img, lesion, (d,))[name])
    vv = float(np.prod(spacing))
    assert r.stats[name]["clipped_mm3"] == pytest.approx(brute_clipped(img, lesion, (d,))[name] * vv, abs=1e-9)


@pytest.mark.parametrize("seed", [2, 4, 5])
def test_clipped_volume_equals_brute_force_beyond_border(seed):
    img, lesion = random_case(seed, touch_border=True)
    r = build_regions(img, mask_image(lesion, img), DISTANCES, auto_exclusions=False)
    want = brute_clipped(img, lesion, DISTANCES)
    vv = float(np.prod(img.GetSpacing()))
    assert max(want.values()) > 0
    for name, n in want.items():
        assert r.stats[name]["clipped_mm3"] == pytest.approx(n * vv, abs=1e-9)
    assert any("touches the image border" in w for w in r.warnings)
    assert any("beyond the image border" in w for w in r.warnings)


def test_boundary_voxel_one_slice_away_is_included():
    img = sitk.Image(5, 5, 5, sitk.sitkUInt8)
    img.SetSpacing((0.7, 0.7, 1.5))
    lesion = np.zeros((5, 5, 5), bool)
    lesion[2, 2, 2] = True
    shells = compute_shells(mask_image(lesion, img), (1.5, 1.4999))
    assert arr(shells["peri1.5"])[3, 2, 2] == 1 and arr(shells["peri1.5"])[1, 2, 2] == 1
    assert arr(shells["peri1.4999"])[3, 2, 2] == 0
    # 2 x 0.7 = 1.4 in plane is inside both; the in-plane diagonal sqrt(2) x 1.4 = 1.98 is outside
    assert arr(shells["peri1.4999"])[2, 2, 4] == 1 and arr(shells["peri1.5"])[2, 4, 4] == 0


# ---------------------------------------------------------------- real case
BREAST1_COUNTS = {"peri1": 122, "peri3": 885, "peri5": 2224}   # from brute_shells (see the test below)


def test_breast1_shell_counts_and_thin_ring(breast1):
    image = io.read_image(breast1[0])
    lesion = io.read_mask(breast1[1], image, "lesion")
    les = arr(lesion).astype(bool)
    assert les.sum() == 143
    r = build_regions(image, lesion, auto_exclusions=False)
    assert {k: r.stats[k]["voxels"] for k in BREAST1_COUNTS} == BREAST1_COUNTS
    ref = brute_shells(image, les, (1, 3, 5))
    for name, want in ref.items():
        np.testing.assert_array_equal(arr(r.masks[name]).astype(bool), want)
        assert r.stats[name]["clipped_mm3"] == 0.0
    vv = 0.664062 * 0.664062 * 2.1
    assert r.stats["intra"]["volume_mm3"] == pytest.approx(143 * vv)
    thin = [w for w in r.warnings if "thinner" in w]
    assert thin == [
        "peri1: 1 mm ring is thinner than the 2.1 mm voxel along z (slice axis); it has no voxels directly above/below the lesion"
    ]
    # and indeed: peri1 stays on the lesion's slices (8-10), peri3 reaches one slice above and below
    slices = np.flatnonzero(les.any(axis=(1, 2)))
    assert slices.tolist() == [8, 9, 10]
    assert np.flatnonzero(arr(r.masks["peri1"]).any(axis=(1, 2))).tolist() == [8, 9, 10]
    assert np.flatnonzero(arr(r.masks["peri3"]).any(axis=(1, 2))).tolist() == [7, 8, 9, 10, 11]


# ---------------------------------------------------------------- statistics, warnings, exclusions
def test_user_exclusions_removed_from_shells_only():
    img, lesion = random_case(1)
    rng = np.random.default_rng(7)
    air = rng.random(lesion.shape) < 0.3
    pect = np.zeros(lesion.shape, bool)
    pect[:, :, :5] = True
    air[np.argwhere(lesion)[0][0], :, :] = True          # guarantee air/lesion overlap
    r = build_regions(img, mask_image(lesion, img), (1.0, 2.3), air=mask_image(air, img), pectoralis=mask_image(pect, img))
    ideal = {k: arr(v).astype(bool) for k, v in compute_shells(mask_image(lesion, img), (1.0, 2.3)).items()}
    vv = float(np.prod(img.GetSpacing()))
    assert r.exclusion_source == {"air": "user", "pectoralis": "user"}
    np.testing.assert_array_equal(arr(r.masks["intra"]).astype(bool), lesion)   # never trimmed
    np.testing.assert_array_equal(arr(r.masks["air"]).astype(bool), air)
    for name, sh in ideal.items():
        kept = sh & ~(air | pect)
        np.testing.assert_array_equal(arr(r.masks[name]).astype(bool), kept)
        st = r.stats[name]
        assert st["voxels"] == kept.sum() and st["volume_mm3"] == pytest.approx(kept.sum() * vv)
        assert st["excluded_mm3"] == pytest.approx((sh & (air | pect)).sum() * vv)
        assert st["excluded_air_mm3"] == pytest.approx((sh & air).sum() * vv)
        assert st["excluded_pectoralis_mm3"] == pytest.approx((sh & pect).sum() * vv)
        assert st["excluded_mm3"] > 0
        assert (st["volume_mm3"] + st["excluded_mm3"]) == pytest.approx(sh.sum() * vv)
    n_overlap = int((air & lesion).sum())
    assert n_overlap > 0
    assert any(w.startswith(f"lesion overlaps air by {n_overlap} voxels") and "never trimmed" in w for w in r.warnings)
    assert r.exclusions["air"]["lesion_overlap_voxels"] == n_overlap


def test_auto_exclusions_wiring(monkeypatch):
    img, lesion = random_case(0)
    air = np.zeros(lesion.shape, bool)
    air[-1] = True
    air_mask = air
    seen = {}

    def fake_air(image, lesion_img=None):
        seen["air_lesion"] = int(arr(lesion_img).sum())
        return exclusions.Exclusion(mask_image(air, image), ["no air near the lesion"])

    def fake_pect(image, lesion_img=None, reach_mm=5.0, *, air=None):
        seen["reach"] = reach_mm
        seen["pect_air"] = None if air is None else bool(np.array_equal(arr(air).astype(bool), air_mask))
        return exclusions.Exclusion(mask_image(np.zeros(lesion.shape, bool), image), [])

    monkeypatch.setattr(exclusions, "detect_air", fake_air)
    monkeypatch.setattr(exclusions, "detect_pectoralis", fake_pect)
    r = build_regions(img, mask_image(lesion, img), (3, 1))
    assert seen == {"air_lesion": int(lesion.sum()), "reach": 3.0, "pect_air": True}  # auto air handed over
    assert r.distances == (1.0, 3.0)
    assert r.exclusion_source == {"air": "auto", "pectoralis": "auto"}
    assert "air (auto): no air near the lesion" in r.warnings
    np.testing.assert_array_equal(arr(r.masks["air"]).astype(bool), air)
    # user mask wins over auto; no auto -> none and empty masks
    r2 = build_regions(img, mask_image(lesion, img), (1,), pectoralis=mask_image(air, img))
    assert r2.exclusion_source == {"air": "auto", "pectoralis": "user"}
    build_regions(img, mask_image(lesion, img), (1,), air=mask_image(air, img))
    assert seen["pect_air"] is None  # a user air mask (maybe partial) is not used to calibrate the pectoralis
    r3 = build_regions(img, mask_image(lesion, img), (1,), auto_exclusions=False)
    assert r3.exclusion_source == {"air": "none", "pectoralis": "none"}
    assert arr(r3.masks["air"]).sum() == 0 and arr(r3.masks["pectoralis"]).sum() == 0
    assert r3.stats["peri1"]["excluded_mm3"] == 0.0


def test_multi_component_warning_reports_largest():
    img = sitk.Image(20, 20, 10, sitk.sitkInt16)
    img.SetSpacing((0.8, 0.8, 1.5))
    lesion = np.zeros((10, 20, 20), bool)
    lesion[3:6, 3:7, 3:7] = True     # 48 voxels
    lesion[5, 14, 14] = True         # 1 voxel
    lesion[6, 15, 15] = True         # diagonal neighbour: same component (26-connectivity)
    r = build_regions(img, mask_image(lesion, img), auto_exclusions=False)
    assert r.stats["intra"]["components"] == 2 and r.stats["intra"]["largest_component_voxels"] == 48
    w = [w for w in r.warnings if "components" in w]
    assert len(w) == 1 and "2 separate components" in w[0] and "48 voxels (46.1 mm3)" in w[0]
    assert not any("touches" in w for w in r.warnings)


def test_thin_ring_warnings_name_ring_and_axis():
    img = sitk.Image(12, 12, 12, sitk.sitkInt16)
    img.SetSpacing((1.2, 0.7, 2.0))
    lesion = np.zeros((12, 12, 12), bool)
    lesion[5:7, 5:7, 5:7] = True
    r = build_regions(img, mask_image(lesion, img), (1, 1.5, 3), auto_exclusions=False)
    thin = [w.split(" ring")[0] + " " + w.split("voxel along ")[1].split()[0] for w in r.warnings if "thinner" in w]
    assert thin == ["peri1: 1 mm x", "peri1: 1 mm z", "peri1.5: 1.5 mm z"]


def test_feature_masks_and_json_contract():
    img, lesion = random_case(0)
    r = build_regions(img, mask_image(lesion, img), (5, 1, 3), auto_exclusions=False)
    assert list(r.feature_masks()) == ["intra", "peri1", "peri3", "peri5"]
    j = json.loads(json.dumps(r.to_json()))
    assert set(j) >= {"regions", "warnings", "exclusion_source", "distances", "image", "software"}
    assert set(j["regions"]["intra"]) >= {"voxels", "volume_mm3"}
    assert set(j["regions"]["peri3"]) >= {"voxels", "volume_mm3", "excluded_mm3", "clipped_mm3"}
    assert j["distances"] == [1.0, 3.0, 5.0]


@pytest.mark.parametrize("bad", [[], [0], [-1], [float("nan")], [float("inf")], [1, 1.0], [1, 60]])
def test_bad_distances(bad):
    img, lesion = random_case(0)
    with pytest.raises(UserError):
        build_regions(img, mask_image(lesion, img), bad, auto_exclusions=False)


def test_empty_lesion_and_names():
    img, lesion = random_case(0)
    with pytest.raises(UserError, match="empty"):
        compute_shells(mask_image(np.zeros_like(lesion), img))
    assert [shell_name(d) for d in (1, 2.5, 3.0, 0.25)] == ["peri1", "peri2.5", "peri3", "peri0.25"]
    assert regions.validate_distances([5, 1, 3]) == (1.0, 3.0, 5.0)


def test_sheared_direction_refused():
    img, lesion = random_case(0)
    img.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(UserError, match="rotation"):
        compute_shells(mask_image(lesion, img))


# ---------------------------------------------------------------- CLI
def test_cli_happy_path(breast1, tmp_path):
    out = tmp_path / "out"
    res = run_cli("regions", *breast1, "-o", out, "--no-auto-exclusions")
    assert res.returncode == 0, res.stderr
    names = ["intra", "peri1", "peri3", "peri5", "air", "pectoralis"]
    # issue 11: regions also writes the QC overlay (qc_overlay.png) beside regions.json
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.nrrd" for n in names] + ["regions.json", "qc_overlay.png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]      # no temp folder left behind
    image = sitk.ReadImage(str(breast1[0]))
    for n in names:
        m = sitk.ReadImage(str(out / f"{n}.nrrd"))
        assert m.GetPixelID() == sitk.sitkUInt8
        assert m.GetSize() == image.GetSize()
        np.testing.assert_allclose(m.GetOrigin(), image.GetOrigin(), atol=1e-6)
        np.testing.assert_allclose(m.GetSpacing(), image.GetSpacing(), atol=1e-6)
        assert set(np.unique(arr(m))) <= {0, 1}
    j = json.loads((out / "regions.json").read_text(encoding="utf-8"))
    assert {k: j["regions"][k]["voxels"] for k in BREAST1_COUNTS} == BREAST1_COUNTS
    assert j["regions"]["intra"]["voxels"] == 143
    assert j["exclusion_source"] == {"air": "none", "pectoralis": "none"}
    assert any("peri1" in w and "along z" in w for w in j["warnings"])
    assert arr(sitk.ReadImage(str(out / "peri3.nrrd"))).sum() == 885
    assert "peri5" in res.stdout and "2224" in res.stdout


def test_cli_label_and_user_mask(tmp_path):
    img, lesion = random_case(1)
    lab = lesion.astype(np.uint8) * 3
    lab[0, 0, 0] = 7
    pect = np.zeros(lesion.shape, np.uint8)
    pect[:, :, :4] = 1
    sitk.WriteImage(img, str(tmp_path / "img.nrrd"))
    sitk.WriteImage(mask_image(lab, img), str(tmp_path / "les.nrrd"))
    sitk.WriteImage(mask_image(pect, img), str(tmp_path / "pect.nii.gz"))
    res = run_cli("regions", tmp_path / "img.nrrd", tmp_path / "les.nrrd", "-o", tmp_path / "o", "--label", "3",
                  "--distances", "2.3", "1", "--pectoralis", tmp_path / "pect.nii.gz", "--no-auto-exclusions")
    assert res.returncode == 0, res.stderr
    j = json.loads((tmp_path / "o" / "regions.json").read_text(encoding="utf-8"))
    assert j["exclusion_source"] == {"air": "none", "pectoralis": "user"}
    assert j["regions"]["intra"]["voxels"] == int(lesion.sum())
    assert sorted(j["regions"]) == ["intra", "peri1", "peri2.3"]
    np.testing.assert_array_equal(arr(sitk.ReadImage(str(tmp_path / "o" / "pectoralis.nrrd"))), pect)


def _write_bad_inputs(d):
    img, lesion = random_case(0)
    sitk.WriteImage(img, str(d / "img.nrrd"))
    sitk.WriteImage(mask_image(lesion, img), str(d / "les.nrrd"))
    other = sitk.Image(img)
    other.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(mask_image(lesion, other), str(d / "les_grid.nrrd"))
    sitk.WriteImage(mask_image(np.zeros_like(lesion), img), str(d / "les_empty.nrrd"))
    sitk.WriteImage(mask_image(lesion.astype(np.uint8) * np.uint8(2) + (np.indices(lesion.shape)[0] == 0), img),
                    str(d / "les_multi.nrrd"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((10, 12), np.int16)), str(d / "img2d.nrrd"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 8, 10, 12), np.int16), isVector=False), str(d / "img4d.nrrd"))


BAD = {
    "missing image": (["nope.nrrd", "les.nrrd"], "not found"),
    "missing lesion": (["img.nrrd", "nope.nrrd"], "not found"),
    "grid mismatch": (["img.nrrd", "les_grid.nrrd"], "grid"),
    "empty lesion": (["img.nrrd", "les_empty.nrrd"], "empty"),
    "non-binary lesion": (["img.nrrd", "les_multi.nrrd"], "--label"),
    "absent label": (["img.nrrd", "les_multi.nrrd", "--label", "9"], "label 9"),
    "2D image": (["img2d.nrrd", "les.nrrd"], "2D"),
    "4D image": (["img4d.nrrd", "les.nrrd"], "4D"),
    "negative distance": (["img.nrrd", "les.nrrd", "--distances", "1", "-3"], "positive"),
    "zero distance": (["img.nrrd", "les.nrrd", "--distances", "0"], "positive"),
    "nan distance": (["img.nrrd", "les.nrrd", "--distances", "nan"], "positive"),
    "repeated distance": (["img.nrrd", "les.nrrd", "--distances", "3", "3.0"], "repeat"),
    "text distance": (["img.nrrd", "les.nrrd", "--distances", "x"], "invalid float"),
    "air mask off grid": (["img.nrrd", "les.nrrd", "--air", "les_grid.nrrd"], "air mask is not on the image grid"),
    "pectoralis mask not 0/1": (["img.nrrd", "les.nrrd", "--pectoralis", "les_multi.nrrd"], "give a 0/1 mask"),
    "missing air mask": (["img.nrrd", "les.nrrd", "--air", "nope.nrrd"], "air mask file not found"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_cli_bad_input_exit_2_nothing_written(tmp_path, case):
    _write_bad_inputs(tmp_path)
    args, needle = BAD[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    res = run_cli("regions", *args, "-o", tmp_path / "new" / "out", cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and needle in lines[0], lines
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before      # no folder, no temp leftovers


def test_cli_output_is_file_or_existing_folder(tmp_path):
    _write_bad_inputs(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    res = run_cli("regions", "img.nrrd", "les.nrrd", "-o", "afile", "--no-auto-exclusions", cwd=tmp_path)
    assert res.returncode == 2 and "not a folder" in res.stderr and (tmp_path / "afile").read_text(encoding="utf-8") == "keep me"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    res = run_cli("regions", "img.nrrd", "les.nrrd", "-o", "out", "--no-auto-exclusions", "--distances", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["notes.txt", "intra.nrrd", "peri2.nrrd", "air.nrrd", "pectoralis.nrrd", "regions.json",
         "qc_overlay.png"])  # issue 11: the QC overlay is written with the regions
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------- issue 11: confidence record, QC overlay, --exclusion-image
def _small_phantom():
    from her2radiomics.phantom import make_phantom

    return make_phantom(11, (160, 160, 48), (2.07, 2.07, 4.0), lesion_gap_mm=4.0, rim=0.8)


def test_regions_json_records_exclusion_confidence_and_qc_overlay(tmp_path):
    import matplotlib.image as mpimg

    ph = _small_phantom()
    r = build_regions(ph.image, ph.lesion)
    for name in ("air", "pectoralis"):
        rec = r.exclusions[name]
        assert 0.0 <= rec["confidence"] <= 1.0 and isinstance(rec["review"], bool)
        assert rec["review"] is (rec["confidence"] < rec["review_below"]) and rec["detected_on"] == "image"
    assert r.exclusions["pectoralis"]["contrast"] == "fat-suppressed"
    out = tmp_path / "out"
    regions.write_regions(r, out, qc_image=ph.image)
    j = json.loads((out / "regions.json").read_text(encoding="utf-8"))
    assert j["qc_overlay"] == "qc_overlay.png" and set(j["exclusions"]["air"]) >= {"confidence", "review"}
    png = mpimg.imread(out / "qc_overlay.png")
    assert png.ndim == 3 and png.shape[0] > 200 and png.shape[1] > 400
    rgb = png[..., :3]
    red = (rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
    yellow = (rgb[..., 0] > 0.9) & (rgb[..., 1] > 0.7) & (rgb[..., 2] < 0.3)
    assert red.sum() > 20 and yellow.sum() > 20  # lesion and pectoralis contours are drawn


def test_qc_display_orientation_follows_the_direction_matrix():
    from her2radiomics.qc import _display

    img = sitk.Image(4, 3, 2, sitk.sitkUInt8)
    a = np.arange(12).reshape(3, 4)
    assert np.array_equal(_display(a, img), a)  # identity: rows anterior -> posterior, columns right -> left
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # Duke-like: both flipped
    assert np.array_equal(_display(a, img), a[::-1, ::-1])


def test_cli_exclusion_image_detects_on_another_phase(tmp_path):
    ph = _small_phantom()
    img_p, les_p, sub_p = tmp_path / "img.nrrd", tmp_path / "les.nrrd", tmp_path / "sub.nrrd"
    sitk.WriteImage(ph.image, str(img_p))
    sitk.WriteImage(ph.lesion, str(les_p))
    sitk.WriteImage(sitk.Cast(ph.image, sitk.sitkFloat32) - 60.0, str(sub_p))  # signed "subtraction"
    res = run_cli("regions", sub_p, les_p, "-o", tmp_path / "a")
    assert res.returncode == 0, res.stderr
    ja = json.loads((tmp_path / "a" / "regions.json").read_text(encoding="utf-8"))
    assert ja["exclusions"]["pectoralis"]["review"] and "REVIEW" in res.stdout
    res = run_cli("regions", sub_p, les_p, "-o", tmp_path / "b", "--exclusion-image", img_p)
    assert res.returncode == 0, res.stderr
    jb = json.loads((tmp_path / "b" / "regions.json").read_text(encoding="utf-8"))
    assert jb["exclusions"]["air"]["detected_on"] == "exclusion_image"
    assert jb["inputs"]["exclusion_image"].endswith("img.nrrd")
    direct = build_regions(ph.image, ph.lesion)
    for name in ("air", "pectoralis"):
        got = arr(sitk.ReadImage(str(tmp_path / "b" / f"{name}.nrrd"))).astype(bool)
        assert np.array_equal(got, arr(direct.masks[name]).astype(bool))
        assert jb["exclusions"][name]["review"] == direct.exclusions[name]["review"]
    # another grid: one error line, exit 2, nothing written
    other = sitk.RegionOfInterest(ph.image, [100, 100, 40], [0, 0, 0])
    sitk.WriteImage(other, str(tmp_path / "other.nrrd"))
    res = run_cli("regions", img_p, les_p, "-o", tmp_path / "c", "--exclusion-image", tmp_path / "other.nrrd")
    assert res.returncode == 2 and res.stderr.startswith("error:") and "exclusion image" in res.stderr
    assert not (tmp_path / "c").exists()
