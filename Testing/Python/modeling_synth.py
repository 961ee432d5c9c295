"""Synthetic features + labels tables for the modelling tests and benchmarks (test-only; not part of the package)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def synthetic_cohort(n_cases: int = 210, n_per_region: int = 50, regions: Sequence[str] = ("intra", "peri1", "peri3", "peri5"),
                     n_signal: int = 3, effect: float = 1.0, event_rate: float = 0.4, seed: int = 0,
                     missing_rate: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A features table ``case_id, {region}_f{j}`` and a labels table ``case_id, label, center`` (tests, benchmarks).

    Features are correlated Gaussians (a shared latent factor per case plus noise, on varied scales). The first
    ``n_signal`` features of the first region and of ``peri3`` (when present) are shifted by ``effect`` standard
    deviations in events: the planted signal a correct pipeline must find. ``center`` alternates A/B/C.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n_cases) < event_rate).astype(int)
    y[:2], y[2:4] = 1, 0
    data: dict[str, np.ndarray] = {}
    latent = rng.standard_normal(n_cases)
    for r in regions:
        block = 0.5 * latent[:, None] + rng.standard_normal((n_cases, n_per_region))
        if r == regions[0] or r == "peri3":
            block[:, :n_signal] += effect * y[:, None]
        scales = 10.0 ** rng.uniform(-2, 3, n_per_region)
        block = block * scales + rng.uniform(-5, 5, n_per_region) * scales
        for j in range(n_per_region):
            data[f"{r}_f{j}"] = block[:, j]
    ids = [f"case{i:04d}" for i in range(n_cases)]
    feats = pd.DataFrame(data)
    if missing_rate > 0:
        mask = rng.random(feats.shape) < missing_rate
        feats = feats.mask(mask)
    feats.insert(0, "case_id", ids)
    labels = pd.DataFrame({"case_id": ids, "label": y, "center": np.array(["A", "B", "C"])[np.arange(n_cases) % 3]})
    return feats, labels

