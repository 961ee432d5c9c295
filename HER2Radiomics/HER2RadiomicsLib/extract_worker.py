"""Background worker: ``python -m HER2RadiomicsLib.extract_worker JOBDIR`` (see runner.py).

Reads JOBDIR/job.json, runs ``her2radiomics.features.extract_case`` (the same call as the
synchronous path and the CLI) and writes JOBDIR/features.json atomically. Output lines follow the
runner's protocol; a user error becomes one ``ERROR`` line and exit code 2. The case is spread over
``job.json``'s ``case_workers`` processes (default: all cores), as ``her2radiomics extract`` does for one case.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("ERROR usage: python -m HER2RadiomicsLib.extract_worker JOBDIR", flush=True)
        return 2
    job = Path(argv[0])
    from her2radiomics.errors import UserError

    try:
        print("PROGRESS 0.02 reading inputs", flush=True)
        import SimpleITK as sitk

        from her2radiomics import features
        from her2radiomics.io import write_json

        spec = json.loads((job / "job.json").read_text(encoding="utf-8"))
        # job.json may name "case_workers" (processes for this case); absent: all cores (features.resolve_case_workers)
        workers = features.resolve_case_workers(spec.get("case_workers"))
        features.case_pool(workers)  # fork the helpers now, while this process is small
        image = sitk.ReadImage(str(job / spec["image"]))
        masks = {name: sitk.ReadImage(str(job / f)) for name, f in spec["masks"].items()}
        params = features.load_params(spec.get("params") or spec.get("params_file") or None)
        print(f"PROGRESS 0.10 computing features for {len(masks)} regions on {workers} process(es) (filters computed "
              "once on a crop)", flush=True)
        info: dict = {}
        values = features.extract_case(image, masks, params, info=info, case_workers=workers)
        print("PROGRESS 0.98 writing results", flush=True)
        write_json({"features": values, "info": info, "parameter_hash": features.parameter_file_hash(params)}, job / "features.json")
    except UserError as exc:
        print(f"ERROR {exc}", flush=True)
        return 2
    except Exception as exc:  # report unexpected failures on one line too; the GUI shows it
        print(f"ERROR {type(exc).__name__}: {' '.join(str(exc).split())}", flush=True)
        return 1
    print(f"DONE {job / 'features.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
