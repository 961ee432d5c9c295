"""Every ``bash`` block of docs/cli.md and the README's typical run runs as written.

The blocks are extracted from the Markdown (continuation lines joined, comments dropped) and run in order, in
one folder, through ``her2radiomics.cli.main``. The folder holds what the examples name: small phantoms for
``cohort/manifest.csv``, and for the modelling commands a synthetic three-centre table ``features.csv`` with
``labels.csv`` (HER2 categories), a two-reader ``icc.csv`` and a pathology export ``pathology.csv`` (IHC/ISH
columns with three IHC 2+ cases without ISH). Examples naming ``duke/`` run on ../shared/data/duke when present.
The README's run extracts ``features.csv`` from two phantoms (as written); its modelling lines then use the
synthetic table, since training needs more cases than a test can extract.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SHARED_DATA
from modeling_synth import synthetic_cohort

from her2radiomics import cli

pytestmark = pytest.mark.slow


def documented_commands(md: Path, only_after: str | None = None) -> list[list[str]]:
    """The ``her2radiomics ...`` command lines of the ``bash`` blocks of ``md`` (after the line ``only_after``)."""
    text = md.read_text(encoding="utf-8")
    if only_after:
        text = text[text.index(only_after):]
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                assert argv[0] == "her2radiomics", f"{md.name}: a bash example that is not a command: {line!r}"
                cmds.append(argv[1:])
    return cmds


def _tables(d: Path) -> None:
    f, lab = synthetic_cohort(n_cases=90, n_per_region=6, regions=("intra", "peri1", "peri3", "peri5"),
                                       seed=3, effect=1.2, event_rate=0.35)
    rng = np.random.default_rng(3)
    her2 = np.where(lab["label"] == 1, "positive", np.where(rng.random(len(lab)) < 0.5, "low", "zero"))
    f.to_csv(d / "features.csv", index=False)
    pd.DataFrame({"case_id": lab["case_id"], "her2": her2, "center": lab["center"]}).to_csv(d / "labels.csv",
                                                                                               index=False)
    a = f.iloc[:30].copy()
    b = a.copy()
    num = [c for c in f.columns if c != "case_id"]
    b[num] = b[num] + rng.normal(0, 0.2, b[num].shape) * f[num].std().to_numpy()
    pd.concat([a.assign(reader="A"), b.assign(reader="B")]).to_csv(d / "icc.csv", index=False)
    two = rng.random(len(her2)) < 0.3
    ihc = np.where(her2 == "positive", np.where(two, "2+", "3+"), np.where(her2 == "low", np.where(two, "2+", "1+"), "0"))
    ish = np.where(ihc == "2+", np.where(her2 == "positive", "amplified", "not amplified"), "")
    ish[np.flatnonzero(ihc == "2+")[:3]] = ""  # IHC 2+ without ISH: unresolved
    pd.DataFrame({"Patient ID": lab["case_id"], "IHC score": ihc, "ISH result": ish}).to_csv(d / "pathology.csv",
                                                                                              index=False)


def _cohort(d: Path) -> None:
    rows = []
    for seed in (0, 1):
        out = d / "cohort" / f"case{seed}"
        _run(d, ["phantom", "-o", str(out), "--seed", str(seed), "--size", "160", "160", "48", "--spacing", "1", "1",
                 "1.2", "--lesion-radius-mm", "5"])
        rows.append({"case_id": f"case{seed}", "image": f"case{seed}/image.nrrd", "lesion": f"case{seed}/lesion.nrrd"})
    pd.DataFrame(rows).to_csv(d / "cohort" / "manifest.csv", index=False)


@contextlib.contextmanager
def _chdir(path: Path):  # contextlib.chdir needs Python 3.11
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run(cwd: Path, argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with _chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    assert rc == 0, f"her2radiomics {shlex.join(argv)} -> exit {rc}: {err.getvalue()[-800:]}"
    return out.getvalue()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("docs_examples")
    _tables(d)
    _cohort(d)
    if (SHARED_DATA / "duke").is_dir():
        (d / "duke").symlink_to(SHARED_DATA / "duke", target_is_directory=True)
    return d


def _needs_duke(argv: list[str]) -> bool:
    return any(a.startswith("duke/") for a in argv)


def test_cli_reference_examples_run_as_written(sandbox):
    cmds = documented_commands(REPO / "docs" / "cli.md")
    assert {c[0] for c in cmds} >= {"phantom", "regions", "extract", "train", "evaluate", "compare", "study",
                                    "predict", "report"}, "a command of cli.md has no runnable example"
    ran = 0
    for argv in cmds:
        if _needs_duke(argv) and not (sandbox / "duke").exists():
            continue
        _run(sandbox, argv)
        ran += 1
    assert ran >= len(cmds) - 1  # at most the Duke example is left out
    assert (sandbox / "report.html").is_file() and (sandbox / "cohort" / "FEATURES.csv").is_file()


def test_readme_typical_run_runs_as_written(sandbox, tmp_path):
    cmds = documented_commands(REPO / "README.md", only_after="A typical researcher run")[:5]
    assert [c[0] for c in cmds] == ["extract", "study", "study", "predict", "report"]
    assert all("--icc" in c for c in cmds if c[0] == "study"), "both stages take the ICC filter"
    work = tmp_path / "readme"
    shutil.copytree(sandbox / "cohort", work / "cohort")
    cache = sandbox / "cohort" / "FEATURES.cache"
    if cache.is_dir():  # extract resumes from finished cases (as documented): the cli.md example extracted them
        shutil.copytree(cache, work / "features.cache")
    _run(work, cmds[0])  # extract, as written, on the two phantoms
    assert len(pd.read_csv(work / "features.csv")) == 2
    for name in ("features.csv", "labels.csv", "icc.csv"):  # the modelling lines on the synthetic cohort
        shutil.copy(sandbox / name, work / name)
    for argv in cmds[1:]:
        _run(work, argv)
    assert (work / "report.html").is_file()


def test_documented_commands_parse_every_block(tmp_path):
    """The extractor sees continuation lines and comments; a bash block with a non-command fails loudly."""
    md = tmp_path / "x.md"
    md.write_text("```bash\nher2radiomics a b \\\n  --c 'd e'   # comment\n```\n```text\nher2radiomics SYNOPSIS\n```\n")
    assert documented_commands(md) == [["a", "b", "--c", "d e"]]
    md.write_text("```bash\nls\n```\n")
    with pytest.raises(AssertionError, match="not a command"):
        documented_commands(md)
