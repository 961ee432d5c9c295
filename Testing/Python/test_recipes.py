"""Study recipes (Resources/Recipes/*.yaml): each runs end to end on a small phantom cohort made by the project's
generators (the demo cohort; multi-sequence DCE phantoms; 2D phantoms), extracted as the recipe's ``extract`` says,
and each input check refuses in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from her2radiomics import recipes
from her2radiomics.errors import UserError

RECIPES = ("gao2026", "multiparametric-2025", "her2low-dce", "cao2025", "ultrasound-her2low")


@pytest.fixture(scope="module")
def phantom_tables(tmp_path_factory):
    """The demo's phantom cohort (quick size: 10 per class, centres A/B) with features from the demo parameter
    file, and a labels table with synthetic clinical columns (age, tic_type) for the recipes that need them."""
    from her2radiomics import batch, demo

    d = tmp_path_factory.mktemp("phantoms")
    design = demo.cohort_design(10)
    manifest = demo.make_cohort(design, d / "cohort")
    res = batch.extract_cohort(manifest, d / "features.csv", params=demo.demo_params_path(), jobs=1, progress=False)
    assert res.ok
    rng = np.random.default_rng(0)
    labels = design[["case_id", "her2", "center"]].copy()
    labels["age"] = np.round(rng.normal(52, 10, len(labels)), 1)
    # TIC type loosely tied to the peritumoral enhancement the phantoms carry (I persistent, II plateau, III washout)
    pe = design["peritumoral_enhancement"].to_numpy()
    u = pe + rng.normal(0, 0.5, len(pe))
    labels["tic_type"] = np.where(u > 0.6, "III", np.where(u > 0.2, "II", "I"))
    labels.to_csv(d / "labels.csv", index=False)
    return d / "features.csv", d / "labels.csv"


def test_every_recipe_loads_and_is_listed():
    assert set(RECIPES) <= set(recipes.names())
    for name in RECIPES:
        r = recipes.load(name)
        assert r["name"] == name and r["options"] and r["title"]
    with pytest.raises(UserError, match="unknown recipe 'nope'; use one of cao2025"):
        recipes.load("nope")


def test_gao2026_runs_on_the_phantoms(phantom_tables, tmp_path):
    f, lab = phantom_tables
    r = run_cli("study", "--recipe", "gao2026", f, lab, "-o", tmp_path / "s", "--cv-folds", "5")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in study["feature_sets"]] == ["intra", "intra+peri1", "intra+peri3", "intra+peri5"]
    assert study["task"] == "stage1" and "recipe gao2026: --cv-folds from the command line (5)" in r.stdout


def test_her2low_dce_runs_with_tic_nomogram(phantom_tables, tmp_path):
    f, lab = phantom_tables
    r = run_cli("study", "--recipe", "her2low-dce", f, lab, "-o", tmp_path / "s", "--cv-folds", "5")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text(encoding="utf-8"))
    assert study["task"] == "stage2" and [s["name"] for s in study["feature_sets"]] == ["intra"]
    card = json.loads((tmp_path / "s" / "intra.model.json").read_text(encoding="utf-8"))
    sec = card["clinical_models"]
    assert sec["encoding"][0]["name"] == "tic_type" and sec["encoding"][0]["reference"] == "I"
    assert card["selection"]["mwu_p"] == 0.05
    assert set(sec["delong"]) == {"train", "test"} and sec["delong"]["test"]["models"] == ["radiomics", "clinical",
                                                                                         "combined"]
    assert [v["name"] for v in sec["nomogram"]["variables"]] == ["Rad-score", "tic_type"]


# ---- multi-sequence (DCE + T2-like + ADC-like) phantoms with a DCE series: multiparametric-2025 and cao2025

KINETIC_KW = {"positive": ("washout",) * 7 + ("plateau",) * 3,
              "other": ("persistent",) * 5 + ("plateau",) * 3 + ("washout",) * 2}
TINY = "imageType:\n  Original: {}\nfeatureClass:\n  firstorder: [Mean]\n"   # kinetics pass: radiomics unused


@pytest.fixture(scope="module")
def multiseq_tables(tmp_path_factory):
    """20 DCE phantoms (10 HER2-positive: brighter rim, more heterogeneous, mostly washout curves; 10 low/zero)
    with T2-like and ADC-like volumes on another grid. Extracted twice, as the recipes' ``extract`` say: the
    image_dce/image_t2/image_adc manifest (radiomics, --distances 3) and the dce_phases manifest (kinetics), whose
    TIC type goes into the labels table through kinetics.add_tic_to_labels; PR, spiculation, margin synthetic."""
    from features_synth import SMALL_PARAMS

    from her2radiomics import batch, kinetics
    from her2radiomics.phantom import make_dce_phantom, write_dce_phantom

    root = tmp_path_factory.mktemp("mseq_recipes")
    rng = np.random.default_rng(3)
    seqs = ["case_id,image_dce,lesion,image_t2,image_adc"]
    dce = ["case_id,lesion,dce_phases,dce_times"]
    lab = []
    for i in range(20):
        pos = i < 10
        her2 = "positive" if pos else ("low", "zero")[i % 2]
        kin = KINETIC_KW["positive" if pos else "other"][i % 10]
        ph = make_dce_phantom(60 + i, (96, 96, 24), (3.45, 3.45, 6.0), companion_spacing=(4.0, 4.0, 8.0),
                              kinetic=kin, lesion_radius_mm=11, rim=0.75 if pos else 0.3,
                              heterogeneity=0.75 if pos else 0.3, noise=6.0)
        write_dce_phantom(ph, root / f"m{i}")
        seqs.append(f"m{i},m{i}/dce/phase2.nrrd,m{i}/lesion.nrrd,m{i}/t2.nrrd,m{i}/adc.nrrd")
        dce.append(f"m{i},m{i}/lesion.nrrd," + ";".join(f"m{i}/dce/phase{k}.nrrd" for k in range(6))
                   + ",0;90;180;270;360;450")
        lab.append({"case_id": f"m{i}", "her2": her2, "PR": int(rng.random() < (0.35 if pos else 0.65)),
                    "spiculation": "yes" if rng.random() < (0.6 if pos else 0.3) else "no",
                    "margin": "irregular" if rng.random() < (0.6 if pos else 0.35) else "smooth"})
    (root / "seq.csv").write_text("\n".join(seqs) + "\n")
    (root / "dce.csv").write_text("\n".join(dce) + "\n")
    (root / "small.yaml").write_text(SMALL_PARAMS)
    (root / "tiny.yaml").write_text(TINY)
    kw = {"progress": False, "auto_exclusions": False, "log": lambda m: None, "distances": (3.0,)}
    res = batch.extract_cohort(root / "seq.csv", root / "F.csv", root / "small.yaml", **kw)
    kin = batch.extract_cohort(root / "dce.csv", root / "K.csv", root / "tiny.yaml", **kw)
    assert res.ok and kin.ok, (res.failures, kin.failures)
    labels = kinetics.add_tic_to_labels(pd.DataFrame(lab), kin.table)
    labels.to_csv(root / "labels.csv", index=False)
    return root / "F.csv", root / "labels.csv", labels


def test_multiparametric_runs_on_multisequence_phantoms(multiseq_tables, tmp_path):
    f, lab, labels = multiseq_tables
    # the computed TIC types are the planted ones (so the covariate is the lesion's curve, not a synthetic column)
    planted = [KINETIC_KW["positive" if i < 10 else "other"][i % 10] for i in range(20)]
    assert labels["tic_type"].tolist() == planted
    r = run_cli("study", "--recipe", "multiparametric-2025", f, lab, "-o", tmp_path / "s", "--cv-folds", "3")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text(encoding="utf-8"))
    assert study["task"] == "stage1" and [s["name"] for s in study["feature_sets"]] == ["dce+t2+adc:intra+peri3"]
    card = json.loads((tmp_path / "s" / study["feature_sets"][0]["model_card"]).read_text(encoding="utf-8"))
    sel = card["selection"]
    assert (sel["variance_threshold"], sel["max_correlation"], sel["selector"], sel["classifier"]) == (0.0, 0.9, "rfe",
                                                                                                      "lr")
    assert card["features"] and all(n.split("_", 1)[0] in ("dce", "t2", "adc") for n in card["features"])
    sec = card["clinical_models"]
    assert [v["name"] for v in sec["encoding"]] == ["PR", "spiculation", "margin", "tic_type"]
    assert {u["name"] for u in sec["selection"]["univariate"]} == {"PR", "spiculation", "margin", "tic_type"}
    assert sec["delong"]["test"]["models"] == ["radiomics", "clinical", "combined"]
    assert sec["nomogram"]["variables"][0]["name"] == "Rad-score"


def test_cao2025_runs_rf_on_its_eight_combinations(multiseq_tables, tmp_path):
    f, lab, _ = multiseq_tables
    r = run_cli("study", "--recipe", "cao2025", f, lab, "-o", tmp_path / "s", "--cv-folds", "3")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in study["feature_sets"]] == [
        "t2:intra", "t2:intra+peri3", "adc:intra", "adc:intra+peri3", "dce:intra", "dce:intra+peri3",
        "dce+t2+adc:intra", "dce+t2+adc:intra+peri3"]
    # card file names are portable (no ':' of the sequence:region sets, which Windows refuses)
    assert all(":" not in s["model_card"] for s in study["feature_sets"])
    cards = [json.loads(p.read_text(encoding="utf-8")) for p in (tmp_path / "s").glob("*.model.json")]
    assert len(cards) == 8 and all(c["classifier"]["type"] == "rf" for c in cards)
    assert all(c["selection"]["classifier"] == "rf" for c in cards)


def test_multisequence_recipes_refuse_a_single_sequence_table(phantom_tables, tmp_path):
    f, lab = phantom_tables
    for name in ("multiparametric-2025", "cao2025"):
        r = run_cli("study", "--recipe", name, f, lab, "-o", tmp_path / name)
        err = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(err) == 1, r.stderr
        assert (f"recipe {name} needs feature columns 'dce_intra_*', which the features table lacks: extract a "
                "manifest with image_dce, image_t2 and image_adc columns and --distances 3") in err[0]
        assert not (tmp_path / name / "study.json").exists()


def test_multiparametric_refuses_labels_without_tic_type(multiseq_tables, tmp_path):
    f, lab, labels = multiseq_tables
    labels.drop(columns=["tic_type"]).to_csv(tmp_path / "nolabels.csv", index=False)
    r = run_cli("study", "--recipe", "multiparametric-2025", f, tmp_path / "nolabels.csv", "-o", tmp_path / "s")
    err = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(err) == 1, r.stderr
    assert ("recipe multiparametric-2025 needs labels column(s) 'tic_type', which nolabels.csv lacks: PR, "
            "spiculation and margin") in err[0] and "kinetics.add_tic_to_labels" in err[0]


# ---- 2D phantoms (largest cross-section), two centres: ultrasound-her2low

@pytest.fixture(scope="module")
def planar_tables(tmp_path_factory):
    """24 2D phantoms (make_phantom_2d, 2D NRRD with the in-plane spacing): HER2-low (brighter rim, more
    heterogeneous, peritumoral enhancement) vs HER2-zero, centres A and B (6 + 6 each), age loosely tied to the
    class; extracted with --mode 2d-max --distances 3 5 8 as the recipe's ``extract`` says."""
    from features_synth import SMALL_PARAMS

    from her2radiomics.phantom import make_phantom_2d, write_phantom

    root = tmp_path_factory.mktemp("us_recipes")
    rng = np.random.default_rng(5)
    rows = ["case_id,image,lesion"]
    lab = []
    for i in range(24):
        low = i % 2 == 0
        ph = make_phantom_2d(80 + i, (128, 128, 32), (2.6, 2.6, 6.0), lesion_radius_mm=10,
                             rim=0.75 if low else 0.3, heterogeneity=0.75 if low else 0.3,
                             peritumoral_enhancement=0.8 if low else 0.1)
        write_phantom(ph, root / f"u{i}")
        rows.append(f"u{i},u{i}/image.nrrd,u{i}/lesion.nrrd")
        lab.append({"case_id": f"u{i}", "her2": "low" if low else "zero", "center": "A" if i < 12 else "B",
                    "age": round(float(rng.normal(56 if low else 48, 8)), 1)})
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    (root / "small.yaml").write_text(SMALL_PARAMS)
    pd.DataFrame(lab).to_csv(root / "labels.csv", index=False)
    r = run_cli("extract", root / "m.csv", "-o", root / "F.csv", "--params", root / "small.yaml", "--no-progress",
                "--distances", "3", "5", "8", "--mode", "2d-max")
    assert r.returncode == 0, r.stderr
    return root / "F.csv", root / "labels.csv"


