"""One case end to end: this engine through the CLI (regions + features) against best-practice pyradiomics.

    python benchmarks/bench_case.py [--lesions small project large] [--cases 3] [--skip-full] [--also-serial]
                                    [--slicer-worker]

For each lesion size, ``--cases`` phantoms (``phantom.make_phantom(seed=0, 1, 2, lesion_radius_mm=R)``,
448 x 448 x 160, 0.74 x 0.74 x 1.2 mm; "project" is the ``her2radiomics phantom`` default, R = 8 mm, seed 0 gives
the 3,280-voxel lesion; "small" R = 6 mm; "large" R = 15 mm) are written as NRRD, and on the same files:

  (c)  this engine, end to end: ``python -m her2radiomics extract MANIFEST`` (default parameter file, shells 1/3/5 mm,
       automatic air/pectoralis exclusions, lesion + 3 shells x 1,316 features) on a manifest of the cases, so
       process start is amortised over them; time per case = wall / cases. Default case workers (all cores).
  (c1) with ``--also-serial``: the same with ``--case-workers 1`` (the engine before within-case parallelism).
  (b)  best-practice pyradiomics, features only: per region, one crop of the region's box + the same margin
       (``features.crop_margin``: 25 mm) and ``RadiomicsFeatureExtractor(same file).execute``; regions (built with
       ``regions.build_regions`` exactly as the CLI does) and images are read before timing.
  (a)  the whole-image ``execute`` for one region (intra) of each size's first case (about 40-100 s and 5 GB each;
       ``--skip-full``).
  (s)  with ``--slicer-worker``: the Slicer panel's background extraction (``python -m HER2RadiomicsLib.extract_worker``
       on a job folder from ``runner.prepare_job``) for the first case, case workers 1 and default.

Each variant runs in a fresh process. Reported: wall and CPU (user + sys of the process and its helpers, from
``wait4``) per case, the largest process's peak RSS (``ru_maxrss``), the peak sum of PSS over the process tree
(sampled every 50 ms: shared pages counted once), the load average before and after, and the ratios (b)/(c) and
(a)/(c) (per region). Targets (issue 14): (c) <= 2.5 s per case on 2 cores, (b)/(c) >= 1.5, peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PKG = HERE.parent / "HER2Radiomics"
sys.path.insert(0, str(PKG))

LESIONS = {"small": 6.0, "project": 8.0, "large": 15.0}
REGIONS = ("intra", "peri1", "peri3", "peri5")


# ----------------------------------------------------------------------------------------------------------- cases
def build_cases(workdir: Path, lesions: list[str], n: int) -> dict[str, list[Path]]:
    """Write n phantoms per lesion size (image, lesion) and their regions (for (b), (a), (s)); returns the folders."""
    import SimpleITK as sitk

    from her2radiomics.phantom import make_phantom
    from her2radiomics.regions import build_regions

    out: dict[str, list[Path]] = {}
    for name in lesions:
        out[name] = []
        for seed in range(n):
            d = workdir / f"{name}{seed}"
            d.mkdir(parents=True, exist_ok=True)
            ph = make_phantom(seed=seed, lesion_radius_mm=LESIONS[name])
            sitk.WriteImage(ph.image, str(d / "image.nrrd"), True)
            sitk.WriteImage(ph.lesion, str(d / "lesion.nrrd"), True)
            reg = build_regions(ph.image, ph.lesion, (1.0, 3.0, 5.0), auto_exclusions=True)
            voxels = {}
            for r, m in reg.feature_masks().items():
                sitk.WriteImage(m, str(d / f"reg_{r}.nrrd"), True)
                voxels[r] = int(sitk.GetArrayViewFromImage(m).sum())
            (d / "voxels.json").write_text(json.dumps(voxels))
            out[name].append(d)
        manifest = workdir / f"{name}.csv"
        manifest.write_text("case_id,image,lesion\n" + "".join(
            f"{d.name},{d.name}/image.nrrd,{d.name}/lesion.nrrd\n" for d in out[name]))
    return out


# -------------------------------------------------------------------------------------------------- measurement
def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text(encoding="utf-8").split()]
        except OSError:
            pass
    return pids


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="utf-8").splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run cmd; wall, CPU (user+sys, helpers included), max RSS of one process, peak PSS of the tree, stdout."""
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as fo, tempfile.TemporaryFile("w+", encoding="utf-8") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, env=env)
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], sum(_pss_mb(p) for p in _tree(proc.pid)))
                stop.wait(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, ru = os.wait4(proc.pid, 0)  # rusage of the child and of its reaped helpers
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        stop.set()
        th.join()
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024.0,
            "pss_peak_mb": peak[0], "load": (load0, os.getloadavg()[0]), "stdout": out}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------------------------------- in-process variants
