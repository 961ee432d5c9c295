"""Duke-Breast-Cancer-MRI (599 patients): combined clinical + radiomics models and ComBat's effect (issue 15).

Makes the numbers of docs/validation.md, section "Related studies' models on the Duke cohort":

1. ER and HER2, GE (manufacturer 0) trains -> Siemens (2) is the external test (``--split center``), all 529
   features, LASSO -> LR; ``--clinical`` age, menopause, ER/PR, T/N stage, grade with the univariate screen ->
   multivariate LR (ORs) -> combined rad-score + clinical model, its nomogram, and the three-model DeLong table.
2. ComBat (batch = manufacturer) on the same radiomics pipeline: external AUC, GDI and accuracy at the training
   cut-off, (a) before, (b) ComBat fitted on all 599 cases (no labels; the protocol of the issue's outside
   measurement), (c) the card's protocol: GE is the reference batch, Siemens estimated from its own unlabelled
   cases (``--harmonize combat --batch-column manufacturer --harmonize-batch FEATURES``).

Run:  .venv/bin/python benchmarks/duke_related_models.py [--data ../shared/data/duke] [-o OUT_DIR] [--seeds 0 1 2 3 4]
(about 3 minutes per seed on 2 busy cores; the nomogram figures go to docs/figures/duke_nomogram_{er,her2}.png).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "HER2Radiomics"))

COMMON = ["--task", "custom", "--positive", "1", "--negative", "0", "--feature-set", "all", "--id-column",
          "patient_id", "--split", "center", "--center-column", "manufacturer", "--test-center", "2"]
CLINICAL = {"ER": ["age_years", "menopause", "PR", "T_stage", "N_stage", "nottingham_grade"],
            "HER2": ["age_years", "menopause", "ER", "PR", "T_stage", "N_stage", "nottingham_grade"]}


def cli(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "her2radiomics", *map(str, args)], capture_output=True, text=True,
                       cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"her2radiomics {' '.join(map(str, args[:1]))} failed: {r.stderr.strip()}")
    return r.stdout


def ext(card: dict) -> dict:
    m, g = card["metrics"]["external"], card["gdi"]["external"]
    return {"train_auc": m and card["metrics"]["train"]["auc"], "external_auc": m["auc"], "auc_ci": m["auc_ci"],
            "gdi": g["value"], "zone": g["zone"], "accuracy": m["accuracy"], "cutoff": card["cutoff"],
            "n_selected": len(card["features"])}


def posthoc(out: Path, feats: Path, clin: Path, seeds) -> dict:
    """(d) a card trained without ComBat on GE, applied to Siemens cases harmonised post hoc onto GE (GE = the
    reference batch, Siemens estimated from its own unlabelled cases: harmonize.estimate_batch): the path of
    evaluate/predict for a batch the card has never seen."""
    import numpy as np
    import pandas as pd

    from her2radiomics import harmonize, stats
    from her2radiomics.modelcard import load_model_card, predict_proba

    F = pd.read_csv(feats)
    F["patient_id"] = F["patient_id"].astype(str)
    F = F.set_index("patient_id")
    C = pd.read_csv(clin, dtype={"patient_id": str}).set_index("patient_id")
    res: dict = {}
    for label in ("ER", "HER2"):
        for seed in seeds:
            card = load_model_card(out / f"{label}_before_seed{seed}.json")
            ids = card["provenance"]["case_ids"]
            ge = ids["train"]
            rec = harmonize.fit(F.loc[ge], ["0"] * len(ge), batch_column="manufacturer", allow_single=True)
            ext = ids["external"]
            rec = harmonize.estimate_batch(rec, F.loc[ext], "2")
            p = predict_proba(card, harmonize.apply(rec, F.loc[ext], ["2"] * len(ext)))
            y = C.loc[ext, label].to_numpy(dtype=int)
            auc = float(stats.roc_auc(y, p))
            tr_auc = card["metrics"]["train"]["auc"]
            acc = float(np.mean((p >= card["cutoff"]) == (y == 1)))
            res.setdefault(label, {})[f"seed{seed}"] = {"external_auc": auc, "gdi": (tr_auc - auc) / tr_auc,
                                                        "accuracy": acc, "train_auc": tr_auc}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "duke")
    ap.add_argument("-o", "--output", type=Path, default=Path("/tmp/duke_related_models"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="split/CV seeds for the ComBat comparison (docs: 0 1 2 3 4); the combined models use seed 0")
    a = ap.parse_args()
    import pandas as pd

    from her2radiomics import harmonize, nomogram
    from her2radiomics.modelcard import load_model_card

    feats, clin = a.data / "imaging_features.csv", a.data / "clinical.csv"
    out = a.output
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    res: dict = {"combined": {}, "combat": {}}
    # (b) the protocol: ComBat on all 599 cases (no labels), then the plain pipeline on the result
    F = pd.read_csv(feats)
    C = pd.read_csv(clin)
    batch = C.set_index("patient_id").loc[F["patient_id"], "manufacturer"].to_numpy()
    X = F.set_index("patient_id")
    rec = harmonize.fit(X, batch, batch_column="manufacturer")
    harmonize.apply(rec, X, batch).reset_index().to_csv(out / "features_combat_all.csv", index=False)
    for label in ("ER", "HER2"):
        for seed in a.seeds:
            cards = {}
            for key, table, extra in (("before", feats, []), ("combat_all_cases", out / "features_combat_all.csv", []),
                                      ("combat_card", feats, ["--harmonize", "combat", "--batch-column",
                                                              "manufacturer", "--harmonize-batch", feats])):
                p = out / f"{label}_{key}_seed{seed}.json"
                cli("train", table, clin, "-o", p, "--label-column", label, *COMMON, "--seed", seed, *extra)
                cards[key] = ext(load_model_card(p))
            res["combat"].setdefault(label, {})[f"seed{seed}"] = cards
        p = out / f"{label}_combined.json"
        cli("train", feats, clin, "-o", p, "--label-column", label, *COMMON, "--clinical", *CLINICAL[label],
            "--clinical-selection", "univariate")
        card = load_model_card(p)
        sec = card["clinical_models"]
        fig = ROOT / "docs" / "figures" / f"duke_nomogram_{label.lower()}.png"
        nomogram.draw(sec["nomogram"], fig, None, title=f"Duke {label}: combined rad-score + clinical nomogram")
        res["combined"][label] = {
            "univariate": [{k: u[k] for k in ("name", "p_min", "kept")} for u in sec["selection"]["univariate"]],
            "multivariate": [{k: t[k] for k in ("term", "or", "or_ci", "p")} for t in sec["clinical"]["table"][1:]],
            "combined": [{k: t[k] for k in ("term", "or", "or_ci", "p")} for t in sec["combined"]["table"][1:]],
            "delong": {sp: {"auc": d["auc"], "p": d["p"]} for sp, d in sec["delong"].items()},
            "metrics": {m: {sp: {k: v[k] for k in ("auc", "auc_ci", "accuracy")}
                            for sp, v in (card["metrics"] if m == "radiomics" else sec[m]["metrics"]).items()}
                        for m in ("radiomics", "clinical", "combined")},
            "nomogram_figure": str(fig.relative_to(ROOT)), "notes": sec["notes"],
        }
    res["combat_posthoc"] = posthoc(out, feats, clin, a.seeds)
    res["seconds_wall"] = time.perf_counter() - t0
    res["seconds_cpu_parent"] = time.process_time() - c0
    (out / "duke_related_models.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
