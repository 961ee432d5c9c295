"""Exact TreeSHAP (path-dependent) for decision trees stored as plain node arrays.

Implements Algorithm 2 of Lundberg S.M. et al., "From local explanations to global understanding with explainable
AI for trees", Nature Machine Intelligence 2020;2:56-67 (first described in Lundberg, Erion & Lee, arXiv:1802.03888):
the exact Shapley values of the game ``v(S) = E[f(x) | x_S]`` where the conditional expectation is the tree's own
*path-dependent* one (at a split on a feature outside S, both children are averaged with weights proportional to
the training cover of each child; Algorithm 1 of the paper). It runs in O(L D^2) per tree (L leaves, depth D)
instead of the O(L 2^M) of the definition.

The recursion keeps the "path" of unique features from the root: for each element its feature, the fraction of
the cover that flows down the path when the feature is *not* known (``zero``), whether ``x`` itself follows the
path (``one``, 0 or 1), and the permutation weights of all subset sizes (``pweight``); EXTEND adds a feature,
UNWIND removes one (used when a feature splits again deeper in the tree, and at the leaves to read off each
feature's weight). This implementation walks the tree once for all rows of ``X`` at the same time: the zero
fractions depend only on the tree, the one fractions and weights are vectors over the rows.

Efficiency (local accuracy): for every row, ``sum(phi) + E[f] == f(x)``, with ``E[f]`` the cover-weighted mean of
the leaf values (:func:`expected_value`). ``brute_force_shap`` computes the same values from the definition (all
subsets of the features, Algorithm 1 for ``v(S)``) and is the independent reference of the tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LEAF = -1


def _arrays(tree: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    left = np.asarray(tree["children_left"], dtype=np.int64)
    right = np.asarray(tree["children_right"], dtype=np.int64)
    feature = np.asarray(tree["feature"], dtype=np.int64)
    threshold = np.asarray(tree["threshold"], dtype=np.float64)
    cover = np.asarray(tree["cover"], dtype=np.float64)
    return left, right, feature, threshold, cover


def goes_left(X: np.ndarray, feature: int, threshold: float) -> np.ndarray:
    """scikit-learn's split rule: ``x[feature] <= threshold`` with ``x`` rounded to float32 (its trees compare
    float32 inputs with float64 thresholds)."""
    return X[:, feature].astype(np.float32).astype(np.float64) <= threshold


def leaf_index(tree: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """The leaf each row of ``X`` falls in."""
    left, right, feature, threshold, _ = _arrays(tree)
    node = np.zeros(X.shape[0], dtype=np.int64)
    active = left[node] != LEAF
    while active.any():
        rows = np.flatnonzero(active)
        nd = node[rows]
        xv = X[rows, feature[nd]].astype(np.float32).astype(np.float64)
        node[rows] = np.where(xv <= threshold[nd], left[nd], right[nd])
        active = left[node] != LEAF
    return node


def expected_value(tree: Mapping[str, Any], leaf_values: np.ndarray) -> float:
    """``E[f]``: the cover-weighted mean of the leaf values (the base value of TreeSHAP)."""
    left, _, _, _, cover = _arrays(tree)
    leaves = left == LEAF
    return float(np.sum(leaf_values[leaves] * cover[leaves]) / cover[0])


def tree_shap(tree: Mapping[str, Any], leaf_values: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Exact path-dependent TreeSHAP values ``(n_rows, n_features)`` of one tree (Lundberg et al. 2020, Algorithm 2).

    ``tree`` holds ``children_left``, ``children_right`` (-1 at leaves), ``feature``, ``threshold`` and ``cover``
    (training weight per node); ``leaf_values`` the model output per node (only leaves are read).
    """
    X = np.asarray(X, dtype=np.float64)
    n, m = X.shape
    left, right, feature, threshold, cover = _arrays(tree)
    values = np.asarray(leaf_values, dtype=np.float64)
    phi = np.zeros((n, m))

    def extend(feats: list[int], zeros: list[float], ones: list[np.ndarray], pw: list[np.ndarray],
               p_z: float, p_o: np.ndarray, p_i: int) -> None:
        depth = len(feats)  # unique path length before the new element
        feats.append(p_i)
        zeros.append(p_z)
        ones.append(p_o)
        pw.append(np.ones(n) if depth == 0 else np.zeros(n))
        for i in range(depth - 1, -1, -1):
            pw[i + 1] = pw[i + 1] + p_o * pw[i] * ((i + 1) / (depth + 1))
            pw[i] = p_z * pw[i] * ((depth - i) / (depth + 1))

    def unwound_sum(zeros: list[float], ones: list[np.ndarray], pw: list[np.ndarray], k: int) -> np.ndarray:
        """Sum of the permutation weights after removing element ``k`` (UNWIND without copying)."""
        depth = len(pw) - 1
        one, zero = ones[k], zeros[k]
        hot = one != 0
        safe_one = np.where(hot, one, 1.0)
        nxt = pw[depth].copy()
        total = np.zeros(n)
        for i in range(depth - 1, -1, -1):
            tmp = nxt * (depth + 1) / ((i + 1) * safe_one)
            cold = pw[i] / zero * ((depth + 1) / (depth - i))
            total += np.where(hot, tmp, cold)
            nxt = pw[i] - tmp * zero * ((depth - i) / (depth + 1))
        return total

    def unwind(feats: list[int], zeros: list[float], ones: list[np.ndarray], pw: list[np.ndarray], k: int) -> None:
        depth = len(feats) - 1
        one, zero = ones[k], zeros[k]
        hot = one != 0
        safe_one = np.where(hot, one, 1.0)
        nxt = pw[depth]
        for i in range(depth - 1, -1, -1):
            w_hot = nxt * (depth + 1) / ((i + 1) * safe_one)
            w_cold = pw[i] * (depth + 1) / (zero * (depth - i))
            new = np.where(hot, w_hot, w_cold)
            nxt = pw[i] - new * zero * ((depth - i) / (depth + 1))
            pw[i] = new
        del feats[k], zeros[k], ones[k]
        pw.pop()

    def recurse(node: int, feats: list[int], zeros: list[float], ones: list[np.ndarray], pw: list[np.ndarray],
                p_z: float, p_o: np.ndarray, p_i: int) -> None:
        feats, zeros, ones, pw = list(feats), list(zeros), list(ones), list(pw)
        extend(feats, zeros, ones, pw, p_z, p_o, p_i)
        if left[node] == LEAF:
            v = values[node]
            for k in range(1, len(feats)):
                w = unwound_sum(zeros, ones, pw, k)
                phi[:, feats[k]] += w * (ones[k] - zeros[k]) * v
            return
        d = int(feature[node])
        i_z, i_o = 1.0, np.ones(n)
        if d in feats[1:]:
            k = feats.index(d, 1)
            i_z, i_o = zeros[k], ones[k]
            unwind(feats, zeros, ones, pw, k)
        go_left = goes_left(X, d, threshold[node])
        for child, here in ((left[node], go_left), (right[node], ~go_left)):
            recurse(int(child), feats, zeros, ones, pw, i_z * cover[child] / cover[node], i_o * here, d)

    recurse(0, [], [], [], [], 1.0, np.ones(n), -1)
    return phi