def test_ultrasound_her2low_runs_on_2d_phantoms(planar_tables, tmp_path):
    f, lab = planar_tables
    r = run_cli("study", "--recipe", "ultrasound-her2low", f, lab, "-o", tmp_path / "s", "--test-center", "B",
                "--cv-folds", "3")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text(encoding="utf-8"))
    assert study["task"] == "stage2"
    assert [s["name"] for s in study["feature_sets"]] == ["intra", "intra+peri3", "intra+peri5", "intra+peri8"]
    for s in study["feature_sets"]:
        card = json.loads((tmp_path / "s" / s["model_card"]).read_text(encoding="utf-8"))
        sec = card["clinical_models"]
        assert [v["name"] for v in sec["nomogram"]["variables"]] == ["Rad-score", "age"]
        assert {"train", "external"} <= set(sec["delong"])


def test_ultrasound_recipe_refuses_3d_features(phantom_tables, tmp_path):
    """The demo cohort is 3D (1/3/5 mm shells): no peri8 columns, said in one line."""
    f, lab = phantom_tables
    r = run_cli("study", "--recipe", "ultrasound-her2low", f, lab, "-o", tmp_path / "s", "--test-center", "B")
    err = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(err) == 1, r.stderr
    assert ("recipe ultrasound-her2low needs feature columns 'peri8_*', which the features table lacks: extract the "
            "2D images with --mode 2d-max --distances 3 5 8") in err[0]


def test_study_without_task_or_recipe_says_so(phantom_tables, tmp_path):
    f, lab = phantom_tables
    r = run_cli("study", f, lab, "-o", tmp_path / "s")
    assert r.returncode != 0 and "--task (or give --recipe NAME)" in r.stderr


def test_needs_mode_is_checked_against_the_meta_file(tmp_path):
    r = recipes.load("ultrasound-her2low")
    f = tmp_path / "F.csv"
    f.write_text("case_id\n")
    assert "is not checked" in recipes.check_mode(r, f)   # no FEATURES.meta.json: a note, not a silent pass
    (tmp_path / "F.meta.json").write_text(json.dumps({"parameter_file": "x.yaml"}))
    with pytest.raises(UserError, match="needs features extracted with --mode 2d-max, but F.csv was extracted in "
                                        "mode 3d: extract the 2D images with --mode 2d-max"):
        recipes.check_mode(r, f)
    (tmp_path / "F.meta.json").write_text(json.dumps({"case_mode": {"mode": "2d-max"}}))
    assert recipes.check_mode(r, f) is None


def test_recipe_file_unknown_key(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: x\noptions: {task: stage1}\nclasifier: rf\n")
    with pytest.raises(UserError, match="unknown key"):
        recipes.load(str(p))
