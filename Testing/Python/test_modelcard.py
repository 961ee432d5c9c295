"""Model-card safety: JSON only, checksum refusal of edited cards, schema validation, CLI behaviour."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from modeling_synth import synthetic_cohort

from her2radiomics import modelcard
from her2radiomics.errors import UserError


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cards")
    f, lab = synthetic_cohort(n_cases=100, n_per_region=10, seed=2, effect=1.5)
    f.to_csv(d / "features.csv", index=False)
    lab.to_csv(d / "labels.csv", index=False)
    (d / "features.meta.json").write_text(json.dumps({"parameter_file_hash": "sha256:abc123"}))
    r = run_cli("train", d / "features.csv", d / "labels.csv", "-o", d / "model.json", "--task", "custom",
                "--label-column", "label", "--positive", "1", "--negative", "0", "--feature-set", "intra+peri3",
                "--split", "center", "--test-center", "C", "--seed", "1")
    assert r.returncode == 0, r.stderr
    return d


def resave_without_checksum_update(path, card):
    path.write_text(json.dumps(card, indent=2))


def test_card_contents(workdir):
    raw = json.loads((workdir / "model.json").read_text(encoding="utf-8"))
    card = modelcard.load_model_card(workdir / "model.json")
    assert raw == card
    assert card["format"] == "her2radiomics.model/1"
    assert "not for clinical use" in card["intended_use"].lower()
    assert set(card["metrics"]) == {"train", "internal", "external"}
    assert set(card["gdi"]) == {"internal", "external"}
    prov = card["provenance"]
    assert prov["parameter_file_hash"] == "sha256:abc123"
    assert prov["training_table_hash"] == "sha256:" + hashlib.sha256((workdir / "features.csv").read_bytes()).hexdigest()
    assert prov["seed"] == 1
    assert prov["labels"]["label_column"] == "label"
    ext = set(prov["case_ids"]["external"])
    assert ext and not ext & set(prov["case_ids"]["train"])
    n = len(card["features"])
    assert len(card["coefficients"]) == len(card["scaler"]["mean"]) == len(card["training_range"]["max"]) == n
    # the checksum is the documented canonical JSON hash
    body = {k: v for k, v in raw.items() if k != "checksum"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert raw["checksum"] == "sha256:" + hashlib.sha256(canon.encode()).hexdigest()
    # no pickle: the file is plain JSON text
    assert (workdir / "model.json").read_bytes()[:1] == b"{"


def test_modified_coefficient_is_refused(workdir, tmp_path):
    card = json.loads((workdir / "model.json").read_text(encoding="utf-8"))
    card["coefficients"][0] += 0.01
    bad = tmp_path / "edited.json"
    resave_without_checksum_update(bad, card)
    with pytest.raises(UserError, match="was modified after it was saved \\(checksum mismatch\\)"):
        modelcard.load_model_card(bad)
    r = run_cli("evaluate", workdir / "features.csv", workdir / "labels.csv", "--model", bad)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model card") and "checksum mismatch" in lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(format="her2radiomics.model/9"), "this version reads"),
        (lambda c: c.update(format="something"), "not a HER2Radiomics model card"),
        (lambda c: c["coefficients"].append(1.0), "has .* values for"),
        (lambda c: c["features"].__setitem__(-1, c["features"][0]), "appears twice"),
        (lambda c: c["scaler"]["scale"].__setitem__(0, 0.0), "must be > 0"),
        (lambda c: c.update(intercept="1.0"), "finite number"),
        (lambda c: c.update(cutoff=1.5), "probability"),
        (lambda c: c.pop("training_range"), "missing field"),
        (lambda c: c.update(intended_use="go ahead"), "not for clinical use"),
        (lambda c: c["metrics"]["train"].pop("auc"), "lacks 'auc'"),
        (lambda c: c["gdi"]["external"].update(zone="fine"), "zone"),
    ],
)
def test_schema_violations_refused_even_with_valid_checksum(workdir, tmp_path, edit, message):
    card = json.loads((workdir / "model.json").read_text(encoding="utf-8"))
    edit(card)
    if card.get("format") == "her2radiomics.model/1":
        card["checksum"] = modelcard.card_checksum(card)
    p = tmp_path / "card.json"
    resave_without_checksum_update(p, card)
    with pytest.raises(UserError, match=message):
        modelcard.load_model_card(p)


def test_nan_and_missing_checksum_and_bad_json(workdir, tmp_path):
    text = (workdir / "model.json").read_text(encoding="utf-8")
    card = json.loads(text)
    p = tmp_path / "nan.json"
    p.write_text(text.replace(f'"intercept": {json.dumps(card["intercept"])}', '"intercept": NaN'))
    with pytest.raises(UserError, match="not a valid JSON model card"):
        modelcard.load_model_card(p)
    card.pop("checksum")
    with pytest.raises(UserError, match="has no checksum"):
        modelcard.load_model_card(card)
    p.write_text("{ not json")
    with pytest.raises(UserError, match="not a valid JSON"):
        modelcard.load_model_card(p)
    with pytest.raises(UserError, match="not found"):
        modelcard.load_model_card(tmp_path / "absent.json")


def test_save_is_atomic_and_refreshes_checksum(workdir, tmp_path):
    card = modelcard.load_model_card(workdir / "model.json")
    card["notes"] = ["re-saved"]
    out = tmp_path / "resaved.json"
    modelcard.save_model_card(card, out)
    assert modelcard.load_model_card(out)["notes"] == ["re-saved"]
    card["intercept"] = float("nan")
    with pytest.raises(UserError):
        modelcard.save_model_card(card, tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["resaved.json"]


def test_evaluate_and_compare_cli(workdir, tmp_path):
    r = run_cli("evaluate", workdir / "features.csv", workdir / "labels.csv", "--model", workdir / "model.json",
                "-o", tmp_path / "metrics.json")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    card = modelcard.load_model_card(workdir / "model.json")
    assert out["metrics"]["n"] == 100 and out["train_auc"] == card["metrics"]["train"]["auc"]
    assert out["n_training_cases_evaluated"] == len(card["provenance"]["case_ids"]["train"])
    assert "AUC" in r.stdout and "GDI" in r.stdout
    r2 = run_cli("train", workdir / "features.csv", workdir / "labels.csv", "-o", tmp_path / "intra.json", "--task",
                 "custom", "--label-column", "label", "--positive", "1", "--negative", "0", "--feature-set", "intra")
    assert r2.returncode == 0, r2.stderr
    r3 = run_cli("compare", workdir / "features.csv", workdir / "labels.csv", "--models", workdir / "model.json",
                 tmp_path / "intra.json", "-o", tmp_path / "cmp.json")
    assert r3.returncode == 0, r3.stderr
    cmp = json.loads((tmp_path / "cmp.json").read_text(encoding="utf-8"))
    assert cmp["models"] == ["model", "intra"] and cmp["p"][0][1] == cmp["p"][1][0] and 0 <= cmp["p"][0][1] <= 1
    assert cmp["diff"][0][1] == pytest.approx(cmp["auc"][0] - cmp["auc"][1])
    # against DeLong's structural components computed pair by pair on the cards' probabilities
    from scipy.stats import norm

    from her2radiomics import stats
    feats, labels = pd.read_csv(workdir / "features.csv"), pd.read_csv(workdir / "labels.csv")
    y = labels.set_index("case_id").loc[feats["case_id"], "label"].to_numpy()
    probs = [modelcard.predict_proba(modelcard.load_model_card(p), feats) for p in (workdir / "model.json", tmp_path / "intra.json")]
    aucs, cov = stats.delong_covariance_structural(y, np.vstack(probs))
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert cmp["auc"] == pytest.approx(list(aucs), abs=1e-12)
    assert cmp["p"][0][1] == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    # both models were trained on some of these cases: said, since the comparison is then optimistic
    n_train = [len(modelcard.load_model_card(p)["provenance"]["case_ids"]["train"]) for p in (workdir / "model.json",
                                                                                      tmp_path / "intra.json")]
    assert f"note: model: {n_train[0]} of the 100 compared cases were used to train this model" in r3.stdout
    assert f"note: intra: {n_train[1]} of the 100 compared cases were used to train this model" in r3.stdout


def test_cli_user_errors_are_one_line(workdir, tmp_path):
    cases = [
        ("--split", "center", "--test-center", "Q"),
        ("--feature-set", "intra+peri7"),
        ("--id-column", "patient"),
    ]
    for extra in cases:
        r = run_cli("train", workdir / "features.csv", workdir / "labels.csv", "-o", tmp_path / "x.json", "--task", "custom",
                    "--label-column", "label", "--positive", "1", "--negative", "0", *extra)
        assert r.returncode == 2, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
        assert not (tmp_path / "x.json").exists()


def test_one_zone_colour_table_for_report_and_panel():
    """The GDI zone colours have one owner (the core); the report and the panel draw a zone in the same colour."""
    from her2radiomics import modelcard, report
    from HER2RadiomicsLib.logic import gdi_html

    assert report.ZONE_COLOURS is modelcard.ZONE_COLOURS
    card = {"gdi": {"external": {"value": 0.17, "zone": "warning"}}}
    assert modelcard.ZONE_COLOURS["warning"] in gdi_html([("external", 0.17, "warning")])
    assert modelcard.gdi_zones(card) == {"external": (0.17, "warning")}


def test_in_memory_card_named_in_messages_and_only_one_loader():
    from her2radiomics import modelcard, prediction

    with pytest.raises(UserError, match=r"^\(stage-1 model card, in memory\) is not a HER2Radiomics model card"):
        modelcard.load_model_card({"format": "x"}, name="stage-1 model card")
    with pytest.raises(UserError, match=r"^\(in memory\) is not"):
        modelcard.load_model_card({"format": "x"})
    assert not hasattr(prediction, "load_card") and not hasattr(prediction, "TABLE_COLUMNS")
