"""Deterministic synthetic breast DCE-MRI phantom with ground-truth lesion, air and pectoralis masks.

The phantom imitates one fat-suppressed post-contrast phase of a *prone* axial breast DCE-MRI
(patient face down, breasts pendant in the coil): air around the body, a thorax outline whose
posterior part leaves the field of view, two pendant breasts (fat with fibroglandular texture), a
pectoralis-major band on the anterior chest wall behind the breasts, a thin fat plane, a rib /
intercostal layer, dark lungs, an enhancing heart, one lesion with heterogeneous rim enhancement,
a smooth multiplicative coil-sensitivity (bias) field and Rician noise.

Everything is built on a *canonical* grid (identity direction, LPS: i -> patient left, j ->
posterior, k -> superior) and then transposed / flipped onto the requested direction matrix, so the
anatomy is physically the same whatever the array order. The anatomy scales with the in-plane field
of view (default 448 x 448 x 0.74 mm = 331.5 mm); the lesion radius is always in mm.

Intensity model (arbitrary units, before bias and noise): air 0, skin 220, fat 70 (suppressed),
fibroglandular 260 (background parenchymal enhancement), muscle 160, intercostal 150, rib 45,
lung 18, heart / blood pool 420, other soft tissue 150, lesion up to 650 at the rim.
Rician noise: magnitude of a complex Gaussian signal (Gudbjartsson & Patz, MRM 1995;34:910-914).

:func:`make_dce_phantom` builds the same anatomy as a DCE series (pre-contrast + post-contrast phases; phase 2 is
:func:`make_phantom`'s image) with a planted lesion kinetic curve (persistent / plateau / washout) and T2-like /
ADC-like companion volumes on another grid; :func:`make_phantom_2d` its largest cross-section (docs/phantom.md).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from her2radiomics import __version__
from her2radiomics.errors import UserError
from her2radiomics.io import check_output, write_image, write_json

DEFAULT_SIZE = (448, 448, 160)
DEFAULT_SPACING = (0.74, 0.74, 1.2)
MAX_VOXELS = 128 * 2**20  # 4x the default volume; the size limit per axis alone would allow 8.6e9 voxels
#: in-plane field of view (mm) for which the anatomy constants below are written
REFERENCE_FOV_MM = 448 * 0.74
REFERENCE_FOV_Z_MM = 160 * 1.2

# tissue labels of the internal label map
AIR, SKIN, FAT, GLAND, PECTORALIS, INTERCOSTAL, RIB, LUNG, HEART, SOFT, LESION = range(11)
TISSUE_NAMES = ("air", "skin", "fat", "fibroglandular", "pectoralis", "intercostal", "rib", "lung", "heart",
                "soft_tissue", "lesion")
BASE_INTENSITY = np.array([0, 220, 70, 260, 160, 150, 45, 18, 420, 150, 0], np.float32)
LESION_PEAK = 650.0
LESION_NECROTIC = 30.0
OEDEMA_PEAK = 250.0


@dataclass
class Phantom:
    """A phantom image with its ground-truth masks (uint8 0/1 on the image grid) and metadata."""

    image: sitk.Image
    lesion: sitk.Image
    air: sitk.Image
    pectoralis: sitk.Image
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- helpers
def _axis_map(direction: tuple[float, ...] | None) -> tuple[list[int], list[int], tuple[float, ...]]:
    """Physical axis and sign of each output index axis for an axis-aligned direction matrix."""
    if direction is None:
        return [0, 1, 2], [1, 1, 1], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    d = np.asarray(direction, float)
    if d.size != 9 or not np.all(np.isfinite(d)):
        raise UserError("direction must be 9 numbers (a 3x3 direction matrix, row-major as in SimpleITK)")
    m = d.reshape(3, 3)
    rounded = np.round(m)
    if not np.allclose(m, rounded, atol=1e-6) or not np.allclose(np.abs(rounded).sum(0), 1) \
            or not np.allclose(np.abs(rounded).sum(1), 1):
        raise UserError("phantom direction must be axis-aligned (a signed permutation matrix such as "
                        "-1 0 0 0 -1 0 0 0 1); resample the phantom for oblique geometry")
    perm = [int(np.argmax(np.abs(rounded[:, a]))) for a in range(3)]
    sign = [int(rounded[perm[a], a]) for a in range(3)]
    return perm, sign, tuple(float(v) for v in rounded.ravel())


def _smooth_field(shape: tuple[int, ...], spacing_zyx: tuple[float, ...], corr_mm: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance smooth random field (correlation length ~corr_mm) on ``shape``.

    White noise on a coarse grid (cell = corr_mm / 2), Gaussian-smoothed there and linearly
    up-sampled: cheap even for large volumes.
    """
    cell = corr_mm / 2.0
    coarse = tuple(max(2, int(math.ceil(n * s / cell)) + 1) for n, s in zip(shape, spacing_zyx, strict=True))
    noise = rng.standard_normal(coarse).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 1.0, mode="wrap")
    noise -= noise.mean()
    noise /= max(float(noise.std()), 1e-6)
    out = noise
    for axis, (n, c) in enumerate(zip(shape, coarse, strict=True)):
        # linear interpolation matrix (n x c) mapping coarse cell centres onto fine voxel centres
        pos = (np.arange(n) + 0.5) * (c / n) - 0.5
        i0 = np.clip(np.floor(pos).astype(int), 0, c - 1)
        i1 = np.clip(i0 + 1, 0, c - 1)
        w = np.clip(pos - i0, 0, 1).astype(np.float32)
        mat = np.zeros((n, c), np.float32)
        mat[np.arange(n), i0] += 1 - w
        mat[np.arange(n), i1] += w
        out = np.moveaxis(np.tensordot(mat, out, axes=([1], [axis])), 0, axis)
    return out.astype(np.float32, copy=False)


def _check_args(size, spacing, lesion_radius_mm, rim, heterogeneity, peritumoral_enhancement, breast_scale,
                noise, bias) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    try:
        size_t = tuple(int(v) for v in size)
        spacing_t = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise UserError("size must be 3 integers and spacing 3 numbers (x y z)") from None
    if len(size_t) != 3 or len(spacing_t) != 3:
        raise UserError("size and spacing need 3 values each (x y z)")
    if min(size_t) < 16 or max(size_t) > 2048:
        raise UserError(f"phantom size {size_t} must be between 16 and 2048 voxels per axis")
    n_vox = size_t[0] * size_t[1] * size_t[2]
    if n_vox > MAX_VOXELS:  # ~25 bytes per voxel at peak (0.8 GB for the default 448 x 448 x 160)
        raise UserError(f"phantom size {size_t} is {n_vox:,} voxels, more than {MAX_VOXELS:,} (about "
                        f"{MAX_VOXELS * 25 / 1e9:.1f} GB of memory); use a smaller size or a coarser spacing")
    if not all(math.isfinite(s) and 0.05 <= s <= 20 for s in spacing_t):
        raise UserError(f"phantom spacing {spacing_t} must be between 0.05 and 20 mm")
    checks = {
        "lesion_radius_mm": (lesion_radius_mm, 0.5, 60.0), "rim": (rim, 0.0, 1.0),
        "heterogeneity": (heterogeneity, 0.0, 1.0), "peritumoral_enhancement": (peritumoral_enhancement, 0.0, 2.0),
        "breast_scale": (breast_scale, 0.5, 1.5), "noise": (noise, 0.0, 100.0), "bias": (bias, 0.0, 0.6),
    }
    for name, (value, lo, hi) in checks.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and lo <= value <= hi):
            raise UserError(f"{name}={value!r} is out of range; use a value in [{lo:g}, {hi:g}]")
    return size_t, spacing_t  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- builder steps
