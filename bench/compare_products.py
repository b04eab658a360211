"""Prove that a refactor changed no product: reduce one night with the old and the new code.

A refactor of archive/, reduce/ or nota/ must leave every product byte-for-byte the same in
its pixels (data, UNCERT, MASK, CRMASK) and the same in its archive facts. This script:

  1. extracts the code of a git ref (default 0b66dac, the commit before the refactor) with
     ``git archive`` into OUT/baseline-src and lays it out as an importable package in
     OUT/baseline-pkg/nota (nota/* plus archive/ -> nota.archive, reduce/ -> nota.reduce,
     as pyproject maps them), so the old CLI runs on the current venv's dependencies with
     ``PYTHONPATH=OUT/baseline-pkg`` -- no second venv;
  2. simulates one small night once (new code's simulator; raw frames made read-only) and
     runs ingest, qc, groups, astrometry build-index (when solve-field is on PATH) and
     reduce on each side, each side in its own directory (OUT/baseline, OUT/new);
  3. matches the current products of both archives by (kind, night, filter, file name),
     compares their FITS planes exactly (NaN equal to NaN), their headers (differences are
     warnings; cards naming the run -- NOTAKEY, NOTAVER, DATE, FILENAME, paths, times of
     the run -- are skipped, and PHOTCAL, an archive row id, is compared as the night and
     filter of its calibration), and the archives' photometric calibrations (zp, k,
     colour_term, n_used) and product facts (exptime, airmass, photzp) with a 1e-9 tolerance.

One run at a time per OUT (a lock file there; a second run waits).

Exit status 0 when every product is equal, 1 when any differs or is missing on one side,
2 when a side could not be built or run. OUT/baseline/nota.db and OUT/baseline/products
stay behind for others to compare against.

    .venv/bin/python bench/compare_products.py
    .venv/bin/python bench/compare_products.py --ref 0b66dac --out bench/out/compare
    # again after more refactoring: only the new side is rebuilt
    .venv/bin/python bench/compare_products.py --reuse-baseline
    # working tree broken mid-refactor: check the harness itself, baseline against baseline
    .venv/bin/python bench/compare_products.py --new-pythonpath bench/out/compare/baseline-pkg
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import math
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO

import numpy as np
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
CLI = "from nota.cli import app; app()"
# Import every nota module (walking each nota.* package until no new one turns up, so
# packages mapped from outside nota/, like nota.archive, are walked too) and print, as JSON,
# where each came from and which failed: a half-done refactor shows here in seconds, not
# after the baseline's run, and a baseline that leaks the working tree's code is caught.
WHERE = """
import importlib, json, pkgutil, sys
import nota, nota.cli
failed, walked = [], set()
for name in sys.argv[1:]:  # the packages pyproject maps from outside nota/
    try:
        importlib.import_module(name)
    except (Exception, SystemExit) as error:
        failed.append(f"{name}: {type(error).__name__}: {error}")
while True:
    todo = sorted(n for n, m in list(sys.modules.items())
                  if (n == "nota" or n.startswith("nota.")) and hasattr(m, "__path__") and n not in walked)
    if not todo:
        break
    for name in todo:
        walked.add(name)
        for module in pkgutil.iter_modules(sys.modules[name].__path__, name + "."):
            if module.name.endswith(".__main__"):
                continue  # runs the CLI when imported
            try:
                importlib.import_module(module.name)
            except (Exception, SystemExit) as error:
                failed.append(f"{module.name}: {type(error).__name__}: {error}")
