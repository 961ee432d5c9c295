"""Random forest and support vector machine models for the model card: fitting, plain-array serialisation,
prediction from the card without pickle or re-fitting, and exact per-feature contributions.

Logistic regression (the default, ``lr``) stays where it always was (``coefficients``/``intercept`` of the card);
a card of another classifier has ``coefficients`` and ``intercept`` set to null and a ``classifier`` record:

``{"type": "rf", "library": ..., "params": {...}, "classes": [0, 1], "n_outputs": 1, "n_features": p,
"trees": [{"children_left", "children_right", "feature", "threshold", "value", "cover"}, ...]}``
    scikit-learn's ``RandomForestClassifier`` (Breiman 2001, Machine Learning 45:5-32); one node array per tree
    (``value`` = class fractions per node, ``cover`` = weighted training cases per node, ``-1`` marks leaves).
    P(event) = mean over trees of the leaf's class-1 fraction, exactly as ``predict_proba``.

``{"type": "svm", "kernel": "linear"|"rbf", "gamma": g, "support_vectors": [[...]], "dual_coef": [...],
"intercept": b, "probA": A, "probB": B, "classes": [0, 1], ...}``
    scikit-learn's ``SVC`` (libsvm; Chang & Lin 2011) with Platt scaling (Platt 1999; Lin, Lin & Weng 2007,
    Machine Learning 68:267-276). Decision function ``f(z) = sum_i dual_coef_i K(sv_i, z) + intercept`` with
    ``K = z . sv`` (linear) or ``exp(-gamma |z - sv|^2)`` (RBF); ``P(event) = 1 / (1 + exp(A f + B))``, i.e.
    log-odds ``-(A f + B)``. ``SVC(probability=True)`` is deprecated since scikit-learn 1.9, so the calibrated
    alternative it names is used: ``CalibratedClassifierCV(SVC(...), method="sigmoid", ensemble=False,
    cv=StratifiedKFold(5, shuffle=True, random_state=seed))``: the SVM is fitted on every training case and the
    sigmoid on its 5-fold cross-validated decision values (what libsvm's own ``-b 1`` does internally).

Every model works on the card's z-scored features (training median imputation, training mean/SD), like LR.

Contributions (what :func:`contributions` returns; ``base + contributions.sum(1) == output`` for every case):

* ``rf``: exact path-dependent TreeSHAP (Lundberg et al. 2020, :mod:`her2radiomics.treeshap`) of each tree's
  P(event), averaged over the trees: output = P(event), base = the forest's cover-weighted mean leaf value.
* ``svm``: exact *baseline* Shapley values (Sundararajan & Najmi 2020, "The many Shapley values for model
  explanation", ICML, BShap) of the Platt log-odds ``-A f(z) + B`` with the average training case (z = 0) as
  the baseline, the same reference LR's ``beta_i * z_i`` uses. For the linear kernel this is
  ``-A w_i z_i`` (w = sum_i dual_coef_i sv_i). For the RBF kernel the kernel factorises over features,
  ``K(z, sv) = prod_j exp(-gamma (z_j - sv_j)^2)``, so the game ``v(S) = f(z_S, 0_rest)`` is a sum of products and
  its Shapley values are computed exactly in O(p^2) per support vector with Owen's multilinear extension and an
  exact Gauss-Legendre rule (no sampling, no 2^p enumeration; :func:`rbf_baseline_shapley`): output = log-odds ``logit(P(event))``, base = ``-(A f(0) + B)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from her2radiomics import treeshap
from her2radiomics.errors import UserError

CLASSIFIERS = ("lr", "rf", "svm")
SVM_KERNELS = ("rbf", "linear")
#: random forest settings (scikit-learn's defaults, the number of trees stated)
RF_TREES = 100
SVM_C = 1.0
PLATT_FOLDS = 5


def describe(kind: str, kernel: str = "rbf") -> str:
    """One line naming the final model (the card's ``selection.refit``)."""
    if kind == "rf":
        return (f"random forest, {RF_TREES} trees, Gini, sqrt(p) features per split, bootstrap (scikit-learn "
                "RandomForestClassifier) on z-scored features")
    if kind == "svm":
        return (f"support vector machine, {kernel} kernel, C={SVM_C:g}" + (", gamma='scale'" if kernel == "rbf" else "")
                + f", Platt sigmoid on {PLATT_FOLDS}-fold cross-validated decision values (scikit-learn SVC + "
                "CalibratedClassifierCV, ensemble=False) on z-scored features")
    raise UserError(f"unknown classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")


def check_choice(kind: str, kernel: str = "rbf") -> None:
    """One-line UserError for an unknown classifier or kernel."""
    if kind not in CLASSIFIERS:
        raise UserError(f"unknown --classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")
    if kernel not in SVM_KERNELS:
        raise UserError(f"unknown --svm-kernel {kernel!r}; use one of {', '.join(SVM_KERNELS)}")


def make_estimator(kind: str, seed: int, kernel: str = "rbf", n_min: int = PLATT_FOLDS) -> Any:
    """An unfitted scikit-learn estimator for ``rf`` or ``svm`` (seeded; ``n_min`` = cases of the smaller class,
    which caps the Platt folds)."""
    if kind == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=RF_TREES, random_state=seed)
    if kind == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.svm import SVC

        folds = max(2, min(PLATT_FOLDS, n_min))
        return CalibratedClassifierCV(SVC(C=SVM_C, kernel=kernel, gamma="scale"), method="sigmoid", ensemble=False,
                                      cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    raise UserError(f"unknown classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")


def fit(kind: str, Z: np.ndarray, y: np.ndarray, seed: int, kernel: str = "rbf") -> tuple[Any, dict]:
    """Fit ``kind`` on the z-scored training matrix; returns (estimator, the card's ``classifier`` record)."""
    y = np.asarray(y, dtype=int)
    n_min = int(np.bincount(y, minlength=2).min())
    if n_min < 2:
        raise UserError(f"the training split has {n_min} case(s) of one class; the classifier needs at least 2")
    est = make_estimator(kind, seed, kernel, n_min).fit(np.asarray(Z, dtype=float), y)
    return est, serialise(est)


# ------------------------------------------------------------------------------------------------ serialisation
def _sk_version() -> str:
    import sklearn

    return sklearn.__version__


def serialise(est: Any) -> dict:
    """The fitted estimator as plain JSON arrays (no pickle)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier

    classes = [int(c) for c in est.classes_]
    if classes != [0, 1]:
        raise UserError(f"the classifier was fitted on classes {classes}; the card needs the 0/1 target")
    if isinstance(est, RandomForestClassifier):
        trees = []
        for t in est.estimators_:
            tr = t.tree_
            trees.append({
                "children_left": tr.children_left.tolist(), "children_right": tr.children_right.tolist(),
                "feature": [int(f) if c != treeshap.LEAF else -1
                            for f, c in zip(tr.feature.tolist(), tr.children_left.tolist(), strict=True)],
                "threshold": [float(v) if c != treeshap.LEAF else 0.0
                              for v, c in zip(tr.threshold.tolist(), tr.children_left.tolist(), strict=True)],
                "value": tr.value[:, 0, :].tolist(), "cover": tr.weighted_n_node_samples.tolist(),
            })
        return {"type": "rf", "library": f"scikit-learn {_sk_version()} RandomForestClassifier",
                "params": {k: _plain(v) for k, v in est.get_params().items()}, "classes": classes,
                "n_outputs": int(est.n_outputs_), "n_features": int(est.n_features_in_), "trees": trees}
    if isinstance(est, CalibratedClassifierCV) and len(est.calibrated_classifiers_) == 1:
        cal = est.calibrated_classifiers_[0]
        svc, sig = cal.estimator, cal.calibrators[0]
        kernel = str(svc.kernel)
        if kernel not in SVM_KERNELS or est.method != "sigmoid":
            raise UserError(f"SVM kernel {kernel!r} cannot go into a card; use one of {', '.join(SVM_KERNELS)}")
        return {"type": "svm", "kernel": kernel,
                "library": f"scikit-learn {_sk_version()} SVC (libsvm) + CalibratedClassifierCV(method='sigmoid', "
                           "ensemble=False)",
                "params": {k: _plain(v) for k, v in svc.get_params().items()},
                "platt_folds": int(est.cv.get_n_splits()), "classes": classes,
                "n_features": int(svc.n_features_in_), "gamma": float(svc._gamma),
                "support_vectors": svc.support_vectors_.tolist(), "dual_coef": svc.dual_coef_[0].tolist(),
                "intercept": float(svc.intercept_[0]), "probA": float(sig.a_), "probB": float(sig.b_)}
    raise UserError(f"cannot store a {type(est).__name__} in a model card; use --classifier lr, rf or svm")


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return str(v)


# ------------------------------------------------------------------------------------------------ validation
def validate(model: Any, n_features: int, where: str) -> None:
    """Check a card's ``classifier`` record (types, shapes, finiteness); one-line UserError naming the problem."""
    def fail(what: str) -> UserError:
        return UserError(f"model card {where} is invalid: {what}; re-train the model or restore the original file")

    if not isinstance(model, Mapping) or model.get("type") not in ("rf", "svm"):
        raise fail("'classifier.type' must be rf or svm")
    if model.get("classes") != [0, 1]:
        raise fail("'classifier.classes' must be [0, 1]")
    if model.get("n_features") != n_features:
        raise fail(f"'classifier.n_features' must equal the {n_features} card features")
    try:
        if model["type"] == "rf":
            trees = model["trees"]
            if not isinstance(trees, list) or not trees:
                raise fail("'classifier.trees' must be a non-empty list")
            for k, t in enumerate(trees):
                left, right = np.asarray(t["children_left"], dtype=float), np.asarray(t["children_right"], dtype=float)
                m = left.size
                feat = np.asarray(t["feature"], dtype=float)
                thr, cover = np.asarray(t["threshold"], dtype=float), np.asarray(t["cover"], dtype=float)
                val = np.asarray(t["value"], dtype=float)
                if (m == 0 or right.shape != (m,) or feat.shape != (m,) or thr.shape != (m,) or cover.shape != (m,)
                        or val.shape != (m, 2)):
                    raise fail(f"classifier.trees[{k}] node arrays differ in length")
                if not (np.isfinite(thr).all() and np.isfinite(val).all() and np.isfinite(cover).all()):
                    raise fail(f"classifier.trees[{k}] holds non-finite numbers")
                inner = left != treeshap.LEAF
                if ((right[inner] <= np.flatnonzero(inner)).any() or (left[inner] <= np.flatnonzero(inner)).any()
                        or (left[inner] >= m).any() or (right[inner] >= m).any() or (right[~inner] != treeshap.LEAF).any()):
                    raise fail(f"classifier.trees[{k}] has child indices that do not form a tree")
                if ((feat[inner] < 0) | (feat[inner] >= n_features)).any() or (cover <= 0).any():
                    raise fail(f"classifier.trees[{k}] splits on a feature outside the card or has an empty node")
        else:
            if model.get("kernel") not in SVM_KERNELS:
                raise fail(f"'classifier.kernel' must be one of {', '.join(SVM_KERNELS)}")
            sv = np.asarray(model["support_vectors"], dtype=float)
            dc = np.asarray(model["dual_coef"], dtype=float)
            if sv.ndim != 2 or sv.shape[1] != n_features or sv.shape[0] == 0 or dc.shape != (sv.shape[0],):
                raise fail("'classifier.support_vectors' / 'dual_coef' shapes do not match")
            nums = [model["gamma"], model["intercept"], model["probA"], model["probB"]]
            if (not np.isfinite(sv).all() or not np.isfinite(dc).all()
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in nums)):
                raise fail("the SVM record holds a non-numeric or non-finite value")
            if float(model["gamma"]) <= 0:
                raise fail("'classifier.gamma' must be > 0")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise fail(f"the {model.get('type')} record lacks or mangles a field ({exc})") from None


