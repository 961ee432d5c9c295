"""Nomogram (her2radiomics.nomogram): reading points -> total -> probability gives the model's own prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from her2radiomics import clinical as C
from her2radiomics import nomogram as N

TABLE = Path(__file__).parent / "r" / "clinical_table.csv"


@pytest.fixture(scope="module")
def model():
    d = pd.read_csv(TABLE, dtype=str)
    y = d["y"].astype(int).to_numpy()
    rec = C.encoding_record(d, [C.parse_spec("age"), C.parse_spec("stage:cat"), C.parse_spec("pr:cat")])
    D, _ = C.encode(d, rec)
    rad = np.random.default_rng(0).normal(0, 1, len(d)) + y
    T = C.term_frame(D, rec, rad_score=rad)
    return C.fit_linear_model("combined", T, y, rec), d, T, rad


def test_reading_equals_model_prediction(model):
    m, d, T, rad = model
    sc = N.scales(m)
    assert max(max(t["points"] for t in v["ticks"]) if v["kind"] == "continuous" else
               max(lv["points"] for lv in v["levels"]) for v in sc["variables"]) == pytest.approx(100.0)
    want = m.predict_proba(T)
    for i in (0, 7, 33, 101, 159):
        values = {"Rad-score": rad[i], "age": float(d["age"][i]), "stage": d["stage"][i], "pr": d["pr"][i]}
        got = N.probability(sc, N.total_points(sc, values))
        assert got == pytest.approx(want[i], abs=1e-12)
    # every probability tick sits where its total points give that probability
    for q in sc["probability"]:
        assert N.probability(sc, q["total_points"]) == pytest.approx(q["p"], abs=1e-12)
    # reference levels score 0 only when their coefficient sign makes them the minimum; the min is always 0
    for v in sc["variables"]:
        pts = [t["points"] for t in v["ticks"]] if v["kind"] == "continuous" else [lv["points"] for lv in v["levels"]]
        assert min(pts) == pytest.approx(0.0, abs=1e-9)


def test_draw_png_and_svg(model, tmp_path):
    m = model[0]
    rows = N.draw(N.scales(m), tmp_path / "n.png", tmp_path / "n.svg", title="combined")
    assert (tmp_path / "n.png").stat().st_size > 1000
    assert "<svg" in (tmp_path / "n.svg").read_text(encoding="utf-8")[:500]
    assert [r[0] for r in rows][0] == "Points" and rows[-1][0] == "Probability"


def test_card_scales(model):
    m = model[0]
    card = {"clinical_models": {"nomogram": N.scales(m), "combined": m.to_json(), "clinical": m.to_json()}}
    assert C.nomogram_scales(card) == N.scales(m)
    assert C.nomogram_scales(card, "clinical")["lp_at_zero"] == pytest.approx(N.scales(m)["lp_at_zero"])
    assert C.nomogram_scales({}) is None


def test_model_equals_scikit_learn_unpenalised_fit(model):
    """The nomogram's model is the maximum-likelihood fit scikit-learn finds too (C=inf), so its reading is
    that model's probability."""
    from sklearn.linear_model import LogisticRegression

    m, d, T, rad = model
    y = d["y"].astype(int).to_numpy()
    sk = LogisticRegression(C=np.inf, solver="newton-cg", tol=1e-12, max_iter=1000).fit(T[m.terms].to_numpy(), y)
    sc = N.scales(m)
    for i in (2, 50, 120):
        values = {"Rad-score": rad[i], "age": float(d["age"][i]), "stage": d["stage"][i], "pr": d["pr"][i]}
        want = sk.predict_proba(T[m.terms].to_numpy()[[i]])[0, 1]
        assert N.probability(sc, N.total_points(sc, values)) == pytest.approx(want, abs=1e-7)


def test_render_png_draws_one_axis_per_variable_on_the_scales(model, tmp_path):
    """The pillow drawing (what the Slicer panel shows): one axis per variable between Points and Total points /
    Probability, every tick where the scales put it, and the probability row read back through the drawn total
    points axis gives that probability."""
    import io

    from PIL import Image

    sc = N.scales(model[0])
    data, layout = N.render_png(sc, title="combined", width=600)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.size == (600, layout["height"]) and layout["width"] == 600
        gray = np.asarray(im.convert("L"))
    names = [r["name"] for r in layout["rows"]]
    assert names[0] == "Points" and names[-2:] == ["Total points", "Probability"]
    assert len(names) == len(sc["variables"]) + 3
    assert [n.split(" (ref ")[0] for n in names[1:-2]] == [v["name"] for v in sc["variables"]]
    x0, x1 = layout["axis"]
    tmax = sc["total_points"]["max"]
    for row in layout["rows"]:
        assert gray[row["y"], int(row["ticks"][0]["x"]) + 1] < 128, f"no axis drawn for {row['name']}"
        for t in row["ticks"]:
            assert t["x"] == pytest.approx(x0 + (x1 - x0) * t["at"] / 100)
    var = layout["rows"][1]
    assert [t["at"] for t in var["ticks"]] == pytest.approx([t["points"] for t in sc["variables"][0]["ticks"]])
    prob = layout["rows"][-1]["ticks"]
    assert [float(t["label"]) for t in prob] == [q["p"] for q in sc["probability"]]
    for t in prob:
        assert N.probability(sc, t["at"] * tmax / 100) == pytest.approx(float(t["label"]), abs=1e-12)
    written, _ = N.render_png(sc, tmp_path / "n.png", title="combined", width=600)
    assert written == data == (tmp_path / "n.png").read_bytes()


def test_card_scales_and_drawing_need_neither_pandas_nor_matplotlib(model, tmp_path):
    """The panel reads a card's nomogram before the dependency prompt: nomogram.card_scales and render_png run
    with pandas and matplotlib absent (a fresh 3D Slicer), and give what clinical.nomogram_scales gives."""
    import json
    import os
    import subprocess
    import sys

    m = model[0]
    card = {"clinical_models": {"nomogram": N.scales(m), "combined": m.to_json(), "clinical": m.to_json()}}
    (tmp_path / "card.json").write_text(json.dumps(card), encoding="utf-8")
    code = ("import sys, json; sys.modules.update(pandas=None, matplotlib=None, yaml=None, sklearn=None); "
            "from her2radiomics import nomogram as N; card = json.load(open(sys.argv[1], encoding='utf-8')); "
            "a = N.card_scales(card); b = N.card_scales(card, 'clinical'); png, lay = N.render_png(a); "
            "print(json.dumps([a['lp_at_zero'], b['lp_at_zero'], len(png) > 1000, len(lay['rows'])]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "card.json")], capture_output=True,
                         encoding="utf-8", timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(N.__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    lp_comb, lp_clin, big, n_rows = json.loads(out.stdout)
    assert lp_comb == pytest.approx(C.nomogram_scales(card)["lp_at_zero"])
    assert lp_clin == pytest.approx(C.nomogram_scales(card, "clinical")["lp_at_zero"])
    assert big and n_rows == len(card["clinical_models"]["nomogram"]["variables"]) + 3
    assert N.card_scales({"format": "her2radiomics.model/1"}) is None
