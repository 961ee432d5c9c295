"""The demonstration (README main job): the whole pipeline on embedded data in a few minutes.

Synthetic demonstration model, not for clinical use. Steps:

1. **Phantom cohort** (deterministic): ``n_per_class`` HER2-positive, HER2-low and HER2-zero phantoms
   (``phantom.make_phantom``, 96 x 96 x 40 voxels of 1.0 x 1.0 x 1.5 mm) from two synthetic centres that differ in
   noise and coil shading (centre A: Rician sigma 8, bias 0.2; centre B: sigma 14, bias 0.4; one case in three
   is from centre B). The planted HER2-related signal (see :func:`cohort_design`):

   - positive vs negative: stronger rim enhancement and heterogeneity (``rim``, ``heterogeneity`` drawn around
     0.65 for positive and 0.40 for negative cases, SD 0.12);
   - low vs zero: peritumoral (oedema-like) enhancement (``peritumoral_enhancement`` around 0.6 for low and 0.2
     for zero, SD 0.2; uniform 0-0.8 for positive cases, so it carries no stage-1 information).

   The distributions overlap on purpose so the AUCs are realistic rather than perfect.
2. **Regions and features**: lesion + 1/3/5 mm shells minus the phantoms' ground-truth air/pectoralis masks,
   pyradiomics features with the reduced demo parameter file ``Resources/Parameters/her2radiomics_demo.yaml``
   (original image; shape, first-order, GLCM, GLSZM: 72 features per region) to stay within the time budget.
3. **DCE series and companion sequences** (:func:`dce_design`, ``DIR/dce/``): six ``phantom.make_dce_phantom``
   cases (pre-contrast + 5 post-contrast phases at 0, 90, ..., 450 s; two per planted BI-RADS delayed type
   persistent / plateau / washout, one with a fast and one with a medium initial rise) with T2-like and ADC-like
   volumes on another grid. Extracted twice through ``batch.extract_cohort``: a ``dce_phases`` manifest (radiomics
   of the default phase, the 2nd post-contrast, plus the kinetic columns and the lesion's TIC type;
   ``dce/tic_types.csv`` sets planted against recovered types) and a multi-sequence manifest
   ``image_dce,image_t2,image_adc`` (intra + 3 mm shell, columns ``{seq}_{region}_{feature}``; one case with its
   own T2 lesion, the others' T2 / ADC lesions resampled from the DCE lesion).
4. **Studies**: stage 1 (positive vs negative) split by centre (A: train + 30% internal test; B: external test)
   and stage 2 (low vs zero among negatives) random stratified 7:3, for the four feature sets intra,
   intra+peri1, intra+peri3, intra+peri5 (``study.train_feature_sets``), DeLong matrices per split, one model per stage
   chosen by the rule of :func:`choose_model`; ``DIR/stage{1,2}/study.json`` in the ``study`` command's format.
5. **Prediction** of the real pyradiomics ``breast1`` case (``../shared/data/pyradiomics_breast1`` or
   ``$HER2_SHARED_DATA``; a held-out phantom otherwise) and of one external-centre phantom per class, with
   contributions; the HTML report of both studies and the predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from her2radiomics import DEMO_MODEL_NOTICE
from her2radiomics.errors import UserError

DEMO_PARAMS = "her2radiomics_demo.yaml"
SIZE = (96, 96, 40)
SPACING = (1.0, 1.0, 1.5)
CENTRES = {"A": {"noise": 8.0, "bias": 0.2}, "B": {"noise": 14.0, "bias": 0.4}}
SHIPPED_CARDS = {"stage1": "her2radiomics_demo_stage1.json", "stage2": "her2radiomics_demo_stage2.json"}
STAGE_SPLITS = {"stage1": {"split": "center", "test_center": "B"}, "stage2": {"split": "random", "test_center": None}}
#: the DCE step's grids (small, for the time budget): DCE series, and the T2 / ADC companion grid
DCE_SIZE = (96, 96, 40)
DCE_SPACING = (2.5, 2.5, 3.0)
DCE_COMPANION_SPACING = (3.0, 3.0, 3.0)
DCE_DISTANCES = (3.0,)
DCE_SEQUENCES = ("dce", "t2", "adc")
#: planted initial enhancement (%) of the two cases of each delayed type, by its BI-RADS initial type
DCE_INITIAL_PCT = {"fast": 150.0, "medium": 80.0}


@dataclass
class DemoResult:
    outdir: Path
    seconds: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)
    cards: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    predictions: Path | None = None
    breast1: bool = False
    aucs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    dce: dict[str, Any] = field(default_factory=dict)


def demo_params_path() -> Path:
    from her2radiomics.resources import resource

    return resource("Parameters", DEMO_PARAMS)


def shipped_card_path(stage: str) -> Path:
    from her2radiomics.resources import resource

    return resource("Models", SHIPPED_CARDS[stage])


def cohort_design(n_per_class: int = 30, seed: int = 2026) -> pd.DataFrame:
    """The phantom cohort's per-case parameters (deterministic for ``seed``); see the module docstring."""
    rng = np.random.default_rng(seed)
    rows = []
    for cls in ("positive", "low", "zero"):
        for i in range(n_per_class):
            centre = "B" if i % 3 == 2 else "A"
            mu = 0.65 if cls == "positive" else 0.40
            if cls == "positive":
                pe = rng.uniform(0.0, 0.8)
            else:
                pe = rng.normal(0.6 if cls == "low" else 0.2, 0.2)
            rows.append({
                "case_id": f"{cls[:3]}{i:02d}", "her2": cls, "center": centre,
                "rim": float(np.clip(rng.normal(mu, 0.12), 0.0, 1.0)),
                "heterogeneity": float(np.clip(rng.normal(mu, 0.12), 0.0, 1.0)),
                "peritumoral_enhancement": float(np.clip(pe, 0.0, 2.0)),
                "lesion_radius_mm": float(rng.uniform(4.5, 6.5)),
                "seed": int(rng.integers(0, 2**31 - 1)),
                **CENTRES[centre],
            })
    return pd.DataFrame(rows)


