"""Benchmark: one QA review step on a full-size case (448 x 448 x 160, 0.74 x 0.74 x 1.2 mm phantom).

Target (issue 17): opening a case (start_review + load) and approving it with an edited pectoralis (mask saved with
its hash, excluded mm3 per shell before/after) each take a few seconds at most, so a reviewer is not kept waiting;
with the manifest's air/pectoralis given no automatic detection runs. Prints the median of ``--runs`` runs.

    python benchmarks/bench_qa.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "HER2Radiomics"))

import SimpleITK as sitk  # noqa: E402

from her2radiomics.phantom import make_phantom, write_phantom  # noqa: E402
from her2radiomics.qa import QASession  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_phantom(make_phantom(seed=0, lesion_gap_mm=4), root / "c0")
        (root / "m.csv").write_text("case_id,image,lesion,air,pectoralis\n"
                                    "c0,c0/image.nrrd,c0/lesion.nrrd,c0/air.nrrd,c0/pectoralis.nrrd\n")
        pect = sitk.ReadImage(str(root / "c0" / "pectoralis.nrrd"))
        arr = sitk.GetArrayFromImage(pect)
        arr[:, :, : arr.shape[2] // 2] = 0
        edited = sitk.GetImageFromArray(arr)
        edited.CopyInformation(pect)
        opened, approved = [], []
        for i in range(args.runs):
            s = QASession.create(root / "m.csv", root / f"QA{i}", reader="R1")
            t0 = time.perf_counter()
            s.start_review("c0", "R1")
            s.load("c0", "R1")
            opened.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rev = s.approve("c0", "R1", pectoralis=edited)
            approved.append(time.perf_counter() - t0)
            assert rev.status == "edited"
    print(f"open case (start_review + load): median {statistics.median(opened):.2f} s over {args.runs} runs")
    print(f"approve with an edited pectoralis: median {statistics.median(approved):.2f} s over {args.runs} runs")
    try:
        import os

        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
