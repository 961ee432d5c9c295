"""HER2 categories per ASCO/CAP 2018 (Wolff et al. 2018) and label-table loading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from her2radiomics.errors import UserError
from her2radiomics.labels import allowed_categories, her2_category, load_labels, stage_target

# --------------------------------------------------------------------------------------------------
# every rule of the ASCO/CAP 2018 table in METHOD.md / labels.py


@pytest.mark.parametrize(
    ("ihc", "fish", "expected"),
    [
        ("0", None, "zero"),            # IHC 0 -> zero
        ("0", "negative", "zero"),
        ("1+", None, "low"),            # IHC 1+ -> low
        ("1+", "negative", "low"),
        ("2+", "negative", "low"),      # IHC 2+ / ISH negative -> low
        ("2+", "positive", "positive"),  # IHC 2+ / ISH positive -> positive
        ("3+", None, "positive"),       # IHC 3+ -> positive
        ("3+", "positive", "positive"),
        (None, "positive", "positive"),  # ISH amplified -> positive
    ],
)
def test_asco_cap_rules(ihc, fish, expected):
    assert her2_category(ihc=ihc, fish=fish) == expected


@pytest.mark.parametrize(
    ("ihc", "expected"),
    [(0, "0"), (1, "1+"), (2, "2+"), (3, "3+"), ("0", "0"), ("1", "1+"), ("2", "2+"), ("3", "3+"),
     ("1+", "1+"), (" 3 + ", "3+"), ("IHC 2+", "2+"), (1.0, "1+"), ("2.0", "2+"), ("0+", "0")],
)
def test_ihc_spellings(ihc, expected):
    fish = "negative" if expected == "2+" else None
    ref = her2_category(ihc=expected, fish=fish)
    assert her2_category(ihc=ihc, fish=fish) == ref


@pytest.mark.parametrize(
    ("fish", "expected"),
    [("pos", "positive"), ("Positive", "positive"), ("AMPLIFIED", "positive"), ("amp", "positive"),
     ("neg", "low"), ("negative", "low"), ("not amplified", "low"), ("Not-Amplified", "low"),
     ("non-amplified", "low"), ("nonamplified", "low")],
)
def test_fish_spellings(fish, expected):
    assert her2_category(ihc="2+", fish=fish) == expected


@pytest.mark.parametrize("blank", [None, "", "  ", "NA", "n/a", float("nan"), pd.NA, "not done"])
def test_fish_blank_spellings(blank):
    assert her2_category(ihc="1+", fish=blank) == "low"
    with pytest.raises(UserError, match="IHC 2\\+ without a FISH"):
        her2_category(ihc="2+", fish=blank)


@pytest.mark.parametrize(
    ("her2", "expected"),
    [("positive", "positive"), ("POS", "positive"), ("HER2-positive", "positive"), ("her2+", "positive"),
     ("low", "low"), ("Low", "low"), ("HER2-low", "low"), ("her2 low", "low"), ("HER2low", "low"),
     ("zero", "zero"), ("ZERO", "zero"), ("HER2-zero", "zero"), ("her2 0", "zero"), ("ultralow", "zero")],
)
def test_category_synonyms(her2, expected):
    assert her2_category(her2) == expected


def test_category_and_tests_must_agree():
    assert her2_category("low", ihc="2+", fish="neg") == "low"
    assert her2_category("positive", ihc="3+") == "positive"
    with pytest.raises(UserError, match="contradicts IHC/FISH") as err:
        her2_category("zero", ihc="1+", case_id="P7")
    assert "P7" in str(err.value) and "'1+'" in str(err.value) and "'zero'" in str(err.value)
    with pytest.raises(UserError, match="contradicts"):
        her2_category("positive", ihc="2+", fish="negative")
    with pytest.raises(UserError, match="contradicts"):
        her2_category("low", ihc="0")
    # "negative" resolved by the IHC score
    assert her2_category("negative", ihc="0") == "zero"
    assert her2_category("HER2-negative", ihc="2+", fish="neg") == "low"
    with pytest.raises(UserError, match="contradicts the tests"):
        her2_category("negative", ihc="3+")


def test_ihc2_with_final_category_accepted():
    # IHC 2+ with the FISH missing from the table but the final category given: either is possible
    assert her2_category("low", ihc="2+") == "low"
    assert her2_category("positive", ihc="2+") == "positive"


@pytest.mark.parametrize(("ihc", "fish", "resolved"),
                         [("3+", "negative", ("positive",)), ("1+", "positive", ("positive", "low")),
                          ("0", "positive", ("positive", "zero"))])
def test_discordant_tests_need_final_category(ihc, fish, resolved):
    with pytest.raises(UserError, match="discordant") as err:
        her2_category(ihc=ihc, fish=fish, case_id="B12")
    msg = str(err.value)
    assert "\n" not in msg and "B12" in msg and repr(ihc) in msg and repr(fish) in msg
    assert allowed_categories(ihc, fish) == resolved
    for cat in resolved:
        assert her2_category(cat, ihc=ihc, fish=fish) == cat
    for cat in {"positive", "low", "zero"} - set(resolved):
        with pytest.raises(UserError, match="contradicts"):
            her2_category(cat, ihc=ihc, fish=fish)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"ihc": "2+"}, "IHC 2\\+ without a FISH"),
        ({"fish": "negative"}, "cannot separate HER2-low from zero"),
        ({"her2": "negative"}, "ambiguous"),
        ({"her2": "maybe"}, "unknown HER2 category 'maybe'"),
        ({"her2": "1"}, "unknown HER2 category"),
        ({"ihc": "4+"}, "unknown IHC score '4\\+'"),
        ({"ihc": "1+", "fish": "borderline"}, "unknown FISH"),
        ({"ihc": "2+", "fish": "equivocal"}, "not a final result"),
        ({}, "no HER2 information"),
    ],
)
def test_impossible_or_unknown_one_line(kwargs, pattern):
    with pytest.raises(UserError, match=pattern) as err:
        her2_category(**kwargs, case_id="C3")
    assert "\n" not in str(err.value) and "case C3" in str(err.value)


# --------------------------------------------------------------------------------------------------
# stage targets


def test_stage_targets():
    cats = ["positive", "low", "zero", "low", "positive", "zero"]
    mask, y = stage_target(cats, "stage1")
    assert mask.all() and y.tolist() == [1, 0, 0, 0, 1, 0]
    mask, y = stage_target(cats, "stage2")
    assert mask.tolist() == [False, True, True, True, False, True]
    assert y.tolist() == [1, 0, 1, 0]
    with pytest.raises(UserError, match="stage1 or stage2"):
        stage_target(cats, "stage3")
    with pytest.raises(UserError, match="unknown HER2 categories"):
        stage_target(["positive", "negative"], "stage1")


# --------------------------------------------------------------------------------------------------
# tables


def _write(tmp_path, text, name="labels.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_labels_her2_mixed_columns(tmp_path):
    p = _write(tmp_path, "case_id,her2,IHC,FISH,center\n"
                         "a,positive,,,A\n"
                         "b,,2+,neg,A\n"
                         "c,,0,,B\n"
                         "d,low,1+,,B\n"
                         "e,,,,B\n")
    df = load_labels(p)
    assert df.columns.tolist() == ["case_id", "her2", "center"]
    assert df["case_id"].tolist() == ["a", "b", "c", "d"]
    assert df["her2"].tolist() == ["positive", "low", "zero", "low"]
    assert df["center"].tolist() == ["A", "A", "B", "B"]
    assert df.attrs["excluded"] == {"e": "no HER2 information"} and df.attrs["mode"] == "her2"


def test_load_labels_error_names_case(tmp_path):
    p = _write(tmp_path, "case_id,ihc,fish\nx1,1+,\nx2,2+,\n")
    with pytest.raises(UserError, match="case x2: IHC 2\\+ without a FISH"):
        load_labels(p)


def test_load_labels_generic_and_numeric_values(tmp_path):
    p = _write(tmp_path, "pid,HER2,site\np1,1,GE\np2,0,GE\np3,1.0,SI\np4,,SI\np5,0,SI\n")
    df = load_labels(p, id_column="pid", label_column="HER2", positive=["1"], negative=["0"], center_column="site")
    assert df.columns.tolist() == ["case_id", "label", "center"]
    assert df["label"].tolist() == [1, 0, 1, 0]
    assert df["center"].tolist() == ["GE", "GE", "SI", "SI"]
    assert df.attrs["excluded"] == {"p4": "blank HER2"}
    # only --positive: everything else is the reference class
    df = load_labels(p, id_column="pid", label_column="HER2", positive="1")
    assert df["label"].tolist() == [1, 0, 1, 0]


def test_load_labels_generic_excludes_unlisted_values(tmp_path):
    p = _write(tmp_path, "case_id,cat\na,positive\nb,low\nc,zero\nd,LOW\n")
    df = load_labels(p, label_column="cat", positive=["low"], negative=["zero"])
    assert df["case_id"].tolist() == ["b", "c", "d"] and df["label"].tolist() == [1, 0, 1]
    assert "a" in df.attrs["excluded"]


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        ("", {}, "empty"),
        ("case_id,her2\n", {}, "no rows"),
        ("id,her2\na,low\n", {}, "no id column 'case_id'"),
        ("case_id,her2\na,low\na,zero\n", {}, "duplicate case ids in 'case_id': a"),
        ("case_id,her2\n,low\n", {}, "blank 'case_id' on line"),
        ("case_id,grade\na,2\n", {}, "no HER2 label columns"),
        ("case_id,HER2\na,1\n", {"positive": "1"}, "need --label-column"),
        ("case_id,HER2\na,1\nb,0\n", {"label_column": "HER2", "positive": "yes"}, "positive value 'yes' not found"),
        ("case_id,HER2\na,1\nb,0\n", {"label_column": "ER", "positive": "1"}, "no label column 'ER'"),
        ("case_id,HER2\na,1\nb,0\n", {"label_column": "HER2", "positive": "1", "negative": "1.0"},
         "both positive and negative"),
        ("case_id,her2\na,\nb,\n", {}, "no case has a usable label"),
        ("case_id,her2\na,1\n", {}, "unknown HER2 category '1'"),
        ("case_id,her2,center\na,low,\n", {}, "blank centre"),
        ("case_id,her2\na,low\n", {"center_column": "site"}, "no centre column 'site'"),
    ],
)
def test_load_labels_errors_one_line(tmp_path, text, kwargs, pattern):
    p = _write(tmp_path, text)
    with pytest.raises(UserError, match=pattern) as err:
        load_labels(p, **kwargs)
    assert "\n" not in str(err.value)


def test_load_labels_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_labels(tmp_path / "nope.csv")


def test_load_labels_tsv(tmp_path):
    p = _write(tmp_path, "case_id\ther2\na\tzero\nb\tpositive\n", name="labels.tsv")
    assert load_labels(p)["her2"].tolist() == ["zero", "positive"]


def test_load_labels_real_duke_clinical():
    p = shared_path("duke", "clinical.csv")
    df = load_labels(p, id_column="patient_id", label_column="HER2", positive=["1"], negative=["0"],
                     center_column="manufacturer")
    assert len(df) == 599 and int(df["label"].sum()) == 106
    assert sorted(df["center"].unique()) == ["0", "2"]
    assert sorted(df["label"].unique().tolist()) == [0, 1]


# ---------------------------------------------------------------------------------------- pathology exports (issue 12)
EXPORT = ("Patient ID,IHC score (HER2),ISH result,Centre\n"
          "P01,3+,,A\nP02,2+,,A\nP03,2+,amplified,A\nP04,1+,,B\nP05,2+,,B\nP06,0,amplified,B\nP07,0,,B\n"
          "P08,2+,not amplified,A\nP09,2+,,A\n")


def test_pathology_export_column_names(tmp_path):
    """An export with 'IHC score (HER2)' / 'ISH result' columns could not be read (no option to name them)."""
    p = _write(tmp_path, "Patient ID,IHC score (HER2),ISH result\nP01,3+,\nP02,2+,amplified\nP03,2+,not amplified\n"
                         "P04,0,\n")
    df = load_labels(p, id_column="Patient ID", ihc_column="IHC score (HER2)", fish_column="ISH result")
    assert df["her2"].tolist() == ["positive", "positive", "low", "zero"]
    with pytest.raises(UserError, match="no IHC column 'IHC'.*--ihc-column"):
        load_labels(p, id_column="Patient ID", ihc_column="IHC", fish_column="ISH result")


def test_every_unresolvable_case_is_listed_at_once(tmp_path):
    """Only the first IHC 2+ case without FISH was named; fixing it revealed the next one, and so on."""
    p = _write(tmp_path, EXPORT)
    kw = {"id_column": "Patient ID", "ihc_column": "IHC score (HER2)", "fish_column": "ISH result"}
    with pytest.raises(UserError) as err:
        load_labels(p, **kw)
    msg = str(err.value)
    assert "4 case(s) have no HER2 category" in msg
    assert "IHC 2+ without a FISH/ISH result: P02, P05, P09" in msg and "discordant HER2 tests: P06" in msg
    assert "--drop-unresolved" in msg and "\n" not in msg
    df = load_labels(p, **kw, drop_unresolved=True)
    assert df["case_id"].tolist() == ["P01", "P03", "P04", "P07", "P08"]
    assert df.attrs["unresolved"] == {"P02": "IHC 2+ without a FISH/ISH result", "P05": "IHC 2+ without a FISH/ISH result",
                                      "P06": "discordant HER2 tests", "P09": "IHC 2+ without a FISH/ISH result"}


def test_unreadable_values_are_listed_and_not_dropped(tmp_path):
    p = _write(tmp_path, "case_id,ihc,fish\na,4+,\nb,2+,\nc,1+,\nd,3++,\n")
    with pytest.raises(UserError, match=r"3 case\(s\) have no HER2 category: unknown IHC score '4\+': a; IHC 2\+ "
                                        r"without a FISH/ISH result: b; unknown IHC score '3\+\+': d") as err:
        load_labels(p, drop_unresolved=True)
    assert "fix the unreadable values" in str(err.value)


def test_labels_id_column_of_its_own_and_mismatch_examples(tmp_path):
    """The labels table's id column had to carry the features table's name; an id mismatch named no id."""
    import pandas as pd

    from her2radiomics import targets

    lab = _write(tmp_path, "Patient ID,her2\nP01,positive\nP02,low\nP03,zero\n")
    feats = pd.DataFrame({"case_id": ["P01", "P02", "P03"], "intra_f": [1.0, 2.0, 3.0]})
    spec = targets.LabelSpec(labels_id_column="Patient ID")
    c = targets.join_labels(feats, targets.load_targets(lab, "stage1", spec), spec)
    assert c.ids == ["P01", "P02", "P03"]
    other = feats.assign(case_id=["1", "2", "3"])
    with pytest.raises(UserError, match=r"features ids e\.g\. '1', '2', '3'; labels ids e\.g\. 'P01', 'P02', 'P03'"):
        targets.join_labels(other, targets.load_targets(lab, "stage1", spec), spec)


def test_cli_pathology_export_drop_unresolved(tmp_path):
    import pandas as pd
    from conftest import run_cli

    rng = np.random.default_rng(0)
    ids = [f"P{i:02d}" for i in range(1, 41)]
    ihc = (["3+", "1+", "0", "2+"] * 10)
    fish = ["", "", "", "not amplified"] * 10
    fish[3] = fish[7] = ""  # two IHC 2+ without ISH
    pd.DataFrame({"Patient ID": ids, "IHC score (HER2)": ihc, "ISH result": fish}).to_csv(tmp_path / "L.csv", index=False)
    pd.DataFrame({"case_id": ids, **{f"intra_f{j}": rng.normal(size=40) for j in range(4)}}).to_csv(
        tmp_path / "F.csv", index=False)
    args = ["train", tmp_path / "F.csv", tmp_path / "L.csv", "--task", "stage1", "--cv-folds", "3",
            "--labels-id-column", "Patient ID", "--ihc-column", "IHC score (HER2)", "--fish-column", "ISH result"]
    r = run_cli(*args, "-o", tmp_path / "m.json")
    assert r.returncode == 2 and "P04, P08" in r.stderr and not (tmp_path / "m.json").exists(), r.stderr
    r = run_cli(*args, "-o", tmp_path / "m.json", "--drop-unresolved")
    assert r.returncode == 0, r.stderr
    assert "note: 2 case(s) with unresolved HER2 status left out (--drop-unresolved): P04, P08" in r.stdout
    assert "no usable label" not in r.stdout
    # evaluate re-reads the labels with the options stored in the card
    r = run_cli("evaluate", tmp_path / "F.csv", tmp_path / "L.csv", "--model", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
