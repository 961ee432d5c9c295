"""HTML report: content, self-containment, and that every figure actually loads in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from test_prediction import make_card, make_card_from

from her2radiomics.report import build_report, normalize_study, roc_points

FEATS = ["intra_original_firstorder_Mean", "peri3_wavelet-LLH_glcm_Contrast", "peri1_original_shape_Sphericity"]


def synthetic_study(task: str = "stage1", seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Two feature-set models scored on train/test splits of a random cohort (plus the features table)."""
    rng = np.random.default_rng(seed)
    n = 60
    y = (rng.random(n) < 0.45).astype(int)
    x = rng.normal(0, 1, (n, 3)) + y[:, None] * np.array([1.0, 0.6, 0.3])
    df = pd.DataFrame(x * [50, 2, 0.1] + [300, 5, 0.7], columns=FEATS)
    df.insert(0, "case_id", [f"c{i:02d}" for i in range(n)])
    models = {}
    for name, k, gdi in (("intra", 1, 0.08), ("intra+peri3", 3, 0.22)):
        card = make_card(FEATS[:k], [300, 5, 0.7][:k], [50, 2, 0.1][:k], [1.2, 0.5, 0.2][:k], -0.1, cutoff=0.45,
                         task=task, tmin=df[FEATS[:k]].min(), tmax=df[FEATS[:k]].max(), gdi=gdi)
        card = make_card_from({**card, "feature_set": name})
        z = (df[FEATS[:k]].to_numpy() - card["scaler"]["mean"]) / card["scaler"]["scale"]
        p = 1 / (1 + np.exp(-(card["intercept"] + z @ np.asarray(card["coefficients"]))))
        models[name] = {"card": card, "scores": {
            "train": {"case_id": df["case_id"][:40].tolist(), "y": y[:40].tolist(), "prob": p[:40].tolist()},
            "test": {"case_id": df["case_id"][40:].tolist(), "y": y[40:].tolist(), "prob": p[40:].tolist()}}}
    delong = {split: {"names": ["intra", "intra+peri3"], "p": [[1.0, 0.04], [0.04, 1.0]]} for split in ("train", "test")}
    return {"task": task, "models": models, "chosen": "intra", "delong": delong}, df


def test_roc_points_match_brute_force():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = np.round(rng.random(40), 1)  # ties
    fpr, tpr = roc_points(y, s)
    for t in np.unique(s):
        tp, fp = np.sum((s >= t) & (y == 1)) / y.sum(), np.sum((s >= t) & (y == 0)) / (1 - y).sum()
        assert any(np.isclose(fpr, fp) & np.isclose(tpr, tp))
    # trapezoid area == Mann-Whitney AUC with ties counted one half
    pos, neg = s[y == 1], s[y == 0]
    mw = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert np.trapezoid(tpr, fpr) == pytest.approx(mw)


def _report(tmp_path: Path) -> Path:
    s1, df = synthetic_study("stage1")
    s2, _ = synthetic_study("stage2", seed=1)
    (tmp_path / "s1.json").write_text(json.dumps(s1))
    (tmp_path / "s2.json").write_text(json.dumps(s2))
    m1, m2 = s1["models"]["intra"]["card"], s2["models"]["intra+peri3"]["card"]
    (tmp_path / "m1.json").write_text(json.dumps(m1))
    (tmp_path / "m2.json").write_text(json.dumps(m2))
    df.iloc[:3].to_csv(tmp_path / "F.csv", index=False)
    r = run_cli("predict", tmp_path / "F.csv", "--stage1", tmp_path / "m1.json", "--stage2", tmp_path / "m2.json",
                "-o", tmp_path / "P.csv")
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "--study", tmp_path / "s1.json", tmp_path / "s2.json", "--predictions", tmp_path / "P.csv",
                "-o", tmp_path / "report.html")
    assert r.returncode == 0, r.stderr
    return tmp_path / "report.html"


