"""Benchmark: `nota reduce` against the lecture's ccdproc chain on a full-size night.

In one run, each contender in its own process, on the same simulated night:
  * peer  -- the lecture's chain exactly as written there, ccdproc defaults: trim every
             frame and write t_*, combine the biases (values over 800 clipped, median),
             subtract it from every frame and write zt_*, median-combine each filter's
             chosen flats, flat-correct the standards and science frames and write fzt_*;
             then (timed apart, same process) ``ccdproc.cosmicray_lacosmic`` on each fzt_
             frame with nota's sigclip/niter and the header's gain and read noise, written
             as cfzt_: the lecture's chain with cosmic rays cleaned one frame at a time;
  * nota  -- `nota reduce` on the archive's groups (masters, then every frame to
             calibrate, one pass per frame, products with uncertainty and mask), without
             cosmic rays, stacks or photometry: the lecture chain's work;
  * nota reduce -- the whole command with its defaults (`nota reduce`: cosmic rays,
             stacks, photometric calibration), as a user times it, in a fresh process;
  * floor -- merely reading the raw bytes nota reads and writing as many bytes as it writes.
Prints wall time, CPU time, peak memory and bytes written, and the ratios. Aim: nota at
least 5x faster than the lecture's chain, within 2x of the floor, at lower peak memory;
default `nota reduce` at least 3x faster than the chain with ccdproc's cosmic-ray cleaning.
Each nota contender starts from its own copy of the prepared archive.

    python bench/reduce.py
    python bench/reduce.py --small
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import cpu_seconds, own_cpu_seconds, own_peak_rss_mb, peak_rss_mb, run_child


def lists(db_path: Path) -> dict:
    """The frames each step of the lecture uses, as the archive chose them."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    groups = {}
    for key, path in conn.execute(
        "SELECT g.group_key, f.path FROM group_members m JOIN calibration_groups g USING (group_id)"
        " JOIN files f USING (file_id) WHERE m.included = 1 AND g.preferred = 1 ORDER BY f.name"
    ):
        groups.setdefault(key, []).append(path)
    targets = conn.execute(
        "SELECT f.path, fr.filter FROM associations a JOIN files f USING (file_id)"
        " JOIN frames fr USING (file_id) WHERE a.purpose = 'master_flat' AND a.group_id IS NOT NULL"
    ).fetchall()
    everything = [r[0] for r in conn.execute("SELECT path FROM frames ORDER BY filename")]
    return {"groups": groups, "targets": targets, "all": everything}