def _same_on_disk(img, path: Path) -> bool:
    import SimpleITK as sitk

    if not path.exists():
        return False
    try:
        old = sitk.ReadImage(str(path))
    except RuntimeError:
        return False
    return (old.GetSize() == img.GetSize() and np.allclose(old.GetSpacing(), img.GetSpacing())
            and np.allclose(old.GetOrigin(), img.GetOrigin())
            and np.array_equal(sitk.GetArrayViewFromImage(old), sitk.GetArrayViewFromImage(img)))


def make_cohort(design: pd.DataFrame, outdir: Path) -> Path:
    """Write every phantom (image, lesion, air, pectoralis) and the manifest; returns the manifest path.

    Phantoms are always regenerated, but a file is rewritten only when its content changed, so a re-run keeps
    the feature cache (keyed on file size and mtime) valid and never reuses phantoms from other code.
    """
    from her2radiomics.io import write_image
    from her2radiomics.phantom import make_phantom

    rows = []
    for r in design.itertuples(index=False):
        case_dir = outdir / r.case_id
        files = {k: case_dir / f"{k}.nrrd" for k in ("image", "lesion", "air", "pectoralis")}
        ph = make_phantom(r.seed, SIZE, SPACING, lesion_radius_mm=r.lesion_radius_mm, rim=r.rim,
                          heterogeneity=r.heterogeneity, peritumoral_enhancement=r.peritumoral_enhancement,
                          noise=r.noise, bias=r.bias)
        for k, path in files.items():
            if not _same_on_disk(getattr(ph, k), path):
                write_image(getattr(ph, k), path)
        rows.append({"case_id": r.case_id, **{k: str(v.relative_to(outdir)) for k, v in files.items()}})
    manifest = outdir / "manifest.csv"
    _write_csv(pd.DataFrame(rows), manifest)
    return manifest


