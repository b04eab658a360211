"""Benchmark: nota ingest against ccdproc's ImageFileCollection and a plain read of the bytes.

On the same simulated frames, in one run:
  * plain read     -- read every file's bytes once (the floor for anything that hashes them);
  * peer           -- ccdproc.ImageFileCollection(location, keywords='*') over each night,
                      the lecture's way of seeing every header;
  * nota index     -- nota's header indexing alone: every card of every HDU into SQLite and
                      the frames normalised (ingest with content hashing switched off);
  * nota ingest    -- the full ingest: the same plus a content hash of every file's bytes;
  * nota re-ingest -- the same directories again (nothing changed).
Each nota figure is taken twice: in this process (the library) and as the whole command a
user types (`nota ingest --no-hash`, `nota ingest`: interpreter start, imports and all; the
median of five runs), against `cat` of every file as the whole-command plain read; the
peer is run five times too, in turn with the commands, and the ratios compare medians.
Prints files per second for each and the ratios. Aims: nota's header indexing at least 10x
ImageFileCollection while storing every card; nota's full ingest within 1.5x the plain read.

    python bench/ingest.py                 # ten full-size nights (about 1,300 frames, 12 GB)
    python bench/ingest.py --nights 2 --small
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from nota.archive.database import open_archive
from nota.pipeline.ingest import ingest, iter_fits
from nota.simulate import simulate_run

REPEAT = 5  # runs of each whole command


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - t0, time.process_time() - c0


def ensure_nights(out: Path, nights: int, small: bool) -> list[Path]:
    """Simulate the run once and reuse it: the frames are deterministic for the seed."""
    stamp = out / f".complete-{nights}-{'small' if small else 'full'}"
    dirs = [out / f"N{i}" for i in range(1, nights + 1)]
    if not stamp.exists():
        print(f"simulating {nights} night(s) into {out} ...", flush=True)
        _, wall, _ = timed(lambda: simulate_run(out, nights=nights, seed=2008, small=small))
        print(f"  simulated in {wall:.0f} s", flush=True)
        stamp.touch()
    return dirs


def plain_read(files: list[Path]) -> int:
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            total += len(fh.read())
    return total


def peer(dirs: list[Path]) -> int:
    from ccdproc import ImageFileCollection  # imported before the clock starts: see main

    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in dirs:
            collection = ImageFileCollection(str(d), keywords="*")
            n += len(collection.summary)
    return n


PEER = "ImageFileCollection *"


def _whole_commands(tmp: Path, dirs: list[Path], files: list[Path]) -> dict[str, float]:
    """Wall seconds of each command as a user would run it, in a fresh archive each, and of
    the peer in this process: the median of REPEAT runs, taken in turn (this machine's
    speed drifts by a third from one minute to the next; one run of each compared a fast
    minute with a slow one)."""
    import shutil
    import subprocess

    nota = shutil.which("nota", path=str(Path(sys.executable).parent)) or "nota"
    runs = {
        "`cat` of the files": ["sh", "-c", 'cat "$@" > /dev/null', "cat", *map(str, files)],
        "`nota ingest --no-hash`": [nota, "--db", str(tmp / "cmd_index.db"), "ingest", "--no-hash", *map(str, dirs)],
        "`nota ingest`": [nota, "--db", str(tmp / "cmd_ingest.db"), "ingest", *map(str, dirs)],
    }
    out: dict[str, list[float]] = {label: [] for label in (PEER, *runs)}
    for _ in range(REPEAT):  # interleaved, so a passing disturbance touches every contender
        out[PEER].append(timed(lambda: peer(dirs))[1])
        for label, command in runs.items():
            db = Path(command[2]) if command[0] == nota else None
            for stale in (db, *(db.parent.glob(db.name + "-*") if db else ())):
                if stale is not None and stale.exists():
                    stale.unlink()  # a fresh archive each time
            t0 = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            out[label].append(time.perf_counter() - t0)
    return {label: statistics.median(walls) for label, walls in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="4x4-binned frames (quick check)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/ingest"))
    args = parser.parse_args()

    dirs = ensure_nights(args.out, args.nights, args.small)
    files = list(iter_fits(dirs))
    size = sum(f.stat().st_size for f in files)
    print(f"{len(files)} files, {size / 1e9:.2f} GB in {len(dirs)} night(s)")
    plain_read(files)  # warm the page cache so every contender reads from memory

    import ccdproc  # noqa: F401  (its import, 0.3 s, is not ImageFileCollection's work)

    nbytes, read_wall, read_cpu = timed(lambda: plain_read(files))
    n_peer, peer_wall, peer_cpu = timed(lambda: peer(dirs))
    with tempfile.TemporaryDirectory() as tmp:
        with open_archive(Path(tmp) / "index.db") as archive:
            _, index_wall, index_cpu = timed(lambda: ingest(archive, dirs, hash_content=False))
        with open_archive(Path(tmp) / "bench.db") as archive:
            report, nota_wall, nota_cpu = timed(lambda: ingest(archive, dirs))
            cards = archive.conn.execute("SELECT count(*) FROM headers").fetchone()[0]
            again, re_wall, re_cpu = timed(lambda: ingest(archive, dirs))
        commands = _whole_commands(Path(tmp), dirs, files)
    assert report.outcomes["new"] == len(files), report.outcomes
    assert n_peer == len(files), n_peer

    def rate(seconds: float) -> str:
        return f"{len(files) / seconds:9.1f} files/s"

    print()
    print(f"{'':24} {'wall s':>8} {'cpu s':>8}   rate")
    print(f"{'plain read of bytes':24} {read_wall:8.2f} {read_cpu:8.2f}   {rate(read_wall)}  ({nbytes / read_wall / 1e9:.2f} GB/s)")
    print(f"{'ImageFileCollection *':24} {peer_wall:8.2f} {peer_cpu:8.2f}   {rate(peer_wall)}")
    print(f"{'nota index (no hashing)':24} {index_wall:8.2f} {index_cpu:8.2f}   {rate(index_wall)}")
    print(f"{'nota ingest':24} {nota_wall:8.2f} {nota_cpu:8.2f}   {rate(nota_wall)}  ({cards} cards stored)")
    print(f"{'nota re-ingest':24} {re_wall:8.2f} {re_cpu:8.2f}   {rate(re_wall)}")
    print()
    print(f"medians of {REPEAT} runs, in turn (the peer in this process, the rest as whole commands):")
    for label, wall in commands.items():
        print(f"{label:24} {wall:8.2f} {'':8}   {rate(wall)}")
    print()
    print(f"as whole commands (what a user times; medians of {REPEAT}, the peer's too):")
    print(f"ratio ImageFileCollection / `nota ingest --no-hash`: {commands[PEER] / commands['`nota ingest --no-hash`']:6.1f}x"
          "   (aim >= 10)")
    print(f"ratio `nota ingest` / `cat` of the files:            "
          f"{commands['`nota ingest`'] / commands['`cat` of the files']:6.2f}x   (aim <= 1.5)")
    print("in this process (the library):")
    print(f"ratio ImageFileCollection / nota index:  {peer_wall / index_wall:6.1f}x   (aim >= 10)")
    print(f"ratio ImageFileCollection / nota ingest: {peer_wall / nota_wall:6.1f}x")
    print(f"ratio nota ingest / plain read:          {nota_wall / read_wall:6.2f}x   (aim <= 1.5)")
    print("(cpu s counts this process only; nota's reader processes work beside it)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
