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
