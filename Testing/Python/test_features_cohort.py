"""Cohort runs: manifest -> FEATURES.csv, failure isolation, sidecars, CLI exit codes, Dask == loky, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import PKG_DIR, run_cli
from features_synth import write_cohort

from her2radiomics import batch, features
from her2radiomics.errors import UserError
from her2radiomics.manifest import read_manifest


def _add_bad_cases(folder):
    """Three failing rows: missing image, lesion off the image grid, every shell excluded by the air mask."""
    img = sitk.ReadImage(str(folder / "case0_image.nrrd"))
    les = sitk.ReadImage(str(folder / "case0_lesion.nrrd"))
    off = sitk.Image(les)
    off.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(off, str(folder / "off_grid_lesion.nrrd"))
    air = sitk.GetImageFromArray((sitk.GetArrayFromImage(les) == 0).astype(np.uint8))
    air.CopyInformation(img)
    sitk.WriteImage(air, str(folder / "all_air.nrrd"))
    text = (folder / "manifest.csv").read_text(encoding="utf-8").replace("case_id,image,lesion", "case_id,image,lesion,air")
    lines = [ln + "," if i else ln for i, ln in enumerate(text.strip().splitlines())]
    lines += [
        "missing,nope_image.nrrd,case0_lesion.nrrd,",
        "offgrid,case0_image.nrrd,off_grid_lesion.nrrd,",
        "allair,case0_image.nrrd,case0_lesion.nrrd,all_air.nrrd",
    ]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_cohort_isolates_failures_and_writes_table_meta_cache(tmp_path, small_params):
    manifest = write_cohort(tmp_path / "c", 2)
    _add_bad_cases(tmp_path / "c")
    out = tmp_path / "out" / "FEATURES.csv"
    res = batch.extract_cohort(manifest, out, small_params, progress=False, auto_exclusions=False, log=lambda m: None)
    assert not res.ok
    table = pd.read_csv(out, keep_default_na=False)
    # every shell of 'allair' is excluded: the case is kept with its lesion features (shells NaN, issue 12)
    assert table["case_id"].tolist() == ["case0", "case1", "allair"]
    assert list(table.columns[:3]) == ["case_id", "reader", "intra_original_shape_VoxelVolume"]
    assert list(table.columns[-3:]) == ["parameter_file_hash", "resample", "her2radiomics_version"]
    assert [c.split("_")[0] for c in table.columns[2:-3]][::20] == ["intra", "peri1", "peri3", "peri5"]
    fails = pd.read_csv(out.with_name("FEATURES.failures.csv"), keep_default_na=False).set_index("case_id")
    assert list(fails.columns) == ["reader", "error"]
    assert "image file not found" in fails.loc["missing", "error"]
    assert "not on the image grid (spacing" in fails.loc["offgrid", "error"]
    assert "allair" not in fails.index
    notes = pd.read_csv(out.with_name("FEATURES.notes.csv"), keep_default_na=False)
    assert notes["case_id"].tolist() == ["allair"] * 3 and notes["region"].tolist() == ["peri1", "peri3", "peri5"]
    assert all("exclusion masks (air" in r for r in notes["reason"])
    meta = json.loads(out.with_name("FEATURES.meta.json").read_text(encoding="utf-8"))
    assert meta["parameter_file_hash"] == features.parameter_file_hash(features.load_params(small_params))
    assert meta["distances"] == [1.0, 3.0, 5.0] and meta["n_cases"] == 3 and meta["n_failed"] == 2
    assert meta["software"]["pyradiomics"]
    assert set(meta["missing_regions"]["allair"]) == {"peri1", "peri3", "peri5"}
    assert set(meta["diagnostics"]) == {"case0", "case1", "allair"} and meta["diagnostics"]["case0"]["margin_mm"] == 25.0
    assert meta["diagnostics"]["case1"]["voxels"]["intra"] == int(sitk.GetArrayFromImage(
        sitk.ReadImage(str(tmp_path / "c" / "case1_lesion.nrrd"))).sum())
    assert len(list(out.with_name("FEATURES.cache").glob("*.json"))) == 3  # failures are not cached
    # the table holds exactly extract_case's numbers for the case's regions (CSV round trip is exact)
    img = sitk.ReadImage(str(tmp_path / "c" / "case1_image.nrrd"))
    les = sitk.ReadImage(str(tmp_path / "c" / "case1_lesion.nrrd"))
    masks, _ = batch.case_regions(img, les, (1.0, 3.0, 5.0), auto_exclusions=False)
    direct = features.extract_case(img, masks, small_params)
    row = pd.read_csv(out).iloc[1]  # (default NA: the NaN shells of 'allair' keep the columns numeric)
    assert list(table.columns[2:-3]) == list(direct)
    assert all(row[k] == v for k, v in direct.items())
    # no stray temporary files next to the outputs
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]


def test_cli_exit_codes_and_one_line_errors(tmp_path, small_params):
    manifest = write_cohort(tmp_path / "c", 1, readers=True)
    out = tmp_path / "F.csv"
    ok = run_cli("extract", manifest, "-o", out, "--params", small_params, "--no-progress", "--no-auto-exclusions")
    assert ok.returncode == 0, ok.stderr
    assert pd.read_csv(out)["reader"].tolist() == ["R1"]
    assert "1 computed, 0 from cache, 0 failed" in ok.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("imageType:\n  Gabor: {}\n")
    r = run_cli("extract", manifest, "-o", tmp_path / "G.csv", "--params", bad)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: parameter file") and "'Gabor'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "G.csv").exists()

    r = run_cli("extract", manifest, "-o", tmp_path / "G.csv", "--params", tmp_path / "none.yaml")
    assert r.returncode == 2 and "parameter file not found" in r.stderr

    m2 = tmp_path / "m2.csv"
    m2.write_text("case,image\nx,y\n")
    r = run_cli("extract", m2, "-o", tmp_path / "G.csv")
    assert r.returncode == 2 and "lacks column(s) case_id, lesion" in r.stderr

    m3 = tmp_path / "m3.csv"
    m3.write_text(f"case_id,image,lesion\nok,{tmp_path}/c/case0_image.nrrd,{tmp_path}/c/case0_lesion.nrrd\n"
                  "lost,missing.nrrd,missing_lesion.nrrd\n")
    r = run_cli("extract", m3, "-o", tmp_path / "H.csv", "--params", small_params, "--no-auto-exclusions")
    assert r.returncode == 1 and "failed: lost: image file not found" in r.stderr
    assert pd.read_csv(tmp_path / "H.csv")["case_id"].tolist() == ["ok"]


def test_manifest_validation(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("case_id,image,lesion\na,i.nrrd,l.nrrd\na,i.nrrd,l.nrrd\n")
    with pytest.raises(UserError, match="appears twice"):
        read_manifest(m)
    m.write_text("case_id,image,lesion,label\na,i.nrrd,,\n")
    with pytest.raises(UserError, match="line 2: empty lesion"):
        read_manifest(m)
    m.write_text("case_id,reader,image,lesion,label\na,R2,sub/i.nrrd,l.nrrd,2\n")
    (spec,) = read_manifest(m)
    assert spec.reader == "R2" and spec.label == 2 and spec.image == tmp_path / "sub" / "i.nrrd"


@pytest.mark.slow
def test_dask_distributed_gives_the_same_table_as_loky(tmp_path, small_params):
    manifest = write_cohort(tmp_path / "c", 4, shape_zyx=(20, 40, 40))
    kw = dict(progress=False, auto_exclusions=False, log=lambda m: None)
    a = batch.extract_cohort(manifest, tmp_path / "loky" / "F.csv", small_params, jobs=2, backend="loky", **kw)
    b = batch.extract_cohort(manifest, tmp_path / "dask" / "F.csv", small_params, jobs=2, backend="dask", **kw)
    assert a.ok and b.ok and len(b.computed) == 4
    ran_in = {json.loads(f.read_text(encoding="utf-8"))["pid"] for f in (tmp_path / "dask" / "F.cache").glob("*.json")}
    assert os.getpid() not in ran_in  # the LocalCluster's workers did the work
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    assert (tmp_path / "loky" / "F.csv").read_bytes() == (tmp_path / "dask" / "F.csv").read_bytes()
    # --scheduler: join an existing cluster (its workers, not a new LocalCluster, run the cases); one worker
    # thread is the corner case where joblib's dask backend would run everything in the calling process
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        c = batch.extract_cohort(manifest, tmp_path / "joined" / "F.csv", small_params, backend="dask",
                                  scheduler=cluster.scheduler_address, **kw)
        from dask.distributed import Client

        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
    ran_in = {json.loads(f.read_text(encoding="utf-8"))["pid"] for f in (tmp_path / "joined" / "F.cache").glob("*.json")}
    assert c.ok and len(c.computed) == 4 and ran_in == worker_pids and os.getpid() not in ran_in
    assert (tmp_path / "joined" / "F.csv").read_bytes() == (tmp_path / "loky" / "F.csv").read_bytes()


def test_case_workers_default_per_jobs_and_same_table(tmp_path, small_params):
    """--jobs 1: each case spread over every core; --jobs 2: one process per case; the table is the same bytes."""
    manifest = write_cohort(tmp_path / "c", 3, shape_zyx=(20, 40, 40))
    kw = dict(progress=False, auto_exclusions=False, log=lambda m: None)
    runs = {
        "default": batch.extract_cohort(manifest, tmp_path / "d" / "F.csv", small_params, **kw),
        "serial": batch.extract_cohort(manifest, tmp_path / "s" / "F.csv", small_params, case_workers=1, **kw),
        "three": batch.extract_cohort(manifest, tmp_path / "t" / "F.csv", small_params, case_workers=3, **kw),
        "jobs2": batch.extract_cohort(manifest, tmp_path / "j" / "F.csv", small_params, jobs=2, **kw),
    }
    used = {name: {d["case_workers"] for d in json.loads(r.output.with_name("F.meta.json").read_text(encoding="utf-8"))["diagnostics"].values()}
            for name, r in runs.items()}
    assert used == {"default": {features.resolve_case_workers(None)}, "serial": {1}, "three": {3}, "jobs2": {1}}
    ref = (tmp_path / "s" / "F.csv").read_bytes()
    assert all(r.output.read_bytes() == ref for r in runs.values())

    r = run_cli("extract", manifest, "-o", tmp_path / "G.csv", "--params", small_params, "--case-workers", "0")
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: --case-workers must be a positive number of processes (or -1 for all cores), got 0")
    assert not (tmp_path / "G.csv").exists() and not (tmp_path / "G.cache").exists()
    ok = run_cli("extract", manifest, "-o", tmp_path / "H.csv", "--params", small_params, "--case-workers", "2",
                 "--no-progress", "--no-auto-exclusions")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "H.csv").read_bytes() == ref


@pytest.mark.slow
def test_killed_run_resumes_with_only_unfinished_cases(tmp_path, small_params):
    n = 8
    manifest = write_cohort(tmp_path / "c", n, shape_zyx=(40, 72, 72))
    out = tmp_path / "run" / "F.csv"
    cache = out.with_name("F.cache")
    env = dict(os.environ, PYTHONPATH=str(PKG_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "her2radiomics", "extract", str(manifest), "-o", str(out), "--params",
           str(small_params), "--no-progress", "--no-auto-exclusions"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(cache.glob("*.json"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash: no cleanup code runs
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in cache.glob("*.json")}
    assert 2 <= len(done) < n, "the run finished before it could be killed; make cases slower"
    assert not out.exists()

    r = subprocess.run(cmd, env=env, capture_output=True, encoding="utf-8", timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{n - len(done)} computed, {len(done)} from cache, 0 failed" in r.stderr
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished cases were not recomputed
    assert len(list(cache.glob("*.json"))) == n

    fresh = batch.extract_cohort(manifest, tmp_path / "fresh" / "F.csv", small_params, progress=False,
                                  auto_exclusions=False, log=lambda m: None)
    assert out.read_bytes() == (tmp_path / "fresh" / "F.csv").read_bytes()
    assert len(fresh.computed) == n


class _Stream:
    """A text stream that says whether it is a terminal (what tqdm's ``disable=None`` looks at)."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.parts = tty, []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty

    def text(self) -> str:
        return "".join(self.parts)


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bar_only_on_a_terminal(tmp_path, small_params, monkeypatch, tty):
    """A redirected log (scripts/demo.sh > log) gets the summary lines, not dozens of carriage-return bar updates;
    a terminal still gets the bar."""
    manifest = write_cohort(tmp_path / "c", 3)

    def fake_run(tasks, *a, **k):  # no extraction: every case fails at once, the bar still advances per case
        for spec, _ in tasks:
            yield {"case_id": spec.case_id, "reader": spec.reader, "ok": False, "error": "x"}

    monkeypatch.setattr(batch, "_run", fake_run)
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    batch.extract_cohort(manifest, tmp_path / "F.csv", small_params, progress=True, auto_exclusions=False,
                          log=lambda m: None)
    text = stream.text()
    if tty:
        assert "extract" in text and "3/3" in text and "\r" in text
    else:
        assert text == ""


def test_relative_output_lands_in_the_callers_folder_with_a_reused_pool(tmp_path, small_params, monkeypatch):
    """A relative FEATURES.csv (and so its .cache/) is resolved in the caller's folder, not in the folder the
    reused worker pool was started in: seen in the test suite, where cli.md's examples, run after another test had
    started the loky pool in the checkout, wrote `cohort/FEATURES.cache/` and `features.cache/` into the checkout
    (a later run in the right folder then found no cache)."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_cohort(second / "c", 2)
    monkeypatch.chdir(first)   # the pool's workers start here
    batch.extract_cohort(write_cohort(first / "c", 2), first / "warm.csv", small_params, jobs=2, progress=False,
                         auto_exclusions=False, log=lambda m: None)
    monkeypatch.chdir(second)
    batch.extract_cohort(Path("c") / "manifest.csv", Path("out") / "FEATURES.csv", small_params, jobs=2,
                         progress=False, auto_exclusions=False, log=lambda m: None)
    assert len(list((second / "out" / "FEATURES.cache").glob("*.json"))) == 2
    assert not (first / "out").exists(), sorted(p.name for p in first.iterdir())
