"""``nota check``: the archive against the disk, so damage is found before it is trusted.

Raw files must be where the archive says, with the bytes it indexed (size and mtime
first, the content hash for those that differ or for all with ``full``); every current
product must be on disk with its recorded content hash; a products root must hold
nothing else (no temporary file left by a killed run, no file no product claims); and
SQLite's own ``integrity_check`` and ``foreign_key_check`` must pass. Each problem is
one line naming the file; the result is kept (``archive_info.last_check``) for ``nota
serve`` to show.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nota.archive.database import Archive
from nota.archive.ownership import owned_roots, set_info
from nota.archive.provenance import utc_now
from nota.hashing import content_hash
from nota.pipeline.product_files import TMP_PREFIX
from nota.pipeline.products_root import MARKER

__all__ = ["Problem", "CheckReport", "check_archive"]

_KEPT = 500  # problems kept with the record of a check (all are printed)
_INTERMEDIATE = ("t_", "zt_")  # the lecture's files beside a reduced frame (--keep-intermediate)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the file (or the database) and what."""

    path: str
    problem: str


@dataclass(frozen=True)
class CheckReport:
    """What was checked and what was found."""

    raw_files: int
    raw_hashed: int
    products: int
    roots: tuple[str, ...]
    problems: tuple[Problem, ...]
    checked_at: str

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        found = f"{len(self.problems)} problem(s)" if self.problems else "all is well"
        return (f"{self.raw_files} raw file(s) ({self.raw_hashed} hashed), {self.products} product(s),"
                f" {len(self.roots)} products root(s), database: {found}")


def check_archive(archive: Archive, *, full: bool = False,
                  on_file: Callable[[int, int], None] | None = None) -> CheckReport:
    """Verify the archive against the disk; records the result, changes nothing else."""
    problems = _database(archive)
    raws = archive.dicts("SELECT path, size, mtime_ns, content_hash FROM files WHERE status != 'missing'"
                         " ORDER BY path")
    products = archive.dicts("SELECT product_id, path, content_hash FROM products WHERE current = 1 ORDER BY path")
    total, done = len(raws) + len(products), 0
    hashed = 0
    for raw in raws:
        found, was_hashed = _raw_problem(raw, full)
        hashed += was_hashed
        problems += [found] if found else []
        done += 1
        if on_file:
            on_file(done, total)
    for product in products:
        found = _product_problem(product)
        problems += [found] if found else []
        done += 1
        if on_file:
            on_file(done, total)
    roots = tuple(owned_roots(archive))
    recorded = {r["path"] for r in archive.dicts("SELECT DISTINCT path FROM products")}  # retired ones stay
    problems += _strays(roots, recorded, {p["path"] for p in products})
    report = CheckReport(len(raws), hashed, len(products), roots, tuple(problems), utc_now())
    set_info(archive, "last_check", json.dumps({
        "checked_at": report.checked_at, "ok": report.ok, "summary": report.summary(), "full": full,
        "problems": [{"path": p.path, "problem": p.problem} for p in problems[:_KEPT]]}))
    return report


def _database(archive: Archive) -> list[Problem]:
    where = str(archive.path)
    found = [Problem(where, f"integrity: {row[0]}") for row in archive.conn.execute("PRAGMA integrity_check")
             if row[0] != "ok"]
    found += [Problem(where, f"foreign key: {table} row {rowid} points at a missing {parent}")
              for table, rowid, parent, _ in archive.conn.execute("PRAGMA foreign_key_check")]
    return found


def _raw_problem(raw: dict, full: bool) -> tuple[Problem | None, bool]:
    """(the problem or None, whether its bytes were hashed)."""
    path = raw["path"]
    try:
        st = os.stat(path)
    except OSError:
        return Problem(path, "raw file missing (nota ingest marks it so; was it moved?)"), False
    if not full and st.st_size == raw["size"] and st.st_mtime_ns == raw["mtime_ns"]:
        return None, False
    if raw["content_hash"] is None:  # indexed without hashing: size is all there is to go on
        return (None if st.st_size == raw["size"] else
                Problem(path, f"raw file changed: {st.st_size} bytes, indexed at {raw['size']}")), False
    digest = content_hash(path)
    if digest != raw["content_hash"]:
        return Problem(path, f"raw file changed: content {digest}, indexed as {raw['content_hash']}"), True
    return None, True


def _product_problem(product: dict) -> Problem | None:
    path = product["path"]
    if not os.path.exists(path):
        return Problem(path, f"product #{product['product_id']} missing (nota reduce makes it again)")
    digest = content_hash(path)
    if digest != product["content_hash"]:
        return Problem(path, f"product #{product['product_id']} changed: content {digest},"
                             f" recorded {product['content_hash']} (nota reduce makes it again)")
    return None


def _strays(roots: tuple[str, ...], recorded: set[str], current: set[str]) -> list[Problem]:
    """Files in the products roots that no product of the archive claims (a retired one's
    file is kept, and is not a stray), and temporary files."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != ".scratch"]
            for name in sorted(files):
                path = os.path.join(folder, name)
                if name == MARKER and folder == root or path in recorded:
                    continue
                if name.startswith(TMP_PREFIX):
                    found.append(Problem(path, "temporary file left by an interrupted write"))
                elif not (name.startswith(_INTERMEDIATE) and _beside_reduced(folder, name, current)):
                    found.append(Problem(path, "orphan: in a products root, but no product's file"))
    return found


def _beside_reduced(folder: str, name: str, current: set[str]) -> bool:
    rest = name.split("_", 1)[1]
    return str(Path(folder) / f"fzt_{rest}") in current
