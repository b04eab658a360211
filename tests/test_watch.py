"""nota watch: a night reduced while it is observed, as real processes on real files.

The whole-night test is the issue's: `nota watch` runs as its own process on an empty
directory while the simulated night is copied in, frame by frame in time order, each file
in two pieces with a pause between; it is stopped (SIGTERM) part way, started again, and
stopped (SIGINT) at the end. Its products must then be the batch reduction's, with nothing
left to build and nothing half-made at either stop.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from nota.pipeline.ingest import iter_fits
from nota.pipeline.watch import BLOCK, fits_complete

SETTLE = 0.2  # seconds: short, so the test is quick; the pause below is longer on purpose
PAUSE = 0.3  # a half-written file rests longer than SETTLE: only fits_complete keeps it out
PATIENCE = 900  # seconds before a wait gives up: a guard against a hung watch, not a timing claim


# fits_complete: the pure check --------------------------------------------------------------


@pytest.fixture
def fits_bytes(tmp_path):
    """Bytes of a simple frame and of a MEF (empty primary, two image extensions)."""
    simple, mef = tmp_path / "simple.fits", tmp_path / "mef.fits"
    fits.PrimaryHDU(np.arange(200 * 150, dtype=np.uint16).reshape(200, 150)).writeto(simple)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((60, 70), np.float32)),
                  fits.ImageHDU(np.zeros((30, 40), np.int16))]).writeto(mef)
    return simple.read_bytes(), mef.read_bytes()


def _written(tmp_path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_whole_fits_files_are_complete(fits_bytes, tmp_path):
    simple, mef = fits_bytes
    assert fits_complete(_written(tmp_path, "a.fits", simple))
    assert fits_complete(_written(tmp_path, "b.fits", mef))
    assert fits_complete(_written(tmp_path, "c.fits.gz", gzip.compress(simple)))


def test_a_file_cut_anywhere_is_not_complete(fits_bytes, tmp_path):
    """A file as a writer leaves it part way: mid-header, mid-data, at a block boundary."""
    simple, mef = fits_bytes
    for data in (simple, mef):
        for n in (0, 80, BLOCK - 1, BLOCK, len(data) // 2, len(data) - 1):
            assert not fits_complete(_written(tmp_path, "cut.fits", data[:n])), n


def test_a_file_missing_its_last_block_is_not_complete(fits_bytes, tmp_path):
    """Whole blocks (size a multiple of 2880), but the last HDU's data is short by one."""
    simple, mef = fits_bytes
    for data in (simple, mef):
        short = data[:-BLOCK]
        assert len(short) % BLOCK == 0
        assert not fits_complete(_written(tmp_path, "short.fits", short))
    assert not fits_complete(_written(tmp_path, "short.fits.gz", gzip.compress(simple[:-BLOCK])))
    assert not fits_complete(_written(tmp_path, "cut.fits.gz", gzip.compress(simple)[:-50]))


def test_what_is_not_fits_is_not_complete(tmp_path):
    assert not fits_complete(_written(tmp_path, "text.fits", b"x" * BLOCK))
    assert not fits_complete(tmp_path / "absent.fits")


def test_a_master_rebuilt_in_place_is_read_again(tmp_path):
    """`nota watch --jobs 1` makes cycle after cycle in one process: a master rebuilt when a
    late member arrives keeps its path and its size, and must not be served from the cache."""
    from astropy.nddata import CCDData, StdDevUncertainty

    from nota.pipeline.product_files import read_master, write_product

    def master(level: float) -> CCDData:
        return CCDData(np.full((20, 30), level), unit="adu", uncertainty=StdDevUncertainty(np.ones((20, 30))),
                       mask=np.zeros((20, 30), bool))

    path = str(tmp_path / "master_bias.fits")
    write_product(master(300.0), path)
    assert read_master(path).data[0, 0] == 300.0
    size = os.path.getsize(path)
    write_product(master(301.0), path)
    assert os.path.getsize(path) == size and read_master(path).data[0, 0] == 301.0


