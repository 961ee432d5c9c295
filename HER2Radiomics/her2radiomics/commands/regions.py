"""`her2radiomics regions IMAGE LESION -o DIR`: lesion + exact peritumoral shells + exclusions.

Writes DIR/intra.nrrd, DIR/peri{d}.nrrd (one per distance), DIR/air.nrrd, DIR/pectoralis.nrrd
(uint8 0/1 on the image grid) and DIR/regions.json (see docs/regions.md). Every input is read and
validated, and the regions are computed, before anything is created; the files are written into a
temporary folder and moved into DIR at the end, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "lesion + peritumoral shells (1/3/5 mm) with air/pectoralis exclusions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="3D image (NRRD, NIfTI or a DICOM series folder)")
    parser.add_argument("lesion", metavar="LESION", help="lesion mask on the image grid (0/1, or several labels with --label)")
    parser.add_argument("-o", "--output", metavar="DIR", required=True, help="output folder (created)")
    parser.add_argument(
        "--distances", metavar="MM", type=float, nargs="+", default=[1.0, 3.0, 5.0],
        help="shell distances in mm (default: 1 3 5)",
    )
    parser.add_argument("--label", metavar="N", type=int, default=None, help="lesion label value in a multi-label LESION file")
    parser.add_argument("--series", metavar="S", default=None,
                        help="DICOM series of an IMAGE folder holding several (series number or SeriesInstanceUID)")
    parser.add_argument(
        "--no-auto-exclusions", dest="auto_exclusions", action="store_false",
        help="do not detect air/pectoralis automatically (masks not given stay empty)",
    )
    parser.add_argument("--air", metavar="MASK", default=None, help="user air mask (replaces the automatic one)")
    parser.add_argument("--pectoralis", metavar="MASK", default=None, help="user pectoralis mask (replaces the automatic one)")
    from her2radiomics.commands.extract import add_resample_arguments

    add_resample_arguments(parser)


def _table(regions) -> str:
    rows = [("region", "voxels", "mm3", "excluded mm3", "clipped mm3")]
    for name, st in regions.stats.items():
        rows.append((
            name,
            str(st["voxels"]),
            f"{st['volume_mm3']:.1f}",
            f"{st['excluded_mm3']:.1f}" if "excluded_mm3" in st else "",
            f"{st['clipped_mm3']:.1f}" if "clipped_mm3" in st else "",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from her2radiomics import io
    from her2radiomics.regions import build_regions, validate_distances, write_regions

    out = io.check_output(args.output, "output folder", folder=True)
    distances = validate_distances(args.distances)
    spacing = io.check_spacing(args.resample_spacing)
    image = io.read_image(args.image, "image", series=args.series)
    lesion = io.read_mask(args.lesion, image, "lesion", label=args.label)
    # exclusion masks: read here, validated (grid, 0/1) by build_regions before anything is written
    air = io.read_image(args.air, "air mask") if args.air else None
    pect = io.read_image(args.pectoralis, "pectoralis mask") if args.pectoralis else None
    if spacing:  # masks checked on the original grid first, then brought onto the new one (nearest neighbour)
        air = io.read_mask(args.air, image, "air mask") if args.air else None
        pect = io.read_mask(args.pectoralis, image, "pectoralis mask") if args.pectoralis else None
        image = io.resample_image(image, spacing, args.interpolator)
        lesion, air, pect = (io.resample_mask(m, image) if m is not None else None for m in (lesion, air, pect))
    regions = build_regions(image, lesion, distances, air=air, pectoralis=pect, auto_exclusions=args.auto_exclusions)
    inputs = {"image": str(Path(args.image).absolute()), "lesion": str(Path(args.lesion).absolute()), "label": args.label}
    if args.series:
        inputs["series"] = args.series
    if args.air:
        inputs["air"] = str(Path(args.air).absolute())
    if args.pectoralis:
        inputs["pectoralis"] = str(Path(args.pectoralis).absolute())
    extra: dict = {"inputs": inputs}
    if spacing:
        extra["resample"] = {"spacing": list(spacing), "interpolator": args.interpolator, "masks": "nearest"}
    write_regions(regions, out, json_extra=extra)
    if spacing:  # the masks are on the new grid: write the image they belong to beside them
        io.write_image(image, out / "image.nrrd")

    print(_table(regions))
    src = ", ".join(f"{k}: {v} ({regions.exclusions[k]['voxels']} voxels)" for k, v in regions.exclusion_source.items())
    print(f"exclusions  {src}")
    for w in regions.warnings:
        print(f"warning: {w}")
    print(f"wrote {out}")
    return 0
