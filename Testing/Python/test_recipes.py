"""Study recipes (Resources/Recipes/*.yaml): each runs end to end on the demo phantom cohort or says why not."""

from __future__ import annotations

import json

import numpy as np
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
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert [s["name"] for s in study["feature_sets"]] == ["intra", "intra+peri1", "intra+peri3", "intra+peri5"]
    assert study["task"] == "stage1" and "recipe gao2026: --cv-folds from the command line (5)" in r.stdout


def test_her2low_dce_runs_with_tic_nomogram(phantom_tables, tmp_path):
    f, lab = phantom_tables
    r = run_cli("study", "--recipe", "her2low-dce", f, lab, "-o", tmp_path / "s", "--cv-folds", "5")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert study["task"] == "stage2" and [s["name"] for s in study["feature_sets"]] == ["intra"]
    card = json.loads((tmp_path / "s" / "intra.model.json").read_text())
    sec = card["clinical_models"]
    assert sec["encoding"][0]["name"] == "tic_type" and sec["encoding"][0]["reference"] == "I"
    assert card["selection"]["mwu_p"] == 0.05
    assert set(sec["delong"]) == {"train", "test"} and sec["delong"]["test"]["models"] == ["radiomics", "clinical",
                                                                                         "combined"]
    assert [v["name"] for v in sec["nomogram"]["variables"]] == ["Rad-score", "tic_type"]


@pytest.mark.parametrize("name, why", [
    ("multiparametric-2025", "needs --variance-threshold 0.0, which this version of her2radiomics does not have yet"),
    ("cao2025", "needs --classifier rf, which this version of her2radiomics does not have yet"),
    ("ultrasound-her2low", "needs feature columns 'peri8_*', which the features table lacks: 2D ultrasound"),
])
def test_recipes_needing_other_inputs_refuse_in_one_line(phantom_tables, tmp_path, name, why):
    f, lab = phantom_tables
    r = run_cli("study", "--recipe", name, f, lab, "-o", tmp_path / "s")
    assert r.returncode != 0
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and why in err[0], r.stderr
    assert not (tmp_path / "s" / "study.json").exists()


def test_study_without_task_or_recipe_says_so(phantom_tables, tmp_path):
    f, lab = phantom_tables
    r = run_cli("study", f, lab, "-o", tmp_path / "s")
    assert r.returncode != 0 and "--task (or give --recipe NAME)" in r.stderr


def test_recipe_file_unknown_key(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: x\noptions: {task: stage1}\nclasifier: rf\n")
    with pytest.raises(UserError, match="unknown key"):
        recipes.load(str(p))
