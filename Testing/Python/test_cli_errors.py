"""A hostile-user sweep of the merged CLI commands: every bad input gives ONE ``error: ...`` line and exit 2.

For every case: the exit code is 2 (argparse usage errors included), stderr holds exactly one line starting
with ``error:`` (or argparse's ``her2radiomics ...: error:`` usage line), no traceback, and no output file or
folder is created (the whole temporary tree is compared before/after). Most cases run in-process through
``cli.main`` (one import, fast); a few run as real subprocesses through ``conftest.run_cli`` to check the
console entry point itself. Inputs are tiny synthetic tables/images built in tmp_path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import run_cli, shared_path
from modeling_synth import synthetic_cohort

from her2radiomics import cli, modelcard

CUSTOM = ["--task", "custom", "--label-column", "label", "--positive", "1", "--negative", "0"]
FAST = ["--cv-folds", "3"]


# ------------------------------------------------------------------------------------------------ inputs
def _tables(d: Path, n: int = 40, regions: tuple[str, ...] = ("intra", "peri3"), seed: int = 0) -> tuple[Path, Path]:
    feats, labels = synthetic_cohort(n_cases=n, n_per_region=4, regions=regions, n_signal=2,
                                     effect=1.5, event_rate=0.5, seed=seed)
    f, lab = d / "features.csv", d / "labels.csv"
    feats.to_csv(f, index=False)
    labels.to_csv(lab, index=False)
    return f, lab


def _image(d: Path, name: str = "image.nrrd", size: tuple[int, int, int] = (24, 24, 8), lesion: bool = False) -> Path:
    arr = np.zeros(size[::-1], np.int16 if not lesion else np.uint8)
    if lesion:
        arr[3:5, 10:14, 10:14] = 1
    else:
        rng = np.random.default_rng(0)
        arr[:] = (200 + 20 * rng.standard_normal(arr.shape)).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 2.0))
    p = d / name
    sitk.WriteImage(img, str(p))
    return p


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict[str, Path]:
    """Valid tables, images and two model cards (intra, intra+peri3) that the bad-input cases start from."""
    d = tmp_path_factory.mktemp("shared")
    f, lab = _tables(d)
    out = {"features": f, "labels": lab}
    for fs in ("intra", "intra+peri3"):
        card = d / f"{fs.replace('+', '_')}.json"
        assert cli.main(["train", str(f), str(lab), "-o", str(card), *CUSTOM, *FAST, "--feature-set", fs]) == 0
        out[fs] = card
    # a stage1 card, for "cards of different targets"
    import pandas as pd
    t = pd.read_csv(lab)
    t["her2"] = np.where(t["label"] == 1, "positive", "zero")
    her2 = d / "her2.csv"
    t.to_csv(her2, index=False)
    out["her2_labels"] = her2
    card = d / "stage1.json"
    assert cli.main(["train", str(f), str(her2), "-o", str(card), "--task", "stage1", *FAST]) == 0
    out["stage1"] = card
    out["image"] = _image(d)
    out["lesion"] = _image(d, "lesion.nrrd", lesion=True)
    out["dir"] = d
    return out


def _tree(root: Path) -> set[tuple[str, str]]:
    """Every path under ``root`` with a digest of its content: catches created, removed and overwritten files."""
    import hashlib
    return {(str(p.relative_to(root)), hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------------ cases
# Each case: name -> (what the error line must say, builder(tmp, shared) returning the argument list). The
# fragment (or every fragment of a tuple) must appear in the one error line, so a case cannot pass on an error other
# than the one it is named after. The builder writes its inputs into tmp/in; outputs should go to tmp/out/...; the
# check compares the whole tmp tree before/after the run.
Says = str | tuple[str, ...]
Case = tuple[Says, Callable[[Path, dict], list]]


def _w(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def _copy_table(t: Path, s: dict, edit: Callable, name: str = "features.csv", src: str = "features") -> Path:
    import pandas as pd
    df = pd.read_csv(s[src])
    df = edit(df)
    p = t / "in" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(p, index=False)
    return p


def _file_blocker(t: Path) -> Path:
    """A regular file that an output path tries to use as a folder."""
    return _w(t / "in" / "blocker", "x")


def _train(f, lab, out, *extra) -> list:
    return ["train", f, lab, "-o", out, *CUSTOM, *FAST, *extra]


PH = ["--size", "48", "48", "24", "--spacing", "4", "4", "6"]  # a valid, fast phantom

CASES: dict[str, Case] = {
    # ---- phantom
    "phantom: output under a file": (("cannot create output folder", "blocker/ph:", "is a file, not a folder"),
                                    lambda t, s: ["phantom", "-o", _file_blocker(t) / "ph", *PH]),
    "phantom: output is a file": (("output folder", "blocker exists and is not a folder"),
                                 lambda t, s: ["phantom", "-o", _file_blocker(t), *PH]),
    "phantom: zero size": ("must be between 16 and 2048 voxels per axis",
                          lambda t, s: ["phantom", "-o", t / "out", "--size", "0", "32", "16"]),
    "phantom: 2048^3 voxels (would need ~200 GB)": ("more than 134,217,728",
                                                   lambda t, s: ["phantom", "-o", t / "out",
                                                                 "--size", "2048", "2048", "2048"]),
    "phantom: negative spacing": ("phantom spacing (-1.0, 1.0, 1.0) must be between 0.05 and 20 mm",
                                 lambda t, s: ["phantom", "-o", t / "out", "--spacing", "-1", "1", "1"]),
    "phantom: oblique direction": ("phantom direction must be axis-aligned",
                                  lambda t, s: ["phantom", "-o", t / "out", "--size", "32", "32", "16",
                                                "--direction", "0.7", "0.7", "0", "-0.7", "0.7", "0", "0", "0", "1"]),
    "phantom: rim out of range": ("rim=3.0 is out of range",
                                 lambda t, s: ["phantom", "-o", t / "out", "--rim", "3"]),
    "phantom: negative noise": ("noise=-1.0 is out of range",
                               lambda t, s: ["phantom", "-o", t / "out", "--noise", "-1"]),
    "phantom: nan radius": ("lesion_radius_mm=nan is out of range",
                           lambda t, s: ["phantom", "-o", t / "out", "--lesion-radius-mm", "nan"]),
    "phantom: negative seed": ("seed -1 is negative",
                              lambda t, s: ["phantom", "-o", t / "out", *PH, "--seed", "-1"]),
    "phantom: non-numeric seed": ("argument --seed: invalid int value: 'abc'",
                                 lambda t, s: ["phantom", "-o", t / "out", "--seed", "abc"]),
    # ---- regions
    "regions: missing image": (("image file not found", "nope.nrrd"),
                              lambda t, s: ["regions", t / "in" / "nope.nrrd", s["lesion"], "-o", t / "out"]),
    "regions: image is a folder without DICOM": ("no DICOM series found",
                                                lambda t, s: ["regions", _w(t / "in" / "dir" / "a.txt", "x").parent,
                                                            s["lesion"], "-o", t / "out"]),
    "regions: text file named .nrrd": (("cannot read image", "fake.nrrd", "Unable to determine ImageIO reader"),
                                      lambda t, s: ["regions", _w(t / "in" / "fake.nrrd", "hello\n"), s["lesion"],
                                                   "-o", t / "out"]),
    "regions: empty image file": (("image file", "empty.nrrd is empty (0 bytes)"),
                                 lambda t, s: ["regions", _w(t / "in" / "empty.nrrd", ""), s["lesion"], "-o", t / "out"]),
    "regions: float image with NaN voxels": ("has 576 NaN/infinite voxel(s)",
                                            lambda t, s: ["regions", _nan_image(t), s["lesion"], "-o", t / "out"]),
    "regions: 2D image": ("is 2D; give one 3D volume",
                         lambda t, s: ["regions", _image2d(t), s["lesion"], "-o", t / "out"]),
    "regions: lesion on another grid": ("is not on the image grid (size (20.0, 24.0, 8.0)",
                                       lambda t, s: ["regions", s["image"], _image(t / "in", "l.nrrd", (20, 24, 8), True),
                                                    "-o", t / "out"]),
    "regions: empty lesion": ("lesion mask is empty",
                             lambda t, s: ["regions", s["image"], _image(t / "in", "l.nrrd", lesion=False).parent /
                                           _empty_mask(t), "-o", t / "out"]),
    "regions: label not present": ("has no voxel with label 7",
                                  lambda t, s: ["regions", s["image"], s["lesion"], "--label", "7", "-o", t / "out"]),
    "regions: --label 0 (the background)": ("label 0 is the background",
                                           lambda t, s: ["regions", s["image"], s["lesion"], "--label", "0",
                                                          "-o", t / "out"]),
    "regions: air mask with two labels": ("air mask is not binary (labels [1, 2])",
                                         lambda t, s: ["regions", s["image"], s["lesion"], "--air",
                                                       _image(t / "in", "a.nrrd", lesion=True).parent / _two_labels(t),
                                                       "-o", t / "out"]),
    "regions: negative distance": ("shell distance -1 mm is not a positive finite number",
                                  lambda t, s: ["regions", s["image"], s["lesion"], "--distances", "-1", "-o", t / "out"]),
    "regions: output under a file": (("cannot create output folder", "blocker/r:", "is a file, not a folder"),
                                    lambda t, s: ["regions", s["image"], s["lesion"], "-o", _file_blocker(t) / "r"]),
    "regions: output is a file": (("output folder", "blocker exists and is not a folder"),
                                 lambda t, s: ["regions", s["image"], s["lesion"], "-o", _file_blocker(t)]),
    "regions: air mask is text": (("cannot read air mask", "a.nrrd"),
                                 lambda t, s: ["regions", s["image"], s["lesion"], "--air", _w(t / "in" / "a.nrrd", "x"),
                                               "-o", t / "out"]),
    # ---- extract
    "extract: missing manifest": (("manifest not found", "m.csv"),
                                 lambda t, s: ["extract", t / "in" / "m.csv", "-o", t / "out" / "F.csv"]),
    "extract: manifest is a folder": (("manifest", "is a folder; give the manifest CSV file"),
                                     lambda t, s: ["extract", _file_blocker(t).parent, "-o", t / "out" / "F.csv"]),
    "extract: empty manifest file": (("manifest", "m.csv has no rows"),
                                    lambda t, s: ["extract", _w(t / "in" / "m.csv", ""), "-o", t / "out" / "F.csv"]),
    "extract: header-only manifest": (("manifest", "m.csv has no rows"),
                                     lambda t, s: ["extract", _w(t / "in" / "m.csv", "case_id,image,lesion\n"),
                                                   "-o", t / "out" / "F.csv"]),
    "extract: manifest missing columns": ("lacks column(s) image, lesion",
                                         lambda t, s: ["extract", _w(t / "in" / "m.csv", "case_id,img\nA,x.nrrd\n"),
                                                       "-o", t / "out" / "F.csv"]),
    "extract: semicolon manifest": ("is separated by semicolons",
                                   lambda t, s: ["extract", _w(t / "in" / "m.csv", "case_id;image;lesion\nA;x;y\n"),
                                                 "-o", t / "out" / "F.csv"]),
    "extract: duplicate case": ("case 'A' reader '' appears twice",
                               lambda t, s: ["extract", _manifest(t, s, rows=2, same_id=True), "-o", t / "out" / "F.csv"]),
    "extract: binary manifest": (("cannot read manifest", "can't decode byte 0xff"),
                                lambda t, s: ["extract", _wb(t / "in" / "m.csv", b"\xff\xfe\x00\x01bad"),
                                              "-o", t / "out" / "F.csv"]),
    "extract: -o is the manifest": (("features table", "manifest.csv is also an input of this command"),
                                   lambda t, s: ["extract", _manifest(t, s), "-o", t / "in" / "manifest.csv"]),
    "extract: output not .csv": ("must end in .csv",
                                lambda t, s: ["extract", _manifest(t, s), "-o", t / "out" / "F.txt"]),
    "extract: output under a file": (("cannot create features table", "is a file, not a folder"),
                                    lambda t, s: ["extract", _manifest(t, s), "-o", _file_blocker(t) / "F.csv"]),
    "extract: output is a folder": (("features table", "F.csv is a folder; give a file name inside it"),
                                   lambda t, s: ["extract", _manifest(t, s), "-o", _mkdir(t / "out" / "F.csv")]),
    "extract: missing params file": (("parameter file not found", "p.yaml"),
                                    lambda t, s: ["extract", _manifest(t, s), "--params", t / "in" / "p.yaml",
                                                  "-o", t / "out" / "F.csv"]),
    "extract: params not YAML": ("is not valid YAML at line 2",
                                lambda t, s: ["extract", _manifest(t, s), "--params", _w(t / "in" / "p.yaml", "a: [\n"),
                                              "-o", t / "out" / "F.csv"]),
    "extract: zero distance": ("shell distance 0 mm is not a positive finite number",
                              lambda t, s: ["extract", _manifest(t, s), "--distances", "0", "-o", t / "out" / "F.csv"]),
    "extract: repeated distance": ("shell distances repeat (peri1)",
                                  lambda t, s: ["extract", _manifest(t, s), "--distances", "1", "1",
                                                "-o", t / "out" / "F.csv"]),
    "extract: distance above 50 mm": ("shell distance 60 mm is larger than 50 mm",
                                     lambda t, s: ["extract", _manifest(t, s), "--distances", "60",
                                                   "-o", t / "out" / "F.csv"]),
    "extract: zero jobs": ("--jobs must be a positive number of processes",
                          lambda t, s: ["extract", _manifest(t, s), "--jobs", "0", "-o", t / "out" / "F.csv"]),
    "extract: scheduler without dask": ("--scheduler needs --backend dask",
                                       lambda t, s: ["extract", _manifest(t, s), "--scheduler", "tcp://x:1",
                                                     "-o", t / "out" / "F.csv"]),
    # ---- train
    "train: missing features": (("features table file not found", "f.csv"),
                               lambda t, s: _train(t / "in" / "f.csv", s["labels"], t / "out" / "m.json")),
    "train: features is a folder": (("features table", "f.csv is a folder; give the CSV file"),
                                   lambda t, s: _train(_mkdir(t / "in" / "f.csv"), s["labels"], t / "out" / "m.json")),
    "train: empty features file": (("cannot read features table", "No columns to parse from file"),
                                  lambda t, s: _train(_w(t / "in" / "f.csv", ""), s["labels"], t / "out" / "m.json")),
    "train: header-only features": (("features table", "f.csv has no rows"),
                                   lambda t, s: _train(_w(t / "in" / "f.csv", "case_id,intra_a\n"), s["labels"],
                                                       t / "out" / "m.json")),
    "train: binary features file": (("cannot read features table", "Error tokenizing data"),
                                   lambda t, s: _train(_wb(t / "in" / "f.csv", bytes(range(256)) * 4), s["labels"],
                                                       t / "out" / "m.json")),
    "train: semicolon-separated features (spreadsheet export)": (("features table", "f.csv is separated by semicolons"),
                                                                lambda t, s: _train(_w(
        t / "in" / "f.csv", s["features"].read_text(encoding="utf-8").replace(",", ";")), s["labels"], t / "out" / "m.json")),
    "train: semicolon-separated labels": (("labels file", "l.csv is separated by semicolons"),
                                         lambda t, s: _train(s["features"], _w(
        t / "in" / "l.csv", s["labels"].read_text(encoding="utf-8").replace(",", ";")), t / "out" / "m.json")),
    "train: spreadsheet (zip) as features": (("cannot read features table", "f.xlsx as CSV", "(not a spreadsheet)"),
                                            lambda t, s: _train(_wb(t / "in" / "f.xlsx", b"PK\x03\x04" + bytes(range(256))),
                                                                s["labels"], t / "out" / "m.json")),
    "train: missing labels": (("labels file not found", "l.csv"),
                             lambda t, s: _train(s["features"], t / "in" / "l.csv", t / "out" / "m.json")),
    "train: labels is a folder": (("labels file", "l.csv is a folder; give the labels CSV file"),
                                 lambda t, s: _train(s["features"], _mkdir(t / "in" / "l.csv"), t / "out" / "m.json")),
    "train: empty labels file": (("labels file", "l.csv is empty"),
                                lambda t, s: _train(s["features"], _w(t / "in" / "l.csv", ""), t / "out" / "m.json")),
    "train: no id column": ("features table has no id column 'case_id'; pass --id-column",
                           lambda t, s: _train(_copy_table(t, s, lambda d: d.rename(columns={"case_id": "pid"})),
                                               s["labels"], t / "out" / "m.json")),
    "train: duplicated ids": ("features table has duplicate case id 'x'",
                             lambda t, s: _train(_copy_table(t, s, lambda d: d.assign(case_id=["x"] * 2 + list(d.case_id[2:]))),
                                                 s["labels"], t / "out" / "m.json")),
    "train: duplicated ids in labels": ("labels.csv: duplicate case ids in 'case_id': x",
                                       lambda t, s: _train(s["features"], _copy_table(
        t, s, lambda d: d.assign(case_id=["x"] * 2 + list(d.case_id[2:])), "labels.csv", "labels"), t / "out" / "m.json")),
    "train: a column twice (joined tables)": ("has column 'intra_f0' more than once",
                                             lambda t, s: _train(_w(t / "in" / "f.csv", "\n".join(
        ln + "," + ln.split(",")[1] for ln in s["features"].read_text(encoding="utf-8").splitlines()) + "\n"), s["labels"],
        t / "out" / "m.json")),
    "train: non-numeric feature column": ("feature column 'intra_f1' is not numeric",
                                         lambda t, s: _train(_copy_table(t, s, lambda d: d.assign(intra_f1="abc")),
                                                             s["labels"], t / "out" / "m.json")),
    "train: all-NaN feature columns": ("every candidate feature is constant or empty (all values missing)",
                                      lambda t, s: _train(_copy_table(
        t, s, lambda d: d.assign(**{c: np.nan for c in d.columns if c.startswith("intra_")})),
        s["labels"], t / "out" / "m.json")),
    "train: labels column missing": ("no label column 'label'",
                                    lambda t, s: _train(s["features"], _copy_table(
        t, s, lambda d: d.drop(columns="label"), "labels.csv", "labels"), t / "out" / "m.json")),
    "train: one class only": ("negative value '0' not found in column 'label' (values: 1.0)",
                             lambda t, s: _train(s["features"], _copy_table(
        t, s, lambda d: d.assign(label=1), "labels.csv", "labels"), t / "out" / "m.json")),
    "train: no matching ids": ("no case id is in both the features and the labels table",
                              lambda t, s: _train(s["features"], _copy_table(
        t, s, lambda d: d.assign(case_id="z" + d.case_id), "labels.csv", "labels"), t / "out" / "m.json")),
    # (fewer cases than 10 CV folds is no error: LASSO uses fewer folds, test_train_fewer_cases_than_cv_folds)
    "train: too few cases for the test split": ("the test split has 1 event / 3 reference case(s)",
                                               lambda t, s: ["train", *_tables(_mkdir(t / "in"), n=12), "-o",
                                                             t / "out" / "m.json", *CUSTOM]),
    "train: too few cases for a split": ("the train split has 1 event / 2 reference case(s)",
                                        lambda t, s: ["train", *_tables(_mkdir(t / "in"), n=5), "-o",
                                                      t / "out" / "m.json", *CUSTOM, *FAST]),
    "train: unknown feature set": ("feature set 'peri7' needs columns 'peri7_*'",
                                  lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                      "--feature-set", "peri7")),
    "train: intra+peri3 without intra columns": ("feature set 'intra+peri3' needs columns 'intra_*'",
                                                lambda t, s: _train(_copy_table(
        t, s, lambda d: d.drop(columns=[c for c in d.columns if c.startswith("intra_")])), s["labels"],
        t / "out" / "m.json", "--feature-set", "intra+peri3")),
    "train: wrong task": ("argument --task: invalid choice: 'stage3'",
                         lambda t, s: ["train", s["features"], s["labels"], "-o", t / "out" / "m.json", "--task", "stage3"]),
    "train: stage1 without HER2 columns": ("no HER2 label columns (need 'her2' or 'ihc'+'fish'",
                                          lambda t, s: ["train", s["features"], s["labels"], "-o", t / "out" / "m.json",
                                                        "--task", "stage1", *FAST]),
    # (a HER2 labels table, so that the custom task, not the missing HER2 columns, is what is wrong)
    "train: custom without label options": (("--task custom needs --label-column and --positive", "--negative is optional"),
                                           lambda t, s: ["train", s["features"], s["her2_labels"], "-o",
                                                          t / "out" / "m.json", "--task", "custom", *FAST]),
    "train: positive value absent": ("positive value 'yes' not found in column 'label'",
                                    lambda t, s: ["train", s["features"], s["labels"], "-o", t / "out" / "m.json",
                                                  "--task", "custom", "--label-column", "label", "--positive", "yes",
                                                  "--negative", "0", *FAST]),
    "train: --negative without --positive": ("--negative needs --positive too",
                                            lambda t, s: ["train", s["features"], s["labels"], "-o", t / "out" / "m.json",
                                                          "--task", "custom", "--label-column", "label", "--negative", "0"]),
    "train: --test-center without --split center": ("--test-center is used only with --split center",
                                                   lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                                        "--test-center", "A")),
    "train: negative test size": ("--test-size must be in [0, 1), got -0.2",
                                 lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--test-size", "-0.2")),
    "train: test size 1": ("--test-size must be in [0, 1), got 1.0",
                          lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--test-size", "1")),
    "train: nan test size": ("--test-size must be in [0, 1), got nan",
                            lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--test-size", "nan")),
    "train: unknown test center": ("no case has center = 'Z'",
                                  lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                      "--split", "center", "--test-center", "Z")),
    "train: center column missing": ("--split center needs a centre column 'site'",
                                    lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                        "--split", "center", "--test-center", "A",
                                                        "--center-column", "site")),
    "train: split center without test center": ("--split center needs --test-center VALUE",
                                               lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                                    "--split", "center")),
    "train: negative seed": ("--seed must be an integer in [0, 4294967295], got -1",
                            lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--seed", "-1")),
    "train: mwu p 0": ("--mwu-p must be in (0, 1], got 0.0",
                      lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--mwu-p", "0")),
    "train: cv folds 1": ("--cv-folds must be >= 2, got 1",
                         lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--cv-folds", "1")),
    "train: icc threshold 2": ("--icc-threshold must be in [0, 1], got 2.0",
                              lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--icc-threshold", "2")),
    "train: missing ICC table": (("ICC table file not found", "icc.csv"),
                                lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                    "--icc", t / "in" / "icc.csv")),
    "train: ICC table without reader": ("the ICC table needs columns 'case_id' and 'reader'",
                                       lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                           "--icc", s["features"])),
    "train: ICC table with three readers": ("must hold exactly two readers, found 3",
                                           lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                               "--icc", _icc(t, s, readers="ABC"))),
    "train: ICC table with an empty reader column": ("the ICC table's 'reader' column is empty",
                                                    lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json",
                                                                        "--icc", _icc(t, s, readers=""))),
    "train: ICC table without the candidate features": ("the ICC table has none of the 4 candidate feature columns",
                                                       lambda t, s: _train(
        s["features"], s["labels"], t / "out" / "m.json", "--icc", _icc(t, s, rename=True))),
    "train: unknown reader": ("--reader R9 given but the features table has no 'reader' column",
                             lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json", "--reader", "R9")),
    "train: -o is the features table": (("model card", "features.csv is also an input of this command"),
                                       lambda t, s: ["train", _copy_table(t, s, lambda d: d), s["labels"],
                                                     "-o", t / "in" / "features.csv", *CUSTOM, *FAST]),
    "train: output under a file": (("cannot create model card", "is a file, not a folder"),
                                  lambda t, s: _train(s["features"], s["labels"], _file_blocker(t) / "m.json")),
    "train: output is a folder": (("model card", "m.json is a folder; give a file name inside it"),
                                 lambda t, s: _train(s["features"], s["labels"], _mkdir(t / "out" / "m.json"))),
    # ---- evaluate
    "evaluate: missing card": (("model card not found", "in/m.json"),
                              lambda t, s: ["evaluate", s["features"], s["labels"], "--model", t / "in" / "m.json"]),
    "evaluate: card is a folder": (("model card", "is a folder; give the card's JSON file"),
                                  lambda t, s: ["evaluate", s["features"], s["labels"], "--model", _mkdir(t / "in" / "m")]),
    "evaluate: truncated card": ("in/m.json is not a valid JSON model card",
                                lambda t, s: ["evaluate", s["features"], s["labels"], "--model",
                                              _w(t / "in" / "m.json", s["intra"].read_text(encoding="utf-8")[:200])]),
    "evaluate: empty card": ("is not a valid JSON model card (Expecting value: line 1 column 1",
                            lambda t, s: ["evaluate", s["features"], s["labels"], "--model", _w(t / "in" / "m.json", "")]),
    "evaluate: card with only a format": ("has no checksum",
                                         lambda t, s: ["evaluate", s["features"], s["labels"], "--model",
                                                       _w(t / "in" / "m.json", '{"format": "her2radiomics.model/1"}')]),
    "evaluate: card is a JSON list": ("is not a HER2Radiomics model card (expected a JSON object)",
                                     lambda t, s: ["evaluate", s["features"], s["labels"], "--model",
                                                   _w(t / "in" / "m.json", "[1, 2]")]),
    "evaluate: edited card (checksum)": ("was modified after it was saved (checksum mismatch)",
                                        lambda t, s: ["evaluate", s["features"], s["labels"], "--model",
                                                      _w(t / "in" / "m.json", _edit_card(s["intra"]))]),
    "evaluate: card from another feature set": ("features table lacks 4 of the model's 6 features",
                                               lambda t, s: ["evaluate", _copy_table(
        t, s, lambda d: d.drop(columns=[c for c in d.columns if c.startswith("peri3_")])), s["labels"],
        "--model", s["intra+peri3"], "-o", t / "out" / "e.json"]),
    "evaluate: one class in labels": ("positive value '1' not found in column 'label' (values: 0.0)",
                                     lambda t, s: ["evaluate", s["features"], _copy_table(
        t, s, lambda d: d.assign(label=0), "labels.csv", "labels"), "--model", s["intra"], "-o", t / "out" / "e.json"]),
    "evaluate: unknown --cases": ("the model card has no split 'validation'",
                                 lambda t, s: ["evaluate", s["features"], s["labels"], "--model", s["intra"],
                                               "--cases", "validation"]),
    "evaluate: -o is the model card": (("metrics file", "m.json is also an input of this command"),
                                      lambda t, s: ["evaluate", s["features"], s["labels"], "--model",
                                                    _w(t / "in" / "m.json", s["intra"].read_text(encoding="utf-8")),
                                                    "-o", t / "in" / "m.json"]),
    "evaluate: output under a file": (("cannot create metrics file", "is a file, not a folder"),
                                     lambda t, s: ["evaluate", s["features"], s["labels"], "--model", s["intra"],
                                                   "-o", _file_blocker(t) / "e.json"]),
    "evaluate: output is a folder": (("metrics file", "e.json is a folder; give a file name inside it"),
                                    lambda t, s: ["evaluate", s["features"], s["labels"], "--model", s["intra"],
                                                  "-o", _mkdir(t / "out" / "e.json")]),
    # ---- compare
    "compare: one card": ("compare needs at least two model cards",
                         lambda t, s: ["compare", s["features"], s["labels"], "--models", s["intra"]]),
    "compare: missing card": (("model card not found", "in/m.json"),
                             lambda t, s: ["compare", s["features"], s["labels"], "--models", s["intra"],
                                           t / "in" / "m.json"]),
    "compare: truncated card": ("in/m.json is not a valid JSON model card",
                               lambda t, s: ["compare", s["features"], s["labels"], "--models", s["intra"],
                                             _w(t / "in" / "m.json", s["intra"].read_text(encoding="utf-8")[:100])]),
    "compare: different targets": ("compare models of the same target",
                                  lambda t, s: ["compare", s["features"], s["labels"], "--models", s["intra"], s["stage1"]]),
    "compare: card features absent": ("features table lacks 4 of the model's 6 features",
                                     lambda t, s: ["compare", _copy_table(
        t, s, lambda d: d.drop(columns=[c for c in d.columns if c.startswith("peri3_")])), s["labels"],
        "--models", s["intra"], s["intra+peri3"], "-o", t / "out" / "c.json"]),
    "compare: output under a file": (("cannot create comparison file", "is a file, not a folder"),
                                    lambda t, s: ["compare", s["features"], s["labels"], "--models", s["intra"],
                                                  s["intra+peri3"], "-o", _file_blocker(t) / "c.json"]),
    # ---- study
    "study: unknown feature set": ("unknown feature set 'intra+peritumoral'",
                                  lambda t, s: ["study", s["features"], s["labels"], "-o", t / "out", *CUSTOM, *FAST,
                                                "--feature-sets", "intra", "intra+peritumoral"]),
    "study: no trainable set": ("no feature set could be trained",
                               lambda t, s: ["study", s["features"], s["labels"], "-o", t / "out", *CUSTOM, *FAST,
                                             "--feature-sets", "intra+peri5"]),
    "study: output under a file": (("cannot create output folder", "blocker/s:", "is a file, not a folder"),
                                  lambda t, s: ["study", s["features"], s["labels"], "-o", _file_blocker(t) / "s",
                                                *CUSTOM, *FAST, "--feature-sets", "intra"]),
    "study: output is a file": (("output folder", "blocker exists and is not a folder"),
                               lambda t, s: ["study", s["features"], s["labels"], "-o", _file_blocker(t),
                                             *CUSTOM, *FAST, "--feature-sets", "intra"]),
    "study: negative test size": ("--test-size must be in [0, 1), got -0.1",
                                 lambda t, s: ["study", s["features"], s["labels"], "-o", t / "out", *CUSTOM, *FAST,
                                               "--test-size", "-0.1"]),
    "study: unknown test center": ("no case has center = 'Z'",
                                  lambda t, s: ["study", s["features"], s["labels"], "-o", t / "out", *CUSTOM, *FAST,
                                                "--split", "center", "--test-center", "Z"]),
    "study: one class only": ("positive value '1' not found in column 'label' (values: 0.0)",
                             lambda t, s: ["study", s["features"], _copy_table(
        t, s, lambda d: d.assign(label=0), "labels.csv", "labels"), "-o", t / "out", *CUSTOM, *FAST]),
}


# issue 12: the new options refuse bad values in one line, before anything is written
CASES.update({
    "study: negative --bootstrap": ("--bootstrap must be between 0 and 100000 replicates, got -5",
                                   lambda t, s: ["study", s["features"], s["labels"], "-o", t / "out", *CUSTOM, *FAST,
                                                "--bootstrap", "-5"]),
    "study: non-empty output folder": ("is not empty (old.model.json)",
                                      lambda t, s: ["study", s["features"], s["labels"], "-o",
                                                   _w(t / "in" / "used" / "old.model.json", "{}").parent, *CUSTOM,
                                                   *FAST]),
    "train: --ihc-column not in the labels": ("no IHC column 'IHC score'",
                                             lambda t, s: ["train", s["features"], s["her2_labels"], "-o",
                                                          t / "out" / "m.json", "--task", "stage1", *FAST,
                                                          "--ihc-column", "IHC score"]),
    "train: --labels-id-column not in the labels": ("no id column 'Patient ID'",
                                                   lambda t, s: ["train", s["features"], s["labels"], "-o",
                                                                t / "out" / "m.json", *CUSTOM, *FAST,
                                                                "--labels-id-column", "Patient ID"]),
    "compare: --cases of a split the card lacks": ("the model card has no split 'external'",
                                                  lambda t, s: ["compare", s["features"], s["labels"], "--models",
                                                               s["intra"], s["intra+peri3"], "--cases", "external"]),
    "report: --labels without --predictions": ("--labels adds the true class to the predictions table",
                                              lambda t, s: ["report", "--study", _w(t / "in" / "s.json", "{}"),
                                                           "--labels", s["labels"], "-o", t / "out" / "r.html"]),
})

def _wb(p: Path, data: bytes) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _nan_image(t: Path) -> Path:
    arr = np.full((8, 24, 24), 200.0, np.float32)
    arr[:, :3, :] = np.nan  # e.g. a processed NIfTI with NaN outside the body
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(img, str(t / "in" / "nan.nrrd"))
    return t / "in" / "nan.nrrd"


def _image2d(t: Path) -> Path:
    sitk.WriteImage(sitk.Image(24, 24, sitk.sitkInt16), str(t / "in" / "slice.nrrd"))
    return t / "in" / "slice.nrrd"


def _icc(t: Path, s: dict, readers: str = "AB", rename: bool = False) -> Path:
    """A multi-reader table of the first 10 cases (readers A, B, ... or a blank reader column)."""
    import pandas as pd
    f = pd.read_csv(s["features"]).head(10)
    parts = [f.assign(reader=r) for r in (readers or "AB")]
    tab = pd.concat(parts)
    if not readers:
        tab["reader"] = ""
    if rename:
        tab = tab.rename(columns=lambda c: c.replace("intra_", "tumour_"))
    p = t / "in" / "icc.csv"
    tab.to_csv(p, index=False)
    return p


def _two_labels(t: Path) -> str:
    arr = np.zeros((8, 24, 24), np.uint8)
    arr[0, 0, 0], arr[0, 0, 1] = 1, 2
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(img, str(t / "in" / "two.nrrd"))
    return "two.nrrd"


def _empty_mask(t: Path) -> str:
    img = sitk.Image(24, 24, 8, sitk.sitkUInt8)
    img.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(img, str(t / "in" / "empty_lesion.nrrd"))
    return "empty_lesion.nrrd"


def _manifest(t: Path, s: dict, rows: int = 1, same_id: bool = False) -> Path:
    lines = ["case_id,image,lesion"]
    for i in range(rows):
        lines.append(f"{'A' if same_id else f'C{i}'},{s['image']},{s['lesion']}")
    return _w(t / "in" / "manifest.csv", "\n".join(lines) + "\n")


def _edit_card(card: Path) -> str:
    d = json.loads(card.read_text(encoding="utf-8"))
    d["cutoff"] = 0.123
    return json.dumps(d)


def _run_inproc(capsys, args: list) -> tuple[int, str, str]:
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def _check(rc: int, out: str, err: str, before: set[str], after: set[str], says: Says, expect: int = 2) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == expect, f"exit {rc}, stderr: {err!r}"
    assert "Traceback" not in out + err
    errors = [ln for ln in lines if re.match(r"(her2radiomics( \w+)?: )?error: ", ln)]
    assert len(errors) == 1 and len(lines) == 1, f"want one error line, got {lines!r}"
    missing = [f for f in ((says,) if isinstance(says, str) else says) if f not in errors[0]]
    assert not missing, f"the error is not the one the case is named after: {errors[0]!r} lacks {missing!r}"
    assert after == before, f"files created or changed: {sorted(after ^ before)}"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, shared, tmp_path, capsys) -> None:
    (tmp_path / "in").mkdir()
    says, build = CASES[name]
    args = build(tmp_path, shared)
    capsys.readouterr()
    before = _tree(tmp_path)
    rc, out, err = _run_inproc(capsys, args)
    _check(rc, out, err, before, _tree(tmp_path), says)



# Positive controls: the same commands without the defect succeed and write their outputs, so each case above fails
# because of its one defect and the "nothing written" check can see a written file.
CONTROLS: dict[str, Case] = {
    "phantom": lambda t, s: ["phantom", "-o", t / "out", *PH],
    "regions": lambda t, s: ["regions", s["image"], s["lesion"], "-o", t / "out"],
    "train": lambda t, s: _train(s["features"], s["labels"], t / "out" / "m.json"),
    "evaluate": lambda t, s: ["evaluate", s["features"], s["labels"], "--model", s["intra"], "-o", t / "out" / "e.json"],
    "compare": lambda t, s: ["compare", s["features"], s["labels"], "--models", s["intra"], s["intra+peri3"],
                             "-o", t / "out" / "c.json"],
    "study": lambda t, s: ["study", s["features"], s["labels"], "-o", t / "out", *CUSTOM, *FAST,
                           "--feature-sets", "intra", "intra+peri3"],
}


@pytest.mark.parametrize("name", list(CONTROLS))
def test_control_succeeds(name: str, shared, tmp_path, capsys) -> None:
    (tmp_path / "in").mkdir()
    rc, out, err = _run_inproc(capsys, CONTROLS[name](tmp_path, shared))
    assert rc == 0, err
    assert "Traceback" not in err and not [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert any(p.is_file() for p in (tmp_path / "out").rglob("*"))

def test_train_fewer_cases_than_cv_folds(tmp_path, capsys) -> None:
    """Fewer cases of a class than the 10 CV folds is not an error: LASSO's stratified CV uses as many folds as the
    smaller class has cases (docs/modeling.md), and the card records the folds used."""
    import pandas as pd
    f, lab = _tables(_mkdir(tmp_path / "in"), n=12)
    n_min = int(pd.read_csv(lab)["label"].value_counts().min())
    assert 2 <= n_min < 10
    rc, out, err = _run_inproc(capsys, ["train", f, lab, "-o", tmp_path / "m.json", *CUSTOM, "--test-size", "0"])
    assert rc == 0, err
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["selection"]["cv_folds"] == n_min


def test_custom_task_needs_only_positive(shared, tmp_path, capsys) -> None:
    """What the "custom without label options" error asks for is enough: --label-column and --positive, without
    --negative (every other value is the reference class)."""
    rc, out, err = _run_inproc(capsys, ["train", shared["features"], shared["labels"], "-o", tmp_path / "m.json",
                                        "--task", "custom", "--label-column", "label", "--positive", "1", *FAST])
    assert rc == 0, err
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["classes"] == {"event": "label=1", "reference": ["label=other"]}


# ------------------------------------------------------------------------------------------------ real data
def _duke(*parts: str) -> Path:
    return shared_path("duke", *parts)


REAL: dict[str, Case] = {
    "train: Duke tables without --id-column": ("clinical.csv: no id column 'case_id'",
                                              lambda t, s: [
        "train", _duke("imaging_features.csv"), _duke("clinical.csv"), "-o", t / "out" / "m.json", "--task", "stage1"]),
    "train: Duke stage1 without HER2 category columns": ("599 case(s) have no HER2 category: unknown HER2 category '0'",
                                                        lambda t, s: [
        "train", _duke("imaging_features.csv"), _duke("clinical.csv"), "-o", t / "out" / "m.json", "--task", "stage1",
        "--id-column", "patient_id", "--feature-set", "all"]),
    "train: Duke table for --feature-set intra (no region prefixes)": ("feature set 'intra' needs columns 'intra_*'",
                                                                      lambda t, s: [
        "train", _duke("imaging_features.csv"), _duke("clinical.csv"), "-o", t / "out" / "m.json", "--task", "custom",
        "--id-column", "patient_id", "--label-column", "HER2", "--positive", "1", "--negative", "0"]),
    "train: Duke centre that does not exist": ("no case has manufacturer = '7'",
                                              lambda t, s: [
        "train", _duke("imaging_features.csv"), _duke("clinical.csv"), "-o", t / "out" / "m.json", "--task", "custom",
        "--id-column", "patient_id", "--label-column", "HER2", "--positive", "1", "--negative", "0",
        "--feature-set", "all", "--split", "center", "--center-column", "manufacturer", "--test-center", "7"]),
    "evaluate: card on the Duke table (features absent)": ("features table lacks 4 of the model's 4 features",
                                                          lambda t, s: [
        "evaluate", _duke("imaging_features.csv"), _duke("clinical.csv"), "--model", s["intra"],
        "--id-column", "patient_id", "--label-column", "HER2", "--positive", "1", "--negative", "0"]),
    "regions: breast1 with an absent label": ("has no voxel with label 5",
                                             lambda t, s: [
        "regions", shared_path("pyradiomics_breast1", "breast1_image.nrrd"),
        shared_path("pyradiomics_breast1", "breast1_label.nrrd"), "--label", "5", "-o", t / "out"]),
    "regions: Duke DICOM image with a lesion of another grid": ("is not on the image grid (size (24.0, 24.0, 8.0) vs image (512.0, 512.0, 3.0))",
                                                               lambda t, s: [
        "regions", shared_path("duke_dicom"), s["lesion"], "-o", t / "out"]),
    "regions: breast1 lesion on the Duke DICOM grid": ("is not on the image grid (size (45.0, 120.0, 21.0)",
                                                      lambda t, s: [
        "regions", shared_path("duke_dicom"), shared_path("pyradiomics_breast1", "breast1_label.nrrd"), "-o", t / "out"]),
}


@pytest.mark.parametrize("name", list(REAL))
def test_bad_input_real_data(name: str, shared, tmp_path, capsys) -> None:
    (tmp_path / "in").mkdir()
    says, build = REAL[name]
    args = build(tmp_path, shared)
    capsys.readouterr()
    before = _tree(tmp_path)
    rc, out, err = _run_inproc(capsys, args)
    _check(rc, out, err, before, _tree(tmp_path), says)


# ------------------------------------------------------------------------------------------------ subprocesses
@pytest.mark.parametrize("name", ["train: truncated ICC", "regions: text file named .nrrd", "usage: no -o",
                                  "usage: unknown command"])
def test_bad_input_subprocess(name: str, shared, tmp_path) -> None:
    """The real console entry point (python -m her2radiomics): one line, exit 2, no traceback."""
    (tmp_path / "in").mkdir()
    says, build = {
        "train: truncated ICC": (("cannot read ICC table", "icc.csv as CSV", "EOF inside string"),
                                 lambda: _train(shared["features"], shared["labels"], tmp_path / "out" / "m.json",
                                                "--icc", _w(tmp_path / "in" / "icc.csv", 'case_id,reader,intra_f0\n"x'))),
        "regions: text file named .nrrd": (("cannot read image", "x.nrrd", "give a NRRD, NIfTI or DICOM series"),
                                           lambda: ["regions", _w(tmp_path / "in" / "x.nrrd", "NRRD0004\nnonsense\n"),
                                                    shared["lesion"], "-o", tmp_path / "out"]),
        "usage: no -o": ("the following arguments are required: -o/--output",
                         lambda: ["train", shared["features"], shared["labels"], "--task", "stage1"]),
        "usage: unknown command": ("argument COMMAND: invalid choice: 'predit'", lambda: ["predit", "x"]),
    }[name]
    args = build()
    before = _tree(tmp_path)
    r = run_cli(*args, timeout=120)
    _check(r.returncode, r.stdout, r.stderr, before, _tree(tmp_path), says)


# ------------------------------------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize("command", ["train", "extract"])
def test_ctrl_c_one_line_and_nothing_written(command: str, shared, tmp_path, capsys, monkeypatch) -> None:
    """Ctrl-C mid-run: exit 130, one ``error: interrupted`` line saying what is kept, no partial output."""
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    (tmp_path / "in").mkdir()
    if command == "train":
        from her2radiomics import fitting
        monkeypatch.setattr(fitting, "lasso_select", interrupt)
        args = _train(shared["features"], shared["labels"], tmp_path / "out" / "m.json")
    else:
        import her2radiomics.batch as batch
        monkeypatch.setattr(batch, "_run", interrupt)
        args = ["extract", _manifest(tmp_path, shared), "-o", tmp_path / "out" / "F.csv", "--no-progress"]
    capsys.readouterr()
    rc, out, err = _run_inproc(capsys, args)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("extract: ")]
    assert rc == 130 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: interrupted (Ctrl-C); "), lines
    assert ("re-run resumes" in lines[0]) == (command == "extract")
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
    assert written == []


# ------------------------------------------------------------------------------------------------ cohort failures
def test_extract_every_case_failing_writes_only_the_failure_list(shared, tmp_path, capsys) -> None:
    """Exit 1 (documented for failed cases), a failure list naming the resolved path, no empty features table."""
    man = _w(tmp_path / "in" / "m.csv", "case_id,image,lesion\nA,missing.nrrd,lesion.nrrd\nB,../in/gone.nrrd,x.nrrd\n")
    rc, out, err = _run_inproc(capsys, ["extract", man, "-o", tmp_path / "out" / "F.csv", "--no-progress"])
    assert rc == 1 and "Traceback" not in err
    assert f"failed: A: image file not found: {tmp_path / 'in' / 'missing.nrrd'}" in err  # relative to the manifest
    assert "no case could be extracted (2 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["F.failures.csv"]


def test_extract_relative_manifest_partial_failure(tmp_path, capsys) -> None:
    """Relative paths resolve against the manifest's folder (not the working directory); a missing case fails alone."""
    d = shared_path("pyradiomics_breast1")
    man = _w(tmp_path / "cohort" / "m.csv", f"case_id,image,lesion\nok,{d / 'breast1_image.nrrd'},{d / 'breast1_label.nrrd'}\n"
                                            "lost,img/none.nrrd,img/none_label.nrrd\n")
    rc, out, err = _run_inproc(capsys, ["extract", man, "-o", tmp_path / "out" / "F.csv", "--no-progress",
                                        "--distances", "1"])
    assert rc == 1 and "Traceback" not in err
    assert f"failed: lost: image file not found: {tmp_path / 'cohort' / 'img' / 'none.nrrd'}" in err
    import pandas as pd
    assert pd.read_csv(tmp_path / "out" / "F.csv")["case_id"].tolist() == ["ok"]
    assert (tmp_path / "out" / "F.failures.csv").is_file()
    assert (tmp_path / "out" / "F.csv").stat().st_mode & 0o044  # readable by others like any file the user makes