# ------------------------------------------------------------------------------------------------ prediction
def _tree_leaf_values(tree: Mapping[str, Any]) -> np.ndarray:
    """P(event) per node as scikit-learn's tree ``predict_proba`` normalises it (value / row sum)."""
    val = np.asarray(tree["value"], dtype=np.float64)
    norm = val.sum(axis=1)
    norm[norm == 0.0] = 1.0
    return val[:, 1] / norm


def svm_decision(model: Mapping[str, Any], Z: np.ndarray) -> np.ndarray:
    """``f(z) = sum_i dual_coef_i K(sv_i, z) + intercept`` (scikit-learn's ``decision_function``)."""
    sv = np.asarray(model["support_vectors"], dtype=np.float64)
    dc = np.asarray(model["dual_coef"], dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    if model["kernel"] == "linear":
        K = Z @ sv.T
    else:
        d2 = ((Z[:, None, :] - sv[None, :, :]) ** 2).sum(axis=2)
        K = np.exp(-float(model["gamma"]) * d2)
    return K @ dc + float(model["intercept"])


def svm_log_odds(model: Mapping[str, Any], f: np.ndarray) -> np.ndarray:
    """Platt log-odds of the event class from the decision function: ``-(A f + B)``."""
    return -(float(model["probA"]) * np.asarray(f, dtype=np.float64) + float(model["probB"]))


def predict_proba(model: Mapping[str, Any], Z: np.ndarray) -> np.ndarray:
    """P(event) of the card's ``classifier`` record on z-scored features, as scikit-learn computes it."""
    Z = np.asarray(Z, dtype=np.float64)
    if model["type"] == "rf":
        total = np.zeros(Z.shape[0])
        for t in model["trees"]:
            leaf = treeshap.leaf_index(t, Z)
            total += _tree_leaf_values(t)[leaf]
        return total / len(model["trees"])
    if model["type"] == "svm":
        from scipy.special import expit

        return expit(svm_log_odds(model, svm_decision(model, Z)))
    raise UserError(f"unknown classifier type {model['type']!r} in the model card; re-train the model")


# ------------------------------------------------------------------------------------------------ contributions
def output_scale(model: Mapping[str, Any]) -> str:
    """What :func:`contributions` explain: ``probability`` (rf) or ``log-odds`` (svm, like LR)."""
    return "probability" if model["type"] == "rf" else "log-odds"


def contributions(model: Mapping[str, Any], Z: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(contributions ``(n, p)``, base value, explained output ``(n,)``) with ``base + sum == output`` per row
    (see the module docstring for the method per classifier)."""
    Z = np.asarray(Z, dtype=np.float64)
    if model["type"] == "rf":
        phi = np.zeros(Z.shape)
        base = 0.0
        for t in model["trees"]:
            v = _tree_leaf_values(t)
            phi += treeshap.tree_shap(t, v, Z)
            base += treeshap.expected_value(t, v)
        k = len(model["trees"])
        return phi / k, base / k, predict_proba(model, Z)
    if model["type"] == "svm":
        a = -float(model["probA"])  # d log-odds / d f
        zero = np.zeros((1, Z.shape[1]))
        base = float(svm_log_odds(model, svm_decision(model, zero))[0])
        out = svm_log_odds(model, svm_decision(model, Z))
        if model["kernel"] == "linear":
            w = np.asarray(model["dual_coef"], float) @ np.asarray(model["support_vectors"], float)
            return a * w[None, :] * Z, base, out
        return a * rbf_baseline_shapley(model, Z, zero[0]), base, out
    raise UserError(f"unknown classifier type {model['type']!r} in the model card; re-train the model")


def rbf_baseline_shapley(model: Mapping[str, Any], Z: np.ndarray, baseline: np.ndarray,
                         chunk: int = 64) -> np.ndarray:
    """Exact Shapley values of ``v(S) = f(z_S, baseline_rest) - f(baseline)`` for an RBF-kernel decision function.

    Per support vector i the game is a product, ``v_i(S) = alpha_i prod_{j in S} a_ij prod_{j not in S} c_ij`` with
    ``a_ij = exp(-gamma (z_j - sv_ij)^2)`` and ``c_ij = exp(-gamma (b_j - sv_ij)^2)``; the game is linear in i. By
    Owen's multilinear-extension formula (Owen 1972, Management Science 18:P64-P79) the Shapley value is
    ``phi_j = sum_i alpha_i (a_ij - c_ij) * integral_0^1 prod_{l != j} ((1 - u) c_il + u a_il) du``, which equals the
    Shapley-weighted sum over subsets ``sum_k k! (p-1-k)! / p! e_k`` because ``integral u^k (1-u)^(p-1-k) du`` is that
    weight. The integrand is a polynomial of degree p - 1 in u, so Gauss-Legendre quadrature with ``p // 2 + 1``
    nodes is exact (up to rounding): O(p^2) per support vector and case instead of the 2^p of the definition.
    Products are taken in log space (``log a_ij = -gamma (z_j - sv_ij)^2`` never underflows).
    """
    from numpy.polynomial.legendre import leggauss

    sv = np.asarray(model["support_vectors"], dtype=np.float64)
    alpha = np.asarray(model["dual_coef"], dtype=np.float64)
    g = float(model["gamma"])
    Z = np.asarray(Z, dtype=np.float64)
    n, p = Z.shape
    nodes, weights = leggauss(p // 2 + 1)
    u, wq = (nodes + 1.0) / 2.0, weights / 2.0
    lc = -g * (np.asarray(baseline, float)[None, :] - sv) ** 2          # (n_sv, p)
    phi = np.zeros((n, p))
    for start in range(0, n, chunk):
        la = -g * (Z[start:start + chunk, None, :] - sv[None, :, :]) ** 2  # (rows, n_sv, p)
        gain = (np.exp(la) - np.exp(lc)[None]) * alpha[None, :, None]
        acc = np.zeros(la.shape)
        for uq, w in zip(u, wq, strict=True):
            lt = np.logaddexp(math.log1p(-uq) + lc[None], math.log(uq) + la)
            acc += w * np.exp(lt.sum(axis=2, keepdims=True) - lt)
        phi[start:start + chunk] = (gain * acc).sum(axis=1)
    return phi


def brute_force_baseline_shapley(f: Any, z: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Shapley values of ``v(S) = f(z_S, baseline_rest)`` from the definition (all 2^p subsets): the tests'
    independent reference for :func:`rbf_baseline_shapley`. ``f`` maps an ``(m, p)`` matrix to ``(m,)``."""
    import itertools

    p = int(z.size)
    subsets = list(itertools.product([0, 1], repeat=p))
    M = np.array(subsets, dtype=bool)
    pts = np.where(M, z[None, :], baseline[None, :])
    vals = dict(zip(subsets, np.asarray(f(pts), dtype=float), strict=True))
    phi = np.zeros(p)
    for s, v in vals.items():
        k = sum(s)
        for j in range(p):
            if s[j]:
                continue
            w = math.factorial(k) * math.factorial(p - k - 1) / math.factorial(p)
            s2 = tuple(1 if i == j else b for i, b in enumerate(s))
            phi[j] += w * (vals[s2] - v)
    return phi


def classifier_of(card: Mapping[str, Any]) -> str:
    """``lr`` for a logistic-regression card (no ``classifier`` record), else the record's type."""
    model = card.get("classifier")
    return "lr" if model is None else str(model.get("type"))