def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def run_inprocess(variant: str, folders: list[Path]) -> dict:
    """(b) per-region crop execute for every case, or (a) whole-image execute for intra of the first case."""
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from her2radiomics import features
    from her2radiomics.geometry import bbox_zyx, crop, expand_bbox_mm

    features.set_threads(len(os.sched_getaffinity(0)))  # the same ITK thread allowance as the CLI's cases
    params = features.load_params()
    features._quiet_radiomics()
    margin, extra = features.crop_margin(params)
    if variant == "e":
        return run_engine(folders, params)
    cases = []
    for d in folders if variant == "b" else folders[:1]:
        image = sitk.ReadImage(str(d / "image.nrrd"))
        masks = {r: sitk.ReadImage(str(d / f"reg_{r}.nrrd")) for r in (REGIONS if variant == "b" else ("intra",))}
        cases.append((image, masks))
    walls, cpus, n_feat = [], [], 0
    for image, masks in cases:
        ext = RadiomicsFeatureExtractor(params)  # the parameter file, as a user's script would load it
        t, c = time.perf_counter(), time.process_time()
        n_feat = 0
        for m in masks.values():
            if variant == "b":
                arr = sitk.GetArrayViewFromImage(m)
                bb = expand_bbox_mm(bbox_zyx(arr), image.GetSpacing(), margin, arr.shape, extra)
                out = ext.execute(crop(image, bb), crop(m, bb))
            else:
                out = ext.execute(image, m)
            n_feat += sum(not k.startswith("diagnostics_") for k in out)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"walls": walls, "cpus": cpus, "n_features": n_feat, "vmhwm_mb": _vmhwm_mb()}


def run_engine(folders: list[Path], params: dict) -> dict:
    """(e) this engine's features only (extract_case on the same regions), default case workers then 1."""
    import SimpleITK as sitk

    from her2radiomics import features

    features.case_pool(features.resolve_case_workers(None))
    res: dict = {"vmhwm_mb": 0.0}
    for workers in (None, 1):
        key = "auto" if workers is None else str(workers)
        res[key] = []
        for d in folders:
            image = sitk.ReadImage(str(d / "image.nrrd"))
            masks = {r: sitk.ReadImage(str(d / f"reg_{r}.nrrd")) for r in REGIONS}
            info: dict = {}
            t, c = time.perf_counter(), time.process_time()
            features.extract_case(image, masks, params, info=info, case_workers=workers, reach_mm=5.0)  # the CLI crop
            res[key].append({"wall": time.perf_counter() - t, "cpu": time.process_time() - c,
                             "shares": info["share_cpu_seconds"], "workers": info["case_workers"]})
    res["vmhwm_mb"] = _vmhwm_mb()
    return res