# ------------------------------------------------------------------------------------------------ quiet degradation
def test_evaluate_notes_an_empty_model_feature(shared, tmp_path, capsys) -> None:
    """Not an error (prediction imputes), but never silent: an empty model feature is named in a note."""
    card = json.loads(shared["intra"].read_text(encoding="utf-8"))
    feat = card["features"][0]
    table = _copy_table(tmp_path, shared, lambda d: d.assign(**{feat: np.nan}))
    rc, out, err = _run_inproc(capsys, ["evaluate", table, shared["labels"], "--model", shared["intra"]])
    assert rc == 0 and err == ""
    assert f"note: {len(table.read_text(encoding='utf-8').splitlines()) - 1} missing/non-numeric value(s)" in out
    assert f"note: feature(s) {feat} have no usable value in this table" in out


def test_train_all_notes_dropped_text_columns(shared, tmp_path, capsys) -> None:
    table = _copy_table(tmp_path, shared, lambda d: d.assign(scanner="GE"))
    rc, out, err = _run_inproc(capsys, _train(table, shared["labels"], tmp_path / "m.json", "--feature-set", "all"))
    assert rc == 0 and "note: 1 non-numeric column(s) left out of 'all' (e.g. 'scanner')" in out
    assert "scanner" not in json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["features"]