def dce_design(seed: int = 16) -> pd.DataFrame:
    """The DCE step's six cases (deterministic for ``seed``): two per planted delayed type (persistent, plateau,
    washout), the first with a fast (150 %), the second with a medium (80 %) initial enhancement; ``own_t2_lesion``
    marks the one case whose T2 lesion is drawn on the T2 grid (the others' are resampled from the DCE lesion)."""
    from her2radiomics.phantom import DCE_DELAYED_CHANGE_PCT, KINETIC_TYPES

    rng = np.random.default_rng(seed)
    rows = []
    for kin in KINETIC_TYPES:
        for j, (initial_type, initial) in enumerate(DCE_INITIAL_PCT.items()):
            rows.append({
                "case_id": f"{kin[:4]}{j}", "kinetic": kin, "planted": kin, "initial_enhancement_pct": initial,
                "planted_initial": initial_type, "delayed_change_pct": DCE_DELAYED_CHANGE_PCT[kin],
                "lesion_radius_mm": float(rng.uniform(9.0, 11.0)), "rim": float(rng.uniform(0.3, 0.7)),
                "heterogeneity": float(rng.uniform(0.3, 0.7)), "seed": int(rng.integers(0, 2**31 - 1)),
                "own_t2_lesion": not rows, **CENTRES["A"],
            })
    return pd.DataFrame(rows)


def make_dce_cases(design: pd.DataFrame, outdir: Path) -> tuple[Path, Path]:
    """Write every DCE case (``phantom.write_dce_phantom``'s layout: ``dce/phase0..5.nrrd``, masks, ``t2``, ``adc``,
    ``t2_lesion``, ``phantom.json``) and two manifests: ``dce_manifest.csv`` (``dce_phases``, ``dce_times``) and
    ``multiseq_manifest.csv`` (``image_dce``, ``image_t2``, ``image_adc``, ``lesion_t2`` for the ``own_t2_lesion``
    case). As in :func:`make_cohort`, an image is rewritten only when its content changed (feature cache)."""
    from her2radiomics.io import write_image, write_json
    from her2radiomics.phantom import dce_files, dce_meta, make_dce_phantom

    dce_rows, seq_rows = [], []
    for r in design.itertuples(index=False):
        ph = make_dce_phantom(r.seed, DCE_SIZE, DCE_SPACING, kinetic=r.kinetic,
                              initial_enhancement_pct=r.initial_enhancement_pct,
                              companion_spacing=DCE_COMPANION_SPACING, lesion_radius_mm=r.lesion_radius_mm, rim=r.rim,
                              heterogeneity=r.heterogeneity, noise=r.noise, bias=r.bias)
        files = dce_files(ph)
        for name, img in files.items():
            path = outdir / r.case_id / f"{name}.nrrd"
            if not _same_on_disk(img, path):
                write_image(img, path)
        write_json(dce_meta(ph), outdir / r.case_id / "phantom.json")
        rel = {name: f"{r.case_id}/{name}.nrrd" for name in files}
        masks = {"lesion": rel["lesion"], "air": rel["air"], "pectoralis": rel["pectoralis"]}
        dce_rows.append({"case_id": r.case_id, **masks,
                         "dce_phases": ";".join(rel[f"dce/phase{k}"] for k in range(len(ph.phases))),
                         "dce_times": ";".join(f"{t:g}" for t in ph.times_s)})
        seq_rows.append({"case_id": r.case_id, "image_dce": rel[f"dce/phase{ph.meta['dce']['reference_phase']}"],
                         "image_t2": rel["t2"], "lesion_t2": rel["t2_lesion"] if r.own_t2_lesion else "",
                         "image_adc": rel["adc"], **masks})
    paths = outdir / "dce_manifest.csv", outdir / "multiseq_manifest.csv"
    _write_csv(pd.DataFrame(dce_rows), paths[0])
    _write_csv(pd.DataFrame(seq_rows), paths[1])
    return paths