@pytest.fixture(scope="module")
def report_path(tmp_path_factory) -> Path:
    return _report(tmp_path_factory.mktemp("report"))


def test_report_is_self_contained_with_every_section(report_path):
    text = report_path.read_text(encoding="utf-8")
    # no external resources: every image is an embedded PNG
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|file:|/)', text)
    # 2 studies x (selection funnel, ROC, DeLong train + test, calibration, DCA, GDI, coefficients) + 3 cases x
    # (probs, contributions); these synthetic cards hold no ICC result or LASSO path
    assert len(srcs) == 2 * 8 + 3 * 2
    for alt in ("ROC curves", "DeLong matrix test", "Calibration", "Decision curves", "GDI", "Coefficients",
                "Contributions c00"):
        assert f'alt="{alt}' in text
    # the intended-use line on every section (each study, the predictions table, and each case)
    assert text.count('class="banner"') >= 1 + 2 + 1 + 3
    assert "not for clinical use" in text.lower()
    assert "3 mm shell · wavelet LLH · GLCM · Contrast" in text


def test_delong_matrix_uses_paired_test_on_same_cases():
    stats = pytest.importorskip("her2radiomics.stats")
    from her2radiomics.report import delong_p_values

    raw = synthetic_study()[0]
    study = normalize_study(raw)
    s = [m["scores"]["test"] for m in study["models"]]
    expected = stats.delong_test(s[0]["y"], s[0]["prob"], s[1]["prob"])["p"]
    # the second model lists its cases in another order: the test must pair them by case id, not by row
    t = raw["models"]["intra+peri3"]["scores"]["test"]
    rev = {k: v[::-1] for k, v in t.items()}
    shuffled = normalize_study({**raw, "models": {**raw["models"], "intra+peri3": {
        **raw["models"]["intra+peri3"], "scores": {**raw["models"]["intra+peri3"]["scores"], "test": rev}}}})
    for st in (study, shuffled):
        names, p = delong_p_values(st["models"], "test")
        assert names == ["intra", "intra+peri3"]
        assert p[0, 1] == p[1, 0] == pytest.approx(expected) and p[0, 0] == 1.0
    assert 0 < expected < 1 and expected != pytest.approx(stats.delong_test(s[0]["y"], s[0]["prob"], s[1]["prob"][::-1])["p"])


def test_report_needs_input():
    from her2radiomics.errors import UserError
    with pytest.raises(UserError):
        build_report([], None)
    with pytest.raises(UserError, match="no models"):
        normalize_study({"task": "stage1"})


