"""A multi-sequence manifest (DCE + T2-like + ADC-like on different grids) extracts and trains dce+t2+adc:intra+peri3."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from features_synth import SMALL_PARAMS

from her2radiomics import batch
from her2radiomics.phantom import make_dce_phantom, write_dce_phantom

N = 16


@pytest.fixture(scope="module")
def multiseq(tmp_path_factory):
    root = tmp_path_factory.mktemp("mseq")
    rows = ["case_id,image_dce,lesion,image_t2,lesion_t2,image_adc"]
    labels = ["case_id,label"]
    for i in range(N):
        y = i % 2
        ph = make_dce_phantom(40 + i, (120, 120, 32), (2.76, 2.76, 6.0), companion_spacing=(2.2, 2.2, 5.0),
                              lesion_radius_mm=11, rim=0.8 if y else 0.2, heterogeneity=0.8 if y else 0.2)
        write_dce_phantom(ph, root / f"c{i}")
        own_t2 = f"c{i}/t2_lesion.nrrd" if i == 0 else ""   # case 0 has its own T2 lesion, the others resample
        rows.append(f"c{i},c{i}/dce/phase2.nrrd,c{i}/lesion.nrrd,c{i}/t2.nrrd,{own_t2},c{i}/adc.nrrd")
        labels.append(f"c{i},{y}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    (root / "small.yaml").write_text(SMALL_PARAMS)
    res = batch.extract_cohort(root / "m.csv", root / "F.csv", root / "small.yaml", progress=False,
                                auto_exclusions=False, distances=(3.0,), log=lambda m: None)
    return root, res


def test_extracts_per_sequence_columns_with_resampled_lesions(multiseq):
    root, res = multiseq
    assert res.ok, res.failures
    t = res.table.set_index("case_id")
    for seq in ("dce", "t2", "adc"):
        for reg in ("intra", "peri3"):
            assert f"{seq}_{reg}_original_firstorder_Mean" in t.columns
    # ADC-like lesion mean near the planted 950 x 1e-6 mm2/s, T2-like near 260 (textures and noise aside)
    assert np.all(np.abs(t["adc_intra_original_firstorder_Mean"] - 950) < 150)
    assert np.all(np.abs(t["t2_intra_original_firstorder_Mean"] - 260) < 60)
    meta = json.loads((root / "F.meta.json").read_text(encoding="utf-8"))
    diag = meta["diagnostics"]
    assert diag["c0"]["sequences"]["t2"]["lesion"] == "given"
    assert diag["c1"]["sequences"]["t2"]["lesion"] == "resampled"
    assert diag["c1"]["sequences"]["adc"]["source_volume_mm3"] > 0
    assert any("lesion resampled from the reference grid" in w for w in meta["warnings"]["c1"])


def test_trains_the_multisequence_feature_set(multiseq, tmp_path):
    root, res = multiseq
    r = run_cli("train", root / "F.csv", root / "labels.csv", "-o", tmp_path / "model.json", "--task", "custom",
                "--label-column", "label", "--positive", "1", "--negative", "0",
                "--feature-set", "dce+t2+adc:intra+peri3", "--seed", "1")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert card["feature_set"] == "dce+t2+adc:intra+peri3"
    feats = card.get("features") or card["model"]["features"]
    names = [f if isinstance(f, str) else f.get("name") for f in feats]
    assert names and all(n.split("_", 1)[0] in ("dce", "t2", "adc") for n in names)
    assert pd.read_csv(root / "F.csv").shape[0] == N