# The night, watched -------------------------------------------------------------------------


class Watch:
    """`nota watch` as a subprocess, its JSON lines read as they come by a thread."""

    def __init__(self, db: Path, raw: Path, products: Path, log: Path):
        env = {k: v for k, v in os.environ.items() if k not in ("NOTA_PRODUCTS", "NOTA_INDEX_DIR")}
        self.stderr = open(log, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nota.cli", "--db", str(db), "watch", str(raw), "--json",
             "--settle", str(SETTLE), "--jobs", "2", "--products", str(products)],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        self.events: list[dict] = []
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def drain(self) -> list[dict]:
        """Events that came since the last look, without waiting."""
        new = []
        while True:
            try:
                event = self._lines.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                new.append(event)
        self.events += new
        return new

    def wait_for(self, wanted, what: str) -> None:
        """Read events until ``wanted(events so far)`` holds."""
        deadline = time.monotonic() + PATIENCE
        while not wanted(self.events):
            try:
                event = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                event = None
            if event is None:
                raise AssertionError(f"gave up waiting for {what}; last events: {self.events[-5:]}")
            self.events.append(event)

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=PATIENCE)
        self.drain()
        self.stderr.close()
        return code

    def ingested(self) -> set[str]:
        return {e["subject"] for e in self.events if e["event"] == "ingested"}


def _in_time_order(directory: Path) -> list[Path]:
    """The night's files as the telescope wrote them: by DATE-OBS."""
    return sorted(iter_fits([directory]), key=lambda p: (fits.getheader(p).get("DATE-OBS", ""), p.name))


def _write_in_two(source: Path, target: Path, between=None) -> None:
    """A copy written as a camera might: a first piece (not block-aligned), a pause, the rest."""
    data = source.read_bytes()
    cut = len(data) // 2 + 123
    with open(target, "wb") as out:
        out.write(data[:cut])
        out.flush()
        time.sleep(PAUSE)
        if between:
            between()
        out.write(data[cut:])


def _leftovers(products: Path) -> list[Path]:
    return [p for p in products.rglob("*") if p.name.startswith((".nota-tmp-", ".stack-"))]


