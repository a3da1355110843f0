"""``write_phantom`` against the obvious phantom writer, on the same cases and geometry.

The baseline builds each case the straightforward way: the whole 4D series as float64 noise plus
a tumour evaluated over the full grid, masks over the full grid, then one ``GetImageFromArray``
and ``WriteImage`` per phase. Ours builds each phase slab by slab straight into its SimpleITK
image (tumour only in its box, noise from a per-case buffer) and spreads the files over worker
processes. Two measurements, each run for both in this one run:

- wall time for 20 cases of the built-in table at ``--scale 0.25`` (target: well under 60 s on
  2 cores);
- peak memory growth while writing the largest real row (ISPY2_275034, 1024x1024x160, 7 phases)
  at ``--scale 0.5``, each in a fresh subprocess.

    uv run python bench/bench_phantom.py [--cases 20] [--scale 0.25]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from mamamia_ingest import write_phantom

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "data" / "clinical_and_imaging_info.xlsx"
BASELINE = "naive 4D float64 writer"


def naive_case(root: Path, case: Any, seed: int) -> None:
    """The obvious implementation: everything for the case in memory at once."""
    rng = np.random.default_rng(seed)
    z, y, x = case.shape_zyx
    series = rng.normal(200.0, 8.0, size=(case.num_phases, z, y, x))
    kk, jj, ii = np.indices((z, y, x), dtype=np.float64)
    centre = np.array([z, y, x]) / 2
    radius = np.maximum(np.array([z, y, x]) / 10, 1.0)
    inside = ((kk - centre[0]) / radius[0]) ** 2 + ((jj - centre[1]) / radius[1]) ** 2
    inside = inside + ((ii - centre[2]) / radius[2]) ** 2 <= 1.0
    for p, t in enumerate(case.phase_times_s):
        series[p][inside] += 400.0 * (1 - np.exp(-t / 80.0))
    series = np.clip(series, 0, 32767).astype(np.int16)

    def write(array: np.ndarray, rel: str) -> None:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(case.spacing_xyz)
        image.SetOrigin(case.origin_xyz)
        image.SetDirection(case.direction)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), useCompression=True)

    for p, rel in enumerate(case.images):
        write(series[p], rel)
    mask = inside.astype(np.uint8)
    write(mask, case.expert)
    write(np.roll(mask, 1, axis=2), case.automatic)


_PEAK = textwrap.dedent(
    """
    import json, re, resource, sys
    from pathlib import Path

    def status(key):
        text = Path("/proc/self/status").read_text()
        return int(re.search(key + r":\\s+(\\d+)", text).group(1)) * 1024

    def reset_peak():
        # Linux: writing 5 to clear_refs resets the peak RSS to the current RSS, so the peak
        # after it is the growth's own, not a leftover of the warm-up (table parsing).
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return status("VmRSS"), lambda: status("VmHWM")
        except OSError:
            peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return peak(), peak

    sys.path.insert(0, sys.argv[4])
    import bench_phantom
    from mamamia import read_clinical_table
    from mamamia_ingest import write_phantom
    from mamamia_ingest.phantom._spec import spec_from_record
    from mamamia_ingest.phantom._phantom_volume import build_case
    from mamamia_ingest.phantom._writer import _facts, _report_case

    out, table, which = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    # The same warm-up for both (imports, table parsing, the same case tiny each way).
    tiny = write_phantom(out / "tiny", table=table, ids="ISPY2_275034", scale=0.02, jobs=1,
                         progress=False)
    bench_phantom.naive_case(out / "tiny_naive", tiny.cases[0], 0)
    record = read_clinical_table(tiny.root / "clinical_and_imaging_info.xlsx").records[0]
    before, peak = reset_peak()
    if which == "ours":
        write_phantom(out / "huge", table=table, ids="ISPY2_275034", scale=0.5, jobs=1,
                      progress=False)
    else:
        model = _facts(build_case(spec_from_record(record, 0.5), 0))
        bench_phantom.naive_case(out / "naive", _report_case(model, "train", False, 1), 0)
    print(json.dumps({"before": before, "after": peak()}))
    """
)


def _peak_growth(which: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-phantom-") as tmp:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK, tmp, str(TABLE), which, str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["after"] - result["before"]) / 2**20


def _row(metric: str, ours: float, baseline: float, unit: str, target: str) -> dict[str, Any]:
    return {
        "benchmark": "phantom",
        "metric": metric,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": BASELINE,
        "ratio": ours / baseline if baseline else None,
        "target": target,
        "unit": unit,
    }


def run(cases: int = 20, scale: float = 0.25) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-phantom-") as tmp:
        # Warm-up: first-use imports (the table reader's) are not what is measured.
        write_phantom(Path(tmp) / "warm", cases=1, scale=0.05, progress=False)
        started = time.perf_counter()
        report = write_phantom(Path(tmp) / "ours", cases=cases, scale=scale, progress=False)
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for i, case in enumerate(report.cases):
            naive_case(Path(tmp) / "naive", case, i)
        naive = time.perf_counter() - started
    rows.append(
        _row(f"write {cases} cases at scale {scale:g}", ours, naive, "s", "well under 60 s")
    )
    ours_mb = _peak_growth("ours")
    naive_mb = _peak_growth("naive")
    rows.append(
        _row(
            "peak memory growth, 1024x1024x160x7 row at scale 0.5",
            ours_mb,
            naive_mb,
            "MiB",
            "well below the series (294 MB)",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--scale", type=float, default=0.25)
    args = parser.parse_args()
    print("| metric | ours | baseline | ratio | unit |")
    print("|---|---|---|---|---|")
    for row in run(args.cases, args.scale):
        print(
            f"| {row['metric']} | {row['ours']:.3g} | {row['baseline']:.3g} | "
            f"{row['ratio']:.3g} | {row['unit']} |"
        )


if __name__ == "__main__":
    main()
