"""Benchmark: `nota qc` against the lecture's way of getting frame statistics.

On one full-size simulated night, in one run, each contender in its own process:
  * peer -- the lecture: CCDData.read(path, unit='adu') for every frame, trim with
            [20:-20, 60:2100], then numpy's mean, std, min and max;
  * nota -- `nota qc`: exact mean, median, robust std, min, max, saturation from one
            histogram per frame, overscan level, flat patterns and star counts, in
            worker processes, stored in the archive.
Prints wall time, CPU time and peak memory of each, and the ratios. Aim: nota at least 3x
faster, with bounded memory.

    python bench/qc.py
    python bench/qc.py --small
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import cpu_seconds, peak_rss_mb, run_child


def run_peer(night: Path) -> dict:
    import numpy as np
    from astropy.nddata import CCDData

    # Timed from here, as nota is timed from run_qc: neither pays for its imports.
    t0, c0 = time.perf_counter(), cpu_seconds()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(night.glob("*.fits")):
            image = CCDData.read(path, unit="adu")
            trimmed = image.data[20:-20, 60:2100]
            rows.append((np.mean(trimmed), np.std(trimmed), np.min(trimmed), np.max(trimmed)))
    return {"frames": len(rows), "wall": time.perf_counter() - t0, "cpu": cpu_seconds() - c0}


def run_nota(night: Path) -> dict:
    from nota.archive.database import open_archive
    from nota.pipeline.ingest import ingest
    from nota.pipeline.qc import run_qc

    with tempfile.TemporaryDirectory() as tmp, open_archive(Path(tmp) / "bench.db") as archive:
        ingest(archive, [night])
        # Worker processes' CPU counts too, but not that of ingest's workers before.
        t0, c0 = time.perf_counter(), cpu_seconds()
        report = run_qc(archive)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"frames": report.measured, "wall": wall, "cpu": cpu}


def child(which: str, night: Path) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_peer(night) if which == "peer" else run_nota(night)
    result.setdefault("wall", time.perf_counter() - t0)
    result.setdefault("cpu", time.process_time() - c0)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="4x4-binned frames (quick check)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/qc"))
    parser.add_argument("--child", choices=["peer", "nota"], help=argparse.SUPPRESS)
    parser.add_argument("--night", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.night)
        return 0

    from nota.simulate import simulate_run

    night = args.out / ("small" if args.small else "full") / "N1"
    if not (night / "truth" / "truth.json").exists():
        print(f"simulating one night into {night.parent} ...", flush=True)
        simulate_run(night.parent, nights=1, seed=2008, small=args.small)
    for path in night.glob("*.fits"):  # warm the page cache for both contenders
        path.read_bytes()
    results = {which: run_child(__file__, "--child", which, "--night", str(night)) for which in ("peer", "nota")}
    peer, nota = results["peer"], results["nota"]
    print(f"{peer['frames']} frames of {night}")
    print(f"{'':34} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}")
    print(f"{'peer: CCDData.read + numpy stats':34} {peer['wall']:8.2f} {peer['cpu']:8.2f} {peer['peak_rss_mb']:8.0f}")
    print(f"{'nota qc':34} {nota['wall']:8.2f} {nota['cpu']:8.2f} {nota['peak_rss_mb']:8.0f}")
    print(f"ratio peer / nota, wall: {peer['wall'] / nota['wall']:5.1f}x   (aim >= 3)")
    print(f"ratio peer / nota, cpu:  {peer['cpu'] / nota['cpu']:5.1f}x")
    print(f"peak memory nota / peer: {nota['peak_rss_mb'] / peer['peak_rss_mb']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
