"""Shared fixtures: real FITS files on disk, a real SQLite archive, state kept in tmp_path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from nota.archive.database import open_archive


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own archive path and no CI-only behaviour leaks between tests."""
    monkeypatch.setenv("NOTA_DB", str(tmp_path / "nota.db"))


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "nota.db"


@pytest.fixture
def archive(db_path):
    """A migrated archive in tmp_path, closed after the test."""
    with open_archive(db_path) as opened:
        yield opened


def alfosc_header(**cards) -> fits.Header:
    """A minimal ALFOSC-like primary header; keyword arguments add or override cards."""
    header = fits.Header()
    header["FILENAME"] = "ALrd120001.fits"
    header["TELESCOP"] = "NOT"
    header["INSTRUME"] = "ALFOSC_FASU"
    header["OBJECT"] = "Bias afternoon"
    header["IMAGETYP"] = "BIAS"
    header["EXPTIME"] = 0.0
    header["DATE-OBS"] = "2008-04-12T16:01:02.500"
    header["AIRMASS"] = 1.0
    header["ALFLTID"] = 76
    header["FAFLTID"] = 0
    header["FBFLTID"] = 0
    header["DETXBIN"] = 4
    header["DETYBIN"] = 4
    header["COMMENT"] = "written by the nota test-suite"
    for key, value in cards.items():
        header[key.replace("_", "-") if key == "DATE_OBS" else key] = value
    return header


@pytest.fixture
def write_frame(tmp_path):
    """Factory: write a small ALFOSC-like uint16 frame (4x4 binned shape) and return its path."""

    def write(name: str, shape=(513, 550), mef: bool = False, **cards) -> Path:
        path = tmp_path / "raw" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = np.full(shape, 355, dtype=np.uint16)
        header = alfosc_header(FILENAME=name, **cards)
        if mef:
            hdul = fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(data, name="im1")])
        else:
            hdul = fits.HDUList([fits.PrimaryHDU(data, header=header)])
        hdul.writeto(path)
        return path

    return write


def python_prints(code: str, *args: str, timeout: float = 300, env: dict | None = None) -> list[str]:
    """The words a fresh Python process prints running ``code`` (which must succeed): for
    what only a new process shows (its imports, its threads, how it forks)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def file_digests(paths) -> dict[str, str]:
    """sha256 of each file, to prove raw files were not changed."""
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="session")
def small_night(tmp_path_factory):
    """The simulated night N1 at small size (4x4 binned), written once per test session."""
    from nota.simulate import simulate_run

    out = tmp_path_factory.mktemp("sim")
    (night,) = simulate_run(out, nights=1, seed=1, small=True)
    return night


@pytest.fixture(scope="session")
def _night_db(small_night, tmp_path_factory):
    """An archive of the small night after ingest, qc and groups (built once)."""
    from nota.pipeline.groups import build_groups
    from nota.pipeline.ingest import ingest
    from nota.pipeline.qc import run_qc

    path = tmp_path_factory.mktemp("archive") / "night.db"
    with open_archive(path) as archive:
        ingest(archive, [small_night.directory])
        run_qc(archive)
        build_groups(archive)
    return path


@pytest.fixture
def night_db(_night_db, tmp_path):
    """A private copy of the grouped night's archive: tests may change it freely."""
    import sqlite3

    copy = tmp_path / "night.db"
    source = sqlite3.connect(_night_db)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    return copy


def copy_database(source, target):
    """A consistent copy of an archive (WAL included) through SQLite's backup API."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


@pytest.fixture(scope="session")
def _reduced(_night_db, tmp_path_factory):
    """The small night reduced once: (archive path, products root)."""
    from nota.pipeline.plan import ReduceOptions, plan_reduction
    from nota.pipeline.run import run_plan

    base = tmp_path_factory.mktemp("reduced")
    path = copy_database(_night_db, base / "reduced.db")
    db = open_archive(path)
    options = ReduceOptions(products_root=str(base / "products"))
    report = run_plan(db, plan_reduction(db, options), options, jobs=2)
    assert not report.failed, report.failed
    db.conn.close()
    return path, options


@pytest.fixture(scope="session")
def _reduced_unclean(_night_db, tmp_path_factory):
    """The small night reduced without cleaning cosmic rays (for the cleaning and stacking
    functions themselves): (archive path, products root)."""
    from nota.pipeline.plan import ReduceOptions, plan_reduction
    from nota.pipeline.run import run_plan

    base = tmp_path_factory.mktemp("unclean")
    path = copy_database(_night_db, base / "unclean.db")
    db = open_archive(path)
    options = ReduceOptions(products_root=str(base / "products"), cosmics=False, stacks=False)
    report = run_plan(db, plan_reduction(db, options), options, jobs=2)
    assert not report.failed, report.failed
    db.conn.close()
    return path, options


def headless_chrome(profile_dir):
    """A real headless Chromium under Selenium, started as the machine allows (no sandbox as
    root, no background networking on a closed network); the caller quits it."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    return driver


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(path, tmp_path, *options):
    """`nota serve` on an archive as a real process, once it answers: yields its base URL."""
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    port = free_port()
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "nota.cli", "--db", str(path), "serve", "--port", str(port),
                                    *options], stdout=log, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(base + "/nota.json", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None:
                    raise RuntimeError((tmp_path / "serve.log").read_text())
                time.sleep(0.2)
        try:
            yield base, port
        finally:
            process.terminate()
            process.wait(timeout=10)
