"""Phantom family B: an independent prone-breast DCE-MRI phantom for validating the exclusion detectors.

Test-only code (issue 11, item 4). It shares nothing with ``her2radiomics.phantom`` (family A) but the
conventions (LPS millimetres, SimpleITK images). Differences, on purpose:

Anatomy (signed-distance model, evaluated at the *physical* LPS centre of every voxel, so any direction
matrix - axial, flipped, oblique - sees the same patient):

- **Thorax**: an extruded *superellipse* |x/A|^n + |(y-B)/B|^n <= 1 (n 2.2-2.8, flattened anterior chest),
  scaled slowly along S-I; its signed distance is an exact 2D Euclidean distance transform on a 0.5 mm
  patient-space grid (Maurer et al. 2003, ``scipy.ndimage.distance_transform_edt``), bilinearly sampled.
- **Chest-wall layers by depth below the thorax surface** (mm): fat (subcutaneous / retromammary),
  *pectoralis major* of a chosen nominal thickness (3-15 mm) with a medial (sternal) and lateral taper,
  a fat plane, *pectoralis minor* (supero-lateral, optional), then the rib layer: *ribs as elliptic tubes*
  around oblique periodic centre lines (cortex + marrow; costal cartilage medially, sternum at the
  midline) with intercostal muscle between them, a pleural fat line, and behind it *lungs*, a *heart*
  (myocardium + blood pool + pericardial fat) and mediastinum.
- **Breasts**: each a *round cone* (two spheres joined by their tangent cone; exact SDF, Quilez) hanging
  anteriorly from the chest along a slightly tilted axis, with an elliptic cross-section, an axillary tail
  (capsule), a nipple (sphere), joined to the thorax by a polynomial *smooth minimum* (inframammary fold).
- **Skin** = the outer 1.2-2 mm of the body SDF, optionally thickened (up to +4 mm) over a smooth patch.
- **Fibroglandular tissue**: a 3D power-law (1/f^beta, beta = 3) random field (the spectral model of breast
  parenchyma, Burgess et al. 2001, Med Phys 28:419) plus a central weight, thresholded so that the
  fibroglandular fraction of the breast matches the ACR density category (a-d).
- **Lesion**: smooth union of 3-5 spheres (lobulated mass) placed by kind: ``deep`` (surface 0-1 mm in
  front of the pectoralis major), ``superficial`` (surface 3-6 mm under the skin surface), ``mid``
  (>= 10 mm from both).

Intensity model (MR physics, not grey levels per class): per tissue proton density PD, T1, T2* and a
gadolinium concentration C of the post-contrast phase; 1/T1 = 1/T1_0 + r1 C (r1 = 4.0 /s/mM at 3 T,
Rohrer et al. 2005, Invest Radiol 40:715); spoiled gradient echo
S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*), E1 = exp(-TR/T1) (TR 4.5 ms, TE 2.0 ms, a = 12 deg).
Relaxation times at 3 T from Rakow-Penner et al. 2006 (JMRI 23:87; breast fat 367 ms, fibroglandular
1445 ms), Stanisz et al. 2005 (MRM 54:507; muscle 1412, myocardium 1471, blood 1932 ms). Fat suppression
multiplies the fat signal by a spatially varying residual (4-15 %). Contrasts: ``fs`` (fat-suppressed
post-contrast), ``nonfs`` (no fat suppression, post-contrast), ``sub`` (post minus pre of the non-fat-
suppressed pair, clipped at 0 as stored by scanners). Then a receive-coil sensitivity (smooth bias field,
stronger anteriorly), a Gaussian point-spread function (~1 voxel), respiratory / cardiac *motion ghosting*
of the thorax along the phase-encode array axis (first-order k-space model: per phase-encode line a
displacement and an amplitude modulation of the moving part), complex Gaussian noise and magnitude
(Rician, Gudbjartsson & Patz 1995). Ghosts and noise are acquisition effects, so they live on the array
grid; the anatomy lives in patient space.

Ground truth (one label map on the image grid, classes disjoint and covering; see ``CLASSES``):
``outside_air`` is the project's ``air`` exclusion (extramammary background outside the body); the lungs
are *not* air (they are enclosed by the body), they are their own class. ``pectoralis_major`` is the
project's ``pectoralis`` exclusion; pectoralis minor, the chest wall (intercostal muscle, ribs, cartilage,
sternum), lung, heart and other (mediastinum, posterior soft tissue) are further non-breast classes, and
chest_fat (the fat planes deep to the pectoralis major, between the ribs and along the pleura) is neither
breast nor "air or muscle". Breast tissue = skin + fat + fibroglandular.

Deterministic from ``seed`` (and the options). Default: a 180 x 180 x 75 mm field of view around one
breast and the chest wall behind it (257 x 257 x 50 voxels at 0.7 x 0.7 x 1.5 mm, ~1 s of CPU);
``full=True`` gives both breasts (448 x 448 x 160 at 0.74 x 0.74 x 1.2 mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import fft as sfft
from scipy import ndimage

# ----------------------------------------------------------------------------------------- truth classes
CLASSES = ("outside_air", "skin", "fat", "fibroglandular", "lesion", "pectoralis_major", "pectoralis_minor",
           "chest_wall", "lung", "heart", "other", "chest_fat")
CLASS = {n: i for i, n in enumerate(CLASSES)}
BREAST_CLASSES = ("skin", "fat", "fibroglandular")
NON_BREAST_CLASSES = ("outside_air", "pectoralis_major", "pectoralis_minor", "chest_wall", "lung", "heart", "other",
                      "chest_fat")
#: what the shell must not contain ("air or muscle"); chest_fat (fat planes deep to the pectoralis major) is
#: neither breast tissue nor air / muscle
CONTAMINANT_CLASSES = ("outside_air", "pectoralis_major", "pectoralis_minor", "chest_wall", "lung", "heart", "other")
MUSCLE_CLASSES = ("pectoralis_major", "pectoralis_minor", "chest_wall")

# fine tissue codes (intensity) -> truth class
(T_AIR, T_SKIN, T_FAT, T_FGT, T_LESION, T_PMAJ, T_PMIN, T_INTERCOSTAL, T_CORTEX, T_MARROW, T_CARTILAGE,
 T_DEEPFAT, T_LUNG, T_MYO, T_BLOOD, T_MEDFAT, T_SOFT) = range(17)
TISSUE_CLASS = np.array([CLASS[c] for c in (
    "outside_air", "skin", "fat", "fibroglandular", "lesion", "pectoralis_major", "pectoralis_minor",
    "chest_wall", "chest_wall", "chest_wall", "chest_wall", "chest_fat", "lung", "heart", "heart",
    "other", "other")], np.uint8)

# (PD, T1_0 ms, T2* ms, post-contrast Gd mM) per tissue code; fat-like tissues flagged for suppression
_TISSUE = {
    T_AIR: (0.0, 1000.0, 1.0, 0.0),
    T_SKIN: (0.70, 1000.0, 20.0, 0.15),
    T_FAT: (0.90, 367.0, 40.0, 0.0),
    T_FGT: (0.80, 1445.0, 30.0, 0.10),      # C replaced per case (background parenchymal enhancement)
    T_LESION: (0.82, 1500.0, 30.0, 1.0),    # C replaced per voxel (rim profile, texture)
    T_PMAJ: (0.75, 1412.0, 25.0, 0.12),
    T_PMIN: (0.75, 1412.0, 25.0, 0.12),
    T_INTERCOSTAL: (0.75, 1412.0, 22.0, 0.12),
    T_CORTEX: (0.05, 1000.0, 0.6, 0.0),
    T_MARROW: (0.85, 380.0, 15.0, 0.05),
    T_CARTILAGE: (0.60, 1100.0, 12.0, 0.05),
    T_DEEPFAT: (0.90, 367.0, 40.0, 0.0),
    T_LUNG: (0.15, 1200.0, 1.0, 0.1),
    T_MYO: (0.75, 1471.0, 25.0, 0.40),
    T_BLOOD: (0.90, 1932.0, 40.0, 1.5),     # PD scaled per case by the flow-void factor
    T_MEDFAT: (0.90, 367.0, 40.0, 0.0),
    T_SOFT: (0.75, 1300.0, 25.0, 0.15),
}
_FATLIKE = (T_FAT, T_MARROW, T_DEEPFAT, T_MEDFAT)
TR_MS, TE_MS, FLIP_DEG, R1_PER_MM_S = 4.5, 2.0, 12.0, 4.0
SIGNAL_SCALE = 10000.0

CONTRASTS = ("fs", "nonfs", "sub")
DENSITIES = {"a": (0.05, 0.18), "b": (0.25, 0.45), "c": (0.52, 0.70), "d": (0.76, 0.90)}
LESION_KINDS = ("deep", "superficial", "mid")

AXIAL_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
AXIAL_DUKE = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def spgr(pd: np.ndarray | float, t1_ms: np.ndarray | float, t2s_ms: np.ndarray | float) -> np.ndarray:
    """Spoiled gradient-echo steady state (Ernst): PD sin a (1 - E1) / (1 - cos a E1) exp(-TE / T2*)."""
    a = math.radians(FLIP_DEG)
    e1 = np.exp(-TR_MS / np.asarray(t1_ms, np.float32))
    return (np.asarray(pd, np.float32) * np.float32(math.sin(a)) * (1 - e1) / (1 - np.float32(math.cos(a)) * e1)
            * np.exp(-TE_MS / np.asarray(t2s_ms, np.float32)))


def t1_with_gd(t1_ms: np.ndarray | float, c_mm: np.ndarray | float) -> np.ndarray:
    """1/T1 = 1/T1_0 + r1 C (ms)."""
    return 1.0 / (1.0 / np.asarray(t1_ms, np.float32) + R1_PER_MM_S * np.asarray(c_mm, np.float32) / 1000.0)


@dataclass
class CaseB:
    """A family-B case: image, lesion, truth label map (``CLASSES`` codes) on the same grid, metadata."""

    image: sitk.Image
    lesion: sitk.Image
    labels: sitk.Image
    meta: dict[str, Any] = field(default_factory=dict)
    pre: sitk.Image | None = None   # the other phase (pre-contrast, same suppression) for --exclusion-image work

    def mask(self, *names: str) -> sitk.Image:
        """uint8 0/1 image of the union of the named truth classes."""
        lab = sitk.GetArrayViewFromImage(self.labels)
        out = np.isin(lab, [CLASS[n] for n in names]).astype(np.uint8)
        img = sitk.GetImageFromArray(out)
        img.CopyInformation(self.labels)
        return img

    def array(self, *names: str) -> np.ndarray:
        """Boolean (z, y, x) array of the union of the named truth classes."""
        return np.isin(sitk.GetArrayViewFromImage(self.labels), [CLASS[n] for n in names])

    @property
    def air(self) -> sitk.Image:          # the project's "air" exclusion truth
        return self.mask("outside_air")

    @property
    def pectoralis(self) -> sitk.Image:   # the project's "pectoralis" exclusion truth
        return self.mask("pectoralis_major")


# ----------------------------------------------------------------------------------------- SDF helpers
def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two signed distances (blend width k mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Cosines:
    """Smooth random scalar field in patient space: a sum of random plane cosines (unit-ish amplitude)."""

    def __init__(self, rng: np.random.Generator, n: int, wl_mm: tuple[float, float]):
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        self.k = (2 * np.pi / rng.uniform(*wl_mm, size=n))[:, None] * d
        self.phi = rng.uniform(0, 2 * np.pi, size=n)
        self.amp = np.sqrt(2.0 / n)

    def grid(self, origin: np.ndarray, D: np.ndarray, sp: np.ndarray, n: np.ndarray) -> np.ndarray:
        """The field on an image grid (z, y, x): k . p is separable in the index, so the sum of cosines is
        Re(sum_c A_c(k, j) E_c(i)), one small complex matrix product."""
        nx, ny, nz = (int(v) for v in n)
        kd = self.k @ D                                    # (C, 3): wave vector along the index axes
        base = self.k @ origin + self.phi                  # (C,)
        ei = np.exp(1j * kd[:, 0][:, None] * (np.arange(nx) * sp[0])[None, :])              # (C, nx)
        ej = np.exp(1j * kd[:, 1][:, None] * (np.arange(ny) * sp[1])[None, :])              # (C, ny)
        ek = np.exp(1j * (kd[:, 2][:, None] * (np.arange(nz) * sp[2])[None, :] + base[:, None]))  # (C, nz)
        a = (ek[:, :, None] * ej[:, None, :]).reshape(len(base), nz * ny)                   # (C, nz*ny)
        out = (a.T.astype(np.complex64) @ ei.astype(np.complex64)).real
        return (out * np.float32(self.amp)).reshape(nz, ny, nx).astype(np.float32)

    def __call__(self, x, y, z):
        out = np.zeros(np.broadcast(x, y, z).shape, np.float32)
        for (kx, ky, kz), p in zip(self.k, self.phi, strict=True):
            out += np.cos(np.float32(kx) * x + np.float32(ky) * y + np.float32(kz) * z + np.float32(p))
        return out * np.float32(self.amp)


class _Thorax:
    """Superellipse thorax cross-section, exact 2D SDF by EDT on a 0.5 mm grid, scaled along S-I."""

    H = 0.5

    def __init__(self, A: float, B: float, n: float, taper: float):
        self.A, self.B, self.n, self.taper = A, B, n, taper
        self.x0, self.y0 = 0.0, -60.0      # symmetric in x: the half x >= 0 is stored, looked up with |x|
        nx = int((A + 40.0) / self.H) + 1
        ny = int((2 * B + 100.0) / self.H) + 1
        xs = self.x0 + self.H * np.arange(nx)
        ys = self.y0 + self.H * np.arange(ny)
        inside = (np.abs(xs[None, :] / A) ** n + np.abs((ys[:, None] - B) / B) ** n) <= 1.0
        d_out = ndimage.distance_transform_edt(~inside, sampling=self.H) - self.H / 2
        d_in = ndimage.distance_transform_edt(inside, sampling=self.H) - self.H / 2
        self.sdf = np.where(inside, -d_in, d_out).astype(np.float32)   # (y, x)
        self.ny, self.nx = ny, nx

    def g(self, z):
        return 1.0 + np.float32(self.taper) * np.asarray(z, np.float32) / np.float32(100.0)

    def __call__(self, x, y, z):
        """Signed distance (mm, < 0 inside) to the thorax surface."""
        g = self.g(z)
        u = np.asarray(x, np.float32) / g
        v = (np.asarray(y, np.float32) - self.B) / g + self.B
        fi = (v - self.y0) / self.H
        excess = np.maximum(0.0, -fi) * self.H   # far anterior of the grid: extrapolate linearly
        fi = np.clip(fi, 0, self.ny - 1)
        fj = np.clip((np.abs(u) - self.x0) / self.H, 0, self.nx - 1)
        shp = np.broadcast(fi, fj).shape
        val = ndimage.map_coordinates(self.sdf, [np.broadcast_to(fi, shp).ravel(), np.broadcast_to(fj, shp).ravel()],
                                      order=1, mode="nearest").reshape(shp)
        return (val + excess) * g

    def surface_y(self, x: float, z: float) -> float:
        """Anterior thorax surface y at (x, z) (analytic superellipse)."""
        g = float(self.g(z))
        t = max(0.0, 1.0 - abs(x / (g * self.A)) ** self.n)
        return self.B - g * self.B * t ** (1.0 / self.n)


class _Breast:
    """Round cone (base sphere r1, tip sphere r2) + axillary-tail capsule + nipple; elliptic cross-section."""

    def __init__(self, side: int, thorax: _Thorax, rng: np.random.Generator, size: float):
        u = rng.uniform
        self.side = side
        cx = side * u(70.0, 90.0)
        cz = u(-10.0, 10.0)
        ys = thorax.surface_y(cx, cz)
        self.r1 = u(50.0, 62.0) * size ** 0.5
        self.r2 = u(14.0, 24.0) * size ** 0.5
        self.L = u(45.0, 95.0) * size      # projection in front of the chest surface
        back = 0.45 * self.r1
        self.c1 = np.array([cx, ys + back, cz])
        ax = np.array([side * u(0.0, 0.25), -1.0, u(-0.2, 0.05)])
        self.axis = ax / np.linalg.norm(ax)
        self.H = self.L + back - self.r2
        if self.r1 - self.r2 + 1 >= self.H:
            self.H = self.r1 - self.r2 + 1
        self.c2 = self.c1 + self.axis * self.H
        e1 = np.cross(self.axis, [0.0, 0.0, 1.0])
        self.e1 = e1 / np.linalg.norm(e1)
        self.e2 = np.cross(self.e1, self.axis)
        self.ex, self.ez = u(1.0, 1.15), u(0.85, 1.0)
        self.tip = self.c2 + self.axis * self.r2
        self.nipple_r = u(3.0, 5.0)
        self.nipple = self.tip - self.axis * 1.0
        # axillary tail: capsule from inside the breast towards the axilla (supero-lateral)
        self.t0 = self.c1 + np.array([side * 0.4 * self.r1, -0.15 * self.r1, 0.25 * self.r1])
        self.t1 = self.t0 + np.array([side * u(30.0, 45.0), 8.0, u(20.0, 35.0)])
        self.tail_r = u(12.0, 18.0)
        b = (self.r1 - self.r2) / self.H
        self.b, self.a = b, math.sqrt(max(1e-6, 1 - b * b))

    def _cone(self, x, y, z):
        vx, vy, vz = x - np.float32(self.c1[0]), y - np.float32(self.c1[1]), z - np.float32(self.c1[2])
        h = vx * np.float32(self.axis[0]) + vy * np.float32(self.axis[1]) + vz * np.float32(self.axis[2])
        w1 = vx * np.float32(self.e1[0]) + vy * np.float32(self.e1[1]) + vz * np.float32(self.e1[2])
        w2 = vx * np.float32(self.e2[0]) + vy * np.float32(self.e2[1]) + vz * np.float32(self.e2[2])
        q = np.sqrt((w1 / np.float32(self.ex)) ** 2 + (w2 / np.float32(self.ez)) ** 2)
        k = -self.b * q + self.a * h
        d_base = np.sqrt(q * q + h * h) - self.r1
        d_tip = np.sqrt(q * q + (h - self.H) ** 2) - self.r2
        d_side = self.a * q + self.b * h - self.r1
        return np.where(k < 0, d_base, np.where(k > self.a * self.H, d_tip, d_side)).astype(np.float32)

    def _capsule(self, x, y, z, p0, p1, r):
        ba = p1 - p0
        bb = float(ba @ ba)
        px, py, pz = x - np.float32(p0[0]), y - np.float32(p0[1]), z - np.float32(p0[2])
        t = np.clip((px * np.float32(ba[0]) + py * np.float32(ba[1]) + pz * np.float32(ba[2])) / np.float32(bb), 0, 1)
        return np.sqrt((px - t * np.float32(ba[0])) ** 2 + (py - t * np.float32(ba[1])) ** 2
                       + (pz - t * np.float32(ba[2])) ** 2) - np.float32(r)

    def __call__(self, x, y, z):
        d = self._cone(x, y, z)
        d = _smin(d, self._capsule(x, y, z, self.t0, self.t1, self.tail_r), 10.0)
        nip = np.sqrt((x - np.float32(self.nipple[0])) ** 2 + (y - np.float32(self.nipple[1])) ** 2
                      + (z - np.float32(self.nipple[2])) ** 2) - np.float32(self.nipple_r)
        return _smin(d, nip, 2.0)

    def box(self, pad: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([self.c1 - self.r1, self.c1 + self.r1, self.c2 - self.r2, self.c2 + self.r2,
                        self.t1 - self.tail_r, self.t1 + self.tail_r, self.tip + 6])
        return pts.min(0) - pad, pts.max(0) + pad


class _Lesion:
    """Lobulated mass: polynomial smooth union of spheres (main radius R plus satellites)."""

    def __init__(self, rng: np.random.Generator, R: float):
        self.R = R
        n = int(rng.integers(2, 5))
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        self.offsets = np.vstack([[0, 0, 0], dirs * (rng.uniform(0.45, 0.75, size=(n, 1)) * R)])
        self.radii = np.concatenate([[R], rng.uniform(0.4, 0.65, size=n) * R])
        self.k = 0.25 * R
        self.centre = np.zeros(3)

    def __call__(self, x, y, z):
        d = None
        for off, r in zip(self.offsets, self.radii, strict=True):
            c = self.centre + off
            di = np.sqrt((x - np.float32(c[0])) ** 2 + (y - np.float32(c[1])) ** 2 + (z - np.float32(c[2])) ** 2) \
                - np.float32(r)
            d = di if d is None else _smin(d, di, self.k)
        return d

    def extent(self) -> float:
        return float(np.max(np.linalg.norm(self.offsets, axis=1) + self.radii)) + 1.0

    def surface_points(self, n: int = 600) -> np.ndarray:
        """Points on the lesion surface: bisection along rays from the centre (the union is star-shaped)."""
        gold = (1 + 5 ** 0.5) / 2
        i = np.arange(n) + 0.5
        phi = np.arccos(1 - 2 * i / n)
        th = 2 * np.pi * i / gold
        d = np.stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)], 1)
        lo, hi = np.zeros(n), np.full(n, self.extent() + 2)
        for _ in range(30):
            mid = (lo + hi) / 2
            p = self.centre + d * mid[:, None]
            inside = self(p[:, 0], p[:, 1], p[:, 2]) < 0
            lo = np.where(inside, mid, lo)
            hi = np.where(inside, hi, mid)
        return self.centre + d * lo[:, None]


# ----------------------------------------------------------------------------------------- the model
class _Anatomy:
    def __init__(self, seed: int, density: str, pec_thickness_mm: float, pec_minor: bool, skin_thickening_mm: float,
                 breast_size: float, fgt_like_muscle: bool):
        rng = np.random.default_rng([int(seed), 0xB1])
        self.rng = rng
        u = rng.uniform
        self.thorax = _Thorax(A=u(140.0, 165.0), B=u(95.0, 120.0), n=u(2.2, 2.8), taper=u(-0.04, 0.06))
        self.skin0 = u(1.2, 2.0)
        self.skin_thick = float(skin_thickening_mm)
        self.fat_a = u(2.5, 5.0) + self.skin0          # fat depth in front of the muscle (from thorax surface)
        self.T = float(pec_thickness_mm)
        self.x_st = u(14.0, 22.0)                         # sternal half-width
        self.x_lat = u(115.0, 140.0)                      # lateral end of pectoralis major
        self.z_inf = u(-75.0, -55.0)                      # inferior border of pectoralis major
        self.plane1 = u(1.5, 3.0)                         # fat plane behind pectoralis major
        self.pmin = u(3.0, 6.0) if pec_minor else 0.0
        self.rib_rd, self.rib_rz = u(3.5, 4.5), u(5.5, 7.5)
        self.rib_period, self.rib_slope, self.rib_z0 = u(26.0, 34.0), u(0.15, 0.45), u(0.0, 30.0)
        self.heart = (u(20.0, 35.0), u(50.0, 60.0), u(40.0, 50.0), u(50.0, 60.0))  # x, Rx, Ry, Rz
        self.flow_void = u(0.05, 0.5)       # blood-pool signal: flow void (dark) to partly enhanced
        self.thick_field = _Cosines(rng, 6, (80.0, 200.0))
        self.breasts = [_Breast(s, self.thorax, rng, breast_size) for s in (-1, 1)]
        lo, hi = DENSITIES[density]
        self.fgt_fraction_target = u(lo, hi)
        self.density = density
        self.retro = u(1.5, 4.0)
        self.premam = u(2.0, 5.0) if density in "ab" else u(1.0, 3.0)
        self.bpe = u(0.0, 0.25)
        self.fgt_like_muscle = fgt_like_muscle
        self.skin_patch = None
        self.seed = int(seed)
        self._fgt: dict[int, dict] = {}

    # --- pectoralis thickness profiles (mm) at patient (x, z)
    def _anterior(self, y):
        """1 on the anterior chest wall, 0 on its posterior half (the pectorals lie on the front of the thorax)."""
        return 1.0 - _smoothstep(0.55 * self.thorax.B, 0.85 * self.thorax.B, y)

    def t_pmaj(self, x, y, z):
        ax = np.abs(x)
        med = _smoothstep(self.x_st + 2.0, self.x_st + 18.0, ax)
        lat = 1.0 - _smoothstep(self.x_lat - 35.0, self.x_lat, ax)
        inf = _smoothstep(self.z_inf, self.z_inf + 20.0, z)
        var = 1.0 + 0.08 * self.thick_field(x, np.float32(0.0), z)
        t = np.float32(self.T) * med * lat * inf * var * self._anterior(y)
        return np.where(t < 0.6, np.float32(0.0), t).astype(np.float32)

    def t_pmin(self, x, y, z):
        if self.pmin <= 0:
            return np.zeros(np.broadcast(x, z).shape, np.float32)
        ax = np.abs(x)
        band = _smoothstep(45.0, 65.0, ax) * (1.0 - _smoothstep(95.0, 115.0, ax)) * _smoothstep(-15.0, 5.0, z)
        t = np.float32(self.pmin) * band * self._anterior(y)
        return np.where(t < 0.8, np.float32(0.0), t).astype(np.float32)

    def d_body(self, x, y, z, dth=None):
        d = self.thorax(x, y, z) if dth is None else dth
        for b in self.breasts:
            d = _smin(d, b(x, y, z), 12.0)
        return d

    def skin_t(self, x, y, z):
        if self.skin_patch is None or self.skin_thick <= 0:
            return np.float32(self.skin0)
        c, s = self.skin_patch
        r2 = (x - np.float32(c[0])) ** 2 + (y - np.float32(c[1])) ** 2 + (z - np.float32(c[2])) ** 2
        return np.float32(self.skin0) + np.float32(self.skin_thick) * np.exp(-r2 / np.float32(2 * s * s))

    # --- fibroglandular field: power-law noise on a 2 mm patient-space lattice per breast
    def _fgt_lattice(self, br: _Breast, rng: np.random.Generator):
        lo, hi = br.box()
        h = 2.0
        shape = tuple(int(np.ceil((b - a) / h)) + 1 for a, b in zip(lo, hi, strict=True))   # x, y, z
        white = rng.standard_normal(shape, dtype=np.float32)
        kx, ky = (np.fft.fftfreq(n, d=h).astype(np.float32) for n in shape[:2])
        kz = np.fft.rfftfreq(shape[2], d=h).astype(np.float32)
        kk = np.sqrt(kx[:, None, None] ** 2 + ky[None, :, None] ** 2 + kz[None, None, :] ** 2)
        kk[0, 0, 0] = 1.0
        filt = kk ** (-1.5) * np.exp(-(kk * 4.0) ** 2) * (1 - np.exp(-(kk * 50.0) ** 2))   # beta = 3, 4-50 mm
        filt[0, 0, 0] = 0.0
        f = sfft.irfftn(sfft.rfftn(white) * filt, s=shape).astype(np.float32)
        f /= max(float(f.std()), 1e-6)
        gx, gy, gz = (lo[a] + h * np.arange(shape[a]) for a in range(3))
        X, Y, Z = np.meshgrid(gx.astype(np.float32), gy.astype(np.float32), gz.astype(np.float32), indexing="ij")
        dth = self.thorax(X, Y, Z)
        dbr = br(X, Y, Z)
        dbody = dth
        for b in self.breasts:
            dbody = _smin(dbody, dbr if b is br else b(X, Y, Z), 12.0)
        interior = (dbody < -self.skin0) & (dth > 0)
        cand = interior & (dth > self.retro) & (dbody < -(self.skin0 + self.premam)) & (dbr < -1.0)
        score = f + 1.2 * np.clip(-dbr / 25.0, 0, 1.5)
        n_target = int(round(self.fgt_fraction_target * interior.sum()))
        vals = np.sort(score[cand])[::-1]
        thr = -np.inf if n_target >= vals.size else float(vals[max(0, n_target - 1)])
        return {"lo": lo, "h": h, "field": f, "score_thr": thr, "shape": shape}

    def fgt(self, i: int) -> dict:
        """Fibroglandular lattice of breast ``i`` (built on first use, from its own random stream)."""
        if i not in self._fgt:
            self._fgt[i] = self._fgt_lattice(self.breasts[i], np.random.default_rng([self.seed, 0xF0, i]))
        return self._fgt[i]

    def fgt_score(self, i: int, x, y, z, dbr):
        lat = self.fgt(i)
        coords = [((np.asarray(c, np.float32) - np.float32(lat["lo"][a])) / np.float32(lat["h"])).ravel()
                  for a, c in enumerate(np.broadcast_arrays(x, y, z))]
        f = ndimage.map_coordinates(lat["field"], coords, order=1, mode="nearest").reshape(np.shape(dbr))
        return f, f + 1.2 * np.clip(-dbr / 25.0, 0, 1.5)

    # --- classify points: tissue code + helper fields
    def classify(self, x, y, z, lesion: _Lesion | None):
        """Tissue codes of points (any broadcastable arrays); also the fibroglandular texture, lesion depth, thorax SDF.

        Each structure is evaluated only on the points where it can matter (chest layers inside the thorax,
        breasts within their box near or in front of the chest surface), on compressed 1D arrays.
        """
        shp = np.broadcast(x, y, z).shape
        x, y, z = (np.ascontiguousarray(np.broadcast_to(np.asarray(v, np.float32), shp)).ravel() for v in (x, y, z))
        dth = self.thorax(x, y, z)
        n = dth.size
        tis = np.full(n, T_SOFT, np.uint8)
        tex = np.zeros(n, np.float32)
        dbody = dth.copy()
        skin_max = self.skin0 + max(0.0, self.skin_thick) + 0.5
        near = np.flatnonzero(dth > -skin_max)
        dbr: list[tuple[np.ndarray, np.ndarray]] = []
        for b in self.breasts:
            lo, hi = b.box(pad=14.0)
            xs, ys, zs = x[near], y[near], z[near]
            inb = ((xs >= lo[0]) & (xs <= hi[0]) & (ys >= lo[1]) & (ys <= hi[1]) & (zs >= lo[2]) & (zs <= hi[2]))
            idx = near[inb]
            d = b(x[idx], y[idx], z[idx])
            dbody[idx] = _smin(dbody[idx], d, 12.0)
            dbr.append((idx, d))
        # chest wall by depth below the thorax surface (points inside the thorax only)
        ci = np.flatnonzero(dth <= 0)
        tis[ci] = self._chest(x[ci], y[ci], z[ci], -dth[ci])
        # breast interior (in front of the thorax surface)
        skin_t = self.skin_t(x[near], y[near], z[near])
        brs = (dth > 0) & (dbody < 0)
        tis[brs] = T_FAT
        for i, (idx, d) in enumerate(dbr):
            sub = brs[idx] & (d < 12.0)
            if not sub.any():
                continue
            j = idx[sub]
            dj = d[sub]
            f, score = self.fgt_score(i, x[j], y[j], z[j], dj)
            st = self.skin_t(x[j], y[j], z[j])
            g = (score > self.fgt(i)["score_thr"]) & (dth[j] > self.retro) & (dj < -1.0) & (dbody[j] < -st - self.premam)
            tis[j[g]] = T_FGT
            tex[j] = f
        dn = dbody[near]
        tis[near[(dn < 0) & (-dn < skin_t)]] = T_SKIN
        tis[near[dn >= 0]] = T_AIR
        les_depth = np.zeros(n, np.float32)
        if lesion is not None:
            e = lesion.extent()
            c = lesion.centre
            li = np.flatnonzero((np.abs(x - np.float32(c[0])) < e) & (np.abs(y - np.float32(c[1])) < e)
                                & (np.abs(z - np.float32(c[2])) < e))
            if li.size:
                dl = lesion(x[li], y[li], z[li])
                ok = (dl < 0) & np.isin(tis[li], (T_FAT, T_FGT, T_DEEPFAT))
                tis[li[ok]] = T_LESION
                les_depth[li[ok]] = -dl[ok]
        return tis.reshape(shp), tex.reshape(shp), les_depth.reshape(shp), dth.reshape(shp), dbody.reshape(shp)

    def _chest(self, x, y, z, delta):
        """Chest-wall tissue codes of points inside the thorax at depth ``delta`` (mm) below its surface."""
        tis = np.full(delta.shape, T_SOFT, np.uint8)
        tmaj = self.t_pmaj(x, y, z)
        tmin = self.t_pmin(x, y, z)
        a = np.float32(self.fat_a)
        e_maj = a + tmaj
        s_min = e_maj + np.where(tmaj > 0, np.float32(self.plane1), np.float32(0.5))
        e_min = s_min + tmin
        r0 = e_min + np.where(tmin > 0, np.float32(1.0), np.float32(0.0))     # rib layer starts
        rd, rz = np.float32(self.rib_rd), np.float32(self.rib_rz)
        rc = r0 + rd
        r_end = r0 + 2 * rd
        ax = np.abs(x)
        w = np.mod(z + np.float32(self.rib_slope) * ax - np.float32(self.rib_z0), np.float32(self.rib_period)) \
            - np.float32(self.rib_period / 2)
        cos_t = np.float32(1.0 / math.sqrt(1 + self.rib_slope ** 2))
        q_rib = ((delta - rc) / rd) ** 2 + (w * cos_t / rz) ** 2
        medial = ax < np.float32(self.x_st)
        tis[delta < a] = T_FAT
        tis[(delta >= a) & (delta < e_maj) & (tmaj > 0)] = T_PMAJ
        tis[(delta >= e_maj) & (delta < s_min)] = T_DEEPFAT
        tis[(delta >= s_min) & (delta < e_min) & (tmin > 0)] = T_PMIN
        tis[(delta >= e_min) & (delta < r0)] = T_DEEPFAT
        band = (delta >= r0) & (delta < r_end)
        tis[band] = T_DEEPFAT
        tis[band & (np.abs(delta - rc) < 0.6 * rd)] = T_INTERCOSTAL
        rib = band & (q_rib <= 1.0) & ~medial
        q_in = ((delta - rc) / (rd - 1.2)) ** 2 + (w * cos_t / (rz - 1.2)) ** 2
        tis[rib] = T_CORTEX
        tis[rib & (q_in <= 1.0)] = T_MARROW
        tis[rib & (ax < np.float32(self.x_st + 35.0))] = T_CARTILAGE
        stern = medial & (delta >= r0) & (delta < r0 + 10.0)
        tis[stern] = T_CORTEX
        tis[stern & (delta >= r0 + 1.2) & (delta < r0 + 8.8)] = T_MARROW
        extra = medial * np.float32(2.0 * rd + 2.0)
        deep = delta >= r_end + extra
        tis[deep & (delta < r_end + 1.0 + extra)] = T_DEEPFAT
        lungs = deep & (delta >= r_end + 1.0 + extra)
        hx, hrx, hry, hrz = self.heart
        hy = self.thorax.surface_y(hx, 0.0) + float(self.fat_a) + 12.0 + 2 * self.rib_rd + 6.0 + hry
        qh = np.sqrt(((x - np.float32(hx)) / np.float32(hrx)) ** 2 + ((y - np.float32(hy)) / np.float32(hry)) ** 2
                     + (z / np.float32(hrz)) ** 2)
        med_band = np.abs(x - np.float32(hx * 0.3)) < np.float32(28.0)
        tis[lungs] = T_LUNG
        tis[lungs & med_band] = T_MEDFAT
        tis[lungs & (qh <= 1.0 + 4.0 / hrx)] = T_MEDFAT
        tis[lungs & (qh <= 1.0)] = T_MYO
        tis[lungs & (qh <= 1.0 - 10.0 / hry)] = T_BLOOD
        tis[lungs & (y > np.float32(self.thorax.B * 1.35)) & (ax < 45.0)] = T_SOFT
        return tis


# ----------------------------------------------------------------------------------------- lesion placement
def _place_lesion(an: _Anatomy, kind: str, R: float, rng: np.random.Generator, target_gap: float | None):
    br = an.breasts[int(rng.integers(0, 2))]
    les = _Lesion(rng, R)
    u = rng.uniform
    a = an.fat_a
    for _attempt in range(60):
        if kind == "deep":
            gap = target_gap if target_gap is not None else u(0.0, 1.0)
            x = br.c1[0] + u(-0.35, 0.35) * br.r1
            z = br.c1[2] + u(-0.3, 0.3) * br.r1
            ys = an.thorax.surface_y(x, z)
            if float(an.t_pmaj(np.float32(x), np.float32(ys), np.float32(z))) < 0.8 * an.T:
                continue
            p_s = np.array([x, ys, z])
            e = 0.5
            nrm = np.array([float(an.thorax(np.float32(x + e), np.float32(ys), np.float32(z)) -
                                  an.thorax(np.float32(x - e), np.float32(ys), np.float32(z))),
                            float(an.thorax(np.float32(x), np.float32(ys + e), np.float32(z)) -
                                  an.thorax(np.float32(x), np.float32(ys - e), np.float32(z))), 0.0])
            nrm /= np.linalg.norm(nrm)           # outward (anterior)
            les.centre = p_s + nrm * (R - a + gap)
            for _ in range(4):
                sp = les.surface_points()
                depth = -an.thorax(sp[:, 0], sp[:, 1], sp[:, 2])   # depth below thorax surface
                actual = float(a - depth.max())
                les.centre = les.centre + nrm * (gap - actual)
            sp = les.surface_points()
            actual = float(a - (-an.thorax(sp[:, 0], sp[:, 1], sp[:, 2])).max())
            tmin_here = float(an.t_pmaj(*(sp[:, a_].astype(np.float32) for a_ in range(3))).min())
            dbody = an.d_body(sp[:, 0], sp[:, 1], sp[:, 2])
            if tmin_here > 0 and float(dbody.max()) < -(an.skin0 + an.skin_thick + 8.0) and abs(actual - gap) < 0.1:
                return les, {"kind": kind, "gap_to_pectoralis_mm": round(actual, 3), "breast_side": br.side}
        else:
            # direction from the breast axis point at 40-60 % of the projection towards the surface
            t = u(0.35, 0.6)
            base = br.c1 + br.axis * (t * br.H)
            ang = u(0, 2 * np.pi)
            tilt = u(0.35, 1.1) if kind == "superficial" else u(0.0, 0.6)
            d = br.axis * np.cos(tilt) + np.sin(tilt) * (np.cos(ang) * br.e1 + np.sin(ang) * br.e2)
            d /= np.linalg.norm(d)
            lo, hi = 0.0, 200.0
            for _ in range(40):
                mid = (lo + hi) / 2
                p = base + d * mid
                if float(an.d_body(*(np.float32(v) for v in p))) < 0:
                    lo = mid
                else:
                    hi = mid
            p_s = base + d * lo
            e = 0.5
            grad = np.array([float(an.d_body(*(np.float32(v) for v in p_s + e * ax_)) -
                                   an.d_body(*(np.float32(v) for v in p_s - e * ax_))) for ax_ in np.eye(3)])
            nrm = grad / np.linalg.norm(grad)
            if kind == "superficial":
                lo_g = max(3.0, an.skin0 + an.skin_thick + 1.0)
                gap = target_gap if target_gap is not None else u(lo_g, max(lo_g, 6.0))
                les.centre = p_s - nrm * (gap + R)
                for _ in range(4):
                    sp = les.surface_points()
                    actual = float((-an.d_body(sp[:, 0], sp[:, 1], sp[:, 2])).min())
                    les.centre = les.centre - nrm * (gap - actual)
                sp = les.surface_points()
                actual = float((-an.d_body(sp[:, 0], sp[:, 1], sp[:, 2])).min())
                to_muscle = float(a - (-an.thorax(sp[:, 0], sp[:, 1], sp[:, 2])).max())
                if abs(actual - gap) < 0.1 and to_muscle > 10.0:
                    return les, {"kind": kind, "gap_to_skin_surface_mm": round(actual, 3), "breast_side": br.side,
                                 "gap_to_pectoralis_mm": round(to_muscle, 2)}
            else:
                les.centre = base + d * (lo * u(0.0, 0.5))
                sp = les.surface_points()
                to_skin = float((-an.d_body(sp[:, 0], sp[:, 1], sp[:, 2])).min())
                to_muscle = float(a - (-an.thorax(sp[:, 0], sp[:, 1], sp[:, 2])).max())
                if to_skin >= 10.0 and to_muscle >= 10.0:
                    return les, {"kind": kind, "gap_to_skin_surface_mm": round(to_skin, 2), "breast_side": br.side,
                                 "gap_to_pectoralis_mm": round(to_muscle, 2)}
    raise ValueError(f"could not place a {kind} lesion of radius {R} mm (seed anatomy too small)")


# ----------------------------------------------------------------------------------------- acquisition
def _rotation(axis: str, deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    if axis == "x":
        return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def make_case_b(
    seed: int = 0,
    *,
    contrast: str = "fs",
    density: str = "b",
    lesion_kind: str = "mid",
    pec_thickness_mm: float = 9.0,
    pec_minor: bool = True,
    skin_thickening_mm: float = 0.0,
    fgt_like_muscle: bool = False,
    lesion_radius_mm: float = 8.0,
    lesion_gap_mm: float | None = None,
    spacing: tuple[float, float, float] = (0.7, 0.7, 1.5),
    size: tuple[int, int, int] | None = None,
    fov_mm: tuple[float, float, float] = (180.0, 180.0, 75.0),
    direction: tuple[float, ...] = AXIAL_IDENTITY,
    oblique_deg: float = 0.0,
    oblique_axis: str = "z",
    bias: float = 0.35,
    ghosting: float = 0.0,
    pe_axis: str = "LR",
    noise: float = 6.0,
    breast_size: float = 1.0,
    full: bool = False,
    with_pre: bool = False,
) -> CaseB:
    """Build one family-B case (deterministic for the same arguments).

    contrast: ``fs`` | ``nonfs`` | ``sub`` (post minus pre, non-suppressed pair, clipped at 0);
    density: ACR ``a``-``d`` (fibroglandular fraction of the breast interior); lesion_kind: ``deep`` (0-1 mm
    in front of the pectoralis major, or ``lesion_gap_mm``), ``superficial`` (3-6 mm under the skin
    surface, or ``lesion_gap_mm``), ``mid``; pec_thickness_mm: nominal pectoralis major thickness (3-15);
    fgt_like_muscle: fibroglandular enhancement chosen so its signal is 0.95-1.08 x the muscle's;
    spacing / size / fov_mm: (x, y, z) along the index axes (size defaults to fov / spacing);
    direction: base direction matrix (row-major); oblique_deg / oblique_axis: rotate it about a patient
    axis; bias: coil-sensitivity amplitude; ghosting: motion-ghost amplitude (0-1, ~0.1 visible);
    pe_axis: ``LR`` or ``AP`` (patient axis nearest the phase-encode array axis); noise: Rician sigma;
    full: both breasts, 448 x 448 x 160 at 0.74 x 0.74 x 1.2 mm unless size / spacing are given;
    with_pre: also return the pre-contrast phase (same suppression) as ``CaseB.pre``.
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast {contrast!r} not in {CONTRASTS}")
    if density not in DENSITIES:
        raise ValueError(f"density {density!r} not in {tuple(DENSITIES)}")
    if lesion_kind not in LESION_KINDS:
        raise ValueError(f"lesion_kind {lesion_kind!r} not in {LESION_KINDS}")
    an = _Anatomy(seed, density, pec_thickness_mm, pec_minor, skin_thickening_mm, breast_size, fgt_like_muscle)
    rng = np.random.default_rng([int(seed), 0xB2])
    les, lmeta = _place_lesion(an, lesion_kind, float(lesion_radius_mm), rng, lesion_gap_mm)
    br = next(b for b in an.breasts if b.side == lmeta["breast_side"])
    if skin_thickening_mm > 0:
        ang = rng.uniform(0, 2 * np.pi)
        dvec = br.axis * 0.5 + 0.8 * (np.cos(ang) * br.e1 + np.sin(ang) * br.e2)
        an.skin_patch = (br.c1 + br.axis * 0.6 * br.H + dvec * br.r1, rng.uniform(25.0, 40.0))
        if lesion_kind == "superficial":   # thickening over the lesion (the hard case)
            an.skin_patch = (les.centre, an.skin_patch[1])
    # ---- grid
    if full:
        spacing = spacing if spacing != (0.7, 0.7, 1.5) else (0.74, 0.74, 1.2)
        size = size or (448, 448, 160)
    sp = np.array(spacing, float)
    n = np.array(size if size is not None else [int(round(f / s)) for f, s in zip(fov_mm, sp, strict=True)], int)
    D = np.asarray(direction, float).reshape(3, 3)
    if oblique_deg:
        D = _rotation(oblique_axis, oblique_deg) @ D
    ext = n * sp
    if full:
        tip_y = min(b.tip[1] for b in an.breasts)
        centre = np.array([0.0, tip_y - 15.0 + ext[1] / 2, les.centre[2] * 0.5])
    else:
        ant = br.tip[1] - rng.uniform(6.0, 18.0) - br.nipple_r
        cx = br.c1[0] + rng.uniform(-12.0, 12.0)
        cx = float(np.clip(cx, les.centre[0] - ext[0] / 2 + les.extent() + 15, les.centre[0] + ext[0] / 2 - les.extent() - 15))
        cz = float(les.centre[2] + rng.uniform(-8.0, 8.0))
        cz = float(np.clip(cz, les.centre[2] - ext[2] / 2 + les.extent() + 8, les.centre[2] + ext[2] / 2 - les.extent() - 8))
        centre = np.array([cx, ant + ext[1] / 2, cz])
    origin = centre - D @ (sp * (n - 1) / 2)
    ref = sitk.Image([int(v) for v in n], sitk.sitkUInt8)
    ref.SetSpacing([float(v) for v in sp])
    ref.SetOrigin([float(v) for v in origin])
    ref.SetDirection([float(v) for v in D.ravel()])
    nx, ny, nz = (int(v) for v in n)
    ii = (np.arange(nx) * sp[0]).astype(np.float32)
    jj = (np.arange(ny) * sp[1]).astype(np.float32)
    kk = (np.arange(nz) * sp[2]).astype(np.float32)
    tis = np.empty((nz, ny, nx), np.uint8)
    tex = np.empty((nz, ny, nx), np.float32)
    ldep = np.empty((nz, ny, nx), np.float32)
    dthorax = np.empty((nz, ny, nx), np.float32)
    slab = max(1, int(2_000_000 // (nx * ny)))
    for k0 in range(0, nz, slab):
        ks = kk[k0:k0 + slab]
        P = [np.float32(origin[r]) + np.float32(D[r, 0]) * ii[None, None, :] + np.float32(D[r, 1]) * jj[None, :, None]
             + np.float32(D[r, 2]) * ks[:, None, None] for r in range(3)]
        t, tx, ld, dth, _ = an.classify(P[0], P[1], P[2], les)
        tis[k0:k0 + slab], tex[k0:k0 + slab], ldep[k0:k0 + slab], dthorax[k0:k0 + slab] = t, tx, ld, dth
    # ---- per-voxel MR parameters
    pd = np.zeros(len(_TISSUE), np.float32)
    t1 = np.ones(len(_TISSUE), np.float32)
    t2s = np.ones(len(_TISSUE), np.float32)
    cg = np.zeros(len(_TISSUE), np.float32)
    for code, (p_, a_, b_, c_) in _TISSUE.items():
        pd[code], t1[code], t2s[code], cg[code] = p_, a_, b_, c_
    pd[T_BLOOD] *= an.flow_void
    c_les = rng.uniform(0.6, 1.3)
    rim = rng.uniform(0.0, 0.6)
    skin_c = 0.15 + (0.25 if skin_thickening_mm > 0 else 0.0)
    cg[T_SKIN] = skin_c
    muscle_post = float(spgr(pd[T_PMAJ], t1_with_gd(t1[T_PMAJ], cg[T_PMAJ]), t2s[T_PMAJ]))
    muscle_pre = float(spgr(pd[T_PMAJ], t1[T_PMAJ], t2s[T_PMAJ]))
    # fat-suppression residual (smooth, worse off-centre), coil sensitivity (stronger anteriorly)
    fs_field = _Cosines(rng, 6, (120.0, 300.0))
    b_field = _Cosines(rng, 6, (150.0, 400.0))
    fs_res0 = rng.uniform(0.04, 0.15)
    Y = (np.float32(origin[1] - centre[1]) + np.float32(D[1, 0]) * ii[None, None, :]
         + np.float32(D[1, 1]) * jj[None, :, None] + np.float32(D[1, 2]) * kk[:, None, None])
    coil = np.exp(np.float32(bias) * (0.6 * b_field.grid(origin, D, sp, n) - 0.8 * Y / np.float32(100.0)))
    coil = coil.astype(np.float32)
    del Y
    fatlike = np.isin(tis, _FATLIKE)
    fs_res = np.clip(fs_res0 * (1.0 + 0.6 * fs_field.grid(origin, D, sp, n)), 0.01, 0.5).astype(np.float32)
    fgt_ratio = None
    if fgt_like_muscle:
        fgt_ratio = float(rng.uniform(0.95, 1.08))
        # as seen in the image: the coil sensitivity differs between the breast and the chest wall
        sel_m, sel_g = tis == T_PMAJ, tis == T_FGT
        coil_ratio = float(np.median(coil[sel_m]) / np.median(coil[sel_g])) if sel_m.any() and sel_g.any() else 1.0
        target = fgt_ratio * coil_ratio * (muscle_post - muscle_pre if contrast == "sub" else muscle_post)
        lo, hi = 0.0, 3.0
        for _ in range(40):
            mid = (lo + hi) / 2
            s_post = float(spgr(pd[T_FGT], t1_with_gd(t1[T_FGT], mid), t2s[T_FGT]))
            val = s_post - float(spgr(pd[T_FGT], t1[T_FGT], t2s[T_FGT])) if contrast == "sub" else s_post
            lo, hi = (mid, hi) if val < target else (lo, mid)
        cg[T_FGT] = (lo + hi) / 2
    else:
        cg[T_FGT] = an.bpe
    # signal: one value per tissue code (look-up), per voxel only where there is texture (glandular, lesion)
    fgt = np.flatnonzero(tis.ravel() == T_FGT)
    lm = tis == T_LESION
    lflat = np.flatnonzero(lm.ravel())
    tex_f = tex.ravel()[fgt]
    pd_g = pd[T_FGT] * (1.0 + 0.05 * np.clip(tex_f, -3, 3))
    cg_g = cg[T_FGT] * np.clip(1.0 + 0.3 * tex_f, 0.2, None)
    w = np.clip(ldep[lm] / (0.35 * les.R), 0, 1)
    htex = _Cosines(rng, 8, (4.0, 12.0))
    kz, jy, ix = np.nonzero(lm)
    pts = [np.float32(origin[r]) + np.float32(D[r, 0]) * ii[ix] + np.float32(D[r, 1]) * jj[jy]
           + np.float32(D[r, 2]) * kk[kz] for r in range(3)]
    cg_l = c_les * (1.0 - rim * w) * np.clip(1.0 + 0.25 * htex(*pts), 0.3, None)

    def acquire(post: bool, fat_sup: bool, nrng: np.random.Generator) -> np.ndarray:
        lut = spgr(pd, t1_with_gd(t1, cg) if post else t1, t2s) * np.float32(SIGNAL_SCALE)
        s = lut[tis]
        sf = s.reshape(-1)
        sf[fgt] = spgr(pd_g, t1_with_gd(t1[T_FGT], cg_g) if post else t1[T_FGT], t2s[T_FGT]) * np.float32(SIGNAL_SCALE)
        sf[lflat] = spgr(pd[T_LESION], t1_with_gd(t1[T_LESION], cg_l) if post else t1[T_LESION],
                         t2s[T_LESION]) * np.float32(SIGNAL_SCALE)
        if fat_sup:
            s[fatlike] *= fs_res[fatlike]
        s *= coil
        s = ndimage.gaussian_filter(s, sigma=(0.45, 0.42, 0.42), truncate=3.0)   # PSF / slice profile
        if ghosting > 0:
            s = s + _ghost(s * (dthorax < 0), ghosting, pe_axis, D, np.random.default_rng([int(seed), 0xB3]))
        if noise > 0:
            re = s + np.float32(noise) * nrng.standard_normal(s.shape, dtype=np.float32)
            im = np.float32(noise) * nrng.standard_normal(s.shape, dtype=np.float32)
            s = np.sqrt(re * re + im * im)
        return s

    nrng = np.random.default_rng([int(seed), 0xB4])
    pre_img = None
    pre_arr = None
    if contrast in ("fs", "nonfs"):
        img = acquire(True, contrast == "fs", nrng)
        if with_pre:
            pre_arr = acquire(False, contrast == "fs", nrng)
    else:
        post = acquire(True, False, nrng)
        pre_arr = acquire(False, False, nrng)
        img = np.clip(post - pre_arr, 0, None)
    img16 = np.clip(np.rint(img), 0, 32767).astype(np.int16)
    image = sitk.GetImageFromArray(img16)
    image.CopyInformation(ref)
    if pre_arr is not None:
        pre_img = sitk.GetImageFromArray(np.clip(np.rint(pre_arr), 0, 32767).astype(np.int16))
        pre_img.CopyInformation(ref)
    labels = sitk.GetImageFromArray(TISSUE_CLASS[tis])
    labels.CopyInformation(ref)
    lesion = sitk.GetImageFromArray(lm.astype(np.uint8))
    lesion.CopyInformation(ref)
    lab = TISSUE_CLASS[tis]
    breast_interior = np.isin(lab, (CLASS["fat"], CLASS["fibroglandular"])) & (dthorax > 0)
    fgt_frac = float((lab == CLASS["fibroglandular"]).sum() / max(1, (breast_interior | (lab == CLASS["fibroglandular"])).sum()))
    level = {name: float(spgr(pd[c], t1_with_gd(t1[c], cg[c]), t2s[c]) * SIGNAL_SCALE) for name, c in
             (("fat", T_FAT), ("fibroglandular", T_FGT), ("pectoralis_major", T_PMAJ), ("skin", T_SKIN))}
    if contrast == "fs":
        level["fat"] *= fs_res0
    if contrast == "sub":
        level = {name: level[name] - float(spgr(pd[c], t1[c], t2s[c]) * SIGNAL_SCALE) for name, c in
                 (("fat", T_FAT), ("fibroglandular", T_FGT), ("pectoralis_major", T_PMAJ), ("skin", T_SKIN))}
    meta = {
        "family": "B",
        "seed": int(seed), "contrast": contrast, "density": density,
        "fgt_fraction_target": round(an.fgt_fraction_target, 3), "fgt_fraction_in_fov": round(fgt_frac, 3),
        "fgt_like_muscle": bool(fgt_like_muscle), "fgt_over_muscle": fgt_ratio,
        "lesion": dict(lmeta, radius_mm=float(lesion_radius_mm), centre_lps_mm=[round(float(v), 2) for v in les.centre],
                       voxels=int(lm.sum()), peak_gd_mM=round(c_les, 3), rim=round(rim, 3)),
        "pectoralis_major_thickness_mm": float(pec_thickness_mm),
        "pectoralis_minor_thickness_mm": round(an.pmin, 2),
        "skin_mm": round(an.skin0, 2), "skin_thickening_mm": float(skin_thickening_mm),
        "fat_in_front_of_muscle_mm": round(an.fat_a, 2),
        "spacing": [float(v) for v in sp], "size": [int(v) for v in n], "direction": [float(v) for v in D.ravel()],
        "oblique_deg": float(oblique_deg), "oblique_axis": oblique_axis,
        "bias": float(bias), "ghosting": float(ghosting), "pe_axis": pe_axis, "noise_sigma": float(noise),
        "fat_suppression_residual": round(fs_res0, 3) if contrast == "fs" else None,
        "flow_void": round(an.flow_void, 3), "tissue_level_nominal": {k: round(v, 1) for k, v in level.items()},
        "full": bool(full),
    }
    return CaseB(image=image, lesion=lesion, labels=labels, meta=meta, pre=pre_img)


def sweep_configs(quick: bool = False) -> list[dict]:
    """The issue-11 sweep grid: contrast x density x lesion kind x pectoralis thickness (72 cases, or 18).

    Each entry: ``{"i", "seed", "kwargs"}`` for ``make_case_b(seed, **kwargs)``; from the index are drawn the
    spacing (0.7 x 0.7 x 1.5 or 1 x 1 x 2 mm), direction (identity, Duke-like flipped, 15-25 degree oblique),
    glandular tissue at muscle intensity (odd indices), pectoralis minor (70 %), skin thickening (30 %), bias,
    motion ghosting (40 %) and lesion radius (5-10 mm). ``quick`` keeps one density per contrast x kind x
    thickness (cycling a-d): a subset of the full grid with identical parameters.
    """
    out = []
    dens = list(DENSITIES)
    i = 0
    for ci, contrast in enumerate(CONTRASTS):
        for density in dens:
            for ki, kind in enumerate(LESION_KINDS):
                for ti, thick in enumerate((3.0, 15.0)):
                    rng = np.random.default_rng([i, 2026])
                    geo = int(rng.integers(0, 3))
                    kw = {"contrast": contrast, "density": density, "lesion_kind": kind, "pec_thickness_mm": thick,
                          "spacing": (0.7, 0.7, 1.5) if rng.random() < 0.6 else (1.0, 1.0, 2.0),
                          "direction": AXIAL_DUKE if geo == 1 else AXIAL_IDENTITY,
                          "oblique_deg": float(rng.uniform(15, 25)) if geo == 2 else 0.0,
                          "fgt_like_muscle": bool(i % 2),
                          "pec_minor": bool(rng.random() < 0.7),
                          "skin_thickening_mm": float(rng.uniform(1.5, 3.5)) if rng.random() < 0.3 else 0.0,
                          "bias": float(rng.uniform(0.1, 0.6)),
                          "ghosting": float(rng.uniform(0.05, 0.2)) if rng.random() < 0.4 else 0.0,
                          "lesion_radius_mm": float(rng.uniform(5.0, 10.0))}
                    if not quick or dens.index(density) == (ci + 2 * ki + ti) % 4:
                        out.append({"i": i, "seed": 1000 + i, "kwargs": kw})
                    i += 1
    return out


def write_case_b(case: CaseB, outdir) -> None:
    """Write image.nrrd, lesion.nrrd, labels.nrrd, air.nrrd, pectoralis.nrrd and meta.json (e.g. for the CLI)."""
    import json
    from pathlib import Path

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for name, img in (("image", case.image), ("lesion", case.lesion), ("labels", case.labels),
                      ("air", case.air), ("pectoralis", case.pectoralis)):
        sitk.WriteImage(img, str(out / f"{name}.nrrd"), True)
    if case.pre is not None:
        sitk.WriteImage(case.pre, str(out / "pre.nrrd"), True)
    meta = dict(case.meta, classes=list(CLASSES))
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _ghost(moving: np.ndarray, amp: float, pe_axis: str, D: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Motion ghosts of ``moving`` along the phase-encode array axis (first-order k-space model).

    Per phase-encode line ky the moving part is displaced by d(ky) = A sin(2 pi ky / P + phi) (mm, along the
    patient A-P axis) and its amplitude modulated by (1 + e(ky)); to first order the k-space error is
    d(ky) FT(dM/dy) + e(ky) FT(M), whose inverse transform along the PE axis is the ghost image.
    """
    patient = {"LR": 0, "AP": 1}[pe_axis]
    index_axis = int(np.argmax(np.abs(D[patient, :])))      # image index axis i/j/k nearest that patient axis
    arr_axis = 2 - index_axis
    ap_index = int(np.argmax(np.abs(D[1, :])))
    d_ap = np.gradient(moving, axis=2 - ap_index)
    n = moving.shape[arr_axis]
    period = rng.uniform(6.0, 20.0)
    ky = np.fft.fftfreq(n) * n
    phi = rng.uniform(0, 2 * np.pi)
    disp = 2.0 * amp * np.sin(2 * np.pi * ky / period + phi)          # voxels
    modu = amp * np.sin(2 * np.pi * ky / (period * 0.5) + 1.3 * phi)
    shape = [1, 1, 1]
    shape[arr_axis] = n
    err = sfft.fft(d_ap.astype(np.float32), axis=arr_axis) * disp.reshape(shape).astype(np.float32)
    err += sfft.fft(moving.astype(np.float32), axis=arr_axis) * modu.reshape(shape).astype(np.float32)
    return sfft.ifft(err, axis=arr_axis).real.astype(np.float32)