def test_real_ctrl_c_during_extract(tmp_path) -> None:
    """A real SIGINT to the running CLI (python -m her2radiomics extract): exit 130, the interruption line last, no
    traceback, no features table; finished cases stay in the cache."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import PKG_DIR

    d = shared_path("pyradiomics_breast1")
    rows = "".join(f"c{i},{d / 'breast1_image.nrrd'},{d / 'breast1_label.nrrd'}\n" for i in range(40))
    man = _w(tmp_path / "m.csv", "case_id,image,lesion\n" + rows)
    env = dict(os.environ, PYTHONPATH=str(PKG_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with subprocess.Popen([sys.executable, "-m", "her2radiomics", "extract", str(man), "-o", str(tmp_path / "F.csv"),
                           "--no-progress", "--distances", "1"], env=env, stderr=subprocess.PIPE, encoding="utf-8") as p:
        first = p.stderr.readline()  # "extract: 40 case(s), ..." once the run has started
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        err = first + p.stderr.read()
        assert p.wait(timeout=60) == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and lines[-1].startswith("error: interrupted (Ctrl-C); finished cases are kept")
    assert not (tmp_path / "F.csv").exists()
    assert len(list((tmp_path / "F.cache").glob("*.json"))) < 40


# ------------------------------------------------------------------------------------------------ start-up imports
_HEAVY = ("pandas", "sklearn", "scipy", "matplotlib", "radiomics", "SimpleITK", "numpy")


def _modules_full(argv: list[str], cwd: Path | None = None) -> set[str]:
    """Every module (dotted names) imported by ``cli.main(argv)`` in a fresh interpreter, plus ``RC=<exit code>``
    (the command's own output is swallowed)."""
    import os
    import subprocess
    import sys

    from conftest import PKG_DIR

    code = ("import sys, contextlib, io\nfrom her2radiomics import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        rc = cli.main(sys.argv[1:])\n    except SystemExit as e:\n        rc = e.code\n"
            "print(f'RC={rc}')\nprint('\\n'.join(sorted(sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(PKG_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, encoding="utf-8", env=env,
                       timeout=300, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def _modules_after(argv: list[str]) -> set[str]:
    """Top-level packages imported by ``cli.main(argv)`` in a fresh interpreter (the speed of ``--help`` is what
    they cost; benchmarks/bench_cli_start.py times it)."""
    return {m.split(".")[0] for m in _modules_full(argv)}


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["regions", "--help"], ["train", "--help"],
                                  ["study", "--help"], ["evaluate", "--help"], ["compare", "--help"],
                                  ["predict", "--help"], ["report", "--help"], ["extract", "--help"]])
