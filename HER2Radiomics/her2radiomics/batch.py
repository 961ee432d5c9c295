"""Batch feature extraction of a cohort: manifest (her2radiomics.manifest) -> FEATURES.csv with caching, resume, failure isolation and parallelism.

One task per manifest row (case x reader). Each task reads its image and masks, builds the regions (lesion +
shells minus exclusions, :func:`her2radiomics.regions.build_regions`) and calls
:func:`her2radiomics.features.extract_case`. A finished case is written atomically to
``FEATURES.cache/<key>.json``, where the key hashes the case's input files (path, size, mtime), the shell distances,
the exclusion mode, the parameter-file hash and the software version; a re-run after a crash or Ctrl-C loads those
and computes only the others. A failing case becomes a row of ``FEATURES.failures.csv`` and the cohort goes on.

Parallelism goes through joblib: the ``loky`` backend (local processes) or ``dask`` (``dask.distributed`` through
joblib's ``parallel_config(backend="dask")``; ``scheduler`` joins a running cluster, otherwise a LocalCluster with
``jobs`` single-threaded workers is started). ITK threads are limited per worker so that ``jobs`` workers share the
machine's cores instead of oversubscribing them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from her2radiomics import __version__
from her2radiomics.errors import UserError
from her2radiomics.features import CROP_RULE, load_params, parameter_file_hash, region_problem, set_threads
from her2radiomics.io import atomic_path, check_output, write_json, write_text
from her2radiomics.manifest import MANIFEST_LABEL_HINT, CaseSpec, read_manifest
from her2radiomics.provenance import (
    PARAMETER_FILE_HASH_COLUMN,
    PROVENANCE_COLUMNS,
    RESAMPLE_COLUMN,
    VERSION_COLUMN,
    resample_text,
)

if TYPE_CHECKING:
    import pandas as pd

# pandas (0.3 s), SciPy's ndimage (with the exclusion detectors, 0.3 s) and joblib are imported where they are used:
# `her2radiomics extract` starts its first case without them (the table is built once the cases are done),
# a cohort whose cases are all cached never loads the detectors, and one case at a time needs no joblib

DEFAULT_DISTANCES: tuple[float, ...] = (1.0, 3.0, 5.0)
BACKENDS = ("loky", "dask")
NOTES_COLUMNS = ("case_id", "reader", "region", "reason")
@dataclass
class CohortResult:
    """What :func:`extract_cohort` wrote and did."""

    output: Path
    table: pd.DataFrame
    failures: pd.DataFrame
    computed: list[tuple[str, str]] = field(default_factory=list)  # (case_id, reader) computed in this run
    cached: list[tuple[str, str]] = field(default_factory=list)  # loaded from the cache
    seconds: float = 0.0
    #: kept cases that lack a region: case_id, reader, region, reason (FEATURES.notes.csv)
    notes: pd.DataFrame = field(default_factory=lambda: _frame([], NOTES_COLUMNS))

    @property
    def ok(self) -> bool:
        return self.failures.empty

    def summary(self) -> str:
        if self.table.empty:
            return (f"no case could be extracted ({len(self.failures)} failed, {self.seconds:.1f} s); {self.output} not "
                    f"written; see {self.output.with_name(self.output.stem + '.failures.csv')}")
        n_lacking = self.notes["case_id"].nunique() if not self.notes.empty else 0
        lacking = (f"; {n_lacking} kept without some region (NaN columns, reasons in "
                   f"{self.output.with_name(self.output.stem + '.notes.csv').name})" if n_lacking else "")
        return (
            f"{len(self.table)} case(s) written to {self.output}: {len(self.computed)} computed, "
            f"{len(self.cached)} from cache, {len(self.failures)} failed ({self.seconds:.1f} s){lacking}"
        )


# --------------------------------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------------------------------
def _frame(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=list(columns))


def _file_sig(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def case_key(spec: CaseSpec, phash: str, distances: Sequence[float], auto_exclusions: bool,
             resample: Mapping[str, Any] | None = None, case_mode: Mapping[str, Any] | None = None) -> str:
    """Cache key of one case: hash of its input files (path, size, mtime), distances, exclusions, params, version
    and the resampling (when asked for)."""
    from her2radiomics.exclusions import DETECTOR_VERSION

    payload = {
        **({"resample": dict(resample)} if resample else {}),
        "software": __version__,
        "params": phash,
        "distances": [float(d) for d in distances],
        "auto_exclusions": bool(auto_exclusions),
        # what the values depend on beyond the inputs: the automatic detectors and the crop rule (a cache written by
        # an earlier detector or crop is recomputed, never mixed with new cases)
        **({"detector": DETECTOR_VERSION} if auto_exclusions else {}),
        "crop": CROP_RULE,
        "case_id": spec.case_id,
        "reader": spec.reader,
        "label": spec.label,
        **({"series": spec.series} if spec.series else {}),  # (absent when unset: earlier cache keys stay valid)
        "files": {r: _file_sig(getattr(spec, r)) for r in ("image", "lesion", "air", "pectoralis")},
    }
    if case_mode or spec.dce_phases or spec.sequences:   # issue16 (absent otherwise: earlier cache keys stay valid)
        payload["case_mode"] = dict(case_mode or {})
        if spec.sequences:
            payload["sequences"] = [[q.name, _file_sig(q.image), _file_sig(q.lesion)] for q in spec.sequences]
        if spec.dce_phases:
            payload["dce"] = {"phases": [_file_sig(Path(t)) for t in spec.dce_phases.split(";")],
                              "times": spec.dce_times}
    canon = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:32]


def case_regions(image, lesion, distances, air=None, pectoralis=None, auto_exclusions=True) -> tuple[dict, list[str]]:
    """Feature masks (intra + shells after exclusions) and warnings for one case (``regions.build_regions``)."""
    from her2radiomics.regions import build_regions

    r = build_regions(image, lesion, tuple(distances), air=air, pectoralis=pectoralis, auto_exclusions=auto_exclusions)
    return dict(r.feature_masks()), list(r.warnings)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text or 'no message'}"


def compute_case(
    spec: CaseSpec,
    params: dict,
    distances: Sequence[float],
    auto_exclusions: bool,
    cache_file: Path | None,
    threads: int = 1,
    resample: Mapping[str, Any] | None = None,
    case_workers: int | None = 1,
    case_mode: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one case (read, [resample], regions, features) and cache it; never raises for a case-level problem.

    ``resample``: ``{"spacing": (x, y, z), "interpolator": "linear"|"bspline"}``: the image is interpolated onto that
    grid and every mask by nearest neighbour (after being checked on the original grid), before the shells are built.
    ``case_workers``: processes the case's feature computation is spread over (features.extract_case).
    ``case_mode`` (issue 16): ``{"dce": {"phase", "subtraction"}, "mode": "3d"|"2d-max", "pixel_spacing"}``: the
    radiomics phase of a DCE series (+ kinetic columns), and the lesion's largest cross-section / true 2D images.
    """
    from her2radiomics.features import extract_case_from_lesion
    from her2radiomics.regions import build_regions

    set_threads(threads)
    t0 = time.perf_counter()
    mode = dict(case_mode or {})
    two_d = mode.get("mode") == "2d-max"
    if spec.sequences:   # issue16 hook: several sequences per case (her2radiomics.multiseq)
        return _compute_sequences_case(spec, params, distances, auto_exclusions, cache_file, t0, case_workers, mode)
    try:
        # issue16 hook: DCE series (radiomics phase / subtraction, kinetics) and 2D cases
        from her2radiomics import kinetics, planar

        dce_opts = kinetics.DceOptions(**(mode.get("dce") or {}))
        image, lesion, air, pect, excl_image, series = _read_case(spec, mode, dce_opts, resample)
        slice_info = None
        if two_d:
            image, lesion, air, pect, excl_image, series, slice_info = planar.case_slices(
                image, lesion, air, pect, excl_image, series)
            params = planar.force2d_params(params)
        missing: dict[str, str] = {}
        built: dict[str, Any] = {}

        def regions_step() -> dict:  # 3D: runs while the case workers compute the lesion's features
            regs = build_regions(image, lesion, tuple(distances), air=air, pectoralis=pect,
                                 auto_exclusions=auto_exclusions, exclusion_image=excl_image)
            masks = dict(regs.feature_masks())
            built.update(regs=regs, warnings=list(regs.warnings))
            # an empty or unusable shell costs only its own columns (NaN), never the case; the lesion must be usable
            for name in list(masks)[1:]:
                reason = regs.stats[name].get("empty_reason")
                if reason is None:
                    problem = region_problem(planar.as_volume(masks[name]) if two_d else masks[name], params)
                    reason = f"{name} cannot be used by pyradiomics: {problem}" if problem else None
                if reason:
                    missing[name] = reason
                    del masks[name]
            return masks

        info: dict[str, Any] = {}
        if two_d:
            feats = planar.extract_case_2d(image, regions_step(), params, info=info, case_workers=case_workers)
        else:
            feats = extract_case_from_lesion(image, lesion, max(distances), regions_step, params, info=info,
                                             case_workers=case_workers)
        warnings = built["warnings"]
        feats = _with_missing_regions(feats, list(built["regs"].feature_masks()), missing)
        if series is not None:   # issue16: {region}_kinetic_* and intra_tic_type columns
            feats.update(kinetics.case_kinetic_columns(series, built["regs"].feature_masks()))
        if slice_info is not None:
            warnings.append(planar.slice_note(slice_info))
    except Exception as exc:  # noqa: BLE001 - failure isolation: any case-level error becomes a failures row
        return {"case_id": spec.case_id, "reader": spec.reader, "ok": False, "error": _one_line(exc)}
    record = {
        "case_id": spec.case_id,
        "reader": spec.reader,
        "ok": True,
        "features": feats,
        "missing_regions": missing,
        "warnings": warnings,
        "diagnostics": {k: info[k] for k in ("crop_bbox_zyx", "crop_size_xyz", "margin_mm", "voxels", "case_workers")},
        "seconds": time.perf_counter() - t0,
        "pid": os.getpid(),
    }
    if cache_file is not None:
        write_text(json.dumps(record, allow_nan=True), cache_file)
    return record


