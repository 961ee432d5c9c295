"""RF and SVM model cards: plain-array serialisation, prediction from the card equal to scikit-learn's, exact
contributions (TreeSHAP, baseline Shapley), validation, and train -> card -> predict through the CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from modeling_synth import synthetic_cohort
from scipy.special import logit

from her2radiomics import classifiers, cli, fitting, modelcard, prediction, targets
from her2radiomics.errors import UserError


def _data(seed: int = 0, n: int = 140, p: int = 6):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, p))
    y = (Z[:, 0] + 0.7 * Z[:, 1] * Z[:, 2] + 0.8 * rng.standard_normal(n) > 0.2).astype(int)
    return Z, y, rng.standard_normal((60, p)) * 1.5


def _roundtrip(rec: dict) -> dict:
    return json.loads(json.dumps(rec))


@pytest.mark.parametrize("seed", [0, 1])
def test_rf_card_reproduces_sklearn(seed):
    Z, y, Zt = _data(seed)
    est, rec = classifiers.fit("rf", Z, y, seed)
    rec = _roundtrip(rec)
    # values exactly on split thresholds (float32 rounding decides the side, as in scikit-learn)
    t0 = rec["trees"][0]
    edge = Zt[:5].copy()
    edge[:, t0["feature"][0]] = t0["threshold"][0]
    for X in (Z, Zt, edge):
        np.testing.assert_allclose(classifiers.predict_proba(rec, X), est.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    assert rec["n_outputs"] == 1 and rec["classes"] == [0, 1] and len(rec["trees"]) == classifiers.RF_TREES
    assert {"children_left", "children_right", "feature", "threshold", "value", "cover"} <= set(t0)


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_svm_card_reproduces_sklearn(kernel):
    Z, y, Zt = _data(3)
    est, rec = classifiers.fit("svm", Z, y, 0, kernel)
    rec = _roundtrip(rec)
    svc = est.calibrated_classifiers_[0].estimator
    for X in (Z, Zt):
        np.testing.assert_allclose(classifiers.predict_proba(rec, X), est.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(classifiers.svm_decision(rec, X), svc.decision_function(X), rtol=0, atol=1e-12)
    assert rec["kernel"] == kernel and len(rec["support_vectors"]) == len(rec["dual_coef"])


def test_rf_contributions_are_treeshap_and_sum_to_probability():
    Z, y, Zt = _data(4)
    est, rec = classifiers.fit("rf", Z, y, 0)
    phi, base, out = classifiers.contributions(rec, Zt[:20])
    np.testing.assert_allclose(out, est.predict_proba(Zt[:20])[:, 1], atol=1e-12)
    np.testing.assert_allclose(base + phi.sum(axis=1), out, atol=1e-12)
    # base value = mean over trees of the cover-weighted leaf mean (= the mean in-bag class-1 fraction)
    roots = [t["value"][0][1] / sum(t["value"][0]) for t in rec["trees"]]
    assert base == pytest.approx(float(np.mean(roots)), abs=1e-12)
    assert classifiers.output_scale(rec) == "probability"


@pytest.mark.parametrize("p", [3, 7, 11])
def test_svm_rbf_contributions_equal_brute_force_baseline_shapley(p):
    Z, y, Zt = _data(5, p=p)
    est, rec = classifiers.fit("svm", Z, y, 0, "rbf")
    Zt[5] *= 6.0   # far from every support vector: kernel values ~ exp(-hundreds), products taken in log space
    phi, base, out = classifiers.contributions(rec, Zt[:6])
    np.testing.assert_allclose(out, logit(est.predict_proba(Zt[:6])[:, 1]), atol=1e-9)
    np.testing.assert_allclose(base + phi.sum(axis=1), out, atol=1e-12)

    def f(P):
        return classifiers.svm_log_odds(rec, classifiers.svm_decision(rec, P))

    assert base == pytest.approx(float(f(np.zeros((1, p)))[0]), abs=1e-12)
    for i in range(6):  # the definition over all 2^p subsets, kernel evaluated on the composite points
        np.testing.assert_allclose(phi[i], classifiers.brute_force_baseline_shapley(f, Zt[i], np.zeros(p)), atol=1e-11)


def test_contributions_equal_the_shap_package():
    """The SHAP package (Lundberg et al.) as an outside reference: TreeExplainer (path-dependent) for the forest,
    the Exact explainer with the single baseline z = 0 for the RBF SVM."""
    shap = pytest.importorskip("shap")
    Z, y, Zt = _data(9, p=5)
    est, rec = classifiers.fit("rf", Z, y, 0)
    ex = shap.TreeExplainer(est, feature_perturbation="tree_path_dependent")
    sv = np.asarray(ex.shap_values(Zt[:10]))
    ref = sv[:, :, 1] if sv.ndim == 3 and sv.shape[-1] == 2 else sv[1]
    phi, base, _ = classifiers.contributions(rec, Zt[:10])
    np.testing.assert_allclose(phi, ref, atol=1e-12)
    assert base == pytest.approx(float(np.atleast_1d(ex.expected_value)[-1]), abs=1e-12)
    est, rec = classifiers.fit("svm", Z, y, 0, "rbf")

    def f(P):
        return classifiers.svm_log_odds(rec, classifiers.svm_decision(rec, P))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = shap.explainers.Exact(f, shap.maskers.Independent(np.zeros((1, 5)), max_samples=1))(Zt[:2])
    phi, base, _ = classifiers.contributions(rec, Zt[:2])
    np.testing.assert_allclose(phi, res.values, atol=1e-11)
    np.testing.assert_allclose(base, res.base_values, atol=1e-12)


def test_svm_linear_contributions_are_weight_times_z():
    Z, y, Zt = _data(6)
    est, rec = classifiers.fit("svm", Z, y, 0, "linear")
    svc = est.calibrated_classifiers_[0].estimator
    phi, base, out = classifiers.contributions(rec, Zt)
    a = -rec["probA"]
    np.testing.assert_allclose(phi, a * svc.coef_[0][None, :] * Zt, atol=1e-12)
    np.testing.assert_allclose(base, a * svc.intercept_[0] - rec["probB"], atol=1e-12)
    np.testing.assert_allclose(base + phi.sum(1), out, atol=1e-12)


def _card(kind: str, kernel: str = "rbf", selection: str = "lasso", **kw):
    feats, labels = synthetic_cohort(n_cases=90, n_per_region=6, regions=("intra",), seed=3)
    spec = targets.LabelSpec(label_column="label", positive=("1",), negative=("0",))
    tg = targets.Targets(y=pd.Series(labels["label"].to_numpy(), index=labels["case_id"]), center=None,
                    classes={"event": "label=1", "reference": ["label=0"]})
    cohort = targets.join_labels(feats, tg, spec)
    cfg = fitting.TrainConfig(task="custom", classifier=kind, svm_kernel=kernel, selection=selection, cv_folds=5, **kw)
    return fitting.train(cohort, cfg), feats


@pytest.mark.parametrize("kind,kernel", [("rf", "rbf"), ("svm", "rbf"), ("svm", "linear")])
def test_card_roundtrip_predicts_like_the_fitted_model(tmp_path, kind, kernel):
    res, feats = _card(kind, kernel)
    path = tmp_path / "card.json"
    modelcard.save_model_card(res.card, path)
    card = modelcard.load_model_card(path)
    assert card["coefficients"] is None and card["intercept"] is None and card["classifier"]["type"] == kind
    assert "pickle" not in path.read_text(encoding="utf-8")
    z = modelcard.standardized(card, feats.set_index("case_id"))
    np.testing.assert_allclose(modelcard.predict_proba(card, feats.set_index("case_id")),
                               res.fit.sklearn_model.predict_proba(z)[:, 1], rtol=0, atol=1e-12)
    with pytest.raises(UserError, match="no linear predictor"):
        modelcard.linear_predictor(card, feats.set_index("case_id"))
    pred = prediction.predict(feats, card)
    sums = pred.contributions.groupby("case_id")["contribution"].sum().reindex(pred.table["case_id"]).to_numpy()
    out = pred.table["p1"].to_numpy() if kind == "rf" else pred.table["stage1_logit"].to_numpy()
    np.testing.assert_allclose(sums + pred.table["stage1_intercept"].to_numpy(), out, atol=1e-12)
    assert pred.contributions["coefficient"].isna().all()


def test_card_validation_refuses_broken_records():
    res, _ = _card("rf")
    card = json.loads(json.dumps(modelcard.jsonable(res.card)))
    modelcard.validate_model_card(card, require_checksum=False)
    bad = json.loads(json.dumps(card))
    bad["classifier"]["trees"][0]["children_left"][0] = 0
    with pytest.raises(UserError, match="do not form a tree"):
        modelcard.validate_model_card(bad, require_checksum=False)
    bad = json.loads(json.dumps(card))
    bad["coefficients"] = [0.0] * len(card["features"])
    with pytest.raises(UserError, match="null 'coefficients'"):
        modelcard.validate_model_card(bad, require_checksum=False)
    bad = json.loads(json.dumps(card))
    bad["classifier"]["n_features"] += 1
    with pytest.raises(UserError, match="n_features"):
        modelcard.validate_model_card(bad, require_checksum=False)
    svm = json.loads(json.dumps(modelcard.jsonable(_card("svm")[0].card)))
    svm["classifier"]["dual_coef"] = svm["classifier"]["dual_coef"][:-1]
    with pytest.raises(UserError, match="shapes do not match"):
        modelcard.validate_model_card(svm, require_checksum=False)


def test_default_options_are_not_recorded_and_explicit_lr_lasso_is_the_default():
    cfg = fitting.TrainConfig(task="custom")
    assert "classifier" not in cfg.to_json() and not cfg.extended
    assert fitting.TrainConfig(task="custom", classifier="lr", selection="lasso").to_json() == cfg.to_json()
    assert fitting.TrainConfig(task="custom", classifier="rf").to_json()["classifier"] == "rf"


CUSTOM = ["--task", "custom", "--label-column", "label", "--positive", "1", "--negative", "0", "--cv-folds", "3"]


@pytest.mark.parametrize("extra", [["--classifier", "rf"], ["--classifier", "svm"],
                                   ["--classifier", "svm", "--svm-kernel", "linear", "--selection", "rfe",
                                    "--max-correlation", "0.9", "--variance-threshold", "0", "--rfe-step", "0.5"]])
def test_cli_train_predict_end_to_end(tmp_path, capsys, extra):
    feats, labels = synthetic_cohort(n_cases=80, n_per_region=5, regions=("intra",), seed=7)
    f, lab = tmp_path / "features.csv", tmp_path / "labels.csv"
    feats.to_csv(f, index=False)
    labels.to_csv(lab, index=False)
    card, out = tmp_path / "card.json", tmp_path / "pred.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["train", str(f), str(lab), "-o", str(card), *CUSTOM, *extra]) == 0
        assert cli.main(["predict", str(f), "--stage1", str(card), "-o", str(out)]) == 0
    c = modelcard.load_model_card(card)
    assert c["provenance"]["options"]["classifier"] == extra[1]
    assert c["selection"]["funnel"][-1][0] == ("RFE" if "rfe" in extra else "LASSO")
    tab = pd.read_csv(out)
    con = pd.read_csv(tmp_path / "pred.contributions.csv")
    sums = con.groupby("case_id")["contribution"].sum().reindex(tab["case_id"]).to_numpy()
    target = tab["p1"] if extra[1] == "rf" else tab["stage1_logit"]
    np.testing.assert_allclose(sums + tab["stage1_intercept"], target, atol=1e-9)
    np.testing.assert_allclose(tab["p1"], modelcard.predict_proba(c, feats.set_index("case_id")), atol=1e-12)


@pytest.mark.parametrize("args,msg", [(["--classifier", "xgb"], "--classifier must be one of lr, rf, svm"),
                                      (["--selection", "boruta"], "--selection must be one of lasso, rfe, none"),
                                      (["--svm-kernel", "poly", "--classifier", "svm"], "--svm-kernel must be one of"),
                                      (["--svm-kernel", "linear"], "--svm-kernel is used only with --classifier svm"),
                                      (["--max-correlation", "1.5"], "--max-correlation must be in (0, 1]"),
                                      (["--variance-threshold", "-1"], "--variance-threshold must be"),
                                      (["--selection", "rfe", "--rfe-step", "1.5"], "--rfe-step must be a whole number"),
                                      (["--rfe-step", "0.2"], "--rfe-step is used only with --selection rfe")])
@pytest.mark.parametrize("command", ["train", "study"])
def test_cli_bad_values_one_line(tmp_path, capsys, args, msg, command):
    feats, labels = synthetic_cohort(n_cases=40, n_per_region=3, regions=("intra",), seed=1)
    f, lab = tmp_path / "f.csv", tmp_path / "l.csv"
    feats.to_csv(f, index=False)
    labels.to_csv(lab, index=False)
    out = ["-o", str(tmp_path / ("card.json" if command == "train" else "study"))]
    rc = cli.main([command, str(f), str(lab), *out, *CUSTOM, *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and msg in err[0], err


def test_cli_study_with_rf_and_rfe_then_report(tmp_path, capsys):
    feats, labels = synthetic_cohort(n_cases=80, n_per_region=4, regions=("intra", "peri3"), seed=8)
    f, lab = tmp_path / "features.csv", tmp_path / "labels.csv"
    feats.to_csv(f, index=False)
    labels.to_csv(lab, index=False)
    out = tmp_path / "study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["study", str(f), str(lab), "-o", str(out), *CUSTOM, "--feature-sets", "intra", "intra+peri3",
                         "--classifier", "rf", "--selection", "rfe", "--max-correlation", "0.95"]) == 0
    printed = capsys.readouterr().out
    assert "selected (RFE)" in printed and "after correlation" in printed
    study = json.loads((out / "study.json").read_text(encoding="utf-8"))
    for s in study["feature_sets"]:
        assert s["rad_score"] is None and s["coefficients"] is None and s["funnel"][-1][0] == "RFE"
        assert s["selection"]["classifier"] == "rf" and s["selection"]["max_correlation"] == 0.95
        assert modelcard.load_model_card(out / s["model_card"])["classifier"]["type"] == "rf"
    assert cli.main(["report", "--study", str(out / "study.json"), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "RFE" in html and "correlation" in html