def test_help_imports_no_scientific_stack(argv) -> None:
    """`her2radiomics --help` imported every command and with them pandas, scikit-learn and SciPy (2 s)."""
    heavy = _modules_after(argv) & set(_HEAVY)
    assert not heavy, f"{' '.join(argv)} imports {sorted(heavy)}"


#: what only training, evaluation, reports or other backends use: `extract` and `regions` never need them
_TRAINING_ONLY = ("sklearn", "matplotlib", "statsmodels", "dask", "joblib", "shap")
_TRAINING_MODULES = ("her2radiomics.fitting", "her2radiomics.targets", "her2radiomics.selection",
                     "her2radiomics.classifiers", "her2radiomics.evaluation", "her2radiomics.stats",
                     "her2radiomics.report", "her2radiomics.modelcard")


def test_extract_start_imports_neither_pandas_nor_scipy(tmp_path) -> None:
    """Issue 14: `extract` imported pandas and SciPy's ndimage (with the exclusion detectors) before it even read
    its manifest (0.8 s of start-up); its options are checked first, so a mistake is reported without them."""
    mods = _modules_full(["extract", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "F.csv")])
    top = {m.split(".")[0] for m in mods}
    assert "RC=2" in mods and "her2radiomics.batch" in mods  # it got as far as the manifest
    assert not top & {"pandas", "scipy", "radiomics", "joblib", *_TRAINING_ONLY}, sorted(top & set(_HEAVY))