def _read_case(spec: CaseSpec, mode: Mapping[str, Any], dce_opts: Any, resample: Mapping[str, Any] | None
               ) -> tuple[Any, Any, Any, Any, Any, Any]:
    """A case's image and masks, read (a DCE series: its radiomics image and exclusion image; a 2D file in
    "2d-max" mode: the 2D reader) and resampled when asked: ``(image, lesion, air, pectoralis, exclusion image,
    DCE series or None)`` (SimpleITK images)."""
    from her2radiomics import kinetics, planar
    from her2radiomics.io import read_image, read_mask, resample_image, resample_mask

    two_d = mode.get("mode") == "2d-max"
    series = excl_image = None
    if spec.dce_phases:
        series = kinetics.read_series(spec.dce_phases, spec.dce_times)
        image, excl_image = kinetics.case_images(series, dce_opts)
    elif two_d and planar.is_2d_file(spec.image):
        image, lesion, air, pect = planar.read_case_2d(spec.image, spec.lesion, spec.air, spec.pectoralis,
                                                       mode.get("pixel_spacing"), spec.label)
    else:
        image = read_image(spec.image, "image", series=spec.series)
    if image.GetDimension() == 3:
        lesion = read_mask(spec.lesion, image, "lesion", label=spec.label, label_hint=MANIFEST_LABEL_HINT)
        air = read_mask(spec.air, image, "air mask") if spec.air else None
        pect = read_mask(spec.pectoralis, image, "pectoralis mask") if spec.pectoralis else None
    if resample:
        if series is not None:   # every phase onto the grid, then the radiomics image from the resampled phases
            series = kinetics.resample_series(series, resample["spacing"], resample["interpolator"])
            image, excl_image = kinetics.case_images(series, dce_opts)
        else:
            image = resample_image(image, resample["spacing"], resample["interpolator"])
        lesion, air, pect = (resample_mask(m, image) if m is not None else None for m in (lesion, air, pect))
    return image, lesion, air, pect, excl_image, series


