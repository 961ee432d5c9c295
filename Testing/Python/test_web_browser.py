"""The QA page in a real browser: Playwright drives the system's headless Chromium against `her2radiomics web`.

A 3-case phantom session (`her2radiomics phantom`, `her2radiomics qa init`) is served by the real command in a
subprocess (server-side VTK rendering on an Xvfb display this test starts). In the page: Generate shells, erase
part of the pectoralis with a mouse drag on the axial slice view, Apply exclusions, Approve; then Next, Reject with
a note. On disk: the statuses, the edited pectoralis (only voxels removed), the shells regained exactly the erased
voxels within their distance (against the core's exclusion-free shell geometry and a brute-force distance
transform), the excluded mm3 the session recorded, and `extract --qa --only-approved` using the edited mask.

Runs in the web lane (scripts/web_lane.sh: its own virtualenv with the `web` extra, because trame-slicer 2.0 needs
slicer-core 5.11 and the main suite pins 5.13). Elsewhere it skips with the reason. Chromium is never downloaded by
Playwright: /usr/bin/chromium (Debian's package) through ``executable_path``.

Set HER2RADIOMICS_WEB_SCREENSHOTS=DIR to keep the page's screenshots (docs/img/web_*.png are made this way).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer", reason="needs the 'web' extra: runs in the web lane (bash scripts/web_lane.sh)")
pytest.importorskip("slicer", reason="needs slicer-core (the 'web' extra): runs in the web lane (bash scripts/web_lane.sh)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: runs in the web lane (bash scripts/web_lane.sh)")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("HER2RADIOMICS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DISTANCES = (1.0, 3.0, 5.0)
PHANTOM = ["--size", "144", "144", "40", "--spacing", "0.9", "0.9", "1.6", "--lesion-gap-mm", "2"]
#: the pectoralis' fixed colour (HER2RadiomicsLib.segments.FIXED_COLORS) as drawn by a 2D fill over grey
BROWN = (0.62, 0.36, 0.20)


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "her2radiomics", *args], cwd=cwd, capture_output=True, encoding="utf-8",
                         timeout=timeout)
    assert res.returncode == 0, f"her2radiomics {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; scripts/web_lane.sh installs it "
                    "when run as root); set HER2RADIOMICS_CHROMIUM to another binary")
    return CHROMIUM


@pytest.fixture(scope="module")
def display():
    """An X display for the server's VTK render windows: ours (Xvfb), even when one is set."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is not installed (Debian: apt-get install xvfb; scripts/web_lane.sh installs it as root)")
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        num = f.readline().strip()
    assert num, "Xvfb did not report a display number"
    yield f":{num}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("webqa")
    rows = ["case_id,image,lesion"]
    for seed in (1, 2, 3):
        _cli("phantom", "-o", str(root / f"ph{seed}"), "--seed", str(seed), *PHANTOM)
        rows.append(f"case{seed},ph{seed}/image.nrrd,ph{seed}/lesion.nrrd")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    _cli("qa", "init", str(root / "manifest.csv"), "-o", str(root / "QA"), "--reader", "R1",
         "--distances", *(f"{d:g}" for d in DISTANCES))
    return root


