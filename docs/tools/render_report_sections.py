"""Render screenshots of the report's methods sections in headless Chromium (docs/img/report_*.png).

Usage (from the repository root, after ``source scripts/env.sh``; needs ``chromium``)::

    python docs/tools/render_report_sections.py [--out docs/img] [--workdir /tmp/report_sections]

A two-centre synthetic cohort (modeling_synth.synthetic_cohort with HER2 categories, a second reader on 24 cases)
goes through the documented commands: ``study`` for stage 1 (split by centre, ``--icc``, ``--bootstrap 500``)
and stage 2, ``predict`` and ``report --labels``. Each section of the report is cut out of the HTML by its
``id`` (the same page styles), loaded in Chromium and captured; the script fails when an image of a section
does not load (the probe of Testing/Python/test_report.py). Not a test: the PNGs illustrate docs/report.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "HER2Radiomics"))
sys.path.insert(0, str(ROOT / "Testing" / "Python"))  # modeling_synth: the synthetic tables

SECTIONS = {  # output name -> (start marker, end marker) in the report HTML
    "report_methods_design.png": ('<div id="stage1-methods">', "<h4>Reproducibility (ICC)</h4>"),
    "report_methods_icc_funnel.png": ("<h4>Reproducibility (ICC)</h4>", '<img class="fig" alt="LASSO'),
    "report_methods_lasso.png": ('<img class="fig" alt="LASSO', "<h4>Discrimination and calibration</h4>"),
    "report_methods_calibration.png": ("<h4>Discrimination and calibration</h4>", "</div>"),
    "report_figures_roc_dca.png": ('<img class="fig" alt="ROC curves', '<img class="fig" alt="GDI'),
    "report_gdi.png": ('<img class="fig" alt="GDI', "<h3>Selected features"),
    "report_rad_score.png": ("<h3>Selected features", "</section>"),
    "report_clear.png": ('<section id="clear">', "</section>"),
    "report_predictions_truth.png": ('<section id="predictions">', "</table>"),
}


def cohort(d: Path) -> None:
    import numpy as np
    import pandas as pd
    from modeling_synth import synthetic_cohort

    f, lab = synthetic_cohort(n_cases=160, n_per_region=12, regions=("intra", "peri1", "peri3", "peri5"),
                                       seed=12, effect=1.1, event_rate=0.35)
    f.columns = [re.sub(r"_f(\d+)$", lambda m: f"_original_glcm_F{m.group(1)}", c) for c in f.columns]
    rng = np.random.default_rng(12)
    low = rng.random(len(lab)) < 0.55
    lab["her2"] = np.where(lab["label"] == 1, "positive", np.where(low, "low", "zero"))
    lab["center"] = np.where(np.arange(len(lab)) % 4 == 0, "B", "A")
    f.to_csv(d / "features.csv", index=False)
    f.iloc[::8].to_csv(d / "some_cases.csv", index=False)  # 20 cases to predict (the table stays one screen)
    params = ROOT / "Resources" / "Parameters" / "her2radiomics_default.yaml"
    from her2radiomics.features import load_params, parameter_file_hash

    meta = {"parameter_file": str(params), "parameter_file_hash": parameter_file_hash(load_params(params))}  # as 'extract'
    for name in ("features", "some_cases"):
        (d / f"{name}.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    lab.drop(columns="label").to_csv(d / "labels.csv", index=False)
    a = f.iloc[:24].copy()
    b = a.copy()
    num = [c for c in f.columns if c != "case_id"]
    noise = np.where(np.arange(len(num)) % 5 == 4, 1.5, 0.15)
    b[num] = b[num] + rng.normal(0, 1, b[num].shape) * f[num].std().to_numpy() * noise
    pd.concat([a.assign(reader="A"), b.assign(reader="B")]).to_csv(d / "icc.csv", index=False)


def cli(*args) -> None:
    from her2radiomics import cli as _cli

    rc = _cli.main([str(a) for a in args])
    if rc != 0:
        raise SystemExit(f"her2radiomics {' '.join(map(str, args))} failed ({rc})")


def shoot(html_path: Path, png: Path, width: int = 1280, height: int = 2400) -> None:
    from PIL import Image, ImageChops

    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        raise SystemExit("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}", "--virtual-time-budget=10000",
                        f"--screenshot={png}", html_path.as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(png).convert("RGB")
    bg = Image.new("RGB", img.size, img.getpixel((img.width - 1, img.height - 1)))
    box = ImageChops.difference(img, bg).getbbox()
    if box:
        img = img.crop((0, 0, img.width, min(img.height, box[3] + 16)))
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)  # screenshots: few colours


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "Testing" / "Python"))
    from test_report import count_loaded_images

    with tempfile.TemporaryDirectory() as tmp:
        d = args.workdir or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        cohort(d)
        cli("study", d / "features.csv", d / "labels.csv", "-o", d / "study1", "--task", "stage1", "--split", "center",
            "--test-center", "B", "--icc", d / "icc.csv", "--bootstrap", "500", "--force")
        cli("study", d / "features.csv", d / "labels.csv", "-o", d / "study2", "--task", "stage2", "--icc",
            d / "icc.csv", "--force")
        cli("predict", d / "some_cases.csv", "--stage1", d / "study1" / "intra_peri3.model.json", "--stage2",
            d / "study2" / "intra_peri3.model.json", "-o", d / "pred.csv", "--max-cases", "0")
        report = d / "report.html"
        report.unlink(missing_ok=True)
        cli("report", "--study", d / "study1" / "study.json", d / "study2" / "study.json", "--predictions",
            d / "pred.csv", "--labels", d / "labels.csv", "--max-cases", "3", "-o", report)
        text = report.read_text(encoding="utf-8")
        head = text[: text.index("<main>") + len("<main>")]
        args.out.mkdir(parents=True, exist_ok=True)
        for name, (start, end) in SECTIONS.items():
            i = text.index(start)
            j = text.index(end, i + len(start))
            page = d / (Path(name).stem + ".html")
            page.write_text(head + text[i:j] + "</main></body></html>", encoding="utf-8")
            ok, total = count_loaded_images(page)
            if ok != total:
                raise SystemExit(f"{name}: only {ok} of {total} images loaded in Chromium")
            shoot(page, args.out / name)
            print(f"{args.out / name}: {total} image(s) loaded in Chromium")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
