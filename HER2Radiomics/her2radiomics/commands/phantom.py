"""`her2radiomics phantom -o DIR --seed N`: write a synthetic prone breast DCE-MRI phantom."""

from __future__ import annotations

import argparse

HELP = "generate a synthetic breast DCE-MRI phantom (image, lesion, air, pectoralis)"
#: her2radiomics.phantom.DEFAULT_SIZE / DEFAULT_SPACING, written out so that parsing (``--help``) does not import
#: the generator's NumPy/SciPy/SimpleITK stack (CLI start < 0.5 s); a test checks they stay equal
DEFAULT_SIZE = (448, 448, 160)
DEFAULT_SPACING = (0.74, 0.74, 1.2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="output folder: image.nrrd, lesion.nrrd, air.nrrd, pectoralis.nrrd, phantom.json")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed and options -> same files)")
    parser.add_argument("--size", type=int, nargs=3, default=list(DEFAULT_SIZE), metavar=("X", "Y", "Z"),
                        help="voxels along the image index axes (default %(default)s)")
    parser.add_argument("--spacing", type=float, nargs=3, default=list(DEFAULT_SPACING), metavar=("SX", "SY", "SZ"),
                        help="voxel spacing in mm (default %(default)s); anatomy scales with the field of view")
    parser.add_argument("--direction", type=float, nargs=9, default=None, metavar="D",
                        help="axis-aligned direction matrix, row-major (e.g. -1 0 0 0 -1 0 0 0 1); default identity")
    g = parser.add_argument_group("lesion appearance")
    g.add_argument("--lesion-radius-mm", type=float, default=8.0, help="mean lesion radius in mm (default 8)")
    g.add_argument("--rim", type=float, default=0.5, help="rim-vs-core enhancement contrast in [0, 1] (default 0.5)")
    g.add_argument("--heterogeneity", type=float, default=0.5, help="lesion texture amplitude in [0, 1] (default 0.5)")
    g.add_argument("--peritumoral-enhancement", type=float, default=0.0,
                   help="oedema-like enhancement around the lesion, 0-2 (default 0)")
    g.add_argument("--lesion-gap-mm", type=float, default=None,
                   help="distance from the lesion surface to the pectoralis in mm (default: random per seed)")
    g.add_argument("--breast-scale", type=float, default=1.0, help="breast size factor, 0.5-1.5 (default 1)")
    g.add_argument("--noise", type=float, default=8.0, help="Rician noise sigma (default 8)")
    g.add_argument("--bias", type=float, default=0.3, help="coil-shading amplitude, 0-0.6 (default 0.3)")
    d = parser.add_argument_group("DCE series (issue 16)")
    d.add_argument("--dce", choices=("persistent", "plateau", "washout"), default=None,
                   help="write a pre + 5 post-contrast DCE series (dce/phase0..5.nrrd) with this planted lesion "
                        "curve type, plus T2-like / ADC-like volumes on another grid, instead of image.nrrd")
    d.add_argument("--initial-enhancement", type=float, default=150.0, metavar="PCT",
                   help="with --dce: lesion enhancement at the first post-contrast phase in %% (default 150)")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.io import check_output
    from her2radiomics.phantom import make_phantom, write_phantom

    check_output(args.output, "output folder", folder=True)
    if args.dce:
        from her2radiomics.phantom import make_dce_phantom, write_dce_phantom

        dce = make_dce_phantom(
            args.seed, tuple(args.size), tuple(args.spacing), kinetic=args.dce,
            initial_enhancement_pct=args.initial_enhancement, direction=args.direction,
            breast_scale=args.breast_scale, lesion_radius_mm=args.lesion_radius_mm, rim=args.rim,
            heterogeneity=args.heterogeneity, peritumoral_enhancement=args.peritumoral_enhancement,
            lesion_gap_mm=args.lesion_gap_mm, noise=args.noise, bias=args.bias,
        )
        paths = write_dce_phantom(dce, args.output)
        print(f"DCE phantom seed {args.seed}: {len(dce.phases)} phases at {', '.join(f'{t:g}' for t in dce.times_s)} s, "
              f"planted {args.dce} curve -> {paths['meta'].parent}")
        return 0
    ph = make_phantom(
        args.seed, tuple(args.size), tuple(args.spacing), direction=args.direction,
        breast_scale=args.breast_scale, lesion_radius_mm=args.lesion_radius_mm, rim=args.rim,
        heterogeneity=args.heterogeneity, peritumoral_enhancement=args.peritumoral_enhancement,
        lesion_gap_mm=args.lesion_gap_mm, noise=args.noise, bias=args.bias,
    )
    paths = write_phantom(ph, args.output)
    les = ph.meta["lesion"]
    print(f"phantom seed {args.seed}: {ph.image.GetSize()} voxels, lesion {les['voxels']} voxels "
          f"({les['side']} breast, {les['gap_to_pectoralis_mm']} mm from the pectoralis) -> {paths['image'].parent}")
    return 0