def choose_model(models: dict[str, dict]) -> str:
    """The demo's model choice, after the paper's reasoning (Gao et al. 2026: low GDI, then test AUC).

    Prefer models whose every test split is in the safe GDI zone; among those (or among all when none is
    safe) take the highest mean test AUC; ties go to the simpler (earlier) feature set.
    """
    def worst_gdi(card: dict) -> float:
        return max((float(g["value"]) for g in card["gdi"].values()), default=0.0)

    def test_auc(card: dict) -> float:
        vals = [float(m["auc"]) for s, m in card["metrics"].items() if s != "train"]
        return float(np.mean(vals)) if vals else 0.0

    safe = [n for n, m in models.items() if worst_gdi(m["card"]) <= 0.15]
    pool = safe or list(models)
    return max(pool, key=lambda n: (round(test_auc(models[n]["card"]), 6), -list(models).index(n)))


def run_study(features_csv: Path, labels_csv: Path, task: str, outdir: Path, *, cv_folds: int = 10,
              parameter_file_hash: str | None = None, seed: int = 0, table: pd.DataFrame | None = None) -> dict:
    """Train the four feature sets of one stage on shared splits (her2radiomics.study, as ``her2radiomics study``).

    Writes ``outdir/<task>/<set>.model.json`` and ``outdir/<task>/study.json`` in the ``her2radiomics.study/1``
    format of docs/modeling.md (plus ``chosen``, ``title`` and ``notice``); every card's ``intended_use`` starts
    with the demo notice. ``table``: ``features_csv`` already read (the demo reads it once for both stages).
    """
    from her2radiomics import study as st
    from her2radiomics.fitting import TrainConfig
    from her2radiomics.io import file_hash
    from her2radiomics.splits import case_table
    from her2radiomics.targets import LabelSpec, join_labels, load_targets

    features = table if table is not None else pd.read_csv(features_csv, dtype={"case_id": str})
    spec = LabelSpec()
    data = join_labels(features, load_targets(labels_csv, task, spec), spec)
    opts = STAGE_SPLITS[task]
    configs = [TrainConfig(task=task, feature_set=fs, split=opts["split"], test_center=opts["test_center"], seed=seed,
                           cv_folds=cv_folds) for fs in st.STUDY_SETS]
    splits = st.study_splits(data, configs[0])
    prov = {"parameter_file_hash": parameter_file_hash, "parameter_file": DEMO_PARAMS,
            "training_table_hash": file_hash(features_csv)}
    folder = outdir / task
    results, _ = st.train_feature_sets(data, configs, splits, provenance=prov)
    for _, res in results:
        res.card["intended_use"] = f"{DEMO_MODEL_NOTICE} {res.card['intended_use']}"
    st.save_cards(results, folder)
    models = {fs: {"card": res.card, "card_path": str((folder / st.set_filename(fs)).relative_to(outdir)),
                   "scores": res.splits} for fs, res in results}
    chosen = choose_model(models)
    study = st.build_study(task, data.classes, results, st.split_record(configs[0]), prov,
                           [DEMO_MODEL_NOTICE, *data.notes], case_rows=case_table(data, splits),
                           parameter_file=Path(str(DEMO_PARAMS)).name)
    study.update({
        "intended_use": f"{DEMO_MODEL_NOTICE} Research software: not for clinical use.",
        "notice": DEMO_MODEL_NOTICE,
        "title": {"stage1": "Stage 1: HER2-positive vs HER2-negative (demo, split by centre)",
                  "stage2": "Stage 2: HER2-low vs HER2-zero (demo, random 7:3)"}[task],
        "chosen": chosen,
    })
    path = st.write_study(study, folder)
    return {"study": study, "models": models, "chosen": chosen, "path": path}