# ------------------------------------------------------------------------------------------------------- main
def _fmt(x: dict, per: int) -> str:
    return (f"{x['wall'] / per:.2f} s per case (wall {x['wall']:.1f} s / {per}), CPU {x['cpu'] / per:.2f} s per case, "
            f"peak RSS {x['maxrss_mb']:.0f} MB (largest process), peak PSS {x['pss_peak_mb']:.0f} MB (process tree); "
            f"load {x['load'][0]:.1f} -> {x['load'][1]:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lesions", nargs="+", choices=list(LESIONS), default=list(LESIONS))
    ap.add_argument("--cases", type=int, default=3, help="cases per lesion size (process start amortised over them)")
    ap.add_argument("--skip-full", action="store_true", help="skip (a), the whole-image call (about 1 minute, 5 GB)")
    ap.add_argument("--also-serial", action="store_true", help="also (c1): the CLI with --case-workers 1")
    ap.add_argument("--slicer-worker", action="store_true", help="also (s): the Slicer panel's background worker")
    ap.add_argument("--workdir", help="keep the cases in this folder and reuse them on the next run (default: a "
                                      "temporary folder)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--folders", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant == "build":
        print(json.dumps({k: list(map(str, v)) for k, v in
                          build_cases(Path(args.workdir), args.lesions, args.cases).items()}))
        return 0
    if args.variant:
        print(json.dumps(run_inprocess(args.variant, [Path(f) for f in args.folders])))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_case_") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        # built in a child: this process stays small, so the children's ru_maxrss is their own (it is inherited
        # across fork and exec)
        cases = {k: [work / f"{k}{i}" for i in range(args.cases)] for k in args.lesions}
        if not all((d / "voxels.json").exists() for v in cases.values() for d in v):  # --workdir of an earlier run
            r = subprocess.run([sys.executable, __file__, "--variant", "build", "--workdir", str(work), "--cases",
                                str(args.cases), "--lesions", *args.lesions], capture_output=True, text=True, env=_env())
            if r.returncode != 0:
                raise SystemExit(f"building the cases failed:\n{r.stderr[-3000:]}")
            cases = {k: [Path(f) for f in v] for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items()}
        cores = len(os.sched_getaffinity(0))
        print(f"cases: {args.cases} per lesion size, 448 x 448 x 160 phantoms (built in {time.perf_counter() - t:.0f} s); "
              f"{cores} cores, load average {os.getloadavg()[0]:.2f}")
        env = _env()
        summary = []
        for name, folders in cases.items():
            vox = json.loads((folders[0] / "voxels.json").read_text(encoding="utf-8"))
            print(f"\n[{name}] lesion radius {LESIONS[name]:g} mm; first case's region voxels {vox}")
            cli = [sys.executable, "-m", "her2radiomics", "extract", str(work / f"{name}.csv"), "--no-progress"]
            for sub in ("c", "c1"):  # a cache left by an earlier run would skip the work
                shutil.rmtree(work / f"{name}_{sub}", ignore_errors=True)
            c = measure([*cli, "-o", str(work / f"{name}_c" / "F.csv")], env)
            print(f"  (c)  CLI extract, regions + features, default case workers: {_fmt(c, len(folders))}")
            if args.also_serial:
                c1 = measure([*cli, "-o", str(work / f"{name}_c1" / "F.csv"), "--case-workers", "1"], env)
                print(f"  (c1) CLI extract, --case-workers 1: {_fmt(c1, len(folders))}")
            me = [sys.executable, __file__, "--folders", *map(str, folders)]
            b = measure([*me, "--variant", "b"], env)
            bj = json.loads(b["stdout"].strip().splitlines()[-1])
            bw, bc = statistics.mean(bj["walls"]), statistics.mean(bj["cpus"])
            print(f"  (b)  pyradiomics execute per region crop, features only: {bw:.2f} s per case "
                  f"(cases {', '.join(f'{w:.2f}' for w in bj['walls'])}), CPU {bc:.2f} s per case, "
                  f"peak RSS {bj['vmhwm_mb']:.0f} MB, {bj['n_features']} features; load {b['load'][0]:.1f} -> {b['load'][1]:.1f}")
            e = measure([*me, "--variant", "e"], env)
            ej = json.loads(e["stdout"].strip().splitlines()[-1])
            for key, label in (("auto", "default case workers"), ("1", "--case-workers 1")):
                runs = ej[key]
                shares = [statistics.mean(x["shares"][k] for x in runs) for k in range(len(runs[0]["shares"]))]
                print(f"  (e)  this engine, features only, {label} ({runs[0]['workers']}): "
                      f"{statistics.mean(x['wall'] for x in runs):.2f} s per case, CPU of each process' share "
                      f"{' + '.join(f'{v:.2f}' for v in shares)} s; peak RSS {ej['vmhwm_mb']:.0f} MB")
            cw = c["wall"] / len(folders)
            line = {"lesion": name, "c": cw, "c_cpu": c["cpu"] / len(folders), "b": bw, "b_cpu": bc, "b/c": bw / cw,
                    "rss": c["maxrss_mb"], "pss": c["pss_peak_mb"]}
            print(f"  (b)/(c) = {bw / cw:.2f} wall, {bc / (c['cpu'] / len(folders)):.2f} CPU (target >= 1.5); "
                  f"(c) <= 2.5 s: {'met' if cw <= 2.5 else 'MISSED'}; RSS <= 1 GB: "
                  f"{'met' if c['maxrss_mb'] <= 1024 and c['pss_peak_mb'] <= 1024 else 'MISSED'}")
            if not args.skip_full:
                a = measure([*me, "--variant", "a"], env)
                aj = json.loads(a["stdout"].strip().splitlines()[-1])
                print(f"  (a)  pyradiomics execute on the whole image, intra only: {aj['walls'][0]:.1f} s "
                      f"(CPU {aj['cpus'][0]:.1f} s), peak RSS {aj['vmhwm_mb']:.0f} MB, {aj['n_features']} features; "
                      f"load {a['load'][0]:.1f} -> {a['load'][1]:.1f}; (a)/(c) per region = "
                      f"{aj['walls'][0] / (cw / len(REGIONS)):.1f} wall, "
                      f"{aj['cpus'][0] / (c['cpu'] / len(folders) / len(REGIONS)):.1f} CPU")
                line["a"] = aj["walls"][0]
                line["a/c"] = aj["walls"][0] / (cw / len(REGIONS))
            if args.slicer_worker:
                import SimpleITK as sitk

                from HER2RadiomicsLib.runner import prepare_job

                image = sitk.ReadImage(str(folders[0] / "image.nrrd"))
                masks = {r: sitk.ReadImage(str(folders[0] / f"reg_{r}.nrrd")) for r in REGIONS}
                for workers in (1, None):
                    job = prepare_job(image, masks, None, work / f"{name}_job{workers or 'auto'}")
                    spec = json.loads((job / "job.json").read_text(encoding="utf-8"))
                    if workers is not None:
                        spec["case_workers"] = workers
                    (job / "job.json").write_text(json.dumps(spec))
                    s = measure([sys.executable, "-m", "HER2RadiomicsLib.extract_worker", str(job)], env)
                    print(f"  (s)  Slicer background worker, case_workers {workers or 'default'}: {_fmt(s, 1)}")
            summary.append(line)
        print("\nsummary: " + "; ".join(
            f"{x['lesion']}: (c) {x['c']:.2f} s (CPU {x['c_cpu']:.2f}), (b) {x['b']:.2f} s, (b)/(c) {x['b/c']:.2f}, "
            + (f"(a) {x['a']:.1f} s per region, (a)/(c) {x['a/c']:.1f} per region, " if "a" in x else "")
            + f"RSS {x['rss']:.0f} MB" for x in summary) + f"; load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