def _compute_sequences_case(spec: CaseSpec, params: dict, distances: Sequence[float], auto_exclusions: bool,
                            cache_file: Path | None, t0: float, case_workers: int | None,
                            mode: Mapping[str, Any]) -> dict[str, Any]:
    """Issue 16: one case with several sequences -> ``{seq}_{region}_*`` features (like compute_case)."""
    from her2radiomics.multiseq import compute_sequences

    if mode:
        return {"case_id": spec.case_id, "reader": spec.reader, "ok": False,
                "error": "--phase/--subtraction/--mode 2d-max are not available with image_<seq> columns yet; "
                         "run those options on a single-sequence manifest"}
    try:
        feats, missing, warnings, seq_info = compute_sequences(
            spec.sequences, params, distances, auto_exclusions=auto_exclusions, air=spec.air,
            pectoralis=spec.pectoralis, label=spec.label, case_workers=case_workers)
    except Exception as exc:  # noqa: BLE001 - failure isolation, as in compute_case
        return {"case_id": spec.case_id, "reader": spec.reader, "ok": False, "error": _one_line(exc)}
    record = {"case_id": spec.case_id, "reader": spec.reader, "ok": True, "features": feats,
              "missing_regions": missing, "warnings": warnings, "diagnostics": {"sequences": seq_info},
              "seconds": time.perf_counter() - t0, "pid": os.getpid()}
    if cache_file is not None:
        write_text(json.dumps(record, allow_nan=True), cache_file)
    return record


