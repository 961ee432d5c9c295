"""Exact TreeSHAP (Lundberg et al. 2020, Algorithm 2) against hand computations and the brute-force Shapley
definition with the tree's path-dependent conditional expectation (Algorithm 1), an independent reference."""

from __future__ import annotations

import numpy as np
import pytest

from her2radiomics import classifiers, treeshap


def _stump() -> dict:
    # root splits feature 0 at 0.5: left leaf (cover 3, value 0), right leaf (cover 1, value 1)
    return {"children_left": [1, -1, -1], "children_right": [2, -1, -1], "feature": [0, -1, -1],
            "threshold": [0.5, 0.0, 0.0], "cover": [4.0, 3.0, 1.0]}


def test_stump_by_hand():
    tree, v = _stump(), np.array([0.25, 0.0, 1.0])
    assert treeshap.expected_value(tree, v) == pytest.approx(0.25)
    phi = treeshap.tree_shap(tree, v, np.array([[1.0, 7.0], [0.0, 7.0]]))
    # x goes right: f = 1, E f = 0.25 -> phi_0 = 0.75; x goes left: f = 0 -> phi_0 = -0.25; feature 1 unused
    np.testing.assert_allclose(phi, [[0.75, 0.0], [-0.25, 0.0]], atol=1e-15)


def test_two_feature_and_tree_by_hand():
    # f = 1 iff x0 > 0.5 and x1 > 0.5, each split halves the cover (4 equally likely cells): AND game
    tree = {"children_left": [1, -1, 3, -1, -1], "children_right": [2, -1, 4, -1, -1], "feature": [0, -1, 1, -1, -1],
            "threshold": [0.5, 0, 0.5, 0, 0], "cover": [4.0, 2.0, 2.0, 1.0, 1.0]}
    v = np.array([0.25, 0.0, 0.5, 0.0, 1.0])
    phi = treeshap.tree_shap(tree, v, np.array([[1.0, 1.0]]))
    # v({}) = 1/4; v({0}) = 1/2 (x0 known, x1 averaged); v({1}) = (2 * 0 + 2 * 1) / 4 = 1/2 (the root's x0 split
    # averaged, x1 known below it); v({0,1}) = 1. phi_0 = 1/2 (1/2 - 1/4) + 1/2 (1 - 1/2) = 3/8 = phi_1 (symmetric)
    np.testing.assert_allclose(phi[0], [0.375, 0.375], atol=1e-15)


def test_repeated_feature_on_a_path_by_hand():
    # x0 split twice (0.5 then 1.5): leaves x0<=0.5 (cover 2, v 0), 0.5<x0<=1.5 (cover 1, v 1), x0>1.5 (cover 1, v 3)
    tree = {"children_left": [1, -1, 3, -1, -1], "children_right": [2, -1, 4, -1, -1], "feature": [0, -1, 0, -1, -1],
            "threshold": [0.5, 0, 1.5, 0, 0], "cover": [4.0, 2.0, 2.0, 1.0, 1.0]}
    v = np.array([1.0, 0.0, 2.0, 1.0, 3.0])
    phi = treeshap.tree_shap(tree, v, np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(phi[:, 0], [3.0 - 1.0, 1.0 - 1.0, 0.0 - 1.0], atol=1e-15)  # one player: f(x) - E f
    np.testing.assert_allclose(phi[:, 1], 0.0, atol=1e-15)


def _sk_tree(seed: int, depth: int, p: int = 5, n: int = 200) -> tuple[dict, np.ndarray, np.ndarray]:
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    y = ((X[:, 0] > 0) ^ (X[:, 1] * X[:, 2] > 0.2) | (rng.random(n) < 0.15)).astype(int)
    est = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(X, y)
    t = est.tree_
    tree = {"children_left": t.children_left.tolist(), "children_right": t.children_right.tolist(),
            "feature": t.feature.tolist(), "threshold": t.threshold.tolist(), "cover": t.weighted_n_node_samples.tolist()}
    vals = t.value[:, 0, 1] / t.value[:, 0, :].sum(axis=1)
    return tree, vals, rng.standard_normal((12, p)) * 1.3


@pytest.mark.parametrize("seed,depth", [(0, 3), (1, 5), (2, 7), (3, 12)])
def test_matches_brute_force_on_small_trees(seed, depth):
    tree, v, X = _sk_tree(seed, depth)
    feats = np.asarray(tree["feature"])
    assert depth < 4 or len(set(feats[feats >= 0].tolist())) < (feats >= 0).sum()  # some feature splits twice
    phi = treeshap.tree_shap(tree, v, X)
    for i in range(X.shape[0]):
        np.testing.assert_allclose(phi[i], treeshap.brute_force_shap(tree, v, X[i]), rtol=0, atol=1e-12)
    # local accuracy: base + contributions = the tree's output
    out = v[treeshap.leaf_index(tree, X)]
    np.testing.assert_allclose(phi.sum(1) + treeshap.expected_value(tree, v), out, atol=1e-12)


def test_forest_contributions_sum_to_probability():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(5)
    X = rng.standard_normal((150, 6))
    y = (X[:, 0] + X[:, 1] ** 2 + rng.standard_normal(150) > 1).astype(int)
    est = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, y)
    rec = classifiers.serialise(est)
    Xt = rng.standard_normal((25, 6))
    phi, base, out = classifiers.contributions(rec, Xt)
    np.testing.assert_allclose(out, est.predict_proba(Xt)[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(base + phi.sum(1), out, rtol=0, atol=1e-12)
    # and every tree's TreeSHAP equals the brute-force definition (first 3 trees, 4 cases)
    for t in rec["trees"][:3]:
        v = classifiers._tree_leaf_values(t)
        ts = treeshap.tree_shap(t, v, Xt[:4])
        for i in range(4):
            np.testing.assert_allclose(ts[i], treeshap.brute_force_shap(t, v, Xt[i]), atol=1e-12)