# make_phantom runs these steps in order on one random stream; each step draws its random numbers in the
# same order as before the split, so the output is bit-for-bit the same (tested by hashing the arrays).
def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


@dataclass
class _Grid:
    """The canonical grid: voxel-centre coordinates (mm, centred on the origin) and the anatomy scales."""

    x: np.ndarray  # + = patient left
    y: np.ndarray  # + = posterior
    z: np.ndarray  # + = superior
    spacing: tuple[float, float, float]  # (sx, sy, sz)
    s: float  # in-plane anatomy scale
    sz_scale: float  # S-I anatomy scale

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.z), len(self.y), len(self.x)

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        sx, sy, sz = self.spacing
        return sz, sy, sx

    @property
    def fov(self) -> tuple[float, float, float]:
        return len(self.x) * self.spacing[0], len(self.y) * self.spacing[1], len(self.z) * self.spacing[2]


def _canonical_grid(size_c: list[int], spacing_c: list[float]) -> _Grid:
    nx, ny, nz = size_c
    sx, sy, sz = spacing_c
    x = ((np.arange(nx) - (nx - 1) / 2) * sx).astype(np.float32)
    y = ((np.arange(ny) - (ny - 1) / 2) * sy).astype(np.float32)
    z = ((np.arange(nz) - (nz - 1) / 2) * sz).astype(np.float32)
    fov_x, fov_y, fov_z = nx * sx, ny * sy, nz * sz
    return _Grid(x, y, z, (sx, sy, sz), min(fov_x, fov_y) / REFERENCE_FOV_MM, fov_z / REFERENCE_FOV_Z_MM)


@dataclass
class _Body:
    """Thorax outline and chest-wall layers: the label map and what later steps need from it."""

    lab: np.ndarray  # (z, y, x) uint8 tissue labels
    lab2: np.ndarray  # in-plane label map extruded along z outside the chest-wall band
    depth2: np.ndarray  # in-plane depth inside the thorax outline (mm)
    band2: np.ndarray  # in-plane pixels of the z-dependent chest-wall band
    yy: np.ndarray  # band pixel rows
    xx: np.ndarray  # band pixel columns
    t_zx: np.ndarray  # pectoralis thickness per (z, x)
    skin_mm: float
    f_mm: float  # skin + subcutaneous fat (mm)
    t0: float  # nominal pectoralis thickness (mm)


def _thorax_and_chest_wall(g: _Grid, rng: np.random.Generator) -> _Body:
    """Thorax (extruded ellipse, posterior part outside the FOV), its depth map, and the chest-wall layers."""
    x, y, z, s = g.x, g.y, g.z, g.s
    nz, ny, nx = g.shape
    fov_z = g.fov[2]
    # ---- thorax (extruded ellipse, posterior part outside the FOV) and its depth map (mm inside)
    a_th = 150.0 * s * _u(rng, 0.95, 1.05)
    b_th = 150.0 * s * _u(rng, 0.95, 1.05)
    yc = -45.0 * s + b_th + _u(rng, -4, 4) * s  # anterior chest surface at the midline ~ -45 mm
    U = x[None, :] / a_th
    V = (y[:, None] - yc) / b_th
    r = np.sqrt(U * U + V * V)
    grad = np.sqrt((U / a_th) ** 2 + (V / b_th) ** 2) / np.maximum(r, 1e-6)
    depth2 = ((1.0 - r) / np.maximum(grad, 1e-9)).astype(np.float32)  # first-order distance to the outline
    anterior2 = np.broadcast_to(V < -0.25, (ny, nx))

    # ---- chest-wall layers: skin, subcutaneous fat, pectoralis, fat plane, ribs / intercostals
    skin_mm = 1.5
    f_mm = skin_mm + max(2.5, 4.0 * s * _u(rng, 0.8, 1.2))
    x_med, x_lat = 18.0 * s * _u(rng, 0.8, 1.2), 135.0 * s * _u(rng, 0.9, 1.05)
    t0 = _u(rng, 9.0, 13.0) * max(s, 0.45)
    ax = np.abs(x)
    taper = np.clip(np.sin(np.pi * np.clip((ax - x_med) / (x_lat - x_med), 0, 1)), 0, 1) ** 0.5
    zfrac = (z - z[0]) / max(fov_z, 1e-6)  # 0 inferior -> 1 superior
    t_zx = (t0 * (0.7 + 0.3 * zfrac)[:, None] * taper[None, :]).astype(np.float32)
    t_zx[t_zx < 1.0] = 0.0
    fp_mm = max(1.5, 2.0 * s)
    w_mm = max(6.0, 12.0 * s)
    rib_period, rib_phase = 24.0 * max(s, 0.5), _u(rng, 0, 2 * np.pi)
    rib_zx = np.sin(2 * np.pi * (z[:, None] + 0.35 * ax[None, :]) / rib_period + rib_phase) > 0.15

    # in-plane label map (extruded along z), then the z-dependent chest-wall band on its pixels only
    deep = depth2 > f_mm + t0 + fp_mm + w_mm + 2.0
    xl, yl = 70.0 * s * _u(rng, 0.9, 1.1), yc + 5.0 * s
    lung2 = deep & ((((np.abs(x[None, :]) - xl) / (52.0 * s)) ** 2 + ((y[:, None] - yl) / (85.0 * s)) ** 2) <= 1)
    heart_c = (12.0 * s, -45.0 * s + f_mm + w_mm + t0 + 40.0 * s)
    heart2 = deep & ((((x[None, :] - heart_c[0]) / (38.0 * s)) ** 2
                      + ((y[:, None] - heart_c[1]) / (32.0 * s)) ** 2) <= 1)
    lab2 = np.full((ny, nx), SOFT, np.uint8)
    lab2[lung2] = LUNG
    lab2[heart2] = HEART
    lab2[depth2 < f_mm] = FAT
    lab2[depth2 < skin_mm] = SKIN
    lab2[depth2 < 0] = AIR
    lab = np.empty((nz, ny, nx), np.uint8)
    lab[...] = lab2[None]
    band2 = (depth2 >= f_mm) & (depth2 < f_mm + t0 + fp_mm + w_mm + 1.0)
    yy, xx = np.nonzero(band2)
    dd = depth2[yy, xx][None, :]
    tb = t_zx[:, xx]
    cwb = f_mm + tb + fp_mm * (tb > 0)
    ant = anterior2[yy, xx][None, :]
    vals = np.broadcast_to(lab2[yy, xx][None, :], tb.shape).copy()
    in_cw = (dd >= cwb) & (dd < cwb + w_mm)
    ribs = rib_zx[:, xx]
    vals[in_cw & ribs] = RIB
    vals[in_cw & ~ribs] = INTERCOSTAL
    vals[(dd < cwb) & ant] = FAT
    vals[(dd < f_mm + tb) & ant] = PECTORALIS
    lab[:, yy, xx] = vals
    return _Body(lab, lab2, depth2, band2, yy, xx, t_zx, skin_mm, f_mm, t0)