def test_extract_and_regions_never_import_what_only_training_uses(tmp_path, small_params) -> None:
    """Issue 14: a whole `extract` (one case, automatic exclusions, the case pool) imports neither scikit-learn,
    matplotlib nor joblib (one case at a time runs in this process) nor the training modules; `regions` (without
    its QC picture) neither pandas nor pyradiomics."""
    from her2radiomics.phantom import make_phantom

    ph = make_phantom(seed=1, size=(96, 96, 32), spacing=(0.9, 0.9, 1.6), lesion_radius_mm=4.0)
    sitk.WriteImage(ph.image, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(ph.lesion, str(tmp_path / "lesion.nrrd"))
    (tmp_path / "m.csv").write_text("case_id,image,lesion\nc1,image.nrrd,lesion.nrrd\n", encoding="utf-8")
    mods = _modules_full(["extract", "m.csv", "-o", "F.csv", "--params", str(small_params), "--no-progress",
                          "--case-workers", "2"], cwd=tmp_path)
    assert "RC=0" in mods and (tmp_path / "F.csv").is_file()
    top = {m.split(".")[0] for m in mods}
    assert {"pandas", "scipy", "radiomics"} <= top  # it did the work
    assert not top & set(_TRAINING_ONLY), sorted(top & set(_TRAINING_ONLY))
    assert not mods & set(_TRAINING_MODULES), sorted(mods & set(_TRAINING_MODULES))

    mods = _modules_full(["regions", "image.nrrd", "lesion.nrrd", "-o", "regions", "--no-qc"], cwd=tmp_path)
    assert "RC=0" in mods and (tmp_path / "regions" / "regions.json").is_file()
    top = {m.split(".")[0] for m in mods}
    assert not top & {"pandas", "radiomics", *_TRAINING_ONLY}, sorted(top & {"pandas", "radiomics", *_TRAINING_ONLY})


# ------------------------------------------------------------------------------------------------ notes (issue 12)
def _her2_tables(d: Path, n: int = 60, blank: int = 0) -> tuple[Path, Path]:
    """A features table and a her2 labels table with positives, lows and zeros (``blank`` rows without a label)."""
    import pandas as pd
    f, lab = _tables(d, n=n)
    t = pd.read_csv(lab)
    t["her2"] = np.where(t["label"] == 1, "positive", np.where(np.arange(len(t)) % 2, "low", "zero"))
    t.loc[t.index[:blank], "her2"] = ""
    t.drop(columns="label").to_csv(d / "her2.csv", index=False)
    return f, d / "her2.csv"


def test_stage2_names_the_excluded_positives_once(tmp_path, capsys) -> None:
    """Stage 2 printed the excluded positives twice: 'N HER2-positive case(s) excluded from stage 2' and 'N case(s)
    of the features table have no usable label'; a blank label was likewise counted twice."""
    f, lab = _her2_tables(tmp_path, blank=3)
    rc, out, err = _run_inproc(capsys, ["train", f, lab, "-o", tmp_path / "m.json", "--task", "stage2", *FAST])
    assert rc == 0, err
    notes = [ln for ln in out.splitlines() if ln.startswith("note:")]
    assert sum("HER2-positive" in n for n in notes) == 1, notes
    assert not [n for n in notes if "no usable label" in n], notes
    assert sum("labels table left out" in n for n in notes) == 1, notes


def test_train_without_icc_prints_no_icc_count(shared, tmp_path, capsys) -> None:
    """'40 candidates -> 40 after ICC -> ...' was printed although no ICC table was given."""
    rc, out, err = _run_inproc(capsys, _train(shared["features"], shared["labels"], tmp_path / "m.json"))
    assert rc == 0, err
    assert "after ICC" not in out and "no ICC table" in out


def test_predict_notes_cases_the_cards_were_trained_on(shared, tmp_path, capsys) -> None:
    """evaluate and compare note training cases (optimistic results); predict on the same cases said nothing."""
    rc, out, err = _run_inproc(capsys, ["predict", shared["features"], "--stage1", shared["stage1"],
                                        "-o", tmp_path / "P.csv", "--max-cases", "0"])
    assert rc == 0, err
    card = modelcard.load_model_card(shared["stage1"])
    n_train = len(card["provenance"]["case_ids"]["train"])
    assert f"note: stage1 model: {n_train} of the 40 predicted cases were used to train it" in out, out


def test_compare_cases_restricts_to_a_recorded_split(shared, tmp_path, capsys) -> None:
    """compare advised 'compare on held-out cases only' but had no --cases option (argparse error)."""
    card = modelcard.load_model_card(shared["intra"])
    n_test = len(card["provenance"]["case_ids"]["test"])
    rc, out, err = _run_inproc(capsys, ["compare", shared["features"], shared["labels"], "--models", shared["intra"],
                                        shared["intra+peri3"], "--cases", "test", "-o", tmp_path / "c.json"])
    assert rc == 0, err
    res = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert res["n"] == n_test and "used to train" not in out
    assert res["cases"] == "test"
    rc, out, err = _run_inproc(capsys, ["compare", shared["features"], shared["labels"], "--models", shared["intra"],
                                        shared["intra+peri3"], "--cases", "external"])
    assert rc == 2 and "no split 'external'" in err and "--cases" in err


def test_study_into_a_used_folder(shared, tmp_path, capsys) -> None:
    """study -o DIR over an earlier run left that run's cards beside the new ones: refused without --force; with
    --force exactly the study's files are replaced and other files are kept."""
    out = tmp_path / "st"
    base = ["study", shared["features"], shared["labels"], "-o", out, *CUSTOM, *FAST]
    rc, _, err = _run_inproc(capsys, [*base, "--feature-sets", "intra", "intra+peri3"])
    assert rc == 0, err
    (out / "notes.txt").write_text("mine")
    before = _tree(tmp_path)
    rc, o, err = _run_inproc(capsys, [*base, "--feature-sets", "intra"])
    _check(rc, o, err, before, _tree(tmp_path), ("is not empty", "--force", "intra_peri3.model.json"))
    rc, _, err = _run_inproc(capsys, [*base, "--feature-sets", "intra", "--force"])
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["intra.model.json", "notes.txt", "study.json"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
