"""ComBat harmonisation (her2radiomics.harmonize): the card's record reproduces the reference implementation."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from her2radiomics import harmonize as H
from her2radiomics.errors import UserError


def _table(seed: int = 3, n_feat: int = 12):
    rng = np.random.default_rng(seed)
    batch = np.array(["ge"] * 40 + ["siemens"] * 30 + ["philips"] * 25, dtype=object)
    shift = {"ge": 0.0, "siemens": 2.0, "philips": -1.0}
    scale = {"ge": 1.0, "siemens": 1.8, "philips": 0.6}
    base = rng.normal(5, 1, (len(batch), n_feat)) * np.linspace(1, 3, n_feat)
    A = np.array([base[i] * scale[b] + shift[b] * np.arange(1, n_feat + 1) for i, b in enumerate(batch)])
    X = pd.DataFrame(A, columns=[f"f{j}" for j in range(n_feat)], index=[f"c{i}" for i in range(len(batch))])
    return X, batch


def test_record_reproduces_neurocombat_output():
    from neuroCombat import neuroCombat

    X, batch = _table()
    rec = H.fit(X, batch, batch_column="scanner")
    json.dumps(rec)                                       # the card stores it as plain JSON
    with contextlib.redirect_stdout(io.StringIO()):
        ref = neuroCombat(dat=X.to_numpy().T, covars=pd.DataFrame({"b": batch}), batch_col="b")["data"].T
    got = H.apply(rec, X, batch).to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    # a single new case of a known batch is harmonised exactly as in the fit
    one = H.apply(rec, X.iloc[[50]], batch[[50]]).to_numpy()
    np.testing.assert_allclose(one, ref[[50]], rtol=1e-10, atol=1e-10)
    # batch means are aligned after harmonisation
    after = pd.DataFrame(got).groupby(batch).mean()
    before = X.groupby(batch).mean()
    assert np.ptp(after.to_numpy(), axis=0).max() < 0.2 * np.ptp(before.to_numpy(), axis=0).max()


def test_unseen_batch_refused_then_estimated_from_its_cases():
    X, batch = _table()
    known = batch != "philips"
    rec = H.fit(X[known], batch[known], batch_column="scanner")
    with pytest.raises(UserError, match="--harmonize-batch FILE"):
        H.apply(rec, X[~known], batch[~known])
    # re-estimating a training batch from its own cases gives the fit's gamma*/delta* (ComBat's priors are per batch)
    again = H.estimate_batch(rec, X[batch == "siemens"], "siemens")
    np.testing.assert_allclose(again["gamma_star"]["siemens"], rec["gamma_star"]["siemens"], rtol=1e-12)
    np.testing.assert_allclose(again["delta_star"]["siemens"], rec["delta_star"]["siemens"], rtol=1e-12)
    new = H.estimate_batch(rec, X[~known], "philips")
    assert new["estimated_from_new_cases"] == ["philips"] and "philips" not in rec["gamma_star"]
    h = H.apply(new, X[~known], batch[~known])
    ge = H.apply(rec, X[batch == "ge"], batch[batch == "ge"])
    assert abs(h.mean().to_numpy() - ge.mean().to_numpy()).max() < 0.5 * abs(
        X[~known].mean().to_numpy() - X[batch == "ge"].mean().to_numpy()).max()


def test_missing_and_constant_features():
    X, batch = _table()
    X = X.copy()
    X.iloc[3, 2] = np.nan
    X["const"] = 1.0
    rec = H.fit(X, batch, batch_column="scanner")
    assert rec["n_filled_for_estimation"] == 1 and rec["n_unharmonised"] == 1 and "const" not in rec["features"]
    out = H.apply(rec, X, batch)
    assert np.isnan(out.iloc[3, 2]) and (out["const"] == 1.0).all()


def test_too_few_batches():
    X, batch = _table()
    with pytest.raises(UserError, match="at least 2 batches"):
        H.fit(X, np.array(["A"] * len(X)), batch_column="scanner")


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")
def test_matches_r_sva_combat(tmp_path):
    """Against Bioconductor's sva::ComBat (the reference the Python ports follow), when Debian's r-bioc-sva is here."""
    ok = subprocess.run(["Rscript", "-e", "quit(status = !requireNamespace('sva', quietly = TRUE))"],
                        capture_output=True, timeout=120)
    if ok.returncode != 0:
        pytest.skip("R package sva not installed (apt-get install r-bioc-sva)")
    X, batch = _table()
    X.to_csv(tmp_path / "x.csv")
    pd.DataFrame({"batch": batch}).to_csv(tmp_path / "b.csv", index=False)
    script = (f"x <- as.matrix(read.csv('{tmp_path / 'x.csv'}', row.names = 1)); b <- read.csv('{tmp_path / 'b.csv'}')$batch;"
              f"h <- sva::ComBat(t(x), batch = b, par.prior = TRUE); write.csv(t(h), '{tmp_path / 'h.csv'}')")
    subprocess.run(["Rscript", "-e", script], capture_output=True, timeout=300, check=True)
    ref = pd.read_csv(tmp_path / "h.csv", index_col=0).to_numpy()
    got = H.apply(H.fit(X, batch, batch_column="scanner"), X, batch).to_numpy()
    # the same EB fixed-point iteration (relative change 1e-4) from the same start: equal to rounding (6e-14 seen)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