files = {n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n == "nota" or n.startswith("nota.")}
print(json.dumps({"nota": nota.__file__, "files": files, "failed": failed}))
"""
# Settings the caller's shell may carry that would point a side at someone else's files.
SCRUBBED_ENV = ("NOTA_DB", "NOTA_PRODUCTS", "NOTA_INDEX_DIR", "PYTHONPATH", "PYTHONHOME",
                "PYTHONSTARTUP", "PYTHONSAFEPATH")
PLANES = ("PRIMARY", "UNCERT", "MASK", "CRMASK")
# Header cards that name the run rather than the pixels: expected to differ.
SKIPPED_KEYWORDS = frozenset({"NOTAKEY", "NOTAVER", "DATE", "FILENAME", "CHECKSUM", "DATASUM"})
TIMESTAMP_ANY = re.compile(r"(?P<day>\d{4}-\d\d-\d\d)[T ]\d\d:\d\d(:\d\d(\.\d+)?)?")
CAL_COLUMNS = ("zp", "k", "colour_term", "n_used")
PRODUCT_FACTS = ("exptime", "airmass", "photzp")
TOLERANCE = 1e-9
# Cards holding a row id of the side's own archive, compared by what the row is.
ROW_ID_KEYWORDS = frozenset({"PHOTCAL"})
LOCK_NAME = ".compare-products.lock"  # in OUT: the pid of the run using it
BASELINE_STAMP = ".nota-baseline-run"  # in OUT/baseline: the commit of a complete baseline run


class SideFailed(RuntimeError):
    """A step of one side exited badly; the message holds its command and stderr."""


@dataclass
class Side:
    """One contender: its directory and how its interpreter finds nota."""

    name: str
    root: Path
    pythonpath: str | None  # None: the venv's normal (editable) install
    expect_under: Path | None  # where nota must be imported from, when pythonpath is given
    source: Path  # the checkout whose pyproject says which packages map into nota
    timings: dict[str, float] = field(default_factory=dict)
    reduce_status: int | None = None

    @property
    def db(self) -> Path:
        return self.root / "nota.db"

    @property
    def products(self) -> Path:
        return self.root / "products"

    @property
    def index_dir(self) -> Path:
        return self.root / "astrometry"


@dataclass
class Report:
    """Differences (failures) and warnings, one line each."""

    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    compared: int = 0
    differing: int = 0
    missing: int = 0

    def differ(self, line: str) -> None:
        self.differences.append(line)
        print(f"DIFF  {line}", flush=True)

    def warn(self, line: str) -> None:
        self.warnings.append(line)
        print(f"WARN  {line}", flush=True)


# ---------------------------------------------------------------- building the baseline


def resolve_ref(ref: str) -> str:
    """The full commit id of a ref, so a reused extraction can be checked against it."""
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"git rev-parse {ref}: {out.stderr.strip()}")
    return out.stdout.strip()


def extract_source(commit: str, target: Path) -> None:
    """``git archive COMMIT | tar -x`` into target (reused when it already holds that commit)."""
    stamp = target / ".nota-baseline-commit"
    if stamp.is_file() and stamp.read_text().strip() == commit:
        print(f"baseline source: reusing {target} ({commit[:12]})", flush=True)
        return
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    stamp.write_text(commit + "\n")
    print(f"baseline source: {commit[:12]} extracted into {target}", flush=True)


def mapped_packages(source: Path) -> dict[str, str]:
    """nota's subpackages that live outside nota/ at that commit, from its pyproject package-dir
    (0b66dac: archive/ -> nota.archive, reduce/ -> nota.reduce)."""
    try:
        with open(source / "pyproject.toml", "rb") as f:
            package_dir = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {"archive": "archive", "reduce": "reduce"}
    return {name.split(".", 1)[1]: folder for name, folder in package_dir.items()
            if name.startswith("nota.") and name.count(".") == 1 and folder != name.replace(".", "/")}


def make_import_tree(source: Path, pkg: Path) -> None:
    """pkg/nota: symlinks to source/nota/*, plus one per mapped package (archive -> nota.archive...)."""
    mapped = mapped_packages(source)
    wanted = {entry.name: entry.resolve() for entry in (source / "nota").iterdir()
              if entry.name not in mapped and entry.name != "__pycache__"}
    wanted |= {name: (source / folder).resolve() for name, folder in mapped.items()}
    nota = pkg / "nota"
    if nota.is_dir() and {e.name: e.resolve() for e in nota.iterdir() if e.is_symlink()} == wanted \
            and all(e.is_symlink() for e in nota.iterdir()):
        return  # already right: leave it alone for whoever is importing from it
    if pkg.exists():
        shutil.rmtree(pkg)
    nota.mkdir(parents=True)
    for name, target in sorted(wanted.items()):
        (nota / name).symlink_to(target, target_is_directory=target.is_dir())
    print(f"baseline import tree: {pkg}/nota (+ {', '.join(f'{n} -> {f}/' for n, f in sorted(mapped.items()))})",
          flush=True)


# ---------------------------------------------------------------- running the CLI


def environment(side: Side) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    if side.pythonpath:
        env["PYTHONPATH"] = side.pythonpath
    return env


def python_command(python: Path, code: str, *args: str) -> list[str]:
    # -P: no script directory or cwd on sys.path, so /work/main/nota can never shadow the
    # baseline (and nothing in a side's directory can shadow either side).
    return [str(python), "-P", "-c", code, *args]


def run_cli(side: Side, python: Path, step: str, *args: str, fatal: bool = True) -> int:
    """Run one nota command on a side, in the side's directory; time it; report failures."""
    command = python_command(python, CLI, *args)
    started = time.perf_counter()
    out = subprocess.run(command, cwd=side.root, env=environment(side), capture_output=True, text=True)
    side.timings[step] = time.perf_counter() - started
    print(f"  [{side.name}] {step:<12} {side.timings[step]:7.1f} s  exit {out.returncode}", flush=True)
    if out.returncode:
        shown = " ".join(command)
        if side.pythonpath:
            shown = f"PYTHONPATH={side.pythonpath} {shown}"
        message = (f"[{side.name}] {step} exited {out.returncode}\n  command: (cd {side.root} && {shown})\n"
                   f"  stderr:\n{indent(out.stderr[-4000:])}\n  stdout (tail):\n{indent(out.stdout[-1500:])}")
        if fatal:
            raise SideFailed(message)
        print(message, file=sys.stderr, flush=True)
    return out.returncode


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines()) or "    (empty)"


def check_imports(side: Side, python: Path) -> None:
    """Print where the side's nota really comes from; refuse a side that imports the wrong one
    or whose modules do not all import."""
    packages = [f"nota.{name}" for name in mapped_packages(side.source)]
    out = subprocess.run(python_command(python, WHERE, *packages), cwd=side.root, env=environment(side),
                         capture_output=True, text=True)
    if out.returncode:
        raise SideFailed(f"[{side.name}] cannot import nota:\n{indent(out.stderr[-3000:])}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  [{side.name}] nota.__file__ = {found['nota']} ({len(found['files'])} nota modules)", flush=True)
    if found["failed"]:
        hint = ("\n  (the working tree looks mid-refactor: --new-pythonpath OUT/baseline-pkg checks the "
                "harness baseline against baseline)" if side.pythonpath is None else "")
        raise SideFailed(f"[{side.name}] modules fail to import:\n{indent(chr(10).join(found['failed']))}{hint}")
    for name, f in sorted(found["files"].items()):
        if f is None:
            continue  # a namespace package
        path = Path(f).absolute()
        if side.expect_under is not None and not path.is_relative_to(side.expect_under):
            raise SideFailed(f"[{side.name}] imported {name} from {f}, not from {side.expect_under}")
        if side.expect_under is None and "baseline-pkg" in path.parts:
            raise SideFailed(f"[{side.name}] imported {name} from {f}, a baseline tree")


def simulate_night(side: Side, python: Path, night: Path) -> None:
    """One raw night for both sides, made read-only: the sides may read it, never change it."""
    if night.exists():
        make_writable(night)
        shutil.rmtree(night)
    run_cli(side, python, "simulate", "simulate", str(night), "--small")
    side.timings["simulate (shared)"] = side.timings.pop("simulate")
    for path in night.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def run_side(side: Side, python: Path, night: Path, jobs: int, solve: bool) -> None:
    """ingest, qc, groups, (build-index,) reduce into a fresh side directory."""
    if side.root.exists():
        shutil.rmtree(side.root)
    side.root.mkdir(parents=True)
    check_imports(side, python)
    db = ("--db", str(side.db))
    run_cli(side, python, "ingest", *db, "ingest", str(night / "N1"))
    run_cli(side, python, "qc", *db, "qc")
    run_cli(side, python, "groups", *db, "groups")
    reduce_args = ["reduce", "--products", str(side.products), "--jobs", str(jobs)]
    if solve:
        catalogues = sorted(str(p) for p in (night / "N1" / "truth").glob("catalogue_*.csv"))
        if not catalogues:
            raise SideFailed(f"no {night}/N1/truth/catalogue_*.csv to build index files from")
        run_cli(side, python, "build-index", *db, "astrometry", "build-index",
                "--index-dir", str(side.index_dir), *catalogues)
        reduce_args += ["--index-dir", str(side.index_dir)]
    side.reduce_status = run_cli(side, python, "reduce", *db, *reduce_args, fatal=False)


# ---------------------------------------------------------------- comparing


ProductKey = tuple[str, str | None, str | None, str]


def read_only(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise SideFailed(f"no archive {db}: did that side's run finish (or did another run remove it)?")
    conn = sqlite3.connect(f"file:{db.absolute()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def current_products(side: Side, report: Report) -> dict[ProductKey, sqlite3.Row]:
    """The side's current products by (kind, night, filter, file name)."""
    with read_only(side.db) as conn:
        rows = conn.execute(
            f"SELECT kind, night, filter, path, {', '.join(PRODUCT_FACTS)} FROM products WHERE current = 1"
        ).fetchall()
    products: dict[ProductKey, sqlite3.Row] = {}
    for row in rows:
        key = (row["kind"], row["night"], row["filter"], Path(row["path"]).name)
        if key in products:
            report.differ(f"[{side.name}] two current products share the key {show(key)}")
        products[key] = row
    return products


def product_file(side: Side, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else side.db.parent / p


def show(key: ProductKey) -> str:
    kind, night, filt, name = key
    return f"{kind} {night} {filt or '-'} {name}"


def same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    equal_nan = a.dtype.kind in "fc"
    return bool(np.array_equal(a, b, equal_nan=equal_nan))


def describe_array_difference(a: np.ndarray | None, b: np.ndarray | None) -> str:
    if a is None or b is None:
        return "present on one side only"
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} vs {b.dtype}"
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else (a == b)
    differs = ~same
    n = int(differs.sum())
    detail = f"{n} of {a.size} pixels differ"
    if a.dtype.kind in "fiu" and n:
        delta = np.abs(a[differs].astype(np.float64) - b[differs].astype(np.float64))
        finite = delta[np.isfinite(delta)]
        if finite.size:
            detail += f", max |diff| {finite.max():.3g}"
    return detail


def hdus_by_name(hdul: fits.HDUList) -> dict[str, fits.hdu.base.ExtensionHDU]:
    named: dict[str, fits.hdu.base.ExtensionHDU] = {}
    for i, hdu in enumerate(hdul):
        name = "PRIMARY" if i == 0 else (hdu.name or f"HDU{i}")
        named[name] = hdu
    return named


@dataclass(frozen=True)
class HeaderView:
    """How one side's headers are read for comparison: what names this run rather than the
    data (the sides' directories; times on or after ``since``, YYYY-MM-DD, the day before the
    run started) and what names a row of that side's archive (PHOTCAL, a calibration_id,
    becomes that calibration's night and filter)."""

    roots: tuple[Path, ...]
    since: str
    calibration_ids: dict[int, str] = field(default_factory=dict)

    def normalise(self, value: str) -> str:
        for root in self.roots:
            value = value.replace(str(root), "<side>")
        return TIMESTAMP_ANY.sub(lambda m: "<time>" if m["day"] >= self.since else m[0], value)

    def card(self, keyword: str, value: object) -> str:
        if keyword in ROW_ID_KEYWORDS and isinstance(value, int) and value in self.calibration_ids:
            return f"calibration {self.calibration_ids[value]}"
        return self.normalise(repr(value))


def header_cards(header: fits.Header, view: HeaderView) -> dict[str, list[str]]:
    """Cards that should match across sides: keyword -> values, run-specific text left out.

    HISTORY and COMMENT are joined first (astropy splits a long line over cards, and a path
    split in two would escape the placeholder).
    """
    cards: dict[str, list[str]] = {}
    commentary: dict[str, list[str]] = {}
    for card in header.cards:
        if card.keyword in SKIPPED_KEYWORDS:
            continue
        if card.keyword in ("HISTORY", "COMMENT"):
            commentary.setdefault(card.keyword, []).append(str(card.value))
        else:
            cards.setdefault(card.keyword, []).append(view.card(card.keyword, card.value))
    for keyword, lines in commentary.items():
        cards[keyword] = [view.normalise("".join(lines))]
    return cards


def shorten(values: list[str] | None, width: int = 40) -> str:
    text = "(absent)" if values is None else "; ".join(values)
    return text if len(text) <= width else text[: width - 3] + "..."


def compare_headers(label: str, extension: str, a: fits.Header, b: fits.Header,
                    views: tuple[HeaderView, HeaderView], report: Report) -> None:
    ca, cb = header_cards(a, views[0]), header_cards(b, views[1])
    differing = sorted(k for k in ca.keys() | cb.keys() if ca.get(k) != cb.get(k))
    if differing:
        shown = ", ".join(f"{k} ({shorten(ca.get(k))} vs {shorten(cb.get(k))})" for k in differing[:3])
        more = f" and {len(differing) - 3} more: {', '.join(differing[3:])}" if len(differing) > 3 else ""
        report.warn(f"{label} [{extension}] header cards differ: {shown}{more}")


def compare_fits(label: str, old: Path, new: Path, views: tuple[HeaderView, HeaderView],
                 report: Report) -> bool:
    """True when every image plane is equal; header differences only warn."""
    equal = True
    with fits.open(old, memmap=False) as ha, fits.open(new, memmap=False) as hb:
        na, nb = hdus_by_name(ha), hdus_by_name(hb)
        for name in [n for n in PLANES if n in na or n in nb] + sorted((na.keys() | nb.keys()) - set(PLANES)):
            a, b = na.get(name), nb.get(name)
            if a is None or b is None:
                report.differ(f"{label} [{name}] extension only in {'new' if a is None else 'baseline'}")
                equal = False
                continue
            if not same_array(a.data, b.data):
                report.differ(f"{label} [{name}] {describe_array_difference(a.data, b.data)}")
                equal = False
            compare_headers(label, name, a.header, b.header, views, report)
    return equal


def calibration_ids(side: Side) -> dict[int, str]:
    """calibration_id -> 'night filter', every row (a header may name a superseded one)."""
    with read_only(side.db) as conn:
        return {r["calibration_id"]: f"{r['night']} {r['filter']}"
                for r in conn.execute("SELECT calibration_id, night, filter FROM calibrations")}


def close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return a == b


def compare_products(old: Side, new: Side, since: str, report: Report) -> None:
    po, pn = current_products(old, report), current_products(new, report)
    roots = (old.root, new.root)
    views = (HeaderView(roots, since, calibration_ids(old)), HeaderView(roots, since, calibration_ids(new)))
    for key in sorted(po.keys() - pn.keys(), key=str):
        report.differ(f"{show(key)}: only in baseline")
        report.missing += 1
    for key in sorted(pn.keys() - po.keys(), key=str):
        report.differ(f"{show(key)}: only in new")
        report.missing += 1
    for key in sorted(po.keys() & pn.keys(), key=str):
        report.compared += 1
        label = show(key)
        a, b = po[key], pn[key]
        fa, fb = product_file(old, a["path"]), product_file(new, b["path"])
        absent = [f"{side.name} {f}" for side, f in ((old, fa), (new, fb)) if not f.is_file()]
        if absent:
            report.differ(f"{label}: archived but no file: {'; '.join(absent)}")
            report.differing += 1
            continue
        equal = compare_fits(label, fa, fb, views, report)
        for column in PRODUCT_FACTS:
            if not close(a[column], b[column]):
                report.differ(f"{label}: products.{column} {a[column]!r} vs {b[column]!r}")
                equal = False
        if not equal:
            report.differing += 1


def calibrations(side: Side) -> dict[tuple[str, str], sqlite3.Row]:
    with read_only(side.db) as conn:
        rows = conn.execute(
            f"SELECT night, filter, {', '.join(CAL_COLUMNS)} FROM calibrations WHERE current = 1"
        ).fetchall()
    return {(r["night"], r["filter"]): r for r in rows}


def compare_calibrations(old: Side, new: Side, report: Report) -> int:
    co, cn = calibrations(old), calibrations(new)
    for key in sorted(co.keys() ^ cn.keys()):
        report.differ(f"calibration {key[0]} {key[1]}: only in {'baseline' if key in co else 'new'}")
    for key in sorted(co.keys() & cn.keys()):
        for column in CAL_COLUMNS:
            if not close(co[key][column], cn[key][column]):
                report.differ(f"calibration {key[0]} {key[1]}: {column} "
                              f"{co[key][column]!r} vs {cn[key][column]!r}")
    return len(co.keys() | cn.keys())


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="0b66dac", help="git ref of the baseline (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/compare"),
                        help="working directory, relative to the repository (default: %(default)s)")
    parser.add_argument("--new-pythonpath", default=None,
                        help="run the 'new' side with this PYTHONPATH instead of the venv's install "
                             "(e.g. OUT/baseline-pkg, to check the harness while the tree is broken)")
    parser.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python",
                        help="the interpreter both sides run on (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="nota reduce --jobs (default: %(default)s)")
    parser.add_argument("--reuse-baseline", action="store_true",
                        help="keep OUT/night and OUT/baseline from an earlier run of the same ref; "
                             "only the new side is run again (saves the baseline's reduce)")
    parser.add_argument("--compare-only", action="store_true",
                        help="build and run nothing: compare the archives already in OUT/baseline and OUT/new")
    return parser.parse_args(argv)


def summarise(report: Report, n_calibrations: int) -> None:
    print()
    print(f"{n_calibrations} calibrations compared; {len(report.warnings)} header warnings")
    if report.differing == 0 and report.missing == 0 and not report.differences:
        print(f"{report.compared} products compared, all equal")
    else:
        others = len(report.differences)
        print(f"{report.compared} products compared, {report.differing} differ, "
              f"{report.missing} on one side only ({others} difference lines)")


def lock_out_dir(out: Path) -> IO[str]:
    """One run at a time per OUT: a second run would delete the first one's side directories."""
    handle = open(out / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        print(f"another compare_products run (pid {holder}) is using {out}; waiting for it", flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def build_both(args: argparse.Namespace, out: Path, old: Side, new: Side) -> None:
    """Extract the baseline, simulate the night once, run every step on both sides."""
    python = args.python.absolute()
    commit = resolve_ref(args.ref)
    night = out / "night"
    solve = shutil.which("solve-field") is not None
    if args.reuse_baseline:
        stamp = old.root / BASELINE_STAMP
        if not (stamp.is_file() and stamp.read_text().strip() == commit and (night / "N1").is_dir()):
            raise SideFailed(f"--reuse-baseline: no complete baseline run of {commit[:12]} in {old.root}")
    else:
        extract_source(commit, out / "baseline-src")
    make_import_tree(out / "baseline-src", out / "baseline-pkg")
    print(f"baseline {args.ref} = {commit[:12]}; new = "
          f"{'PYTHONPATH=' + new.pythonpath if new.pythonpath else 'working tree ' + str(REPO)}; "
          f"solve-field {'found' if solve else 'not on PATH: no astrometry'}", flush=True)
    new.root.mkdir(parents=True, exist_ok=True)
    check_imports(new, python)  # fail in seconds on a broken tree, before the baseline's run
    if args.reuse_baseline:
        print(f"  [baseline] reusing {old.root} and {night}", flush=True)
        old.reduce_status = int((old.root / BASELINE_STAMP).with_suffix(".status").read_text())
    else:
        simulate_night(new, python, night)
        run_side(old, python, night, args.jobs, solve)
        (old.root / BASELINE_STAMP).with_suffix(".status").write_text(f"{old.reduce_status}\n")
        (old.root / BASELINE_STAMP).write_text(commit + "\n")
    run_side(new, python, night, args.jobs, solve)


def checkout_of(pythonpath: str | None) -> Path:
    """The source tree a PYTHONPATH's nota comes from (through baseline-pkg's symlinks)."""
    if pythonpath is None:
        return REPO
    init = Path(pythonpath) / "nota" / "__init__.py"
    return init.resolve().parent.parent if init.exists() else REPO


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    since = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    out = (args.out if args.out.is_absolute() else REPO / args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_out_dir(out)  # held until the process exits
    pkg = out / "baseline-pkg"
    new_path = str(Path(args.new_pythonpath).absolute()) if args.new_pythonpath else None
    old = Side("baseline", out / "baseline", str(pkg), pkg, out / "baseline-src")
    new = Side("new", out / "new", new_path, Path(new_path) if new_path else None, checkout_of(new_path))

    report = Report()
    if not args.compare_only:
        try:
            build_both(args, out, old, new)
        except SideFailed as failure:
            print(failure, file=sys.stderr)
            print(f"FAILED after {time.perf_counter() - started:.0f} s", file=sys.stderr)
            return 2
        if old.reduce_status != new.reduce_status:
            report.differ(f"nota reduce exit status: baseline {old.reduce_status}, new {new.reduce_status}")
    try:
        compare_products(old, new, since, report)
        n_calibrations = compare_calibrations(old, new, report)
    except SideFailed as failure:
        print(failure, file=sys.stderr)
        return 2
    summarise(report, n_calibrations)
    for side in (old, new):
        if side.timings:
            print(f"{side.name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in side.timings.items()))
    print(f"total {time.perf_counter() - started:.0f} s; baseline archive kept: {old.db}, {old.products}")
    return 1 if report.differences else 0


if __name__ == "__main__":
    sys.exit(main())