def run_peer(db_path: Path, out: Path, small: bool) -> dict:
    import ccdproc
    from astropy.nddata import CCDData

    from nota.reduce.cosmics import CosmicsParameters

    chosen = lists(db_path)
    trim = (slice(5, -5), slice(15, 525)) if small else (slice(20, -20), slice(60, 2100))
    written = 0

    def write(ccd, name):
        nonlocal written
        path = out / name
        ccd.write(path, overwrite=True)
        written += path.stat().st_size

    warnings.simplefilter("ignore")
    shape = None
    for path in chosen["all"]:  # Recorte de las imágenes: every frame, t_ files
        image = CCDData.read(path, unit="adu")
        t_image = ccdproc.trim_image(image[trim])
        t_image.header["HISTORY"] = "astropy ccdproc trim_image"
        write(t_image, "t_" + Path(path).name)
    bias_key = next(k for k in chosen["groups"] if k.startswith("master_bias"))
    biases = [CCDData.read(out / ("t_" + Path(p).name)) for p in chosen["groups"][bias_key]]
    combiner = ccdproc.Combiner(biases)
    combiner.minmax_clipping(min_clip=None, max_clip=800)
    master_bias = combiner.median_combine()
    master_bias.header = biases[0].header.copy()
    write(master_bias, "zero_N1.fits")
    shape = master_bias.shape
    for path in chosen["all"]:  # Corrección de bias: every frame of the right shape, zt_ files
        image = CCDData.read(out / ("t_" + Path(path).name))
        if image.shape != shape:
            continue  # the lecture deletes the 800 x 800 frame
        write(ccdproc.subtract_bias(image, master_bias), "zt_" + Path(path).name)
    flats = {}
    for key, paths in chosen["groups"].items():
        if key.startswith("master_flat"):
            images = [CCDData.read(out / ("zt_" + Path(p).name)) for p in paths]
            flat = ccdproc.Combiner(images).median_combine()
            flat.header = images[0].header.copy()
            filt = key.split("/")[2]
            write(flat, f"flat_N1_{filt}.fits")
            flats[filt] = flat
    reduced = []
    for path, filt in chosen["targets"]:  # Corrigiendo de variación espacial de sensibilidad
        image = CCDData.read(out / ("zt_" + Path(path).name))
        write(ccdproc.flat_correct(image, flats[filt]), "fzt_" + Path(path).name)
        reduced.append("fzt_" + Path(path).name)
    chain = {"wall": time.perf_counter() - T0, "cpu": cpu_seconds() - C0, "bytes_written": written,
             "peak_rss_mb": peak_rss_mb()}
    # Then cosmic rays, one flat-fielded frame at a time, with nota's sigclip and niter.
    cr = CosmicsParameters()
    for name in reduced:
        image = CCDData.read(out / name)
        clean = ccdproc.cosmicray_lacosmic(image, sigclip=cr.sigclip, niter=cr.niter,
                                           gain=image.header["GAIN"], readnoise=image.header["RDNOISE"],
                                           gain_apply=False)  # ADU, as the fzt_ frame
        # ccdproc relabels the unit (ADU x gain's unit) even so, which the writer refuses
        # beside the ADU uncertainty: the frame's own unit back.
        write(CCDData(clean.data, unit=image.unit, uncertainty=image.uncertainty, mask=clean.mask,
                      meta=clean.meta), "c" + name)
    return {"bytes_written": written, "products": len(chosen["targets"]), "chain": chain}


def run_nota(db_path: Path, out: Path, small: bool) -> dict:
    from nota.archive.database import open_archive, open_readonly
    from nota.pipeline.plan import ReduceOptions, plan_reduction
    from nota.pipeline.run import run_plan

    db = open_archive(db_path)
    # The lecture's chain stops at flat fielding: so does nota here (no cosmic-ray cleaning,
    # stacks or photometric calibration).
    options = ReduceOptions(products_root=str(out), cosmics=False, stacks=False, photometry=False)
    report = run_plan(db, plan_reduction(db, options), options)
    assert not report.failed, report.failed
    written = sum(p.stat().st_size for p in out.rglob("*.fits"))
    # Workers (forked from this process or from a fork server) report their own use.
    return {"bytes_written": written, "products": len(report.built),
            "worker_cpu": report.worker_cpu_seconds, "worker_peak_mb": report.worker_peak_rss_mb}


def run_nota_command(db_path: Path, out: Path, small: bool) -> dict:
    """`nota reduce` with its defaults, as a command in its own process (CPU: it and the
    workers it waited for)."""
    import subprocess

    cli = [sys.executable, "-c", "from nota.cli import app; app()"]
    done = subprocess.run([*cli, "--db", str(db_path), "reduce", "--products", str(out)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-3000:])
        raise SystemExit("nota reduce failed")
    written = sum(p.stat().st_size for p in out.rglob("*.fits"))
    return {"bytes_written": written, "products": sum(1 for _ in out.rglob("*.fits"))}


