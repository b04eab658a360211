"""A year's archive stays interactive: nota on 12,000+ frames (issue 13, item 6).

One small simulated night (``simulate_run(small=True)``) is measured once with ``nota qc``;
then ~90 nights a year apart are written as header copies of it: each file is the night's
real header with every date shifted (DATE-OBS, DATE-AVG, DATE, the UT comment: so the
night, MJD and content hash differ) followed by a data unit of the real size that is a hole
in a sparse file (zeros, no disk blocks). Ingest reads, hashes and locates exactly what it
would on the real frame; only the pixels are zeros, so the copies' quality figures are
the template frame's, copied into ``qc`` (``nota qc`` then re-flags and plots every night,
and ``nota groups`` groups them, as on a real year).

In one run it reports, each command as a user times it (wall and CPU of the process):
ingest per file into an empty archive (the first ~1,000 files) and into one holding ~11,000
(aim: no growth); ``nota qc`` (re-flag only) and ``nota groups`` on the year; ``nota select
--where`` and ``nota frames --night`` (aim under 0.3 s); ``nota reduce --dry-run`` as a
command and ``plan_reduction`` in process; and the Datasette frames page with its facets
(HTML and JSON) under a bounded load of a few concurrent clients on loopback, p50 and p95
(aim p95 under 0.3 s). Files are kept in bench/out/scale/raw between runs.

    python bench/scale.py                  # 12,060 frames (90 nights)
    python bench/scale.py --frames 1500    # a quick check
    python bench/scale.py --keep           # reuse the archive of the last run: queries and serve only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "scale"
BIN = Path(sys.executable).parent
NOTA = str(BIN / "nota")
FIRST_NIGHT = date(2008, 4, 12)
NIGHT_STEP = 4  # days between nights: 90 nights span a year
BLOCK = 2880
_DATE = re.compile(rb"(\d{4})-(\d{2})-(\d{2})")


# -- the data ------------------------------------------------------------------------------

def template_night(out: Path) -> tuple[Path, Path]:
    """The simulated small night and a template archive with its measured quality figures."""
    raw, db = out / "template", out / "template.db"
    if not (raw / "N1").is_dir():
        from nota.simulate import simulate_run

        shutil.rmtree(raw, ignore_errors=True)
        simulate_run(raw, nights=1, seed=1, small=True)
    if not db.exists():
        env = {**os.environ, "NOTA_DB": str(db)}
        for args in (["ingest", str(raw / "N1")], ["qc"]):
            subprocess.run([NOTA, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return raw / "N1", db


def _header_and_size(path: Path) -> tuple[bytes, int]:
    """The bytes of a simple FITS file's header and the padded size of its data unit."""
    from nota.fitsheader import read_file_hdus

    hdus = read_file_hdus(str(path))
    if len(hdus) != 1:
        raise SystemExit(f"{path}: the template should be simple FITS")
    with open(path, "rb") as f:
        header = f.read(hdus[0].data_offset)
    return header, (hdus[0].data_size + BLOCK - 1) // BLOCK * BLOCK


def write_year(template: Path, raw: Path, n_nights: int, start: int = 0) -> list[Path]:
    """``n_nights`` header copies of the template night, one folder per night (reused),
    from the ``start``-th night on."""
    frames = sorted(template.glob("*.fits"))
    headers = [(f.name, *_header_and_size(f)) for f in frames]
    nights = []
    for i in range(start, start + n_nights):
        shift = timedelta(days=NIGHT_STEP * i)
        folder = raw / (FIRST_NIGHT + shift).isoformat()
        nights.append(folder)
        if folder.is_dir() and len(list(folder.glob("*.fits"))) == len(frames):
            continue
        folder.mkdir(parents=True, exist_ok=True)

        def shifted(m: re.Match) -> bytes:
            day = date(int(m[1]), int(m[2]), int(m[3])) + shift
            return day.isoformat().encode()

        for name, header, data_size in headers:
            with open(folder / name, "wb") as f:
                f.write(_DATE.sub(shifted, header))
                f.truncate(len(header) + data_size)  # the data unit: a hole, read as zeros
    return nights


