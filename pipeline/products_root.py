"""A products root belongs to one archive: claimed with a marker, refused to any other.

Two archives kept in one folder (``test.db`` beside ``nota.db``) used to share one
``products/`` and rewrite each other's files. Now each archive writes in its own folder,
``NAME.products/`` beside ``NAME.db`` by default, and every root it writes in holds
``.nota-archive.json`` with its id: a second archive pointed there is refused before it
writes anything. An archive of an older nota keeps the ``products/`` its products are in.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from nota.archive.database import Archive
from nota.archive.ownership import archive_id, has_products_under, products_under, record_root
from nota.archive.provenance import utc_now
from nota.errors import NotaError

__all__ = ["MARKER", "Owner", "read_owner", "claim", "default_products_root"]

MARKER = ".nota-archive.json"
_HOUSEKEEPING = {MARKER, ".scratch"}


@dataclass(frozen=True)
class Owner:
    """What a products root's marker says: whose products these are."""

    archive_id: str
    database: str
    claimed_at: str


def read_owner(root: str | Path) -> Owner | None:
    """The archive a root belongs to, or None when it has no (readable) marker."""
    try:
        found = json.loads((Path(root) / MARKER).read_text())
        return Owner(str(found["archive_id"]), str(found.get("database", "?")), str(found.get("claimed_at", "?")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim(archive: Archive, root: str | Path) -> None:
    """Make ``root`` this archive's (or find it is already); refuse another archive's root."""
    root = Path(root).absolute()
    ours = archive_id(archive)
    owner = read_owner(root)
    if owner is None:
        stray = sorted(p.name for p in root.iterdir() if p.name not in _HOUSEKEEPING) if root.is_dir() else []
        if stray and not has_products_under(archive, str(root)):
            raise NotaError(f"{root}: holds files of no archive nota knows ({', '.join(stray[:3])}"
                            f"{', ...' if len(stray) > 3 else ''}); give this archive its own folder with --products")
        owner = _write_marker(root, Owner(ours, str(Path(archive.path).absolute()), utc_now()))
    if owner.archive_id != ours:
        raise NotaError(f"{root}: the products of another archive ({owner.database}); this archive"
                        f" ({archive.path}) writes its own elsewhere: leave out --products, or name another folder")
    record_root(archive, str(root))


def _write_marker(root: Path, owner: Owner) -> Owner:
    """Write the marker whole and only if there is none: of two claimants, one wins."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".nota-tmp-marker-{os.getpid()}"
    tmp.write_text(json.dumps(owner.__dict__, indent=1) + "\n")
    try:
        os.link(tmp, root / MARKER)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return read_owner(root) or owner


def default_products_root(db_path: str | Path) -> str:
    """``NAME.products/`` beside ``NAME.db``; an archive of an older nota whose products are
    in ``products/`` beside it keeps that folder."""
    db = Path(db_path).absolute()
    legacy = db.parent / "products"
    if db.exists() and legacy.is_dir():
        try:
            conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
            found = products_under(conn, str(legacy))
            conn.close()
        except sqlite3.DatabaseError:
            found = False
        if found:
            return str(legacy)
    return str(db.with_suffix(".products") if db.suffix else db.parent / (db.name + ".products"))