def _breasts(g: _Grid, body: _Body, breast_scale: float, rng: np.random.Generator
             ) -> tuple[list[dict], dict[int, tuple]]:
    """Pendant half-ellipsoids hanging anteriorly from the chest, narrowing to the tip (labels written into
    ``body.lab``); returns the breasts' parameters and each breast's box with its fibroglandular field."""
    x, y, z, s = g.x, g.y, g.z, g.s
    depth2, lab, f_mm, skin_mm = body.depth2, body.lab, body.f_mm, body.skin_mm
    fov_z, ymin = g.fov[2], float(y[0])
    breasts = []
    gland_field_cache = {}
    for side in (-1, 1):  # -1 = patient right (x < 0), +1 = patient left
        bs = breast_scale * _u(rng, 0.93, 1.07)
        cx = side * 78.0 * s * _u(rng, 0.95, 1.05)
        ix_c = int(np.argmin(np.abs(x - cx)))
        col = depth2[:, ix_c]
        y_front = float(y[int(np.argmax(col >= 0))])
        y0 = y_front + 30.0 * s  # ellipsoid centre inside the chest: the breast base merges smoothly
        Rx = 60.0 * s * bs
        Rz = min(64.0 * g.sz_scale * bs, 0.45 * fov_z)
        Ry = min(30.0 * s + 95.0 * s * bs, y0 - (ymin + 12.0 * s))
        cz = _u(rng, -8, 8) * g.sz_scale

        def rng_idx(vec, lo, hi):  # bounding box (canonical indices)
            i0 = int(np.searchsorted(vec, lo, side="left"))
            i1 = int(np.searchsorted(vec, hi, side="right"))
            return max(0, i0), min(len(vec), i1)
        bx = rng_idx(x, cx - Rx - 2, cx + Rx + 2)
        by = rng_idx(y, y0 - Ry - 2, y0 + 0.6 * Ry)
        bz = rng_idx(z, cz - Rz - 2, cz + Rz + 2)
        if bx[0] >= bx[1] or by[0] >= by[1] or bz[0] >= bz[1]:
            continue
        xs, ys, zs = x[bx[0]:bx[1]], y[by[0]:by[1]], z[bz[0]:bz[1]]
        tip = np.clip((y0 - ys) / Ry, 0, 1)  # 0 at the centre, 1 at the tip
        post = np.clip((ys - y0) / Ry, 0, 1)  # behind the centre the breast narrows into the chest
        narrow = (1.0 - 0.15 * tip - 0.8 * post)[None, :, None]
        q = (((xs[None, None, :] - cx) / (Rx * narrow)) ** 2 + ((ys[None, :, None] - y0) / Ry) ** 2
             + ((zs[:, None, None] - cz) / (Rz * narrow)) ** 2)
        inside = q <= 1.0
        rmin = min(Rx * 0.75, Ry, Rz * 0.75)
        central = 1.0 - np.sqrt(q)
        skin_b = inside & (central * rmin < skin_mm)
        sub = lab[bz[0]:bz[1], by[0]:by[1], bx[0]:bx[1]]
        dsub = np.broadcast_to(depth2[None, by[0]:by[1], bx[0]:bx[1]], sub.shape)
        breast_region = inside & (dsub < f_mm)
        # fibroglandular tissue: smooth random field, denser centrally, kept off the chest (retromammary fat)
        gfield = _smooth_field(sub.shape, g.spacing_zyx, 9.0 * max(s, 0.4), rng)
        gland_field_cache[side] = (bz, by, bx, gfield)
        retro = _u(rng, 0.0, 4.0) * max(s, 0.5)
        gland = breast_region & (gfield + 2.2 * central - 1.0 > 0.35) & (dsub < -retro - 1.0) & ~skin_b
        sub[breast_region] = FAT
        sub[gland] = GLAND
        sub[skin_b & (dsub < 0)] = SKIN
        breasts.append({"side": "left" if side > 0 else "right", "cx": cx, "cz": cz, "y_base": y0, "Rx": Rx,
                        "Ry": Ry, "Rz": Rz})
    if not breasts:
        raise UserError("the field of view is too small for the phantom anatomy; use a larger size or spacing")
    return breasts, gland_field_cache