def copy_quality_figures(db: Path, template_db: Path) -> int:
    """Each copy gets its template frame's measured figures (its own pixels are zeros)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(qc)")
                   if r[1] not in ("file_id", "content_hash", "activity_id")]
        conn.execute("ATTACH ? AS t", (str(template_db),))
        n = conn.execute(
            f"INSERT OR REPLACE INTO qc (file_id, content_hash, {', '.join(columns)})"
            f" SELECT f.file_id, f.content_hash, {', '.join('q.' + c for c in columns)}"
            " FROM files f JOIN t.files tf ON tf.name = f.name JOIN t.qc q ON q.file_id = tf.file_id"
            " WHERE f.status = 'ok'").rowcount
        conn.execute("DETACH t")
    finally:
        conn.close()
    return n


# -- measuring -----------------------------------------------------------------------------

def run(args: list[str], db: Path) -> tuple[float, str]:
    """A whole nota command as a user runs it: wall seconds and stdout."""
    env = {**os.environ, "NOTA_DB": str(db)}
    start = time.perf_counter()
    proc = subprocess.Popen([NOTA, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.stderr.write(err.decode()[-2000:])
        raise SystemExit(f"nota {' '.join(args)}: exit status {proc.returncode}")
    return wall, out.decode()


def timed(args: list[str], db: Path, repeat: int = 1) -> tuple[float, float, str]:
    """Median wall and CPU of ``repeat`` runs of a whole command (CPU: the command's and its
    workers', from this process's rusage of its waited-for children)."""
    import resource

    walls, cpus, out = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, out = run(args, db)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(wall)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus), out


def _copy_db(source: Path, target: Path) -> None:
    """A consistent copy of an archive (SQLite's backup: the WAL included)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def ingest_cost(db: Path, folders: list[Path], repeat: int = 3) -> tuple[float, float, int]:
    """``nota ingest FOLDERS`` into the archive as it is, ``repeat`` times from the same
    state (the least CPU of the runs: the machine is shared): wall, CPU, files added."""
    snapshot = db.with_name(db.stem + ".before.db")
    had = db.exists()
    if had:
        _copy_db(db, snapshot)
    before = count_frames(db) if had else 0
    runs = []
    for i in range(repeat):
        if i:
            for suffix in ("", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            if had:
                _copy_db(snapshot, db)
        wall, cpu, _ = timed(["ingest", *map(str, folders)], db)
        runs.append((cpu, wall))
    snapshot.unlink(missing_ok=True)
    cpu, wall = min(runs)
    return wall, cpu, count_frames(db) - before


def _python_start() -> tuple[float, float]:
    """Wall and CPU of ``python -c pass``, median of 5: what any command starts from."""
    import resource

    walls, cpus = [], []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def count_frames(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM frames").fetchone()[0]
    finally:
        conn.close()


def plan_in_process(db: Path) -> tuple[float, float, int]:
    """``plan_reduction`` on the archive, in this process: wall, CPU, tasks."""
    from nota.archive.database import open_archive
    from nota.pipeline.plan import ReduceOptions, plan_reduction

    archive = open_archive(db)
    try:
        options = ReduceOptions(products_root=str(db.parent / "nota.products"))
        plan_reduction(archive, options)  # warm: profiles read, modules imported
        cpu0, start = time.process_time(), time.perf_counter()
        plan = plan_reduction(archive, options)
        return time.perf_counter() - start, time.process_time() - cpu0, len(plan.tasks) + len(plan.up_to_date)
    finally:
        archive.conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (Linux: /proc/PID/stat utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status}")
    return time.perf_counter() - start


def load(db: Path, paths: list[str], clients: int, per_client: int) -> dict[str, list[float]]:
    """Serve the archive as a real process and fetch ``paths`` from ``clients`` threads,
    each ``per_client`` requests in turn over the paths: latencies by path."""
    port = _free_port()
    server = subprocess.Popen([NOTA, "--db", str(db), "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(base + "/-/versions.json")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("nota serve did not start: " + server.stderr.read().decode()[-2000:])
                time.sleep(0.2)
        cold = {p: _get(base + p) for p in paths}  # first request of each page, alone
        latencies: dict[str, list[float]] = {p: [] for p in paths}
        lock = threading.Lock()

        def client(k: int) -> None:
            for i in range(per_client):
                path = paths[(i + k) % len(paths)]
                seconds = _get(base + path)
                with lock:
                    latencies[path].append(seconds)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        cpu0 = _process_cpu(server.pid)
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        latencies["_wall"] = [time.perf_counter() - start]
        latencies["_server_cpu"] = [_process_cpu(server.pid) - cpu0]
        latencies["_cold"] = [cold[p] for p in paths]
        return latencies
    finally:
        server.terminate()
        server.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- the run -------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=12_000, help="at least this many frames (default 12,000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent Datasette clients (default 4)")
    parser.add_argument("--requests", type=int, default=40, help="requests per client (default 40)")
    parser.add_argument("--keep", action="store_true", help="reuse the archive of the last run (skip ingest, qc, groups)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    template, template_db = template_night(out)
    per_night = len(list(template.glob("*.fits")))
    n_nights = math.ceil(args.frames / per_night)
    start = time.perf_counter()
    nights = write_year(template, out / "raw", n_nights)
    print(f"{n_nights} nights x {per_night} header copies of the small simulated night in {out / 'raw'}"
          f" (written or checked in {time.perf_counter() - start:.1f} s); the machine's load average"
          f" at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    db = out / "nota.db"
    aims = []

    if not (args.keep and db.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        batch = max(1, min(math.ceil(1000 / per_night), n_nights // 3))
        first, middle, last = nights[:batch], nights[batch:n_nights - batch], nights[n_nights - batch:]
        w1, c1, n1 = ingest_cost(db, first)
        wm, cm, _ = timed(["ingest", *map(str, middle)], db) if middle else (0.0, 0.0, "")
        n_before = count_frames(db)
        w2, c2, n2 = ingest_cost(db, last)
        print("\ningest (nota ingest, whole command, with hashing; first and last: the least CPU of 3 runs)")
        print(f"  first {n1:>6} files into an empty archive: {w1:6.1f} s wall {c1:6.1f} s CPU ="
              f" {1000 * w1 / n1:5.2f} ms/file wall, {1000 * c1 / n1:5.2f} ms/file CPU")
        print(f"  next  {n_before - n1:>6} files                        : {wm:6.1f} s wall {cm:6.1f} s CPU")
        print(f"  last  {n2:>6} files into {n_before:,} frames   : {w2:6.1f} s wall {c2:6.1f} s CPU ="
              f" {1000 * w2 / n2:5.2f} ms/file wall, {1000 * c2 / n2:5.2f} ms/file CPU")
        aims.append((f"ingest per file, at {n_before / 1000:.0f}k / at 0 (CPU)", (c2 / n2) / (c1 / n1), 1.0, "x",
                     "aim: no growth (10 %)"))
        copied = copy_quality_figures(db, template_db)
        wq, cq, _ = timed(["qc"], db)
        wg, cg, _ = timed(["groups"], db)
        print(f"\nquality figures of the template copied to {copied:,} frames; then, whole commands:")
        print(f"  nota qc     (nothing to measure: re-flag, night plots) {wq:6.2f} s wall {cq:6.2f} s CPU")
        print(f"  nota groups (every night's groups and associations)    {wg:6.2f} s wall {cg:6.2f} s CPU")

    total = count_frames(db)
    night = nights[len(nights) // 2].name
    print(f"\nthe archive: {total:,} frames, {db.stat().st_size / 2**20:.0f} MB; whole commands, median of 5:")
    start_wall, start_cpu = _python_start()
    where = "kind = 'sky_flat' AND filter = 'R' AND exptime > 5"  # a year's R sky flats
    for label, cmd, aim in (
        ("nota select --where", ["select", "--where", where], 0.3),
        ("nota select --where --json", ["select", "--where", where, "--json"], None),
        ("nota frames --night", ["frames", "--night", night], 0.3),
        ("nota frames (no such night)", ["frames", "--night", "1900-01-01"], None),
        ("nota query", ["query", f"SELECT filename, object, exptime FROM frames WHERE night = '{night}'"
                        " AND exptime > 600"], 0.3),
    ):
        wall, cpu, text = timed(cmd, db, repeat=5)
        rows = len(json.loads(text)) if "--json" in cmd else max(0, len(text.strip().splitlines()) - 2)
        print(f"  {label:<28} {wall:6.3f} s wall {cpu:6.3f} s CPU  ({rows} rows)")
        if aim is not None:
            aims.append((label, wall, aim, "s", f"aim < {aim} s"))
    print(f"  (python -c pass: {start_wall:.3f} s wall {start_cpu:.3f} s CPU)")
    wd, cd, text = timed(["reduce", "--dry-run"], db)
    summary = text.strip().splitlines()[-1] if text.strip() else ""
    wp, cp, n_tasks = plan_in_process(db)
    print(f"  nota reduce --dry-run  {wd:6.3f} s wall {cd:6.3f} s CPU  ({summary})")
    print(f"  plan_reduction in process: {wp:6.3f} s wall {cp:6.3f} s CPU for {n_tasks:,} tasks"
          f" = {1000 * cp / max(n_tasks, 1):.2f} ms CPU per task")

    name = db.stem
    paths = [f"/{name}/frames", f"/{name}/frames.json"]
    lat = load(db, paths, args.clients, args.requests)
    print(f"\nDatasette frames page with its facets (nota serve, a real process), {args.clients} clients on"
          f" loopback, {args.requests} requests each in {lat['_wall'][0]:.1f} s; the server's CPU:"
          f" {1000 * lat['_server_cpu'][0] / (args.clients * args.requests):.0f} ms per request:")
    for path, cold in zip(paths, lat["_cold"]):
        values = lat[path]
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        print(f"  {path:<22} alone {cold:6.3f} s; under load p50 {p50:6.3f} s p95 {p95:6.3f} s ({len(values)} requests)")
        aims.append((f"{path} p95 under load", p95, 0.3, "s", "aim < 0.3 s"))

    print("\nfigure                                   value       aim")
    for label, value, aim, unit, words in aims:
        mark = "ok" if value <= aim * (1.1 if unit == "x" else 1.0) else "MISSED"
        print(f"  {label:<38} {value:7.3f} {unit:<2} {words:<22} {mark}")
    print(f"(CPU beside wall: the load average was {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end)")


if __name__ == "__main__":
    main()
