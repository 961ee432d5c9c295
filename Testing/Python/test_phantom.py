"""Synthetic phantom: determinism, geometry (incl. non-identity direction), anatomy and signal parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import run_cli
from scipy import ndimage

from her2radiomics.errors import UserError
from her2radiomics.geometry import same_grid
from her2radiomics.phantom import make_phantom

SMALL = {"size": (160, 160, 48), "spacing": (2.07, 2.07, 4.0)}  # the default 331 x 331 x 192 mm field of view
DUKE_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


@pytest.fixture(scope="module")
def ph0():
    return make_phantom(0, **SMALL)


def test_deterministic_and_seed_dependent(ph0):
    again = make_phantom(0, **SMALL)
    other = make_phantom(1, **SMALL)
    for name in ("image", "lesion", "air", "pectoralis"):
        assert np.array_equal(arr(getattr(ph0, name)), arr(getattr(again, name))), name
    assert ph0.meta == again.meta
    assert not np.array_equal(arr(ph0.image), arr(other.image))
    assert ph0.meta["lesion"]["centre_lps_mm"] != other.meta["lesion"]["centre_lps_mm"]


def test_masks_binary_on_grid_and_disjoint(ph0):
    assert ph0.image.GetPixelID() == sitk.sitkInt16
    masks = {n: arr(getattr(ph0, n)) for n in ("lesion", "air", "pectoralis")}
    for name, m in masks.items():
        assert same_grid(getattr(ph0, name), ph0.image), name
        assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}, name
    assert not (masks["lesion"] & masks["air"]).any()
    assert not (masks["lesion"] & masks["pectoralis"]).any()
    assert not (masks["air"] & masks["pectoralis"]).any()
    # the lesion volume is the sphere volume within the +-12 % lobulation
    r = ph0.meta["lesion"]["radius_mm"]
    vol = masks["lesion"].sum() * np.prod(ph0.image.GetSpacing())
    assert 0.7 * (4 / 3 * np.pi * r**3) < vol < 1.4 * (4 / 3 * np.pi * r**3)


def test_air_is_outside_the_body(ph0):
    img, air = arr(ph0.image), arr(ph0.air).astype(bool)
    # air is dark (Rician noise only: Rayleigh mean sigma*sqrt(pi/2) ~ 10 for sigma 8)
    assert img[air].mean() < 15 and np.median(img[~air]) > 50
    # no enclosed air: every air component of every axial slice touches the in-plane border
    for k in range(air.shape[0]):
        lab, n = ndimage.label(air[k])
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        assert set(range(1, n + 1)) <= set(border.tolist()), k


def _physical_points(img: sitk.Image, mask: np.ndarray) -> np.ndarray:
    """LPS coordinates (mm) of the voxels of a (z, y, x) mask."""
    idx = np.argwhere(mask)[:, ::-1].astype(float)  # (i, j, k)
    d = np.array(img.GetDirection()).reshape(3, 3)
    return np.array(img.GetOrigin()) + (idx * np.array(img.GetSpacing())) @ d.T


@pytest.mark.parametrize("direction", [None, DUKE_DIRECTION])
def test_anatomy_order_along_physical_axes(direction):
    ph = make_phantom(2, **SMALL, direction=direction, lesion_gap_mm=6.0)
    les = _physical_points(ph.image, arr(ph.lesion).astype(bool))
    pec = _physical_points(ph.image, arr(ph.pectoralis).astype(bool))
    c = les.mean(0)
    assert np.allclose(c, ph.meta["lesion"]["centre_lps_mm"], atol=2.5)
    # pectoralis voxels in the lesion's column (|dx|, |dz| small) lie posterior (+y in LPS) to the lesion
    near = pec[(np.abs(pec[:, 0] - c[0]) < 6) & (np.abs(pec[:, 2] - c[2]) < 6)]
    assert len(near) > 0
    assert near[:, 1].min() > les[:, 1].max()
    # the lesion is in a breast: lateral to the midline on its side, anterior to the chest
    assert np.sign(c[0]) == (1 if ph.meta["lesion"]["side"] == "left" else -1)
    # posterior to the muscle band (same column, 15-60 mm deeper) are ribs / lungs: much darker than muscle
    img = arr(ph.image)
    pts_all = _physical_points(ph.image, np.ones(img.shape, bool))
    col = (np.abs(pts_all[:, 0] - c[0]) < 3) & (np.abs(pts_all[:, 2] - c[2]) < 3)
    vals = img.reshape(-1)[col]
    ys = pts_all[col, 1]
    muscle_vals = img[arr(ph.pectoralis).astype(bool)]
    deep = vals[(ys > near[:, 1].max() + 15) & (ys < near[:, 1].max() + 60)]
    assert np.percentile(deep, 10) < 0.5 * np.median(muscle_vals)


def test_direction_gives_the_same_physical_phantom():
    a = make_phantom(3, size=(64, 64, 24), spacing=(5.2, 5.2, 8.0))
    b = make_phantom(3, size=(24, 64, 64), spacing=(8.0, 5.2, 5.2), direction=(0, 0, 1, 0, -1, 0, -1, 0, 0))
    for name in ("image", "lesion", "air", "pectoralis"):
        on_a = sitk.Resample(getattr(b, name), getattr(a, name), sitk.Transform(), sitk.sitkNearestNeighbor, -1)
        assert np.array_equal(arr(on_a), arr(getattr(a, name))), name


def test_lesion_gap_is_the_measured_distance_to_the_muscle():
    ph = make_phantom(4, size=(224, 224, 80), spacing=(1.48, 1.48, 2.4), lesion_gap_mm=8.0)
    pec = arr(ph.pectoralis).astype(bool)
    dist = ndimage.distance_transform_edt(~pec, sampling=ph.image.GetSpacing()[::-1])
    d_min = dist[arr(ph.lesion).astype(bool)].min()
    # nominal gap is along A-P from the lesion centre minus the mean radius; lobulation is +-12 % of R
    assert 8.0 - 0.12 * 8 - 2.5 < d_min < 8.0 + 0.12 * 8 + 2.5


def _lesion_stats(ph):
    img = arr(ph.image).astype(float)
    les = arr(ph.lesion).astype(bool)
    sp = ph.image.GetSpacing()[::-1]
    inner = ndimage.distance_transform_edt(les, sampling=sp)
    outer = ndimage.distance_transform_edt(~les, sampling=sp)
    rim = img[les & (inner <= inner.max() * 0.4)].mean()
    core = img[les & (inner >= inner.max() * 0.7)].mean()
    shell = img[(outer > 0) & (outer <= 3.0) & ~arr(ph.air).astype(bool)].mean()
    return rim, core, img[les].std() / img[les].mean(), shell


def test_signal_parameters_change_what_they_should():
    kw = {"size": (128, 128, 64), "spacing": (2.6, 2.6, 3.0), "lesion_radius_mm": 10.0}
    flat = _lesion_stats(make_phantom(5, **kw, rim=0.0, heterogeneity=0.0))
    ring = _lesion_stats(make_phantom(5, **kw, rim=1.0, heterogeneity=0.0))
    rough = _lesion_stats(make_phantom(5, **kw, rim=0.0, heterogeneity=1.0))
    oedema = _lesion_stats(make_phantom(5, **kw, rim=0.0, heterogeneity=0.0, peritumoral_enhancement=1.0))
    assert 0.8 < flat[0] / flat[1] < 1.25          # uniform enhancement
    assert ring[0] / ring[1] > 3.0                 # bright rim, necrotic core
    assert rough[2] > flat[2] + 0.15               # texture amplitude raises the lesion CV
    assert oedema[3] > flat[3] * 1.3               # enhancement in the first 3 mm around the lesion
    small = make_phantom(5, **kw, breast_scale=0.7)
    large = make_phantom(5, **kw, breast_scale=1.3)
    assert (1 - arr(large.air)).sum() > (1 - arr(small.air)).sum() * 1.05
    les6 = arr(make_phantom(5, **{**kw, "lesion_radius_mm": 6.0}).lesion).sum()
    les12 = arr(make_phantom(5, **{**kw, "lesion_radius_mm": 12.0}).lesion).sum()
    assert 5.0 < les12 / les6 < 11.0               # volume ~ R^3 (ratio 8)


def test_bad_options_raise_user_errors():
    with pytest.raises(UserError, match="rim"):
        make_phantom(0, **SMALL, rim=2.0)
    with pytest.raises(UserError, match="axis-aligned"):
        make_phantom(0, **SMALL, direction=(0.8, 0.6, 0, -0.6, 0.8, 0, 0, 0, 1))
    with pytest.raises(UserError, match="does not fit"):
        make_phantom(0, size=(64, 64, 32), spacing=(0.5, 0.5, 0.5), lesion_radius_mm=20)


def test_cli_writes_everything(tmp_path):
    out = tmp_path / "ph"
    res = run_cli("phantom", "-o", out, "--seed", "7", "--size", "96", "96", "40", "--spacing", "3.45", "3.45", "4.8",
                  "--rim", "0.8", "--lesion-radius-mm", "7")
    assert res.returncode == 0, res.stderr
    for name in ("image.nrrd", "lesion.nrrd", "air.nrrd", "pectoralis.nrrd", "phantom.json"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "phantom.json").read_text(encoding="utf-8"))
    assert meta["seed"] == 7 and meta["signal"]["rim"] == 0.8
    ph = make_phantom(7, (96, 96, 40), (3.45, 3.45, 4.8), rim=0.8, lesion_radius_mm=7)
    assert np.array_equal(arr(sitk.ReadImage(str(out / "image.nrrd"))), arr(ph.image))
    bad = run_cli("phantom", "-o", tmp_path / "bad", "--rim", "5")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "image.nrrd").exists()