def locate_breast1() -> tuple[Path, Path] | None:
    """The real pyradiomics breast1 case: $HER2_SHARED_DATA, ../shared/data next to the repository, or CWD's."""
    here = Path(__file__).resolve()
    candidates = []
    if os.environ.get("HER2_SHARED_DATA"):
        candidates.append(Path(os.environ["HER2_SHARED_DATA"]))
    candidates += [p / "shared" / "data" for p in here.parents[2:4]]
    candidates += [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for c in candidates:
        img, lab = c / "pyradiomics_breast1" / "breast1_image.nrrd", c / "pyradiomics_breast1" / "breast1_label.nrrd"
        if img.exists() and lab.exists():
            return img, lab
    return None


def case_features(image_path: Path, lesion_path: Path, params: dict) -> tuple[dict[str, float], list[str]]:
    """Regions (automatic exclusions) + demo features for one real case."""
    from her2radiomics import features, io, regions

    image = io.read_image(image_path, "image")
    lesion = io.read_mask(lesion_path, image, "lesion")
    reg = regions.build_regions(image, lesion)
    return features.extract_case(image, reg.feature_masks(), params), list(reg.warnings)


def _write_csv(df: pd.DataFrame, path: Path, **kw: Any) -> None:
    """Write a table atomically (io.atomic_path), as every other her2radiomics output."""
    from her2radiomics.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **kw)


def run_demo(outdir: str | Path = "demo_output", *, quick: bool = False, jobs: int = 2, progress: bool = True,
             log: Callable[[str], None] = print, use_breast1: bool = True) -> DemoResult:
    """Run the whole demonstration into ``outdir`` (see the module docstring). Returns paths and timings."""
    from her2radiomics.io import write_text

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    res = DemoResult(outdir)
    t_all = time.perf_counter()
    log(f"HER2Radiomics demo -> {outdir}   [{DEMO_MODEL_NOTICE}]")
    write_text(f"{DEMO_MODEL_NOTICE}\nEverything in this folder was produced by 'her2radiomics demo' from synthetic "
               "phantoms (and the public pyradiomics breast1 case); none of it may guide patient care.\n",
               outdir / "NOTICE.txt")
    n_per_class, cv_folds = (10, 5) if quick else (30, 10)
    design, manifest = _phantoms_step(res, n_per_class, log)
    feats, params, phash = _features_step(res, manifest, jobs, progress, log)
    _dce_step(res, jobs, progress, log)
    studies = _studies_step(res, feats, cv_folds, phash, log)
    pred, notes = _predict_step(res, design, feats, params, phash, use_breast1, log)
    _report_step(res, design, studies, pred, notes)
    res.seconds["total"] = time.perf_counter() - t_all
    log("")
    log(f"[5/5] predictions -> {res.predictions}; report -> {res.report} ({res.seconds['report']:.1f} s)")
    log(f"demo finished in {res.seconds['total']:.0f} s. {DEMO_MODEL_NOTICE}")
    write_text(json.dumps({"notice": DEMO_MODEL_NOTICE, "seconds": res.seconds, "chosen": res.chosen,
                           "aucs": res.aucs, "dce": res.dce, "breast1": res.breast1, "quick": quick}, indent=2) + "\n",
               outdir / "demo_summary.json")
    return res


def _phantoms_step(res: DemoResult, n_per_class: int, log: Callable[[str], None]) -> tuple[pd.DataFrame, Path]:
    """[1/5] The phantom cohort: ``cohort/design.csv``, ``labels.csv``, the phantoms and their manifest."""
    outdir = res.outdir
    t = time.perf_counter()
    design = cohort_design(n_per_class)
    cohort_dir = outdir / "cohort"
    cohort_dir.mkdir(exist_ok=True)
    _write_csv(design, cohort_dir / "design.csv")
    labels = design[["case_id", "her2", "center"]]
    _write_csv(labels, outdir / "labels.csv")
    manifest = make_cohort(design, cohort_dir)
    res.seconds["phantoms"] = time.perf_counter() - t
    log(f"[1/5] {len(design)} phantoms ({n_per_class} positive / low / zero; centres A and B) in "
        f"{res.seconds['phantoms']:.1f} s")
    return design, manifest