def conditional_expectation(tree: Mapping[str, Any], leaf_values: np.ndarray, x: np.ndarray,
                            known: set[int]) -> float:
    """``E[f(x) | x_S]`` of the tree's path-dependent model (Lundberg et al. 2020, Algorithm 1): follow ``x`` at a
    split on a known feature, otherwise average both children weighted by their training cover."""
    left, right, feature, threshold, cover = _arrays(tree)
    values = np.asarray(leaf_values, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)[None, :]

    def g(node: int) -> float:
        if left[node] == LEAF:
            return float(values[node])
        d = int(feature[node])
        if d in known:
            return g(int(left[node]) if goes_left(xx, d, threshold[node])[0] else int(right[node]))
        a, b = int(left[node]), int(right[node])
        return (g(a) * cover[a] + g(b) * cover[b]) / cover[node]

    return g(0)


def brute_force_shap(tree: Mapping[str, Any], leaf_values: np.ndarray, x: np.ndarray,
                     features: Sequence[int] | None = None) -> np.ndarray:
    """Shapley values from the definition (every subset; exponential: small trees only), the test reference:
    ``phi_i = sum_{S subset of N minus i} |S|! (M - |S| - 1)! / M! [v(S + i) - v(S)]``, ``v`` from
    :func:`conditional_expectation`."""
    m = int(np.asarray(x).size)
    players = list(range(m)) if features is None else list(features)
    M = len(players)
    phi = np.zeros(m)
    cache: dict[frozenset, float] = {}

    def v(s: frozenset) -> float:
        if s not in cache:
            cache[s] = conditional_expectation(tree, leaf_values, x, set(s))
        return cache[s]

    for i in players:
        others = [p for p in players if p != i]
        for size in range(M):
            w = math.factorial(size) * math.factorial(M - size - 1) / math.factorial(M)
            for s in itertools.combinations(others, size):
                fs = frozenset(s)
                phi[i] += w * (v(fs | {i}) - v(fs))
    return phi