def _case_mode(phase: int | None, subtraction: bool, mode: str, pixel_spacing: Sequence[float] | None
               ) -> dict[str, Any] | None:
    """Issue 16 options of every case (checked up front), or None for the plain 3D extraction."""
    from her2radiomics.kinetics import check_options
    from her2radiomics.planar import MODES

    if mode not in MODES:
        raise UserError(f"unknown --mode {mode!r}; use one of {', '.join(MODES)}")
    if pixel_spacing is not None and mode != "2d-max":
        raise UserError("--pixel-spacing is for 2D images; use it with --mode 2d-max")
    out: dict[str, Any] = {}
    if phase is not None or subtraction:
        out["dce"] = check_options(phase, subtraction).to_json()
    if mode != "3d":
        out["mode"] = mode
    if pixel_spacing is not None:
        out["pixel_spacing"] = [float(v) for v in pixel_spacing]
    return out or None


def _with_missing_regions(feats: dict[str, float], regions: list[str], missing: Mapping[str, str]) -> dict[str, float]:
    """Features in region order with NaN columns for the ``missing`` regions.

    Every region is extracted with the same parameters, so a missing region's columns are the lesion's
    (``intra_*``) names under its own prefix; the table keeps the same columns whichever cases lack a shell.
    """
    if not missing:
        return feats
    names = [k[len("intra_"):] for k in feats if k.startswith("intra_")]
    out: dict[str, float] = {}
    for reg in regions:
        if reg in missing:
            out.update({f"{reg}_{n}": float("nan") for n in names})
        else:
            out.update({k: v for k, v in feats.items() if k.startswith(f"{reg}_")})
    return out


def _load_cached(cache_file: Path) -> dict | None:
    try:
        rec = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if rec.get("ok") and isinstance(rec.get("features"), dict) else None


# --------------------------------------------------------------------------------------------------------------
# cohort
# --------------------------------------------------------------------------------------------------------------
def _label(rec: dict) -> str:
    return f"{rec['case_id']}/{rec['reader']}" if rec["reader"] else rec["case_id"]


