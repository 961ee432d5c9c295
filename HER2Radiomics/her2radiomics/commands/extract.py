"""`her2radiomics extract`: pyradiomics features for a cohort manifest (lesion and every shell).

Exit codes: 0 all cases extracted, 1 some cases failed (listed in FEATURES.failures.csv, the others written),
2 bad input (manifest, parameter file, options).
"""

from __future__ import annotations

import argparse

INTERRUPTED = "finished cases are kept in the .cache folder and a re-run resumes from them"
HELP = "pyradiomics features for a cohort manifest (lesion and every shell)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="CSV with case_id,image,lesion [,reader,air,pectoralis,label,series,dce_phases,"
                                         "dce_times] (paths relative "
                                         "to it), or pyradiomics' batch CSV ID,Image,Mask[,Label]")
    parser.add_argument("-o", "--output", required=True, help="features table FEATURES.csv (+ .meta.json, .failures.csv, .cache/)")
    parser.add_argument("--params", default=None, help="pyradiomics parameter file (YAML); default: the shipped MRI file")
    parser.add_argument("--distances", type=float, nargs="+", default=[1.0, 3.0, 5.0], metavar="MM",
                        help="peritumoral shell distances in mm (default 1 3 5)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes (-1: all cores; default 1)")
    parser.add_argument("--case-workers", type=int, default=None, metavar="N",
                        help="processes one case's features are spread over (-1: all cores); default: all cores "
                             "with --jobs 1, otherwise 1")
    parser.add_argument("--backend", choices=["loky", "dask"], default="loky",
                        help="joblib backend: loky (local processes) or dask (dask.distributed)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="Dask scheduler to join (e.g. tcp://host:8786); default: start a LocalCluster of --jobs workers")
    parser.add_argument("--no-auto-exclusions", action="store_true",
                        help="do not detect air/pectoralis automatically (manifest masks are still applied)")
    add_resample_arguments(parser)
    parser.add_argument("--qa", default=None, metavar="SESSION",
                        help="QA session folder (her2radiomics qa init): its edited lesion/air/pectoralis masks replace "
                             "the manifest's (docs/qa.md)")
    parser.add_argument("--only-approved", action="store_true",
                        help="with --qa: extract only the cases approved or edited in the session (a note per skipped case)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = parser.add_argument_group("DCE series and 2D (docs/kinetics.md, docs/regions.md)")
    g.add_argument("--phase", type=int, default=None, metavar="N",
                   help="for manifests with a dce_phases column: the phase the radiomics use (0 = pre-contrast; "
                        "default 2, the 2nd post-contrast phase as in the paper); kinetic columns are added")
    g.add_argument("--subtraction", action="store_true",
                   help="radiomics on the subtraction image (phase N minus the pre-contrast phase)")
    g.add_argument("--mode", choices=("3d", "2d-max"), default="3d",
                   help="2d-max: regions (in-plane rings) and 2D features (force2D, shape2D) on the lesion's largest "
                        "cross-section; 2D images (PNG, 2D NRRD/DICOM) are used as they are")
    g.add_argument("--pixel-spacing", type=float, nargs=2, default=None, metavar=("SX", "SY"),
                   help="with --mode 2d-max: pixel spacing in mm of 2D pictures (PNG/JPEG have none)")


def add_resample_arguments(parser: argparse.ArgumentParser) -> None:
    """--resample-spacing X Y Z and --interpolator (shared with 'regions')."""
    parser.add_argument("--resample-spacing", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="first resample every case to this spacing in mm (image interpolated, masks nearest "
                             "neighbour), e.g. 0.8 0.8 0.8 for a mixed-resolution cohort (see docs/features.md)")
    parser.add_argument("--interpolator", choices=("linear", "bspline"), default="linear",
                        help="image interpolation for --resample-spacing: linear (default) or bspline (cubic B-spline)")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.batch import extract_cohort
    from her2radiomics.errors import UserError

    if args.scheduler and args.backend != "dask":
        raise UserError("--scheduler needs --backend dask")
    result = extract_cohort(
        args.manifest,
        args.output,
        params=args.params,
        distances=args.distances,
        jobs=args.jobs,
        backend=args.backend,
        scheduler=args.scheduler,
        progress=not args.no_progress,
        auto_exclusions=not args.no_auto_exclusions,
        resample_spacing=args.resample_spacing,
        interpolator=args.interpolator,
        case_workers=args.case_workers,
        qa=args.qa,
        only_approved=args.only_approved,
        phase=args.phase,
        subtraction=args.subtraction,
        mode=args.mode,
        pixel_spacing=args.pixel_spacing,
    )
    return 0 if result.ok else 1