@pytest.fixture(scope="module")
def server(cohort, display):
    """`her2radiomics web` in a subprocess; yields (url, the lines it printed)."""
    port = _free_port()
    env = {**os.environ, "DISPLAY": display}
    proc = subprocess.Popen([sys.executable, "-m", "her2radiomics", "web", "--session", str(cohort / "QA"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                            env=env, cwd=cohort)
    lines: list[str] = []
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("her2radiomics web:"):
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        pytest.fail("her2radiomics web did not start in 120 s:\n" + "\n".join(lines[-40:]))
    yield f"http://127.0.0.1:{port}/", lines
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _message(page) -> str:
    return page.inner_text('[data-testid="message"]')


def _wait_message(page, text: str, timeout_s: float = 120) -> str:
    page.wait_for_function(
        "t => { const e = document.querySelector('[data-testid=message]'); return e && e.innerText.includes(t); }",
        arg=text, timeout=timeout_s * 1000)
    msg = _message(page)
    assert "error" not in msg.lower(), msg
    return msg


def _find_pectoralis_near_lesion(png: bytes) -> tuple[float, float]:
    """(x, y) in the screenshot of the pectoralis' fill pixel nearest to the lesion's (by colour)."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    # a 2D fill of opacity ~0.45 over grey keeps the colour's channel differences times the opacity
    br = 255 * np.array(BROWN)
    brown = (np.abs((r - b) - 0.45 * (br[0] - br[2])) < 14) & (np.abs((g - b) - 0.45 * (br[1] - br[2])) < 8)
    from scipy import ndimage

    # JPEG-streamed frames blend colours at edges: keep only solid patches (not speckles at the lesion's border)
    brown = ndimage.binary_opening(brown, structure=np.ones((3, 3), bool), iterations=2)
    red = (r - b > 70) & (np.abs(g - b) < 8)
    assert red.sum() > 20, "the lesion is not visible in the axial view"
    assert brown.sum() > 50, "the pectoralis is not visible in the axial view"
    ly, lx = np.argwhere(red).mean(axis=0)
    pts = np.argwhere(brown)
    y, x = pts[np.argmin(np.hypot(pts[:, 0] - ly, pts[:, 1] - lx))]
    return float(x), float(y)


def _arr(img) -> np.ndarray:
    return sitk.GetArrayFromImage(img).astype(bool)


def test_review_in_browser(chromium, cohort, server, tmp_path):
    from her2radiomics.io import read_image, read_mask
    from her2radiomics.regions import build_regions

    url, lines = server
    t0 = time.monotonic()
    assert any("127.0.0.1" in ln and "this machine only" in ln for ln in lines), lines
    shots = Path(os.environ.get("HER2RADIOMICS_WEB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as pw:
        # a fresh profile folder (Playwright passes it as --user-data-dir)
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector('[data-testid="case-list"]', timeout=120_000)
            _wait_message(page, "case case1 opened")
            for tid in ("case-list", "generate-shells", "detect-exclusions", "apply-exclusions", "erase-air",
                        "erase-pectoralis", "extract", "predict", "p-positive", "p-low", "p-zero", "approve",
                        "reject", "next-case", "qa-progress"):
                assert page.locator(f'[data-testid="{tid}"]').count() == 1, f"no single data-testid={tid}"
            assert "0 of 3 reviewed" in page.inner_text('[data-testid="qa-progress"]')

            page.click('[data-testid="generate-shells"]')
            _wait_message(page, "generated")
            page.screenshot(path=str(shots / "web_shells.png"))

            page.click('[data-testid="erase-pectoralis"]')
            _wait_message(page, "erase 'pectoralis'")
            time.sleep(1.0)  # the view's next frame (brush cursor)
            view = page.locator('[data-testid="views"] img').first
            box = view.bounding_box()
            png = view.screenshot()
            x, y = _find_pectoralis_near_lesion(png)
            from PIL import Image

            w, h = Image.open(io.BytesIO(png)).size
            sx, sy = box["x"] + x * box["width"] / w, box["y"] + y * box["height"] / h
            page.mouse.move(sx, sy)
            page.mouse.down()
            page.mouse.move(sx + 10, sy + 6, steps=10)
            page.mouse.up()
            time.sleep(1.0)
            page.click('[data-testid="apply-exclusions"]')
            _wait_message(page, "recomputed")
            assert "pectoralis auto, edited" in page.inner_text("body")
            page.screenshot(path=str(shots / "web_erased.png"))

            # optional steps of the panel: features of the edited regions, then the stage-wise prediction
            page.click('[data-testid="extract"]')
            _wait_message(page, "features extracted")
            page.click('[data-testid="predict"]')
            _wait_message(page, "predicted with")
            probs = [page.inner_text(f'[data-testid="{k}"]') for k in ("p-positive", "p-low", "p-zero")]
            values = [float(p.rstrip("%")) for p in probs]
            assert sum(values) == pytest.approx(100.0, abs=0.3), probs
            assert page.locator('[data-testid^="gdi-stage1-"]').count() >= 1
            assert page.locator('[data-testid="contributions"] > div').count() >= 1
            page.locator('[data-testid="contributions"]').scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "web_prediction.png"))

            page.click('[data-testid="approve"]')
            msg = _wait_message(page, "case case1: edited")
            assert "pectoralis" in msg
            page.wait_for_selector('[data-testid="case-case1"][data-status="edited"]', timeout=30_000)

            page.click('[data-testid="next-case"]')
            _wait_message(page, "case case2 opened")
            # nothing of case1 is shown with case2 (results are tied to their case)
            assert [page.inner_text(f'[data-testid="{k}"]').strip() for k in ("p-positive", "p-low", "p-zero")] == ["", "", ""]
            assert page.locator('[data-testid^="stats-"]').count() == 0
            assert page.locator('[data-testid^="gdi-"]').count() == 0
            page.fill('[data-testid="reject-note"] input', "motion artefact over the lesion")
            page.click('[data-testid="reject"]')
            _wait_message(page, "case case2: rejected")
            page.wait_for_selector('[data-testid="case-case2"][data-status="rejected"]', timeout=30_000)
            assert "2 of 3 reviewed" in page.inner_text('[data-testid="qa-progress"]')
            page.screenshot(path=str(shots / "web_decisions.png"))

            page.click('[data-testid="next-case"]')
            _wait_message(page, "case case3 opened")
            page.fill('[data-testid="reject-note"] input', "lesion border unclear")
            page.click('[data-testid="needs-edit"]')
            _wait_message(page, "case case3: pending (needs edit: lesion border unclear)")
            page.click('[data-testid="previous-case"]')
            _wait_message(page, "case case2 opened")   # opening a decided case again keeps its decision
            page.wait_for_selector('[data-testid="case-case2"][data-status="rejected"]', timeout=30_000)
        finally:
            browser.close()
    browser_s = time.monotonic() - t0

    # ---------------------------------------------------------------- on disk: statuses
    qa = cohort / "QA"
    with open(qa / "status.csv", encoding="utf-8", newline="") as f:
        status = {r["case_id"]: r for r in csv.DictReader(f)}
    assert status["case1"]["status"] == "edited" and status["case1"]["reviewer"] == "R1"
    assert status["case2"]["status"] == "rejected" and status["case2"]["note"] == "motion artefact over the lesion"
    assert status["case3"]["status"] == "pending" and status["case3"]["note"] == "needs edit: lesion border unclear"
    rev = json.loads((qa / "reviews" / "case1" / "R1.json").read_text(encoding="utf-8"))
    assert set(rev["masks"]) == {"pectoralis"}, rev["masks"]   # the lesion and the automatic air were not edited

    # ---------------------------------------------------------------- the edited mask
    image = read_image(cohort / "ph1" / "image.nrrd")
    lesion = read_mask(cohort / "ph1" / "lesion.nrrd", image, "lesion")
    edited_path = qa / rev["masks"]["pectoralis"]["file"]
    edited = read_mask(edited_path, image, "pectoralis")
    shown = build_regions(image, lesion, DISTANCES)               # what Generate shells showed (automatic exclusions)
    after = build_regions(image, lesion, DISTANCES, pectoralis=edited)
    geometry = build_regions(image, lesion, DISTANCES, auto_exclusions=False)   # the shells without exclusions
    before_p, edited_p = _arr(shown.masks["pectoralis"]), _arr(edited)
    erased = before_p & ~edited_p
    assert erased.sum() > 0, "the drag erased nothing"
    assert not (edited_p & ~before_p).any(), "the edit added pectoralis voxels: only an erase was done"
    air = _arr(shown.masks["air"])

    # brute-force distance (mm) of every voxel centre to the nearest lesion voxel centre
    from scipy import ndimage

    les = _arr(lesion)
    sp = image.GetSpacing()[::-1]
    dist = ndimage.distance_transform_edt(~les, sampling=sp)
    voxel_mm3 = float(np.prod(image.GetSpacing()))
    gained_any = 0
    for d in DISTANCES:
        name = f"peri{d:g}"
        old, new, geo = _arr(shown.masks[name]), _arr(after.masks[name]), _arr(geometry.masks[name])
        assert not (old & ~new).any(), f"{name} lost voxels to an erase"
        gained = new & ~old
        assert np.array_equal(gained, erased & geo & ~air), f"{name} did not regain exactly the erased voxels within {d:g} mm"
        assert (dist[gained] <= d + 1e-6).all(), f"{name} regained voxels farther than {d:g} mm from the lesion"
        gained_any += int(gained.sum())
        # the session's excluded mm3 (before / after the edit) differ by exactly the regained volume
        ex_b, ex_a = rev["excluded_before"][name]["pectoralis"], rev["excluded_after"][name]["pectoralis"]
        assert ex_b - ex_a == pytest.approx(gained.sum() * voxel_mm3, abs=1e-3), (name, ex_b, ex_a)
    assert gained_any > 0, "the erased pectoralis voxels lie outside every shell: the drag missed the lesion's surroundings"

    # ---------------------------------------------------------------- extract --qa --only-approved uses it
    out = tmp_path / "features_qa.csv"
    res = _cli("extract", str(cohort / "manifest.csv"), "-o", str(out), "--qa", str(qa), "--only-approved",
               "--distances", *(f"{d:g}" for d in DISTANCES), cwd=cohort, timeout=600)
    skipped = res.stdout + res.stderr
    assert "case2" in skipped and "case3" in skipped, skipped
    import pandas as pd

    got = pd.read_csv(out)
    assert list(got["case_id"]) == ["case1"]
    ref_manifest = tmp_path / "edited_manifest.csv"
    ref_manifest.write_text(f"case_id,image,lesion,pectoralis\ncase1,{cohort / 'ph1' / 'image.nrrd'},"
                            f"{cohort / 'ph1' / 'lesion.nrrd'},{edited_path}\n")
    ref_out = tmp_path / "features_ref.csv"
    _cli("extract", str(ref_manifest), "-o", str(ref_out), "--distances", *(f"{d:g}" for d in DISTANCES),
         cwd=cohort, timeout=600)
    ref = pd.read_csv(ref_out)
    feats = [c for c in ref.columns if c.startswith(("intra_", "peri"))]
    assert feats
    pd.testing.assert_frame_equal(got[feats].reset_index(drop=True), ref[feats].reset_index(drop=True))
    print(f"\n[web] browser part {browser_s:.1f} s, erased {int(erased.sum())} pectoralis voxels, shells regained "
          f"{gained_any}; load {os.getloadavg()}")