def _features_step(res: DemoResult, manifest: Path, jobs: int, progress: bool,
                   log: Callable[[str], None]) -> tuple[pd.DataFrame, dict, str]:
    """[2/5] Regions and demo features of every phantom (``batch.extract_cohort``) -> ``features.csv``; returns the
    table, the parameters and their ``parameter_file_hash``."""
    from her2radiomics import features as feat
    from her2radiomics.batch import extract_cohort
    from her2radiomics.provenance import PROVENANCE_COLUMNS

    t = time.perf_counter()
    params_path = demo_params_path()
    params = feat.load_params(params_path)
    features_csv = res.outdir / "features.csv"
    cres = extract_cohort(manifest, features_csv, params=params_path, jobs=jobs, progress=progress)
    if not cres.ok:
        raise UserError(f"feature extraction failed for some demo cases; see {features_csv.with_suffix('')}.failures.csv")
    phash = feat.parameter_file_hash(params)
    res.seconds["features"] = time.perf_counter() - t
    feats = pd.read_csv(features_csv, dtype={"case_id": str})  # read once: both studies and the example cases
    n_cols = sum(1 for c in feats.columns if c not in ("case_id", "reader", *PROVENANCE_COLUMNS))
    log(f"[2/5] features: {n_cols} per case (4 regions, demo parameter file {params_path.name}) in "
        f"{res.seconds['features']:.1f} s")
    return feats, params, phash


def _dce_step(res: DemoResult, jobs: int, progress: bool, log: Callable[[str], None]) -> None:
    """[3/5] DCE series with companion sequences (:func:`dce_design`, :func:`make_dce_cases`) -> ``dce/``: the
    ``dce_phases`` manifest extracted at the default phase (kinetic columns, ``dce_features.csv``), planted vs
    recovered TIC types (``tic_types.csv``), and the multi-sequence manifest (``multiseq_features.csv``)."""
    from her2radiomics.batch import extract_cohort
    from her2radiomics.kinetics import DEFAULT_PHASE
    from her2radiomics.phantom import DCE_TIMES_S

    t = time.perf_counter()
    folder = res.outdir / "dce"
    folder.mkdir(exist_ok=True)
    design = dce_design()
    _write_csv(design, folder / "design.csv")
    dce_manifest, seq_manifest = make_dce_cases(design, folder)
    runs = {}
    for name, manifest, opts in (("dce_features", dce_manifest, {"phase": DEFAULT_PHASE}),
                                 ("multiseq_features", seq_manifest, {})):
        runs[name] = extract_cohort(manifest, folder / f"{name}.csv", params=demo_params_path(),
                                    distances=DCE_DISTANCES, jobs=jobs, progress=progress, **opts)
        if not runs[name].ok:
            raise UserError(f"feature extraction failed for some demo DCE cases; see {folder / name}.failures.csv")
    kin = runs["dce_features"].table.drop_duplicates("case_id").set_index("case_id")
    tic = design[["case_id", "planted", "planted_initial", "delayed_change_pct"]].rename(
        columns={"delayed_change_pct": "planted_delayed_change_pct"})
    tic.insert(2, "recovered", [kin.loc[c, "intra_tic_type"] for c in tic["case_id"]])
    tic.insert(4, "recovered_initial", [kin.loc[c, "intra_tic_initial"] for c in tic["case_id"]])
    tic["measured_delayed_change_pct"] = [float(kin.loc[c, "intra_kinetic_delayed_change_pct"]) for c in tic["case_id"]]
    _write_csv(tic, folder / "tic_types.csv")
    seq_cols = runs["multiseq_features"].table.columns
    n_cols = {q: sum(1 for c in seq_cols if c.startswith(f"{q}_")) for q in DCE_SEQUENCES}
    n_ok = int((tic["planted"] == tic["recovered"]).sum())
    res.seconds["dce"] = time.perf_counter() - t
    res.dce = {"tic_types": tic[["case_id", "planted", "recovered", "planted_initial", "recovered_initial"]]
               .to_dict("records"), "recovered": n_ok, "cases": len(tic), "columns_per_sequence": n_cols}
    log(f"[3/5] DCE series (pre + {len(DCE_TIMES_S) - 1} post-contrast phases, radiomics of phase {DEFAULT_PHASE}) and "
        f"T2 / ADC companions on another grid: {len(tic)} cases in {res.seconds['dce']:.1f} s -> {folder}")
    log("      case    planted TIC            recovered TIC          delayed change (planted / measured)")
    for r in tic.itertuples(index=False):
        log(f"      {r.case_id:<7} {r.planted_initial + ' / ' + r.planted:<22} "
            f"{r.recovered_initial + ' / ' + r.recovered:<22} {r.planted_delayed_change_pct:+.0f} % / "
            f"{r.measured_delayed_change_pct:+.1f} %")
    log(f"      TIC type recovered in {n_ok} of {len(tic)} cases; multi-sequence features (intra + peri3) per case: "
        + ", ".join(f"{q} {n}" for q, n in n_cols.items()))


