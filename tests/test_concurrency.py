"""Several processes at once on one archive: nothing lost, nobody refused."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import python_prints


def test_processes_creating_one_new_archive_at_once_all_succeed(tmp_path):
    db = tmp_path / "new.db"
    code = ("from nota.archive.database import open_archive\n"
            f"a = open_archive({str(db)!r})\n"
            "print(a.conn.execute(\"SELECT value FROM archive_info WHERE key = 'archive_id'\").fetchone()[0])\n"
            "a.close()\n")
    for _ in range(25):  # a race lost is a race not seen: try it many times
        db.unlink(missing_ok=True)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        results = [(p.wait(timeout=120), p.stdout.read().strip(), p.stderr.read()) for p in procs]
        assert all(rc == 0 for rc, _, _ in results), [err for rc, _, err in results if rc]
        assert len({out for _, out, _ in results}) == 1  # one archive, made once


def test_ingest_while_reduce_runs_and_serve_while_both(small_night, tmp_path):
    """Three processes on one archive: nothing refused, nothing lost, and the next reduce
    finishes what the late frames call for."""
    import json
    import shutil
    import time
    import urllib.request

    from conftest import free_port

    first, late = tmp_path / "N1" / "evening", tmp_path / "N1" / "late"
    first.mkdir(parents=True)
    late.mkdir()
    for n, path in enumerate(sorted(small_night.directory.glob("*.fits"))):
        shutil.copy(path, (late if n >= 100 else first) / path.name)
    db = tmp_path / "nota.db"
    nota = [sys.executable, "-m", "nota.cli", "--db", str(db)]
    light = ["--no-cosmics", "--no-stacks", "--no-photometry", "--jobs", "1", "--json"]
    assert subprocess.run(nota + ["ingest", str(first)], capture_output=True).returncode == 0
    port = free_port()
    serve = subprocess.Popen(nota + ["serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    reduce = subprocess.Popen(nota + ["reduce", *light], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        ingest = subprocess.run(nota + ["ingest", str(late), "--json"], capture_output=True, text=True, timeout=300)
        pages = []
        while reduce.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/nota/frames.json?_size=1", timeout=10) as r:
                    pages.append(r.status)
            except OSError:
                pages.append(None)
            time.sleep(0.5)
        out, err = reduce.communicate(timeout=600)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert ingest.returncode == 0, ingest.stderr
    assert reduce.returncode == 0, err
    assert pages.count(200) >= len(pages) - 4 and pages[-1] == 200  # served throughout (after it started)
    from nota.archive.database import open_readonly

    with open_readonly(db) as archive:
        assert archive.one("SELECT count(*) AS n FROM frames")["n"] == len(list(small_night.directory.glob("*.fits")))
        made = archive.one("SELECT count(*) AS n FROM products WHERE current = 1")["n"]
    assert made == len(json.loads(out)["built"])
    again = subprocess.run(nota + ["reduce", *light], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr  # what the late frames call for, if the first run missed them
    planned = subprocess.run(nota + ["reduce", "--dry-run", *light], capture_output=True, text=True, timeout=600)
    assert json.loads(planned.stdout)["to_build"] == []
    with open_readonly(db) as archive:
        reduced = archive.one("SELECT count(*) AS n FROM products WHERE current = 1 AND kind = 'reduced'")["n"]
        to_reduce = archive.one("SELECT count(DISTINCT file_id) AS n FROM associations")["n"]
    assert reduced == to_reduce > 0
    assert subprocess.run(nota + ["check"], capture_output=True).returncode == 0


def test_workers_are_not_forked_from_a_process_with_an_openmp_pool(tmp_path):
    """A notebook that cleaned a frame itself holds astroscrappy's OpenMP threads; a worker
    forked from it hung in its first L.A.Cosmic. The runner sees native threads too."""
    code = ("import numpy as np\n"
            "from astropy.nddata import CCDData\n"
            "from nota.pipeline.runners import _worker_context\n"
            "before = _worker_context().get_start_method()\n"
            "from nota.reduce.cosmics import remove_cosmics\n"
            "data = np.random.default_rng(1).normal(100, 5, (300, 300)).astype(np.float32)\n"
            "remove_cosmics(CCDData(data, unit='adu'), gain=1.0, read_noise=5.0, saturation=6e4, tiled=False)\n"
            "print(before, _worker_context().get_start_method())\n")
    assert python_prints(code) == ["fork", "forkserver"]


def test_pool_workers_run_blas_on_one_thread_whenever_numpy_loads(tmp_path):
    """Workers keep BLAS to one thread (the pool already fills the cores): through
    threadpoolctl when numpy came with the fork, through the variables BLAS reads at load
    when the parent never imported numpy (ingest's readers); the parent's own setting and
    environment stay as they were."""
    code = ("import os, sys\n"
            "if sys.argv[1] == 'numpy-first': import numpy\n"
            "from nota.parallel import map_in_processes\n"
            "def blas_threads(_):\n"
            "    import numpy\n"
            "    from threadpoolctl import threadpool_info\n"
            "    return sorted({lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas'})\n"
            "print(sorted({tuple(n) for n in map_in_processes(blas_threads, list(range(4)), jobs=2, parallel_from=1)}),\n"
            "      os.environ.get('OPENBLAS_NUM_THREADS'))\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    for order in ("numpy-first", "numpy-in-worker"):
        assert python_prints(code, order, timeout=120, env=env) == ["[(1,)]", "None"], order
