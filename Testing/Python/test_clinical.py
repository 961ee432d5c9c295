"""Clinical covariates (her2radiomics.clinical): encoding, and ORs / Wald CIs / p-values checked against R's glm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from her2radiomics import clinical as C
from her2radiomics.errors import UserError

R_DIR = Path(__file__).parent / "r"
TABLE = R_DIR / "clinical_table.csv"
EXPECTED = R_DIR / "clinical_glm.expected.txt"


def _r_rows(text: str) -> dict[tuple[str, str], list[float]]:
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        model, term, *nums = line.split()
        out[(model, term)] = [float(v) for v in nums]
    return out


def _ours() -> dict[tuple[str, str], list[float]]:
    d = pd.read_csv(TABLE, dtype=str)
    y = d["y"].astype(int).to_numpy()
    rec = C.encoding_record(d, [C.parse_spec("age"), C.parse_spec("stage:cat=1"), C.parse_spec("pr")])
    D, n_imp = C.encode(d, rec)
    assert n_imp == 0
    out = {}
    rname = {"age": "age", "stage=2": "stage2", "stage=3": "stage3", "pr": "pr", "(Intercept)": "(Intercept)"}
    for name, cols in (("uni_age", ["age"]), ("uni_stage", ["stage=2", "stage=3"]), ("uni_pr", ["pr"]),
                       ("multi", ["age", "stage=2", "stage=3", "pr"])):
        r = C.fit_logistic(D[cols].to_numpy(), y, cols)
        for t in r["table"]:
            out[(name, rname[t["term"]])] = [t["coef"], t["se"], t["z"], t["p"], t["or"], *t["or_ci"]]
    return out


def _compare(ref: dict, ours: dict) -> None:
    assert set(ref) == set(ours)
    for k, want in ref.items():
        got = ours[k]
        # coef, se, z, p, OR, CI: R prints 10 significant digits (glm run to epsilon 1e-14)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=str(k))


def test_clinical_glm_matches_stored_r_output():
    """The stored file was produced by R (command in its first line comment) on the fixed table."""
    _compare(_r_rows(EXPECTED.read_text(encoding="utf-8")), _ours())


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_clinical_glm_matches_live_r():
    r = subprocess.run(["Rscript", str(R_DIR / "clinical_glm.R"), str(TABLE)], capture_output=True, encoding="utf-8",
                       timeout=120, check=True)
    _compare(_r_rows(r.stdout), _ours())


def test_encoding_reference_levels_and_imputation():
    raw = pd.DataFrame({"age": ["50", "", "70", "60"], "grade": ["2.0", "1", "3", "", ]})
    rec = C.encoding_record(raw, [C.parse_spec("age"), C.parse_spec("grade:cat")])
    assert rec[0] == {"name": "age", "kind": "numeric", "columns": ["age"], "impute": 60.0}
    assert rec[1]["levels"] == ["1", "2", "3"] and rec[1]["reference"] == "1"
    assert rec[1]["columns"] == ["grade=2", "grade=3"]
    D, n = C.encode(raw, rec)
    assert n == 2
    assert D["age"].tolist() == [50.0, 60.0, 70.0, 60.0]
    assert D["grade=2"].tolist() == [1.0, 0.0, 0.0, 0.0]          # blank -> mode (a tie: the first level, "1")
    ref = C.encoding_record(raw, [C.parse_spec("grade:cat=3")])[0]
    assert ref["reference"] == "3" and ref["columns"] == ["grade=1", "grade=2"]


def test_encoding_errors_are_one_line():
    raw = pd.DataFrame({"g": ["a", "b", "a"]})
    with pytest.raises(UserError, match="level 'z' not in the column"):
        C.encoding_record(raw, [C.parse_spec("g:cat=z")])
    rec = C.encoding_record(raw, [C.parse_spec("g")])
    with pytest.raises(UserError, match="level 'c' not seen in training"):
        C.encode(pd.DataFrame({"g": ["c"]}), rec)
    with pytest.raises(UserError, match="unknown kind"):
        C.parse_spec("g:ordinal")


def test_separation_is_refused():
    x = np.array([0, 0, 0, 1, 1, 1.0])
    with pytest.raises(UserError, match="separate the classes"):
        C.fit_logistic(x[:, None], x, ["x"])


def test_linear_model_round_trip():
    d = pd.read_csv(TABLE, dtype=str)
    y = d["y"].astype(int).to_numpy()
    rec = C.encoding_record(d, [C.parse_spec("age"), C.parse_spec("stage:cat")])
    D, _ = C.encode(d, rec)
    T = C.term_frame(D, rec, rad_score=np.linspace(-1, 1, len(d)))
    m = C.fit_linear_model("combined", T, y, rec)
    m2 = C.LinearModel.from_json(m.to_json())
    np.testing.assert_array_equal(m.predict_proba(T), m2.predict_proba(T))
    assert m.terms[0] == C.RAD_SCORE and "logit(P)" in m.formula()