def _software() -> dict[str, str]:
    import numpy as np
    import radiomics
    import SimpleITK as sitk

    return {
        "her2radiomics": __version__,
        "pyradiomics": str(radiomics.__version__),
        "SimpleITK": sitk.Version.VersionString(),
        "numpy": np.__version__,
    }


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while child processes are started (they inherit it), then restore this process' handler.

    A terminal's Ctrl-C goes to the whole process group; without this every Dask worker and nanny prints its own
    KeyboardInterrupt traceback while the main process reports the interruption.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _run(
    tasks: list[tuple[CaseSpec, Path]],
    worker: Callable[..., dict],
    args: tuple,
    jobs: int,
    backend: str,
    scheduler: str | None,
) -> Iterator[dict]:
    """Yield task results as they finish, on joblib's loky or dask backend (one loky job: in this process, in order,
    as joblib itself runs ``n_jobs=1``, without importing it)."""
    ncpu = os.cpu_count() or 1
    if backend != "dask" and min(jobs, len(tasks)) <= 1:
        for spec, cache in tasks:
            yield worker(spec, *args, cache, ncpu)
        return
    from joblib import Parallel, delayed, parallel_config

    with ExitStack() as stack:
        if backend == "dask":
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise UserError("--backend dask needs dask[distributed]; pip install 'dask[distributed]'") from None
            if scheduler:
                try:
                    stack.enter_context(Client(scheduler, timeout="20s"))
                except (OSError, TimeoutError) as exc:
                    raise UserError(f"cannot reach the Dask scheduler {scheduler}: {_one_line(exc)}; check --scheduler") from None
                nworkers = max(1, len(Client.current().scheduler_info().get("workers", {})))
            else:
                nworkers = max(1, jobs)
                with _sigint_ignored():  # worker processes inherit it: Ctrl-C stops this process only, cleanly
                    cluster = stack.enter_context(
                        LocalCluster(n_workers=nworkers, threads_per_worker=1, processes=True, dashboard_address=None)
                    )
                stack.enter_context(Client(cluster))
            threads = max(1, ncpu // nworkers) if not scheduler else 1
            client = Client.current()
            if sum(client.ncores().values()) < 2:
                # joblib runs n_jobs == 1 in the calling process; a one-thread cluster must still do the work
                from dask.distributed import as_completed

                futures = [client.submit(worker, spec, *args, cache, threads, pure=False) for spec, cache in tasks]
                for fut in as_completed(futures):
                    yield fut.result()
                return
            stack.enter_context(parallel_config(backend="dask"))
            n_jobs = -1
        else:
            n_jobs = max(1, min(jobs, len(tasks)))
            threads = max(1, ncpu // n_jobs)
            stack.enter_context(parallel_config(backend="loky", inner_max_num_threads=threads if n_jobs > 1 else None))
        par = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        yield from par(delayed(worker)(spec, *args, cache, threads) for spec, cache in tasks)


def extract_cohort(
    manifest: str | os.PathLike[str],
    output: str | os.PathLike[str],
    params: str | os.PathLike[str] | dict | None = None,
    distances: Sequence[float] = DEFAULT_DISTANCES,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
    *,
    auto_exclusions: bool = True,
    log: Callable[[str], None] | None = None,
    resample_spacing: Sequence[float] | None = None,
    interpolator: str = "linear",
    case_workers: int | None = None,
    qa: str | os.PathLike[str] | None = None,
    only_approved: bool = False,
    phase: int | None = None,
    subtraction: bool = False,
    mode: str = "3d",
    pixel_spacing: Sequence[float] | None = None,
) -> CohortResult:
    """Extract features for every manifest row and write FEATURES.csv (+ .meta.json, .failures.csv, .cache/).

    Output columns: ``case_id, reader`` then ``{region}_{pyradiomics name}`` in a stable order (manifest order of
    rows; columns in pyradiomics' order per region, regions intra, peri1, peri3, peri5). Cases found in the cache
    are not recomputed. Failed cases are listed in ``FEATURES.failures.csv`` (case_id, reader, error) and left
    out of the table. All files are written atomically. ``progress``: a tqdm bar on stderr when
    stderr is a terminal (never in a redirected log). ``resample_spacing`` (mm, x y z): every case is first brought
    onto that spacing (image: ``interpolator`` linear or bspline; masks: nearest neighbour; see docs/features.md).
    Kept cases that lack a shell (empty or unusable) have NaN in its columns and a row in ``FEATURES.notes.csv``.
    ``case_workers``: processes each case is spread over (``--case-workers``); default all cores when cases run one
    at a time (``jobs`` 1, loky), else 1 (the cores already go to parallel cases). ``qa``: a QA session folder
    (docs/qa.md) whose edited masks replace the manifest's; ``only_approved``: extract only its approved/edited cases
    (one ``note:`` line per skipped row). Returns a :class:`CohortResult`. Issue 16: ``phase`` / ``subtraction``:
    the radiomics phase of the cases' DCE series (manifest ``dce_phases``; default the 2nd post-contrast phase)
    and kinetic columns (docs/kinetics.md); ``mode`` "2d-max": regions and features on the lesion's largest
    cross-section (true 2D images as they are; ``pixel_spacing`` for pictures without one; docs/regions.md).
    """
    t0 = time.perf_counter()
    distances, jobs, resample = _check_run_options(backend, distances, jobs, resample_spacing, interpolator)
    case_mode = _case_mode(phase, subtraction, mode, pixel_spacing)   # issue16 (None: the plain 3D extraction)
    from her2radiomics.features import resolve_case_workers

    one_at_a_time = backend == "loky" and jobs == 1
    case_workers = resolve_case_workers(case_workers) if (case_workers is not None or one_at_a_time) else 1
    specs = read_manifest(manifest)
    say = log or (lambda msg: print(msg, file=sys.stderr))
    specs, qa_notes = _apply_qa(specs, manifest, qa, only_approved, say)
    if case_mode and "dce" in case_mode and not any(s.dce_phases for s in specs):   # issue16
        raise UserError("--phase/--subtraction choose a phase of a DCE series; the manifest has no dce_phases column "
                        "(give the phases there, or drop the options)")
    params_dict = load_params(params)
    phash = parameter_file_hash(params_dict)
    # absolute in the caller's folder: the cache files are written by worker processes, and a reused pool's
    # workers keep the folder they were started in
    out = Path(output).absolute()
    if out.suffix.lower() != ".csv":
        raise UserError(f"output {out} must end in .csv")
    check_output(out, "features table", inputs=[manifest, params if isinstance(params, (str, os.PathLike)) else None])
    cache_dir = check_output(out.with_name(out.stem + ".cache"), "cache folder", folder=True)
    cache_dir.mkdir(parents=True, exist_ok=True)

    records, cached, todo = _lookup_cache(specs, cache_dir, phash, distances, auto_exclusions, resample, case_mode)
    say(f"extract: {len(specs)} case(s), {len(cached)} in cache, {len(todo)} to compute")
    computed = _compute(todo, records, (params_dict, distances, auto_exclusions), jobs=jobs, backend=backend,
                        scheduler=scheduler, progress=progress, resample=resample, case_workers=case_workers,
                        one_at_a_time=one_at_a_time, case_mode=case_mode)
    table, fails, columns, lacks = _assemble(specs, records, phash, resample)
    failures = _frame(fails, ["case_id", "reader", "error"])
    notes = _frame(lacks, NOTES_COLUMNS)

    def finish() -> CohortResult:
        result = CohortResult(out, table, failures, computed, cached, time.perf_counter() - t0, notes)
        _say_outcome(result, fails, lacks, say)
        return result

    _write_side_tables(out, failures, notes, has_rows=not table.empty)
    if table.empty:  # every case failed: no empty table (it would only fail later, in 'train'), just the failure list
        with contextlib.suppress(OSError):
            cache_dir.rmdir()  # only when empty
        return finish()
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    meta = _features_meta(specs, records, table, fails, columns, phash=phash, params=params, params_dict=params_dict,
                          distances=distances, auto_exclusions=auto_exclusions, resample=resample,
                          case_mode=case_mode, qa=qa, only_approved=only_approved, qa_notes=qa_notes)
    write_json(meta, out.with_name(out.stem + ".meta.json"))
    return finish()


def _features_meta(specs: Sequence[CaseSpec], records: Mapping[tuple[str, str], dict], table: pd.DataFrame,
                   fails: list[dict], columns: Sequence[str], *, phash: str,
                   params: str | os.PathLike[str] | dict | None, params_dict: dict, distances: Sequence[float],
                   auto_exclusions: bool, resample: Mapping[str, Any] | None, case_mode: Mapping[str, Any] | None,
                   qa: str | os.PathLike[str] | None, only_approved: bool, qa_notes: list[str]) -> dict[str, Any]:
    """The FEATURES.meta.json record: how the table was made, its counts, and the kept cases' warnings, missing
    regions and diagnostics."""
    ok_records = [r for r in (records[(s.case_id, s.reader)] for s in specs) if r["ok"]]
    return {
        PARAMETER_FILE_HASH_COLUMN: phash,
        "parameter_file": str(Path(params).resolve()) if isinstance(params, (str, os.PathLike)) else ("default" if params is None else "dict"),
        "software": _software(),
        "distances": list(distances),
        "auto_exclusions": bool(auto_exclusions),
        "resample": {**resample, "masks": "nearest"} if resample else None,
        **({"case_mode": case_mode} if case_mode else {}),
        "params": params_dict,
        "n_cases": len(table),
        "n_failed": len(fails),
        "n_features": len(columns),
        "warnings": {_label(r): r.get("warnings", []) for r in ok_records if r.get("warnings")},
        # kept cases without some region: {case: {region: reason}} (their columns are NaN; FEATURES.notes.csv)
        "missing_regions": {_label(r): r["missing_regions"] for r in ok_records if r.get("missing_regions")},
        "provenance_columns": list(PROVENANCE_COLUMNS),
        **({"qa": {"session": str(Path(qa).resolve()), "only_approved": bool(only_approved), "notes": qa_notes}}
           if qa is not None else {}),
        # per-case diagnostics (kept out of the table): crop box and size, margin, region voxel counts
        "diagnostics": {_label(r): r.get("diagnostics", {}) for r in ok_records},
    }


def _say_outcome(result: CohortResult, fails: list[dict], lacks: list[dict], say: Callable[[str], None]) -> None:
    """The summary line, one ``failed:`` line per failed case and one ``note:`` line per missing region."""
    say(result.summary())
    for f in fails:
        say(f"failed: {f['case_id']}{' (' + f['reader'] + ')' if f['reader'] else ''}: {f['error']}")
    for n in lacks:
        say(f"note: {n['case_id']}{' (' + n['reader'] + ')' if n['reader'] else ''}: {n['reason']}; "
            f"its {n['region']}_* columns are empty")


def _check_run_options(backend: str, distances: Sequence[float], jobs: int, resample_spacing: Sequence[float] | None,
                       interpolator: str) -> tuple[tuple[float, ...], int, dict | None]:
    """Options checked up front (a bad value is the user's, not every case's, failure): the backend, the shell
    distances, ``jobs`` (-1 = all cores) and the resampling; returns (distances, jobs, resample record or None)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    from her2radiomics.regions import validate_distances

    distances = validate_distances(distances)
    if jobs == 0 or jobs < -1:
        raise UserError(f"--jobs must be a positive number of processes (or -1 for all cores), got {jobs}")
    if jobs == -1:
        jobs = os.cpu_count() or 1
    from her2radiomics.io import INTERPOLATORS, check_spacing

    spacing = check_spacing(resample_spacing)
    if interpolator not in INTERPOLATORS:
        raise UserError(f"unknown interpolator {interpolator!r}; use one of {', '.join(INTERPOLATORS)}")
    resample = {"spacing": list(spacing), "interpolator": interpolator} if spacing else None
    return distances, jobs, resample


def _apply_qa(specs: list[CaseSpec], manifest: str | os.PathLike[str], qa: str | os.PathLike[str] | None,
              only_approved: bool, say: Callable[[str], None]) -> tuple[list[CaseSpec], list[str]]:
    """Reviewed masks of the QA session ``qa`` replace the manifest's; ``only_approved`` drops the other rows
    (docs/qa.md). Returns (rows, note lines)."""
    if qa is None:
        if only_approved:
            raise UserError("--only-approved needs --qa SESSION (the QA session whose approved cases to extract)")
        return specs, []
    from her2radiomics.qa import QASession

    specs, qa_notes = QASession.open(qa).extraction_specs(specs, only_approved)
    for note in qa_notes:
        say(f"note: {note}")
    if not specs:
        raise UserError(f"no case of manifest {manifest} is approved in QA session {qa}; review cases first "
                        "(her2radiomics qa status) or drop --only-approved")
    return specs, qa_notes


def _lookup_cache(specs: Sequence[CaseSpec], cache_dir: Path, phash: str, distances: Sequence[float],
                  auto_exclusions: bool, resample: dict | None, case_mode: dict | None = None
                  ) -> tuple[dict[tuple[str, str], dict], list[tuple[str, str]], list[tuple[CaseSpec, Path]]]:
    """Cases already in ``cache_dir`` (records, their keys) and the ones to compute (row, cache file)."""
    records: dict[tuple[str, str], dict] = {}
    cached: list[tuple[str, str]] = []
    todo: list[tuple[CaseSpec, Path]] = []
    for spec in specs:
        cache = cache_dir / f"{case_key(spec, phash, distances, auto_exclusions, resample, case_mode)}.json"
        rec = _load_cached(cache) if cache.exists() else None
        if rec is not None:
            records[(spec.case_id, spec.reader)] = rec
            cached.append((spec.case_id, spec.reader))
        else:
            todo.append((spec, cache))
    return records, cached, todo


def _compute(todo: list[tuple[CaseSpec, Path]], records: dict[tuple[str, str], dict], args: tuple, *, jobs: int,
             backend: str, scheduler: str | None, progress: bool, resample: dict | None, case_workers: int,
             one_at_a_time: bool, case_mode: dict | None = None) -> list[tuple[str, str]]:
    """Compute the ``todo`` cases (:func:`_run`), adding their records; returns the keys of those that succeeded."""
    computed: list[tuple[str, str]] = []
    if not todo:
        return computed
    from tqdm import tqdm

    from her2radiomics.features import case_pool

    # disable=None: a bar only on a terminal; a redirected log gets the summary lines, not carriage returns
    bar = tqdm(total=len(todo), desc="extract", unit="case", file=sys.stderr, disable=None if progress else True)
    worker = functools.partial(compute_case, resample=resample, case_workers=case_workers, case_mode=case_mode)
    if one_at_a_time and case_workers > 1:
        case_pool(case_workers)  # forked now, before any image is read: small helpers, started once per run
    try:
        for rec in _run(todo, worker, args, jobs, backend, scheduler):
            key = (rec["case_id"], rec["reader"])
            records[key] = rec
            if rec["ok"]:
                computed.append(key)
            bar.update(1)
    finally:
        bar.close()
    return computed


def _assemble(specs: Sequence[CaseSpec], records: Mapping[tuple[str, str], dict], phash: str, resample: dict | None
              ) -> tuple[pd.DataFrame, list[dict], list[str], list[dict]]:
    """The features table in manifest order (+ provenance columns), the failures, the feature columns and the
    kept cases' missing regions."""
    rows, fails, columns, lacks = [], [], [], []
    seen_cols: set[str] = set()
    for spec in specs:
        rec = records[(spec.case_id, spec.reader)]
        if not rec["ok"]:
            fails.append({"case_id": spec.case_id, "reader": spec.reader, "error": rec["error"]})
            continue
        for region, reason in (rec.get("missing_regions") or {}).items():
            lacks.append({"case_id": spec.case_id, "reader": spec.reader, "region": region, "reason": reason})
        for c in rec["features"]:
            if c not in seen_cols:
                seen_cols.add(c)
                columns.append(c)
        rows.append({"case_id": spec.case_id, "reader": spec.reader, **rec["features"]})
    table = _frame(rows, ["case_id", "reader", *columns])
    # provenance that survives copying the table without its .meta.json (her2radiomics.provenance)
    table[PARAMETER_FILE_HASH_COLUMN] = phash
    table[RESAMPLE_COLUMN] = resample_text(resample)
    table[VERSION_COLUMN] = __version__
    return table, fails, columns, lacks


def _write_side_tables(out: Path, failures: pd.DataFrame, notes: pd.DataFrame, *, has_rows: bool) -> None:
    """``FEATURES.failures.csv`` and ``FEATURES.notes.csv`` (atomically); a stale one from an earlier run is removed."""
    fail_path = out.with_name(out.stem + ".failures.csv")
    if not failures.empty:
        with atomic_path(fail_path) as tmp:
            failures.to_csv(tmp, index=False)
    elif fail_path.exists():
        fail_path.unlink()  # a stale list from an earlier run would mislead
    notes_path = out.with_name(out.stem + ".notes.csv")
    if not notes.empty and has_rows:
        with atomic_path(notes_path) as tmp:
            notes.to_csv(tmp, index=False)
    elif notes_path.exists():
        notes_path.unlink()