_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement('div'); d.id = 'imgcheck';
  d.textContent = 'IMGCHECK ' + ok + '/' + imgs.length; document.body.appendChild(d);
});
</script>"""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium); scripts/test.sh installs it as root")
    return exe


def chromium_args(exe: str, profile: str) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000"]


def count_loaded_images(html_path: Path) -> tuple[int, int]:
    """(images with naturalWidth > 0, all images) after Chromium loads a copy of the page."""
    exe = chromium()
    probe = html_path.with_name(html_path.stem + ".probe.html")
    probe.write_text(html_path.read_text(encoding="utf-8").replace("</body>", _CHECK + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([*chromium_args(exe, profile), "--dump-dom", probe.as_uri()],
                           capture_output=True, encoding="utf-8", timeout=120)
    m = re.search(r"IMGCHECK (\d+)/(\d+)", r.stdout)
    assert m, f"no image count in Chromium's DOM dump: {r.stderr[-500:]}"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.browser
def test_report_renders_in_chromium_with_every_figure(report_path, tmp_path):
    path = report_path
    ok, total = count_loaded_images(path)
    assert total == 22 and ok == total
    # the probe must be able to fail: a page with a broken image is reported as such
    broken = tmp_path / "broken.html"
    broken.write_text(path.read_text(encoding="utf-8").replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    ok, total = count_loaded_images(broken)
    assert total == 22 and ok == 21


def test_intercepts_recovered_from_prediction_tables():
    from her2radiomics.prediction import predict
    from her2radiomics.report import _intercepts_from

    f = ["intra_original_firstorder_Mean"]
    c1 = make_card(f, [0.0], [1.0], [50.0], -0.7)
    c2 = make_card(f, [0.0], [1.0], [0.5], 0.3, task="stage2")
    pred = predict(pd.DataFrame({"case_id": ["sat", "mid"], f[0]: [5.0, 0.01]}), c1, c2)
    assert _intercepts_from(pred.table, pred.contributions) == {"stage1": -0.7, "stage2": 0.3}
    # without the intercept columns: logit(p) - sum(contributions) of the first unsaturated case (p1 of 'sat' is 1.0)
    bare = pred.table.drop(columns=["stage1_intercept", "stage2_intercept"])
    got = _intercepts_from(bare, pred.contributions)
    assert got["stage1"] == pytest.approx(-0.7, abs=1e-9) and got["stage2"] == pytest.approx(0.3, abs=1e-9)


def test_report_reads_the_study_command_output(tmp_path):
    pytest.importorskip("her2radiomics.fitting")
    rng = np.random.default_rng(5)
    n = 80
    her2 = np.array(["positive", "low", "zero"] * (n // 3) + ["low"] * (n % 3))
    y = (her2 == "positive").astype(float)
    cols = {f"intra_original_firstorder_F{i}": rng.normal(0, 1, n) + (0.8 * y if i < 2 else 0) for i in range(6)}
    cols |= {f"peri1_original_glcm_G{i}": rng.normal(0, 1, n) + (0.5 * y if i == 0 else 0) for i in range(6)}
    ids = [f"k{i:03d}" for i in range(n)]
    pd.DataFrame({"case_id": ids, **cols}).to_csv(tmp_path / "F.csv", index=False)
    pd.DataFrame({"case_id": ids, "her2": her2}).to_csv(tmp_path / "L.csv", index=False)
    r = run_cli("study", tmp_path / "F.csv", tmp_path / "L.csv", "-o", tmp_path / "st", "--task", "stage1",
                "--feature-sets", "intra", "intra+peri1", "--cv-folds", "5")
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "--study", tmp_path / "st" / "study.json", "-o", tmp_path / "r.html")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    for alt in ("ROC curves", "DeLong matrix train", "DeLong matrix test", "Calibration", "Decision curves", "GDI",
                "Coefficients"):
        assert f'alt="{alt}' in text
    assert "intra+peri1" in text and "not for clinical use" in text.lower()
    # a study pointing at a missing card is a one-line error
    (tmp_path / "st" / "intra.model.json").unlink()
    r = run_cli("report", "--study", tmp_path / "st" / "study.json", "-o", tmp_path / "r2.html")
    assert r.returncode == 2 and "does not exist" in r.stderr and not (tmp_path / "r2.html").exists()


def test_report_command_bad_predictions_and_inputs_are_one_line_errors(tmp_path, report_path):
    """A broken or ';'-separated predictions file was a UnicodeDecodeError / KeyError traceback; -o naming an input
    replaced it with the report."""
    import contextlib
    import io

    from her2radiomics import cli

    def run(*args):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main([str(a) for a in args])
        return rc, err.getvalue()

    d = report_path.parent
    bad = {"binary": b"\xff\xfe\x00\x01bad", "semicolons": b"case_id;p_positive\nA;0.5\n",
           "not predictions": b"case_id,x\nA,1\n"}
    want = {"binary": "cannot read predictions table", "semicolons": "separated by semicolons",
            "not predictions": "lacks column(s) p_positive"}
    for name, data in bad.items():
        (tmp_path / "P.csv").write_bytes(data)
        (tmp_path / "P.contributions.csv").write_bytes((d / "P.contributions.csv").read_bytes())
        rc, err = run("report", "--predictions", tmp_path / "P.csv", "-o", tmp_path / "r.html")
        assert rc == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (name, err)
        assert want[name] in err, (name, err)
    (tmp_path / "P.csv").write_bytes((d / "P.csv").read_bytes())
    (tmp_path / "P.contributions.csv").write_bytes(b"case_id,stage\nA,stage1\n")
    rc, err = run("report", "--predictions", tmp_path / "P.csv", "-o", tmp_path / "r.html")
    assert rc == 2 and "contributions table" in err and "lacks column(s) feature" in err, err
    assert not (tmp_path / "r.html").exists()
    study = tmp_path / "s1.json"
    study.write_bytes((d / "s1.json").read_bytes())
    rc, err = run("report", "--study", study, "-o", study)
    assert rc == 2 and "also an input" in err, err
    assert study.read_bytes() == (d / "s1.json").read_bytes()


# ------------------------------------------------------------------------------------------- methods report (issue 12)
def _captured_figures(monkeypatch) -> list:
    """Make report._img keep the matplotlib figures (closed later) instead of encoding them."""
    import matplotlib.pyplot as plt

    from her2radiomics import report

    figs: list = []

    def keep(fig, alt):
        figs.append((alt, fig))
        return f'<img alt="{alt}">'

    monkeypatch.setattr(report, "_img", keep)
    yield_close = plt.close
    return figs, yield_close


def _perfect_models():
    """Two models that both reach AUC 1 on the test split (their ROC curves coincide)."""
    raw, _ = synthetic_study()
    study = normalize_study(raw)
    for m, shift in zip(study["models"], (0.0, 0.01), strict=True):
        s = m["scores"]["test"]
        s["prob"] = np.clip(0.3 + 0.6 * s["y"] + shift + 0.01 * np.arange(len(s["y"])) / len(s["y"]), 0, 1)
    return study


def test_roc_curves_at_auc_1_stay_visible(monkeypatch):
    """Two models at AUC 1 drew the same step line in the same style: the first was hidden under the second."""
    from her2radiomics import report

    figs, close = _captured_figures(monkeypatch)
    study = _perfect_models()
    report.roc_figure(study["models"], "t")
    (_, fig), = figs
    ax = fig.axes[-1]
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert len(lines) == 2 and "AUC 1.000" in lines[0].get_label() and "AUC 1.000" in lines[1].get_label()
    styles = {(ln.get_linestyle(), round(ln.get_linewidth(), 2)) for ln in lines}
    assert len(styles) == 2, styles
    close(fig)


def test_gdi_hatching_has_a_legend(monkeypatch):
    from her2radiomics import report

    figs, close = _captured_figures(monkeypatch)
    study = normalize_study(synthetic_study()[0])
    for m in study["models"]:
        m["card"]["gdi"] = {"internal": {"value": 0.05, "zone": "safe"}, "external": {"value": 0.18, "zone": "warning"}}
    report.gdi_figure(study["models"], "t")
    (_, fig), = figs
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("internal" in t for t in texts) and any("external" in t for t in texts), texts
    close(fig)


def test_dca_legend_outside_curves_and_calibration_not_clipped(monkeypatch):
    from her2radiomics import report

    figs, close = _captured_figures(monkeypatch)
    study = _perfect_models()
    report.decision_figure(study["models"], "t")
    report.calibration_figure(study["models"], "t")
    (_, dca), (_, cal) = figs
    dca.canvas.draw()
    for ax in dca.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        lb, ab = leg.get_window_extent(), ax.get_window_extent()
        assert lb.y1 <= ab.y0 + 1 or lb.x0 >= ab.x1 - 1, "the DCA legend sits on the curves"
    for ax in cal.axes:
        if not ax.get_lines():
            continue
        assert ax.get_ylim()[1] > 1.0 and ax.get_xlim()[1] > 1.0 and ax.get_ylim()[0] < 0.0
    close(dca)
    close(cal)


@pytest.fixture(scope="module")
def methods_report(tmp_path_factory) -> tuple[Path, str]:
    """A stage-1 study with ICC table and bootstrap, predicted and reported with the labels."""
    d = tmp_path_factory.mktemp("methods_report")
    rng = np.random.default_rng(5)
    n = 90
    her2 = np.array(["positive", "low", "zero"] * (n // 3))
    y = (her2 == "positive").astype(float)
    cols = {f"intra_original_firstorder_F{i}": rng.normal(0, 1, n) + (0.9 * y if i < 2 else 0) for i in range(8)}
    cols |= {f"peri3_original_glcm_G{i}": rng.normal(0, 1, n) + (0.6 * y if i == 0 else 0) for i in range(8)}
    ids = [f"k{i:03d}" for i in range(n)]
    feats = pd.DataFrame({"case_id": ids, **cols})
    feats.to_csv(d / "F.csv", index=False)
    pd.DataFrame({"case_id": ids, "her2": her2, "center": np.where(np.arange(n) % 5 == 0, "B", "A")}).to_csv(
        d / "L.csv", index=False)
    a = feats.iloc[:24].copy()
    b = a.copy()
    num = list(cols)
    b[num] = b[num] + rng.normal(0, 1, b[num].shape) * np.r_[[0.2] * 12, [2.0] * 4]
    pd.concat([a.assign(reader="A"), b.assign(reader="B")]).to_csv(d / "icc.csv", index=False)
    r = run_cli("study", d / "F.csv", d / "L.csv", "-o", d / "st", "--task", "stage1", "--icc", d / "icc.csv",
                "--feature-sets", "intra", "intra+peri3", "--cv-folds", "5", "--bootstrap", "200",
                "--split", "center", "--test-center", "B")
    assert r.returncode == 0, r.stderr
    r = run_cli("predict", d / "F.csv", "--stage1", d / "st" / "intra.model.json", "-o", d / "P.csv", "--max-cases", "0")
    assert r.returncode == 0, r.stderr
    r = run_cli("report", "--study", d / "st" / "study.json", "--predictions", d / "P.csv", "--labels", d / "L.csv",
                "--max-cases", "2", "-o", d / "report.html")
    assert r.returncode == 0, r.stderr
    return d / "report.html", (d / "report.html").read_text(encoding="utf-8")


def test_methods_sections_in_the_report(methods_report):
    """The report left the methods tables to the user: cohort, ICC, funnel, LASSO path, calibration numbers,
    bootstrap CIs, Rad-score formula and the CLEAR checklist were absent."""
    _, text = methods_report
    for alt in ("ICC distribution", "Selection funnel", "LASSO cross-validation and coefficient path intra",
                "LASSO cross-validation and coefficient path intra+peri3"):
        assert f'alt="{alt}' in text, alt
    for needle in ('id="stage1-methods"', "Cohort", "cases per split, centre and class", "Parameter file",
                   "Seed", "Split", "Calibration slope", "calibration intercept", "Brier", "Hosmer-Lemeshow",
                   "depends on the number of groups", "bootstrap 95% CI", "DeLong 95% CI", "Rad-score = ",
                   'id="clear"', "CLEAR", "Kocak", "Data split methodology", "Details of segmentation reliability"):
        assert needle in text, needle
    # every one of the 58 CLEAR items is listed with a status
    assert len(re.findall(r'<tr class="clear-item', text)) == 58


def test_predictions_table_has_true_class_and_split(methods_report):
    _, text = methods_report
    table = text[text.index('id="predictions"'):]
    table = table[: table.index("</table>")]
    assert "<th>true class</th>" in table and "<th>split</th>" in table
    assert re.search(r"<td>k000</td>.*?<td class=l>positive</td>.*?<td class=l>stage1: external</td>", table, re.S), table[:2000]


@pytest.mark.browser
def test_methods_report_renders_in_chromium(methods_report):
    path, text = methods_report
    ok, total = count_loaded_images(path)
    assert total == text.count("<img") and ok == total and total >= 12