def _current(db: Path) -> dict[tuple[str, str], dict]:
    """The archive's current products by (kind, file name)."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT kind, path, recipe_key, size FROM products WHERE current = 1").fetchall()
    return {(r["kind"], Path(r["path"]).name): dict(r) for r in rows}


def _whole_and_settled(db: Path, products: Path) -> None:
    """After a stop: no temporary file, no activity left running, every current product's
    file where and as large as recorded."""
    assert _leftovers(products) == []
    with sqlite3.connect(db) as conn:
        running = conn.execute("SELECT step, activity_id FROM activities WHERE status = 'running'").fetchall()
    assert running == []
    for row in _current(db).values():
        assert os.path.getsize(row["path"]) == row["size"], row["path"]


def _same_pixels(a: str, b: str) -> bool:
    with fits.open(a, memmap=False) as ha, fits.open(b, memmap=False) as hb:
        if [h.name for h in ha] != [h.name for h in hb]:
            return False
        return all(np.array_equal(x.data, y.data, equal_nan=x.data is not None and x.data.dtype.kind == "f")
                   for x, y in zip(ha, hb))


class Served:
    """One Datasette over the archive, as `nota serve` makes it, asked again and again."""

    def __init__(self, db: Path):
        from nota.archive.serve import make_datasette

        self.datasette = make_datasette(db)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.datasette.invoke_startup())

    def count(self, table: str) -> int:
        async def ask() -> int:
            response = await self.datasette.client.get(
                f"/nota.json?sql=select+count(*)+as+n+from+{table}&_shape=array")
            return response.json()[0]["n"]

        return self.loop.run_until_complete(ask())


def test_a_night_watched_as_it_is_observed_ends_as_the_batch_reduction(small_night, _reduced, tmp_path):
    """Copy the night in while `nota watch` runs; SIGTERM it part way (when it can, while a
    cycle builds; with a file half-written), start it again, SIGINT it at the end: exit 0 both times,
    nothing half-made at either stop, no file ever read half-written, and the same products
    (recipe keys and pixels) as `nota reduce` of the whole night."""
    raw, db, products = tmp_path / "raw", tmp_path / "nota.db", tmp_path / "products"
    raw.mkdir()
    night = _in_time_order(small_night.directory)
    batch_db, _ = _reduced
    first = Watch(db, raw, products, tmp_path / "watch.log")
    first.wait_for(lambda events: any(e["event"] == "waiting" for e in events), "the first (empty) cycle")
    started: dict = {}

    def stop_while_building(n: int, half: Path) -> None:
        """Between a file's two pieces: once a third of the night is in and a cycle is
        building reduced frames, stop the first watch and start the second, which must
        find the half file and leave it alone until the rest is written."""
        def made_frames(events: list[dict]) -> bool:
            return any(e["event"] == "built" and "reduced" in e["detail"] for e in events)

        if started or n < len(night) // 3:
            return
        if n >= 2 * len(night) // 3:  # by two thirds of the night in any case, once it has made frames
            first.wait_for(made_frames, "a reduced frame")
        first.drain()
        in_a_cycle = first.events[-1]["event"] not in ("waiting", "watching")
        if not (made_frames(first.events) and (in_a_cycle or n >= 2 * len(night) // 3)):
            return  # preferably stopped mid-cycle
        assert first.stop(signal.SIGTERM) == 0
        _whole_and_settled(db, products)
        started["served"] = Served(db)
        started["frames"] = started["served"].count("frames")
        started["watch"] = second = Watch(db, raw, products, tmp_path / "watch.log")
        second.wait_for(lambda events: {"event": "incomplete", "subject": str(half)} in
                        [{k: e[k] for k in ("event", "subject")} for e in events], "the half file seen as such")

    for n, source in enumerate(night):
        _write_in_two(source, raw / source.name, between=lambda n=n, source=source: stop_while_building(n, raw / source.name))
        if "watch" in started:
            started["watch"].drain()
    assert started
    second, served = started["watch"], started["served"]
    wanted = {str(raw / p.name) for p in night}
    second.wait_for(lambda events: first.ingested() | {e["subject"] for e in events if e["event"] == "ingested"}
                    >= wanted and events[-1]["event"] == "waiting", "every file ingested and its cycle done")
    with sqlite3.connect(batch_db) as conn:
        frames = conn.execute("SELECT count(*) FROM frames").fetchone()[0]
    assert served.count("frames") == frames > started["frames"]  # the same Datasette, asked again
    assert served.count("products") > 0
    assert second.stop(signal.SIGINT) == 0
    _whole_and_settled(db, products)

    events = first.events + second.events
    assert not [e for e in events if e["event"] in ("rejected", "failed")]
    with sqlite3.connect(db) as conn:  # each file read once, whole: no problems, its full size
        assert conn.execute("SELECT count(*) FROM problems").fetchone()[0] == 0
        sizes = dict(conn.execute("SELECT name, size FROM files").fetchall())
    assert sizes == {p.name: p.stat().st_size for p in night}

    dry = subprocess.run([sys.executable, "-m", "nota.cli", "--db", str(db), "reduce", "--dry-run", "--json",
                          "--products", str(products)],
                         capture_output=True, text=True, check=True)
    assert json.loads(dry.stdout)["to_build"] == []

    watched, batch = _current(db), _current(batch_db)
    assert set(watched) == set(batch)
    assert {k: r["recipe_key"] for k, r in watched.items()} == {k: r["recipe_key"] for k, r in batch.items()}
    different = [k for k in batch if not _same_pixels(watched[k]["path"], batch[k]["path"])]
    assert different == []
    with sqlite3.connect(db) as a, sqlite3.connect(batch_db) as b:
        sql = "SELECT night, filter, zp, k FROM calibrations WHERE current = 1 ORDER BY night, filter"
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall()
