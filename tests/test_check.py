"""Products owned by their archive, and `nota check` finding what is wrong on disk."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from nota.archive.database import open_archive, open_readonly
from nota.cli import app
from nota.pipeline.products_root import MARKER, default_products_root

LIGHT = ["--no-cosmics", "--no-stacks", "--no-photometry", "--jobs", "2"]


def nota(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def two_archives(small_night, tmp_path_factory):
    """nota.db and test.db in one folder, both ingesting one copy of the night and reduced."""
    folder = tmp_path_factory.mktemp("one_folder")
    night = folder / "N1"
    shutil.copytree(small_night.directory, night, ignore=shutil.ignore_patterns("truth"))
    for name in ("nota.db", "test.db"):
        assert nota("--db", folder / name, "ingest", night).exit_code == 0
        done = nota("--db", folder / name, "reduce", *LIGHT)
        assert done.exit_code == 0, done.output
    return folder


def _products(db):
    with open_readonly(db) as archive:
        return archive.dicts("SELECT path, content_hash FROM products WHERE current = 1")


def test_two_archives_in_one_folder_keep_their_own_products(two_archives):
    from nota.hashing import content_hash

    roots = {name: two_archives / f"{name}.products" for name in ("nota", "test")}
    for name, root in roots.items():
        db = two_archives / f"{name}.db"
        assert default_products_root(db) == str(root)
        products = _products(db)
        assert products and all(p["path"].startswith(str(root) + "/") for p in products)
        assert all(content_hash(p["path"]) == p["content_hash"] for p in products)
        assert json.loads((root / MARKER).read_text())["database"] == str(db)
        checked = nota("--db", db, "check", "--json")
        assert checked.exit_code == 0, checked.output
        assert json.loads(checked.stdout)["ok"] and json.loads(checked.stdout)["products"] == len(products)
    assert not (two_archives / "products").exists()


def test_another_archives_products_root_is_refused_before_anything_is_written(two_archives):
    theirs = two_archives / "nota.products"
    before = sorted(p.name for p in theirs.rglob("*"))
    refused = nota("--db", two_archives / "test.db", "reduce", "--products", theirs, *LIGHT)
    assert refused.exit_code == 1
    assert "the products of another archive" in refused.stderr and str(two_archives / "nota.db") in refused.stderr
    assert sorted(p.name for p in theirs.rglob("*")) == before


def test_check_names_a_flipped_byte_a_deleted_raw_file_and_strays(two_archives, tmp_path):
    from conftest import copy_database

    # A private copy of one archive, its raw files and products, so the damage stays here.
    folder = tmp_path / "copy"
    shutil.copytree(two_archives / "N1", folder / "N1")
    shutil.copytree(two_archives / "test.products", folder / "test.products")
    db = copy_database(two_archives / "test.db", folder / "test.db")
    with open_archive(db) as archive, archive.transaction() as conn:
        for old, new in ((str(two_archives), str(folder)),):
            conn.execute("UPDATE files SET path = replace(path, ?, ?), directory = replace(directory, ?, ?)",
                         (old, new, old, new))
            conn.execute("UPDATE products SET path = replace(path, ?, ?)", (old, new))
            conn.execute("UPDATE products_roots SET root = replace(root, ?, ?)", (old, new))
    import os

    for raw in (folder / "N1").iterdir():  # the copies got new times: their bytes are the same
        os.utime(raw, ns=(1, 1))
    assert nota("--db", db, "check", "--full").exit_code == 0
    product = sorted((folder / "test.products").rglob("fzt_*.fits"))[0]
    data = bytearray(product.read_bytes())
    data[len(data) // 2] ^= 0x01
    product.write_bytes(bytes(data))
    (folder / "N1" / "ALrd120050.fits").unlink()
    (product.parent / ".nota-tmp-killed.fits").write_bytes(b"half")
    (product.parent / "stray.fits").write_bytes(b"who?")
    found = nota("--db", db, "check")
    assert found.exit_code == 1
    lines = found.stdout.splitlines()
    assert any(line.startswith(f"{product}: product #") and "changed" in line for line in lines)
    assert any(line.startswith(str(folder / "N1" / "ALrd120050.fits")) and "missing" in line for line in lines)
    assert any("temporary file" in line for line in lines) and any("orphan" in line for line in lines)
    assert len(lines) == 5 and "4 problem(s)" in lines[-1]


def test_an_older_archive_keeps_its_products_folder(small_night, tmp_path):
    """Made before products were owned: products/ beside it, no marker, no recorded root."""
    night = tmp_path / "N1"
    shutil.copytree(small_night.directory, night, ignore=shutil.ignore_patterns("truth"))
    db = tmp_path / "old.db"
    assert nota("--db", db, "ingest", night).exit_code == 0
    assert nota("--db", db, "reduce", "--products", tmp_path / "products", *LIGHT).exit_code == 0
    (tmp_path / "products" / MARKER).unlink()
    with open_archive(db) as archive, archive.transaction() as conn:
        conn.execute("DELETE FROM products_roots")
    assert default_products_root(db) == str(tmp_path / "products")
    again = nota("--db", db, "reduce", "--json", *LIGHT)
    assert again.exit_code == 0 and json.loads(again.stdout)["built"] == []
    assert (tmp_path / "products" / MARKER).exists()
    assert nota("--db", db, "check").exit_code == 0
    # A new archive beside it gets its own folder.
    assert default_products_root(tmp_path / "new.db") == str(tmp_path / "new.products")
