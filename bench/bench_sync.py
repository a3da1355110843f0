"""Our ``mamamia.sync`` against synapseclient's own ``syncFromSynapse`` on the same emulated tree.

One run each: a first sync into an empty folder, then a re-sync of the unchanged mirror. Both
clients talk over real HTTP to the Synapse emulator of the tests (tests/synapse_emulator.py) on
127.0.0.1, serving 200 files of ~200 KB in a MAMA-MIA-like layout. Prints one markdown row per
measurement (ours, the baseline, ours/baseline); ``run()`` returns the rows for bench/run_all.py.

    uv run python bench/bench_sync.py [--files 200] [--size 200000]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synapse_emulator import SynapseEmulator, write_synapse_config  # noqa: E402

BASELINE = "synapseclient syncFromSynapse"


def _make_tree(root: Path, files: int, size: int) -> int:
    rng = random.Random(0)
    per_case = 4  # two phases, one expert and one automatic mask per case
    total = 0
    for i in range(files // per_case):
        case = f"DUKE_{i + 1:03d}"
        for rel in (
            f"images/{case}/{case}_0000.nii.gz",
            f"images/{case}/{case}_0001.nii.gz",
            f"segmentations/expert/{case}.nii.gz",
            f"segmentations/automatic/{case}.nii.gz",
        ):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            n = int(size * rng.uniform(0.8, 1.2))
            path.write_bytes(rng.randbytes(n))
            total += n
    return total


def _row(metric: str, ours: float, baseline: float, unit: str, target: str) -> dict[str, Any]:
    return {
        "benchmark": "sync",
        "metric": metric,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": BASELINE,
        "ratio": ours / baseline if baseline else None,
        "target": target,
        "unit": unit,
    }


def run(files: int = 200, size: int = 200_000) -> list[dict[str, Any]]:
    import synapseclient
    import synapseutils

    import mamamia

    logging.getLogger("synapseclient_default").setLevel(logging.ERROR)
    logging.getLogger("synapseclient").setLevel(logging.ERROR)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp_name:
        tmp = Path(tmp_name)
        total = _make_tree(tmp / "source", files, size)
        with SynapseEmulator(tmp / "source", page_size=50) as emu:
            config = write_synapse_config(tmp / "synapseConfig", emu)

            # ours
            emu.reset_counts()
            t0 = time.perf_counter()
            first = mamamia.sync(tmp / "ours", synapse_config=config, progress=False)
            ours_first = time.perf_counter() - t0
            ours_first_requests = sum(emu.route_counts.values())
            if not first.ok or len(first.downloaded) != files:
                raise RuntimeError(f"our first sync went wrong: {first.summary()}")
            emu.reset_counts()
            t0 = time.perf_counter()
            again = mamamia.sync(tmp / "ours", synapse_config=config, progress=False)
            ours_again = time.perf_counter() - t0
            ours_again_requests = sum(emu.route_counts.values())
            if not again.ok or again.downloaded:
                raise RuntimeError(f"our re-sync went wrong: {again.summary()}")

            # baseline: the official client, its own cache in the temp folder
            def client() -> Any:
                syn = synapseclient.Synapse(
                    configPath=str(config),
                    skip_checks=True,
                    cache_root_dir=str(tmp / "synapse-cache"),
                    silent=True,
                    cache_client=False,
                )
                syn.logger.setLevel(logging.ERROR)  # one "manifest generated" line per folder
                return syn

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                emu.reset_counts()
                t0 = time.perf_counter()
                got = synapseutils.syncFromSynapse(
                    client(), emu.project_id, path=str(tmp / "theirs")
                )
                base_first = time.perf_counter() - t0
                base_first_requests = sum(emu.route_counts.values())
                assert len(got) == files
                emu.reset_counts()
                t0 = time.perf_counter()
                synapseutils.syncFromSynapse(client(), emu.project_id, path=str(tmp / "theirs"))
                base_again = time.perf_counter() - t0
                base_again_requests = sum(emu.route_counts.values())
                assert emu.count("blob") == 0

    label = f"{files} files, {total / 1e6:.0f} MB"
    rows.append(_row(f"first sync, {label}", ours_first, base_first, "s", "<= 1"))
    rows.append(_row(f"re-sync unchanged, {label}", ours_again, base_again, "s", "< 1"))
    rows.append(
        _row(
            "REST+blob requests, first sync",
            ours_first_requests,
            base_first_requests,
            "requests",
            "<= 1",
        )
    )
    rows.append(
        _row(
            "REST requests, re-sync unchanged",
            ours_again_requests,
            base_again_requests,
            "requests",
            "< 1",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=200_000, help="mean file size in bytes")
    args = parser.parse_args()
    rows = run(args.files, args.size)
    print("| metric | ours | baseline | ratio | unit |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['metric']} | {row['ours']:.3g} | {row['baseline']:.3g} "
            f"| {row['ratio']:.3g} | {row['unit']} |"
        )


if __name__ == "__main__":
    main()
