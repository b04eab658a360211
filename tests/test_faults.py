"""A product that cannot be written (a full disk) fails alone, leaves nothing, and is made next time.

The disk is "full" for one Dask worker process: its file-size limit (RLIMIT_FSIZE) lets
masters through and stops the larger reduced frames, with SIGXFSZ ignored so the write
fails with EFBIG as on a full disk. The archive is written by `nota reduce` itself, which
has no limit.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import free_port
from nota.archive.database import open_readonly

LIMIT = 2_600_000  # bytes: over a small-night master (2.34 MB), under a cleaned reduced frame (2.8 MB: + masks)
DASK = str(Path(sys.executable).with_name("dask"))


def _disk_full() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across exec


def _nota(*args, **kw):
    return subprocess.run([sys.executable, "-m", "nota.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900, **kw)


def _part_of_the_night(night: Path, out: Path) -> Path:
    """The biases, the R flats and four R science frames: enough for masters and frames."""
    import shutil

    from nota.archive.database import open_archive
    from nota.pipeline.ingest import ingest

    with open_archive(out.parent / "scratch.db") as archive:
        ingest(archive, [night])
        names = [r["filename"] for r in archive.dicts(
            "SELECT filename FROM frames WHERE kind = 'bias' OR (kind LIKE '%flat' AND filter = 'R')"
            " UNION ALL SELECT * FROM (SELECT filename FROM frames WHERE kind = 'science' AND filter = 'R'"
            " ORDER BY filename LIMIT 4)")]
    out.mkdir()
    for name in names:
        shutil.copy(night / name, out / name)
    return out


def test_a_full_disk_fails_only_what_it_stops_and_the_next_run_completes_it(small_night, tmp_path):
    db, root = tmp_path / "nota.db", tmp_path / "products"
    night = _part_of_the_night(small_night.directory, tmp_path / "N1")
    assert _nota("--db", db, "ingest", night).returncode == 0
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT)
    worker = subprocess.Popen([DASK, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                               "--no-nanny"], stdout=log, stderr=subprocess.STDOUT, preexec_fn=_disk_full)
    try:
        time.sleep(3)
        full = _nota("--db", db, "reduce", "--products", root, "--scheduler", address, "--no-stacks",
                     "--no-photometry", "--json")
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)
        log.close()
    assert full.returncode == 1, full.stdout + full.stderr + (tmp_path / "dask.log").read_text()[-2000:]
    report = json.loads(full.stdout)
    failed = {f["output"]: f["error"] for f in report["failed"]}
    assert failed and all(Path(o).name.startswith("fzt_") for o in failed)
    assert all("could not be written" in e and "File too large" in e for e in failed.values())
    assert {b["kind"] for b in report["built"]} == {"master_bias", "master_flat"}  # the night went on
    with open_readonly(db) as archive:
        registered = {r["path"] for r in archive.dicts("SELECT path FROM products WHERE current = 1")}
    assert not registered & set(failed) and not any(os.path.exists(o) for o in failed)
    assert not [p for p in root.rglob("*") if p.name.startswith(".nota-tmp-")]
    # Room again: the next run makes exactly what failed, and the archive checks out.
    again = _nota("--db", db, "reduce", "--products", root, "--no-stacks", "--no-photometry", "--jobs", "2",
                  "--json")
    assert again.returncode == 0, again.stderr
    assert {b["path"] for b in json.loads(again.stdout)["built"]} == set(failed)
    checked = _nota("--db", db, "check")
    assert checked.returncode == 0, checked.stdout
