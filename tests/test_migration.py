"""Schema 3's one provenance model, on an archive the previous nota made.

``tests/data/archive_v2.db.gz`` is the simulated small night ingested, measured, grouped,
solved and reduced by nota at 0b66dac (schema 2), with its pictures and most header cards
left out to keep it small. Migrated, every product keeps exactly the inputs and lineage
it had; ingest's record of every file it saw, and each calibration's standards, stay.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nota.archive.database import open_archive, open_readonly, schema_version
from nota.archive.products import lineage, prov_document
from nota.cli import app

OLD = Path(__file__).parent / "data" / "archive_v2.db.gz"


@pytest.fixture
def old_archive(tmp_path) -> Path:
    path = tmp_path / "v2.db"
    with gzip.open(OLD) as source, open(path, "wb") as target:
        shutil.copyfileobj(source, target)
    return path


def _rows(conn, sql):
    return sorted(tuple(r) for r in conn.execute(sql))


def test_every_product_keeps_its_inputs_and_lineage(old_archive):
    old = sqlite3.connect(old_archive)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 2
    inputs_sql = ("SELECT product_id, role, file_id, input_product_id, content_hash, included, reason"
                  " FROM product_inputs")
    lineage_sql = "SELECT product_id, depth, role, file_id, input_product_id FROM lineage"
    inputs, ancestry = _rows(old, inputs_sql), _rows(old, lineage_sql)
    ingest_used = _rows(old, "SELECT u.activity_id, u.role, e.file_id, e.content_hash, u.note FROM used u"
                             " JOIN entities e USING (entity_id) JOIN activities a USING (activity_id)"
                             " WHERE a.step = 'ingest'")
    standards = _rows(old, "SELECT u.activity_id, p.product_id FROM used u JOIN products p USING (entity_id)"
                           " JOIN activities a USING (activity_id) WHERE a.step = 'photometric_calibration'")
    figures = _rows(old, "SELECT p.product_id, q.cosmic_pixels, q.wcs_matched FROM products p JOIN qc q USING (file_id)"
                         " WHERE p.kind = 'reduced' AND p.current = 1")
    old.close()
    assert len(inputs) > 200 and ingest_used and standards and any(f[2] for f in figures)

    with open_archive(old_archive) as archive:
        conn = archive.conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version()
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert _rows(conn, inputs_sql) == inputs
        assert _rows(conn, lineage_sql) == ancestry
        assert _rows(conn, "SELECT u.activity_id, u.role, u.file_id, u.content_hash, u.reason FROM used u"
                           " JOIN activities a USING (activity_id) WHERE a.step = 'ingest'") == ingest_used
        assert _rows(conn, "SELECT u.activity_id, u.product_id FROM used u JOIN activities a USING (activity_id)"
                           " WHERE a.step = 'photometric_calibration'") == standards
        assert _rows(conn, "SELECT product_id, cosmic_pixels, wcs_matched FROM products"
                           " WHERE kind = 'reduced' AND current = 1") == figures
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert not names & {"entities", "generated"}
        # Each input edge is written once: the view's rows are the table's.
        assert conn.execute("SELECT count(*) FROM product_inputs").fetchone()[0] == len(inputs)


def test_lineage_and_prov_json_read_the_migrated_record(old_archive):
    open_archive(old_archive).close()
    with open_readonly(old_archive) as archive:
        tree = lineage(archive, "fzt_ALrd120103.fits")
        doc = prov_document(archive, "fzt_ALrd120103.fits")
    roles = {node["role"] for node in tree["inputs"]}
    assert roles == {"raw", "master_bias", "master_flat"}
    assert len([e for e in doc["entity"].values() if e["prov:type"] == "raw"]) >= 17
    out = CliRunner().invoke(app, ["--db", str(old_archive), "lineage", "fzt_ALrd120103.fits", "--prov"])
    assert out.exit_code == 0 and json.loads(out.stdout)["wasGeneratedBy"]