def _place_lesion(g: _Grid, body: _Body, breasts: list[dict], R: float, lesion_gap_mm: float | None,
                  rng: np.random.Generator) -> tuple[float, float, float, float, str]:
    """Lesion centre (x, y, z mm), gap and side: inside one breast at a chosen / random gap in front of the
    pectoralis, with a margin of 3 mm + lobulation to the breast surface."""
    x, y, z = g.x, g.y, g.z
    near = lesion_gap_mm if lesion_gap_mm is not None else (
        _u(rng, 3, 12) if rng.random() < 0.4 else _u(rng, 15, 40))
    order = [int(rng.integers(0, len(breasts)))] + list(range(len(breasts)))
    for attempt in range(200):
        br = breasts[order[min(attempt // 60, len(order) - 1)]] if attempt < 120 else breasts[order[0]]
        gap = near if attempt < 120 else max(0.0, near * (1 - (attempt - 120) / 80))
        lx = br["cx"] + _u(rng, -0.35, 0.35) * br["Rx"] * (0.3 if attempt >= 60 else 1.0)
        lz = br["cz"] + _u(rng, -0.3, 0.3) * br["Rz"] * (0.3 if attempt >= 60 else 1.0)
        ixl = int(np.argmin(np.abs(x - lx)))
        izl = int(np.argmin(np.abs(z - lz)))
        t_here = float(body.t_zx[izl, ixl])
        col = body.depth2[:, ixl]
        if t_here < 3.0 or not np.any(col >= body.f_mm):
            continue
        y_muscle = float(y[int(np.argmax(col >= body.f_mm))])
        ly = y_muscle - gap - R
        tipf = np.clip((br["y_base"] - ly) / br["Ry"], 0, 1)
        nar = 1 - 0.15 * tipf
        qc = (((lx - br["cx"]) / (br["Rx"] * nar)) ** 2 + ((ly - br["y_base"]) / br["Ry"]) ** 2
              + ((lz - br["cz"]) / (br["Rz"] * nar)) ** 2)
        rmin = min(br["Rx"] * nar, br["Ry"], br["Rz"] * nar)
        if math.sqrt(qc) <= 1 - (1.15 * R + 3.0) / rmin:
            return lx, ly, lz, gap, br["side"]
    raise UserError(f"a lesion of radius {R:g} mm does not fit in the phantom breasts for this field of view; "
                    "use a smaller lesion_radius_mm or a larger size/spacing")


@dataclass
class _LesionShape:
    """The lesion on its local box: distances to the centre, the lobulated surface radius and the mask."""

    box: tuple[slice, slice, slice]  # canonical (z, y, x) box
    rr: np.ndarray  # distance to the centre (mm)
    rho: np.ndarray  # rr / surface radius
    r_surf: np.ndarray  # surface radius along each voxel's direction (mm)
    mask: np.ndarray  # bool, lesion voxels of the box


def _lesion_shape(g: _Grid, lab: np.ndarray, centre: tuple[float, float, float], R: float,
                  rng: np.random.Generator) -> _LesionShape:
    """Lobulated sphere (radius * (1 + 0.12 * low-order harmonics)) on a local box, written into ``lab``."""
    x, y, z = g.x, g.y, g.z
    nz, ny, nx = g.shape
    lx, ly, lz = centre
    pad = 1.15 * R + 10.0
    lbx = (max(0, int(np.searchsorted(x, lx - pad))), min(nx, int(np.searchsorted(x, lx + pad)) + 1))
    lby = (max(0, int(np.searchsorted(y, ly - pad))), min(ny, int(np.searchsorted(y, ly + pad)) + 1))
    lbz = (max(0, int(np.searchsorted(z, lz - pad))), min(nz, int(np.searchsorted(z, lz + pad)) + 1))
    dx = x[lbx[0]:lbx[1]][None, None, :] - lx
    dy = y[lby[0]:lby[1]][None, :, None] - ly
    dz = z[lbz[0]:lbz[1]][:, None, None] - lz
    rr = np.sqrt(dx * dx + dy * dy + dz * dz)
    rs = np.maximum(rr, 1e-6)
    ux_, uy_, uz_ = dx / rs, dy / rs, dz / rs
    h = (rng.uniform(-1, 1) * ux_ + rng.uniform(-1, 1) * uy_ * uz_
         + rng.uniform(-1, 1) * np.cos(3 * np.arctan2(uy_, ux_) + rng.uniform(0, 6.3)) * (1 - uz_ * uz_)
         + rng.uniform(-1, 1) * (3 * uz_ * uz_ - 1) / 2)
    r_surf = R * (1.0 + 0.12 * h / 2.0)
    rho = rr / r_surf
    les_local = rho <= 1.0
    box = (slice(*lbz), slice(*lby), slice(*lbx))
    lsub = lab[box]
    les_local &= lsub != AIR
    lsub[les_local] = LESION
    return _LesionShape(box, rr, rho, r_surf, les_local)


def _tissue_image(body: _Body, gland_fields: dict[int, tuple], les: _LesionShape, table: np.ndarray) -> np.ndarray:
    """Intensity per tissue label (``table``) with the fibroglandular / fat texture of each breast field.

    The label map equals the extruded ``lab2`` outside the band and the breast / lesion boxes, so the lookup
    is done in 2D and patched there (a full 3D fancy lookup is slow).
    """
    lab, yy, xx = body.lab, body.yy, body.xx
    img = np.empty(lab.shape, np.float32)
    img[...] = table[body.lab2][None]
    img[:, yy, xx] = table[lab[:, yy, xx]]
    for bz, by, bx, _ in gland_fields.values():
        box = (slice(*bz), slice(*by), slice(*bx))
        img[box] = table[lab[box]]
    img[les.box] = table[lab[les.box]]
    # textures: fibroglandular / fat from the breast field
    for bz, by, bx, gfield in gland_fields.values():
        sl = (slice(*bz), slice(*by), slice(*bx))
        sub_lab, sub_img = lab[sl], img[sl]
        tex_amp = np.where(sub_lab == GLAND, np.float32(0.12), np.where(sub_lab == FAT, np.float32(0.04),
                                                                             np.float32(0.0)))
        tex_amp *= gfield
        tex_amp += 1.0
        sub_img *= tex_amp
    return img


def _lesion_enhancement(les: _LesionShape, ltex: np.ndarray, rim: float, heterogeneity: float) -> np.ndarray:
    """Lesion signal on its box: rim profile, texture, necrotic core for a strong rim."""
    w = np.clip((les.rho - 0.45) / 0.45, 0, 1) ** 1.5
    enh = LESION_PEAK * ((1 - rim) + rim * w) + LESION_NECROTIC * rim * (1 - w)
    return enh * np.clip(1.0 + 0.6 * heterogeneity * ltex, 0.05, None)


def _oedema(les: _LesionShape, ltex: np.ndarray, peritumoral_enhancement: float) -> np.ndarray:
    """Oedema-like enhancement decaying over ~2.5 mm outside the lesion (zero beyond 8 mm), on the lesion box."""
    outside = np.clip(les.rr - les.r_surf, 0, None)
    oed = peritumoral_enhancement * OEDEMA_PEAK * np.exp(-outside / 2.5) * (outside <= 8.0)
    return oed * np.clip(1.0 + 0.3 * ltex, 0, None)


def _paint_lesion(img: np.ndarray, lab: np.ndarray, les: _LesionShape, enh: np.ndarray,
                  oedema: np.ndarray | None) -> None:
    """Write the lesion signal, and the oedema onto the surrounding breast tissue, into ``img`` (in place)."""
    limg = img[les.box]
    limg[les.mask] = enh[les.mask]
    if oedema is not None:
        breast_tissue = np.isin(lab[les.box], (FAT, GLAND)) & ~les.mask
        limg[breast_tissue] += oedema[breast_tissue]


@dataclass
class _Shading:
    """Soft-tissue texture and coil shading as one multiplicative field, in separable per-slice factors."""

    g1: np.ndarray
    g2: np.ndarray
    b0: np.ndarray
    bxz: np.ndarray
    cz: np.ndarray
    sz: np.ndarray


def _shading(g: _Grid, body: _Body, bias: float, rng: np.random.Generator) -> _Shading:
    """Soft-tissue texture and coil shading (brighter anteriorly near the breast coil, smooth lateral / z
    variation), applied as one multiplicative field."""
    x, y, z = g.x, g.y, g.z
    nz, ny, nx = g.shape
    sx, sy, _ = g.spacing
    fov_x, fov_y, fov_z = g.fov
    f1 = _smooth_field((ny, nx), (sy, sx), 12.0, rng)
    f2 = _smooth_field((ny, nx), (sy, sx), 12.0, rng)
    ph = (2 * np.pi * z / 40.0).astype(np.float32)
    amp2 = np.where(body.lab2 == SOFT, 0.08, 0.0).astype(np.float32)
    amp2[body.band2] = 0.03
    yn = (y - y.mean()) / max(fov_y, 1e-6)
    by_ = (1.0 - bias * 1.2 * yn).astype(np.float32)[:, None]
    cphase = _u(rng, 0, 2 * np.pi)
    bxz = (1.0 + bias * 0.35 * np.cos(2 * np.pi * x / (1.5 * fov_x) + cphase)[None, :]
           * np.cos(np.pi * z / (1.6 * max(fov_z, 1e-6)))[:, None]).astype(np.float32)
    g1, g2 = amp2 * f1 * by_, amp2 * f2 * by_
    b0 = np.ascontiguousarray(np.broadcast_to(by_, (ny, nx)))
    return _Shading(g1, g2, b0, bxz, np.cos(ph), np.sin(ph))


def _shade_noise_int16(img: np.ndarray, sh: _Shading, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Slice by slice (cache-friendly): shading x texture, Rician noise (magnitude of complex Gaussian noise),
    rounding to int16; the random stream is drawn in slice order, so the result is deterministic.
    ``img`` (float32, z y x) is overwritten."""
    nz, ny, nx = img.shape
    img_i16 = np.empty((nz, ny, nx), np.int16)
    sig = np.float32(noise)
    n1 = np.empty((ny, nx), np.float32)
    n2 = np.empty((ny, nx), np.float32)
    m = np.empty((ny, nx), np.float32)
    for k in range(nz):
        np.multiply(sh.g1, sh.cz[k], out=m)
        m += sh.g2 * sh.sz[k]
        m += sh.b0
        m *= sh.bxz[k][None, :]
        sl = img[k]
        sl *= m
        if noise > 0:
            rng.standard_normal((ny, nx), dtype=np.float32, out=n1)
            rng.standard_normal((ny, nx), dtype=np.float32, out=n2)
            n1 *= sig
            sl += n1
            np.square(sl, out=sl)
            n2 *= sig
            np.square(n2, out=n2)
            sl += n2
            np.sqrt(sl, out=sl)
        sl += np.float32(0.5)  # sl >= 0: truncation after +0.5 rounds to nearest
        np.minimum(sl, np.float32(32767), out=sl)
        img_i16[k] = sl
    return img_i16


@dataclass
class _Anatomy:
    """Everything the image steps need: the output geometry, the label map, the lesion and its textures."""

    size_t: tuple[int, int, int]
    spacing_t: tuple[float, float, float]
    perm: list[int]
    sign: list[int]
    dir_t: tuple[float, ...]
    size_c: list[int]
    spacing_c: list[float]
    grid: _Grid
    body: _Body
    breasts: list[dict]
    gland_fields: dict[int, tuple]
    lesion: _LesionShape
    placed: tuple[float, float, float, float, str]
    R: float


def _build_anatomy(seed, size, spacing, direction, breast_scale, lesion_radius_mm, rim, heterogeneity,
                   peritumoral_enhancement, lesion_gap_mm, noise, bias) -> tuple[_Anatomy, np.random.Generator]:
    """Checks, canonical grid, body, breasts and lesion geometry (the random stream is returned to go on)."""
    size_t, spacing_t = _check_args(size, spacing, lesion_radius_mm, rim, heterogeneity, peritumoral_enhancement,
                                    breast_scale, noise, bias)
    if lesion_gap_mm is not None and not (math.isfinite(lesion_gap_mm) and 0 <= lesion_gap_mm <= 80):
        raise UserError(f"lesion_gap_mm={lesion_gap_mm!r} must be between 0 and 80 mm")
    perm, sign, dir_t = _axis_map(direction)
    size_c = [0, 0, 0]
    spacing_c = [0.0, 0.0, 0.0]
    for a in range(3):
        size_c[perm[a]] = size_t[a]
        spacing_c[perm[a]] = spacing_t[a]
    if int(seed) < 0:
        raise UserError(f"seed {seed} is negative; use a seed >= 0")
    rng = np.random.default_rng(int(seed))
    g = _canonical_grid(size_c, spacing_c)
    body = _thorax_and_chest_wall(g, rng)
    breasts, gland_fields = _breasts(g, body, breast_scale, rng)
    R = float(lesion_radius_mm)
    placed = _place_lesion(g, body, breasts, R, lesion_gap_mm, rng)
    les = _lesion_shape(g, body.lab, placed[:3], R, rng)
    return _Anatomy(size_t, spacing_t, perm, sign, dir_t, size_c, spacing_c, g, body, breasts, gland_fields, les,
                    placed, R), rng


def _meta(an: _Anatomy, seed: int, lesion_voxels: int, rim, heterogeneity, peritumoral_enhancement, breast_scale,
          noise, bias) -> dict[str, Any]:
    lx, ly, lz, gap, lside = an.placed
    return {
        "format": "her2radiomics.phantom/1",
        "software": f"her2radiomics {__version__}",
        "seed": int(seed),
        "size": list(an.size_t),
        "spacing": list(an.spacing_t),
        "direction": list(an.dir_t),
        "convention": "prone axial breast DCE-MRI (fat-suppressed post-contrast look); LPS physical coordinates",
        "anatomy_scale": round(an.grid.s, 4),
        "lesion": {"centre_lps_mm": [float(lx), float(ly), float(lz)], "radius_mm": an.R, "side": lside,
                   "gap_to_pectoralis_mm": round(float(gap), 2), "voxels": int(lesion_voxels)},
        "signal": {"rim": float(rim), "heterogeneity": float(heterogeneity),
                   "peritumoral_enhancement": float(peritumoral_enhancement), "breast_scale": float(breast_scale),
                   "noise_sigma": float(noise), "bias": float(bias)},
        "tissue_intensity": {n: float(v) for n, v in zip(TISSUE_NAMES, BASE_INTENSITY, strict=True) if n != "lesion"}
        | {"lesion_rim": LESION_PEAK, "lesion_necrotic_core": LESION_NECROTIC},
        "pectoralis_thickness_mm": round(float(an.body.t0), 2),
    }


def _masks_out(an: _Anatomy, ref: sitk.Image) -> dict[str, sitk.Image]:
    lab = an.body.lab
    canon = {"lesion": np.equal(lab, LESION).view(np.uint8), "air": np.equal(lab, AIR).view(np.uint8),
             "pectoralis": np.equal(lab, PECTORALIS).view(np.uint8)}
    return {k: _to_output(v, ref, an.perm, an.sign) for k, v in canon.items()}


# --------------------------------------------------------------------------------------------- builder
def make_phantom(
    seed: int = 0,
    size: tuple[int, int, int] = DEFAULT_SIZE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
    *,
    direction: tuple[float, ...] | None = None,
    breast_scale: float = 1.0,
    lesion_radius_mm: float = 8.0,
    rim: float = 0.5,
    heterogeneity: float = 0.5,
    peritumoral_enhancement: float = 0.0,
    lesion_gap_mm: float | None = None,
    noise: float = 8.0,
    bias: float = 0.3,
) -> Phantom:
    """Build the phantom for ``seed`` (same seed and options -> identical arrays).

    Parameters
    ----------
    size, spacing : (x, y, z) of the *output* image index axes (voxels, mm).
    direction : 3x3 row-major direction matrix (axis-aligned, i.e. a signed permutation); default identity.
    breast_scale : breast size factor (0.5-1.5).
    lesion_radius_mm : mean lesion radius (the surface is lobulated by +-12 %).
    rim : rim-versus-core contrast in [0, 1]; 0 = uniform enhancement, 1 = bright rim with a necrotic
        (darker than fat) core.
    heterogeneity : amplitude in [0, 1] of the smooth texture inside the lesion.
    peritumoral_enhancement : amplitude (0-2) of oedema-like enhancement decaying over ~3 mm outside the lesion.
    lesion_gap_mm : distance from the lesion surface to the pectoralis (nominal, along A-P); random when None
        (about 40 % of seeds 3-12 mm, the others 15-40 mm).
    noise : Rician noise sigma; bias : amplitude of the multiplicative coil-shading field.

    Steps: :func:`_build_anatomy` (grid, thorax and chest wall, breasts, lesion placement and shape),
    :func:`_tissue_image` (intensities and breast texture), :func:`_lesion_enhancement` / :func:`_oedema` /
    :func:`_paint_lesion`, :func:`_shading` and :func:`_shade_noise_int16`, then the output grid.
    """
    an, rng = _build_anatomy(seed, size, spacing, direction, breast_scale, lesion_radius_mm, rim, heterogeneity,
                             peritumoral_enhancement, lesion_gap_mm, noise, bias)
    img = _tissue_image(an.body, an.gland_fields, an.lesion, BASE_INTENSITY)
    ltex = _smooth_field(img[an.lesion.box].shape, an.grid.spacing_zyx, 3.0, rng)
    enh = _lesion_enhancement(an.lesion, ltex, rim, heterogeneity)
    oed = _oedema(an.lesion, ltex, peritumoral_enhancement) if peritumoral_enhancement > 0 else None
    _paint_lesion(img, an.body.lab, an.lesion, enh, oed)
    sh = _shading(an.grid, an.body, bias, rng)
    img_i16 = _shade_noise_int16(img, sh, noise, rng)
    del img
    ref = _output_reference(an.size_c, an.spacing_c, an.perm, an.sign, an.dir_t)
    masks = _masks_out(an, ref)
    n_les = int(np.count_nonzero(an.body.lab == LESION))
    meta = _meta(an, seed, n_les, rim, heterogeneity, peritumoral_enhancement, breast_scale, noise, bias)
    return Phantom(image=_to_output(img_i16, ref, an.perm, an.sign), lesion=masks["lesion"], air=masks["air"],
                   pectoralis=masks["pectoralis"], meta=meta)


def _output_reference(size_c, spacing_c, perm, sign, dir_t) -> sitk.Image:
    """Empty image with the output geometry whose physical space matches the canonical, centred grid."""
    origin_c = np.array([-(n - 1) / 2 * sp for n, sp in zip(size_c, spacing_c, strict=True)])
    corner = np.zeros(3)
    for a in range(3):
        if sign[a] < 0:
            corner[perm[a]] = size_c[perm[a]] - 1
    origin = origin_c + corner * np.asarray(spacing_c)
    ref = sitk.Image([size_c[perm[a]] for a in range(3)], sitk.sitkUInt8)
    ref.SetSpacing([spacing_c[perm[a]] for a in range(3)])
    ref.SetOrigin([float(v) for v in origin])
    ref.SetDirection(dir_t)
    return ref


def _to_output(arr_c: np.ndarray, ref: sitk.Image, perm: list[int], sign: list[int]) -> sitk.Image:
    """Canonical (z, y, x) array -> image on the output grid (transpose + flips, same physical voxels)."""
    order = [0, 0, 0]
    for a in range(3):
        order[2 - a] = 2 - perm[a]
    out = np.transpose(arr_c, order)
    flips = tuple(2 - a for a in range(3) if sign[a] < 0)
    if flips:
        out = np.flip(out, axis=flips)
    img = sitk.GetImageFromArray(np.ascontiguousarray(out))
    img.CopyInformation(ref)
    return img


def write_phantom(ph: Phantom, outdir: str | Path) -> dict[str, Path]:
    """Write image.nrrd (int16), lesion/air/pectoralis.nrrd (uint8 0/1) and phantom.json into ``outdir``.

    All-or-nothing: the files are written into a temporary folder beside ``outdir`` and then moved into it, so a
    failed or interrupted run leaves no partial phantom (UserError when ``outdir`` cannot be created).
    """
    out = check_output(outdir, "output folder", folder=True)
    names = ("image", "lesion", "air", "pectoralis")
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror or exc}; choose another -o") from None
    try:
        for name in names:
            write_image(getattr(ph, name), tmp / f"{name}.nrrd")
        write_json(json.loads(json.dumps(ph.meta)), tmp / "phantom.json")
        out.mkdir(exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    paths = {name: out / f"{name}.nrrd" for name in names}
    paths["meta"] = out / "phantom.json"
    return paths


# --------------------------------------------------------------------------------------------- DCE series
#: acquisition times (s after contrast injection) of the default series: pre-contrast + 5 post-contrast phases
DCE_TIMES_S: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0, 360.0, 450.0)
#: the phase that looks like :func:`make_phantom`'s image (the 2nd post-contrast phase, as in the paper)
DCE_REFERENCE_PHASE = 2
KINETIC_TYPES = ("persistent", "plateau", "washout")
#: planted delayed-phase change of the lesion (last phase vs the first post-contrast phase, %) per type
DCE_DELAYED_CHANGE_PCT = {"persistent": 25.0, "plateau": 0.0, "washout": -25.0}
#: pre-contrast intensity per tissue label (the 2nd post-contrast phase uses BASE_INTENSITY); fat, rib, lung
#: and air do not enhance; the lesion's pre-contrast signal follows from the planted initial enhancement
PRE_INTENSITY = np.array([0, 200, 70, 200, 140, 135, 45, 18, 150, 135, 0], np.float32)
#: T2-weighted (fat-suppressed) and ADC (x 1e-6 mm^2/s) values per tissue label for the companion volumes
T2_INTENSITY = np.array([0, 150, 40, 160, 70, 80, 30, 15, 120, 110, 260], np.float32)
ADC_VALUE = np.array([0, 1200, 300, 1800, 1400, 1400, 400, 200, 2500, 1500, 950], np.float32)


@dataclass
class DcePhantom:
    """A multi-phase DCE series with ground truth, and T2-like / ADC-like companion volumes on another grid.

    ``phases[0]`` is pre-contrast; ``times_s[k]`` is phase ``k``'s time after injection. ``lesion``, ``air``,
    ``pectoralis`` are on the DCE grid; ``t2``, ``adc`` and ``t2_lesion`` (the lesion drawn on that grid) on the
    companion grid. ``meta["dce"]`` states the planted kinetics.
    """

    phases: list[sitk.Image]
    times_s: tuple[float, ...]
    lesion: sitk.Image
    air: sitk.Image
    pectoralis: sitk.Image
    t2: sitk.Image
    adc: sitk.Image
    t2_lesion: sitk.Image
    meta: dict[str, Any] = field(default_factory=dict)


def _tissue_uptake(times_s: tuple[float, ...], ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised uptake c(t) (0 pre-contrast, 1 at the reference phase) of enhancing tissue and of blood.

    Enhancing parenchyma / muscle: slow persistent uptake c = (t / t_ref)^0.6 (background parenchymal
    enhancement rises through the series). Blood pool: first pass then slow decline,
    (1 - exp(-t / 30 s)) exp(-t / 900 s), normalised at the reference phase.
    """
    t = np.asarray(times_s, float)
    tr = t[ref]
    soft = np.where(t > 0, (np.clip(t, 0, None) / tr) ** 0.6, 0.0)
    blood = (1 - np.exp(-t / 30.0)) * np.exp(-t / 900.0)
    blood = np.where(t > 0, blood / ((1 - np.exp(-tr / 30.0)) * np.exp(-tr / 900.0)), 0.0)
    soft[0] = blood[0] = 0.0
    return soft.astype(np.float32), blood.astype(np.float32)


def _lesion_ratio(times_s: tuple[float, ...], delayed_change_pct: float) -> np.ndarray:
    """Lesion signal of each post-contrast phase relative to the first post-contrast phase: linear from 1 at
    the first to ``1 + delayed_change_pct / 100`` at the last phase (index 0, pre-contrast, is unused)."""
    t = np.asarray(times_s, float)
    frac = (t - t[1]) / max(t[-1] - t[1], 1e-9)
    r = 1.0 + delayed_change_pct / 100.0 * frac
    r[0] = np.nan
    return r


def _companion_grid(an: _Anatomy, spacing: tuple[float, float, float]) -> sitk.Image:
    """Identity-direction grid covering ~95 % of the DCE field of view with a few mm offset (another grid)."""
    fov = np.array(an.grid.fov)
    sp = np.asarray(spacing, float)
    size = np.maximum(8, np.floor(0.95 * fov / sp).astype(int))
    centre = np.array([2.5, -3.5, 1.7])
    origin = centre - (size - 1) / 2 * sp
    ref = sitk.Image([int(v) for v in size], sitk.sitkUInt8)
    ref.SetSpacing([float(v) for v in sp])
    ref.SetOrigin([float(v) for v in origin])
    return ref


def _rician(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return img
    n1 = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    n2 = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt((img + n1) ** 2 + n2 ** 2)


def make_dce_phantom(
    seed: int = 0,
    size: tuple[int, int, int] = (96, 96, 40),
    spacing: tuple[float, float, float] = (3.45, 3.45, 4.8),
    *,
    kinetic: str = "washout",
    initial_enhancement_pct: float = 150.0,
    delayed_change_pct: float | None = None,
    times_s: tuple[float, ...] = DCE_TIMES_S,
    companion_spacing: tuple[float, float, float] | None = None,
    direction: tuple[float, ...] | None = None,
    breast_scale: float = 1.0,
    lesion_radius_mm: float = 8.0,
    rim: float = 0.5,
    heterogeneity: float = 0.5,
    peritumoral_enhancement: float = 0.0,
    lesion_gap_mm: float | None = None,
    noise: float = 8.0,
    bias: float = 0.3,
) -> DcePhantom:
    """A DCE series (pre-contrast + post-contrast phases at ``times_s``) with a planted lesion kinetic curve.

    The anatomy (and so ``lesion``, ``air``, ``pectoralis``) is :func:`make_phantom`'s for the same seed and
    options. Every lesion voxel gets the same relative curve (before shading and noise):

    - initial phase: signal at the first post-contrast phase = pre-contrast x (1 + ``initial_enhancement_pct``
      / 100) (BI-RADS: slow < 50 %, medium 50-100 %, fast > 100 %);
    - delayed phase: linear from the first post-contrast phase to the last, ending at
      ``delayed_change_pct`` % of the first (default +25 persistent, 0 plateau, -25 washout; BI-RADS uses
      +-10 %, ACR BI-RADS Atlas 5th ed. 2013, MRI);
    - phase ``DCE_REFERENCE_PHASE`` (2nd post-contrast) is :func:`make_phantom`'s image for the same seed and
      options, voxel for voxel (same random stream: its noise is drawn first).

    Other tissue: pre-contrast ``PRE_INTENSITY``, 2nd post-contrast ``BASE_INTENSITY``, slow persistent
    uptake for parenchyma / muscle / skin, a first-pass curve for the blood pool (:func:`_tissue_uptake`);
    peritumoral oedema follows the parenchyma curve. The coil shading is the same in every phase; Rician noise
    (sigma ``noise``) is independent per phase. The companion T2-like (``T2_INTENSITY``, Rician noise) and
    ADC-like (``ADC_VALUE`` x 1e-6 mm^2/s, Gaussian noise 5 x ``noise``) volumes are the label map resampled
    (nearest neighbour, physical space) onto an identity-direction grid of ``companion_spacing`` (default 1.5 x
    the in-plane and 2 x the slice spacing) covering ~95 % of the field of view, offset by a few mm.
    """
    if kinetic not in KINETIC_TYPES:
        raise UserError(f"kinetic type {kinetic!r} is not one of {', '.join(KINETIC_TYPES)}")
    times = tuple(float(t) for t in times_s)
    if len(times) < 3 or times[0] != 0 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise UserError(f"DCE times {times} must start at 0 s (pre-contrast) and increase, with at least 2 "
                        "post-contrast phases")
    if not (math.isfinite(initial_enhancement_pct) and 0 <= initial_enhancement_pct <= 1000):
        raise UserError(f"initial_enhancement_pct={initial_enhancement_pct!r} must be between 0 and 1000")
    dc = DCE_DELAYED_CHANGE_PCT[kinetic] if delayed_change_pct is None else float(delayed_change_pct)
    if not (math.isfinite(dc) and -80 <= dc <= 200):
        raise UserError(f"delayed_change_pct={delayed_change_pct!r} must be between -80 and 200")
    ref_phase = min(DCE_REFERENCE_PHASE, len(times) - 1)
    an, rng = _build_anatomy(seed, size, spacing, direction, breast_scale, lesion_radius_mm, rim, heterogeneity,
                             peritumoral_enhancement, lesion_gap_mm, noise, bias)
    post = _tissue_image(an.body, an.gland_fields, an.lesion, BASE_INTENSITY)
    pre = _tissue_image(an.body, an.gland_fields, an.lesion, PRE_INTENSITY)
    ltex = _smooth_field(post[an.lesion.box].shape, an.grid.spacing_zyx, 3.0, rng)
    enh = _lesion_enhancement(an.lesion, ltex, rim, heterogeneity)
    oed = _oedema(an.lesion, ltex, peritumoral_enhancement) if peritumoral_enhancement > 0 else None
    _paint_lesion(post, an.body.lab, an.lesion, enh, oed)
    ratio = _lesion_ratio(times, dc)
    lesion_first = enh * np.float32(ratio[1] / ratio[ref_phase])
    _paint_lesion(pre, an.body.lab, an.lesion, lesion_first / np.float32(1 + initial_enhancement_pct / 100), None)
    sh = _shading(an.grid, an.body, bias, rng)
    soft_c, blood_c = _tissue_uptake(times, ref_phase)
    heart = an.body.lab == HEART
    diff = post - pre
    ref = _output_reference(an.size_c, an.spacing_c, an.perm, an.sign, an.dir_t)
    phases: dict[int, sitk.Image] = {}
    # the reference phase first: it draws the same noise as make_phantom, so it *is* make_phantom's image
    for k in [ref_phase] + [k for k in range(len(times)) if k != ref_phase]:
        if k == ref_phase:
            img = post
        else:
            img = pre + diff * soft_c[k]
            img[heart] = pre[heart] + diff[heart] * blood_c[k]
            if k > 0:
                _paint_lesion(img, an.body.lab, an.lesion, enh * np.float32(ratio[k] / ratio[ref_phase]), None)
        phases[k] = _to_output(_shade_noise_int16(img, sh, noise, rng), ref, an.perm, an.sign)
    del pre, diff
    masks = _masks_out(an, ref)

    # companion volumes: the canonical label map resampled through physical space onto another grid
    sx, sy, sz = an.spacing_c
    comp_sp = companion_spacing or (1.5 * sx, 1.5 * sy, 2.0 * sz)
    comp = _companion_grid(an, comp_sp)
    lab_img = sitk.GetImageFromArray(an.body.lab)
    lab_img.SetSpacing(an.spacing_c)
    lab_img.SetOrigin([-(n - 1) / 2 * s for n, s in zip(an.size_c, an.spacing_c, strict=True)])
    lab_c = sitk.GetArrayFromImage(sitk.Resample(lab_img, comp, sitk.Transform(), sitk.sitkNearestNeighbor, AIR))
    tex = _smooth_field(lab_c.shape, tuple(reversed(comp.GetSpacing())), 6.0, rng)
    t2 = T2_INTENSITY[lab_c] * (1 + 0.08 * tex)
    t2 = _rician(t2.astype(np.float32), noise, rng)
    adc = ADC_VALUE[lab_c] * (1 + 0.05 * tex) + rng.standard_normal(lab_c.shape).astype(np.float32) * 5 * noise
    adc = np.where(lab_c == AIR, 0, np.clip(adc, 0, None))

    def on_comp(a: np.ndarray, dtype) -> sitk.Image:
        out = sitk.GetImageFromArray(np.ascontiguousarray(a.astype(dtype)))
        out.CopyInformation(comp)
        return out

    n_les = int(np.count_nonzero(an.body.lab == LESION))
    meta = _meta(an, seed, n_les, rim, heterogeneity, peritumoral_enhancement, breast_scale, noise, bias)
    meta["format"] = "her2radiomics.phantom-dce/1"
    initial = "slow" if initial_enhancement_pct < 50 else "medium" if initial_enhancement_pct <= 100 else "fast"
    meta["dce"] = {
        "times_s": list(times), "reference_phase": ref_phase, "kinetic": kinetic,
        "initial_enhancement_pct": float(initial_enhancement_pct), "delayed_change_pct": dc,
        "expected_initial": initial,
        "expected_delayed": "persistent" if dc > 10 else "washout" if dc < -10 else "plateau",
        "lesion_curve": "every lesion voxel: S(first post) = S(pre) x (1 + initial/100); post phases linear "
                        "from S(first post) to S(first post) x (1 + delayed/100) at the last phase",
    }
    meta["companion"] = {"size": list(comp.GetSize()), "spacing": list(comp.GetSpacing()),
                         "origin": list(comp.GetOrigin()), "t2_lesion_voxels": int(np.count_nonzero(lab_c == LESION)),
                         "adc_unit": "1e-6 mm^2/s"}
    return DcePhantom(phases=[phases[k] for k in range(len(times))], times_s=times, lesion=masks["lesion"], air=masks["air"],
                      pectoralis=masks["pectoralis"], t2=on_comp(np.minimum(t2 + 0.5, 32767), np.int16),
                      adc=on_comp(np.minimum(adc + 0.5, 32767), np.int16),
                      t2_lesion=on_comp(lab_c == LESION, np.uint8), meta=meta)


def dce_files(ph: DcePhantom) -> dict[str, sitk.Image]:
    """:func:`write_dce_phantom`'s layout: file name without ``.nrrd`` (``dce/phase0`` ..., ``lesion``, ``air``,
    ``pectoralis``, ``t2``, ``adc``, ``t2_lesion``) -> image."""
    files = {f"dce/phase{k}": img for k, img in enumerate(ph.phases)}
    return files | {n: getattr(ph, n) for n in ("lesion", "air", "pectoralis", "t2", "adc", "t2_lesion")}


def dce_meta(ph: DcePhantom) -> dict:
    """The ``phantom.json`` of :func:`write_dce_phantom` (``dce.phases``: the phase files, pre-contrast first)."""
    meta = json.loads(json.dumps(ph.meta))
    meta["dce"]["phases"] = [f"dce/phase{k}.nrrd" for k in range(len(ph.phases))]
    return meta


def write_dce_phantom(ph: DcePhantom, outdir: str | Path) -> dict[str, Path]:
    """Write ``dce/phase0.nrrd`` ... (int16, pre-contrast first), lesion/air/pectoralis.nrrd, t2.nrrd, adc.nrrd,
    t2_lesion.nrrd and phantom.json (with ``dce.times_s``) into ``outdir``; all-or-nothing like
    :func:`write_phantom`."""
    out = check_output(outdir, "output folder", folder=True)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror or exc}; choose another -o") from None
    files = dce_files(ph)
    try:
        (tmp / "dce").mkdir()
        for name, img in files.items():
            write_image(img, tmp / f"{name}.nrrd")
        write_json(dce_meta(ph), tmp / "phantom.json")
        out.mkdir(exist_ok=True)
        (out / "dce").mkdir(exist_ok=True)
        for name in files:
            os.replace(tmp / f"{name}.nrrd", out / f"{name}.nrrd")
        os.replace(tmp / "phantom.json", out / "phantom.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    paths = {name: out / f"{name}.nrrd" for name in files}
    paths["meta"] = out / "phantom.json"
    return paths


def make_phantom_2d(seed: int = 0, size: tuple[int, int, int] = (160, 160, 48),
                    spacing: tuple[float, float, float] = (2.07, 2.07, 4.0), **kwargs: Any) -> Phantom:
    """A 2D phantom: :func:`make_phantom`'s lesion's largest axial cross-section (image, lesion, air, pectoralis as
    2D images with the in-plane spacing); ``meta["slice_index"]`` says which slice (ultrasound-like 2D tests)."""
    from her2radiomics.planar import extract_slice, max_area_slice

    ph = make_phantom(seed, size, spacing, **kwargs)
    k = max_area_slice(ph.lesion)
    meta = dict(ph.meta)
    meta["slice_index"] = k
    meta["format"] = "her2radiomics.phantom-2d/1"
    return Phantom(image=extract_slice(ph.image, k), lesion=extract_slice(ph.lesion, k),
                   air=extract_slice(ph.air, k), pectoralis=extract_slice(ph.pectoralis, k), meta=meta)