def _studies_step(res: DemoResult, feats: pd.DataFrame, cv_folds: int, phash: str,
                  log: Callable[[str], None]) -> dict[str, dict]:
    """[4/5] Stage 1 and stage 2 studies (:func:`run_study`); the chosen card of each goes to ``models/``."""
    outdir = res.outdir
    t = time.perf_counter()
    studies = {}
    for task in ("stage1", "stage2"):
        studies[task] = run_study(outdir / "features.csv", outdir / "labels.csv", task, outdir, cv_folds=cv_folds,
                                  parameter_file_hash=phash, table=feats)
        chosen = studies[task]["chosen"]
        res.chosen[task] = chosen
        card = studies[task]["models"][chosen]["card"]
        dest = outdir / "models" / f"demo_{task}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outdir / studies[task]["models"][chosen]["card_path"], dest)
        res.cards[task] = dest
        res.aucs[task] = {fs: {s: float(m["auc"]) for s, m in mm["card"]["metrics"].items()}
                          for fs, mm in studies[task]["models"].items()}
        table = "; ".join(
            f"{fs}: " + ", ".join(f"{s} {a:.2f}" for s, a in aucs.items()) for fs, aucs in res.aucs[task].items())
        log(f"      {task} AUCs  {table}")
        gd = ", ".join(f"{s} {100 * float(g['value']):.0f}% ({g['zone']})" for s, g in card["gdi"].items())
        log(f"      {task} chosen: {chosen} ({len(card['features'])} features; GDI {gd})")
    res.seconds["models"] = time.perf_counter() - t
    log(f"[4/5] stage 1 and stage 2 studies (4 feature sets each) in {res.seconds['models']:.1f} s")
    return studies