def run_floor(db_path: Path, out: Path, small: bool) -> dict:
    """Read every raw byte nota read, write as many bytes as nota wrote."""
    import sqlite3

    conn = sqlite3.connect(db_path)
    inputs = [r[0] for r in conn.execute(
        "SELECT DISTINCT f.path FROM product_inputs i JOIN files f USING (file_id) WHERE i.included = 1")]
    sizes = [r[0] for r in conn.execute("SELECT size FROM products WHERE current = 1")]
    block = b""
    for path in inputs:
        with open(path, "rb") as stream:
            block = stream.read()
    for n, size in enumerate(sizes):
        with open(out / f"floor_{n}.bin", "wb") as stream:
            stream.write((block * (size // max(len(block), 1) + 1))[:size])
    return {"bytes_written": sum(sizes), "products": len(sizes)}


CONTENDERS = {"peer": run_peer, "nota": run_nota, "command": run_nota_command, "floor": run_floor}
T0 = C0 = 0.0  # when the child started: the peer reports its chain's share before cosmic rays


def child(which: str, db_path: Path, out: Path, small: bool) -> None:
    global T0, C0
    t0, c0, own0 = time.perf_counter(), cpu_seconds(), own_cpu_seconds()
    T0, C0 = t0, c0
    result = CONTENDERS[which](db_path, out, small)
    result["wall"] = time.perf_counter() - t0
    if "worker_cpu" in result:
        # nota: this process and what its workers report (whether or not they were its
        # children, so counted once); conservatively, every worker at its peak at once.
        result["cpu"] = own_cpu_seconds() - own0 + result.pop("worker_cpu")
        result["peak_rss_mb"] = own_peak_rss_mb() + (os.cpu_count() or 1) * result.pop("worker_peak_mb")
    else:
        result["cpu"] = cpu_seconds() - c0
        result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def prepare(night: Path, db_path: Path) -> None:
    from nota.archive.database import open_archive, open_readonly
    from nota.pipeline.groups import build_groups
    from nota.pipeline.ingest import ingest
    from nota.pipeline.qc import run_qc

    db = open_archive(db_path)
    ingest(db, [night])
    run_qc(db)
    build_groups(db)
    db.conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="4x4-binned frames (quick check)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/reduce"))
    parser.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.dir, args.small)
        return 0

    from nota.simulate import simulate_run

    night = args.out / ("small" if args.small else "full") / "N1"
    if not (night / "truth" / "truth.json").exists():
        print(f"simulating one night into {night.parent} ...", flush=True)
        simulate_run(night.parent, nights=1, seed=2008, small=args.small)
    results = {}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        db_path = Path(tmp) / "bench.db"
        prepare(night, db_path)
        for path in night.glob("*.fits"):
            path.read_bytes()  # warm the page cache for every contender
        for which in ("peer", "nota", "command", "floor"):
            work = Path(tmp) / which
            work.mkdir()
            extra = ["--small"] if args.small else []
            db = db_path
            if which in ("nota", "command"):  # each from the archive as prepared, not as the other left it
                db = Path(tmp) / f"{which}.db"  # beside its products, not among them
                shutil.copy(db_path, db)
            elif which == "floor":  # what `nota` (the lecture chain's work) read and wrote
                db = Path(tmp) / "nota.db"
            results[which] = run_child(__file__, "--child", which, "--db", str(db), "--dir", str(work), *extra)
            shutil.rmtree(work)
    peer, nota, command, floor = results["peer"], results["nota"], results["command"], results["floor"]
    chain = peer["chain"]
    print(f"night {night}: {nota['products']} nota products, {peer['products']} fzt_ frames by the peer,"
          f" {command['products']} product files by the default command")
    print(f"{'':46} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'written GB':>11}")
    for name, r in (("peer: the lecture's ccdproc chain", chain),
                    ("peer + ccdproc.cosmicray_lacosmic per frame", peer),
                    ("nota reduce (no cosmics, stacks, photometry)", nota),
                    ("nota reduce, the default command", command),
                    ("floor: read raw + write bytes", floor)):
        print(f"{name:46} {r['wall']:8.2f} {r['cpu']:8.2f} {r['peak_rss_mb']:8.0f} {r['bytes_written'] / 1e9:11.2f}")
    print(f"ratio peer / nota, wall:   {chain['wall'] / nota['wall']:5.1f}x   (aim >= 5)")
    print(f"ratio nota / floor, wall:  {nota['wall'] / floor['wall']:5.1f}x   (aim <= 2)")
    print(f"peak memory nota / peer:   {nota['peak_rss_mb'] / chain['peak_rss_mb']:5.2f}   (aim < 1)")
    print(f"ratio peer with cosmic rays / default `nota reduce` command, wall: "
          f"{peer['wall'] / command['wall']:5.1f}x   (aim >= 3)")
    print(f"the same in CPU (the peer's OpenMP threads, nota's workers):  {peer['cpu'] / command['cpu']:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