def _predict_step(res: DemoResult, design: pd.DataFrame, feats: pd.DataFrame, params: dict, phash: str,
                  use_breast1: bool, log: Callable[[str], None]) -> tuple[Any, list[str]]:
    """Prediction of breast1 (when found) and one external-centre phantom per class -> ``predictions.csv`` and its
    contributions table; returns the prediction and the notes for the report."""
    from her2radiomics.io import contributions_path
    from her2radiomics.prediction import predict

    outdir = res.outdir
    t = time.perf_counter()
    ext = design[design["center"] == "B"].groupby("her2").head(1)["case_id"].tolist()
    rows = feats[feats["case_id"].isin(ext)].drop(columns=["reader"], errors="ignore")
    case_rows = [rows]
    notes = []
    b1 = locate_breast1() if use_breast1 else None
    if b1 is not None:
        f_b1, warn_b1 = case_features(b1[0], b1[1], params)
        case_rows.insert(0, pd.DataFrame([{"case_id": "breast1", **f_b1}]))
        notes += [f"breast1 regions: {w}" for w in warn_b1]
        res.breast1 = True
    else:
        notes.append("the real breast1 case was not found (../shared/data or $HER2_SHARED_DATA); phantoms only")
    cases = pd.concat(case_rows, ignore_index=True)
    _write_csv(cases, outdir / "cases_features.csv")
    pred = predict(cases, res.cards["stage1"], res.cards["stage2"], parameter_file_hash=phash)
    res.predictions = outdir / "predictions.csv"
    _write_csv(pred.table, res.predictions)  # full precision, as 'predict' writes it
    _write_csv(pred.contributions, contributions_path(res.predictions))
    truth = dict(zip(design["case_id"], design["her2"], strict=True))
    for cid in pred.table["case_id"]:
        log("")
        log(pred.summary(cid) + (f"\n  (phantom ground truth: HER2-{truth[cid]})" if cid in truth else
                                 "\n  (real pyradiomics breast1 case: HER2 status unknown; shown for the pipeline only)"))
    res.seconds["predict"] = time.perf_counter() - t
    return pred, notes


def _dce_html(dce: dict[str, Any]) -> str:
    """The report's paragraph on the DCE step (planted vs recovered curve types; empty when it did not run)."""
    if not dce:
        return ""
    rows = "".join(f"<tr><td>{r['case_id']}</td><td>{r['planted_initial']} / {r['planted']}</td>"
                   f"<td>{r['recovered_initial']} / {r['recovered']}</td></tr>" for r in dce["tic_types"])
    cols = ", ".join(f"{q} {n}" for q, n in dce["columns_per_sequence"].items())
    return (f"<p>DCE series (dce/): {dce['cases']} phantoms with a pre-contrast and 5 post-contrast phases and a "
            f"planted BI-RADS curve type; the type was recovered from the lesion's mean curve in {dce['recovered']} of "
            f"{dce['cases']}. T2-like and ADC-like companion volumes on another grid; multi-sequence features "
            f"(lesion + 3 mm shell) per case: {cols}.</p><table><tr><th>case</th><th>planted TIC</th>"
            f"<th>recovered TIC</th></tr>{rows}</table>")


def _report_step(res: DemoResult, design: pd.DataFrame, studies: dict[str, dict], pred: Any, notes: list[str]) -> None:
    """[5/5] The HTML report of both studies and the predictions (``report.write_report``)."""
    from her2radiomics.report import normalize_study, write_report

    outdir = res.outdir
    t = time.perf_counter()
    norm = [normalize_study(studies[k]["study"], outdir / k) for k in ("stage1", "stage2")]
    extra = ("<section><h2>About this demo</h2><p>" + DEMO_MODEL_NOTICE + " Phantom cohort: "
             f"{len(design)} cases, planted signal: rim enhancement and heterogeneity (positive vs negative), "
             "peritumoral enhancement (low vs zero); centres A/B differ in noise and coil shading. Features: reduced "
             f"demo parameter file ({demo_params_path().name}).</p>" + _dce_html(res.dce)
             + "".join(f"<p class=muted>{n}</p>" for n in notes) + "</section>")
    res.report = outdir / "report.html"
    write_report(res.report, norm, (pred.table, pred.contributions), title="HER2Radiomics demo report",
                 intended_use=DEMO_MODEL_NOTICE + " Research software.", intercepts=pred.intercepts, extra_html=extra)
    res.seconds["report"] = time.perf_counter() - t
