"""nota report: the reduced small night's report, written by the real command and read back."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

from typer.testing import CliRunner

from nota.archive.database import open_readonly
from nota.cli import app

NIGHT = "2008-04-12"
DATA_IMG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
PNG = b"\x89PNG\r\n\x1a\n"


def _write(db_path, out):
    result = CliRunner().invoke(app, ["--db", str(db_path), "report", NIGHT, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 1 and str(out) in result.output
    return out.read_text(encoding="utf-8")


def test_the_report_holds_every_frame_with_its_thumbnail(_reduced, small_night, tmp_path):
    db_path, _ = _reduced
    page = _write(db_path, tmp_path / "out" / "night.html")
    raw_names = sorted(p.name for p in small_night.directory.glob("*.fits"))
    assert len(raw_names) == 134
    rows = {}
    for row in re.findall(r'<tr id="frame-\d+".*?</tr>', page, flags=re.S):
        name = re.search(r"<td>(ALrd\d+\.fits)</td>", row)
        assert name, row[:200]
        rows[name.group(1)] = row
    assert sorted(rows) == raw_names
    for name, row in rows.items():
        thumb = DATA_IMG.search(row)
        assert thumb, f"{name} has no embedded thumbnail"
        assert base64.b64decode(thumb.group(1)).startswith(PNG), name
    # Flags are in the logbook with their reasons: the rotated filter, the odd focus window.
    assert "blocked_beam" in page and "odd_shape" in page
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r'(src|href)="(https?:|/)', page)
    assert "<link" not in page and "<script" not in page


def test_the_report_has_groups_masters_solutions_and_their_plots(_reduced, tmp_path):
    db_path, _ = _reduced
    page = _write(db_path, tmp_path / "night.html")
    with open_readonly(db_path) as archive:
        groups = [r[0] for r in archive.run("SELECT group_key FROM calibration_groups WHERE night = ?", (NIGHT,))[1]]
        masters = archive.run("SELECT product_id FROM products WHERE kind LIKE 'master_%' AND night = ?"
                              " AND current = 1", (NIGHT,))[1]
        filters = [r[0] for r in archive.run("SELECT filter FROM calibrations WHERE night = ? AND current = 1",
                                             (NIGHT,))[1]]
        plots = archive.run("SELECT count(*) FROM plots WHERE night = ?", (NIGHT,))[1][0][0]
    assert groups and all(key in page for key in groups)
    for (product_id,) in masters:
        assert f'id="product-{product_id}"' in page
    sections = {name: page.split(f'<h2 id="{name}">')[1].split("<h2 ")[0]
                for name in ("logbook", "groups", "masters", "photometry", "products")}
    assert len(DATA_IMG.findall(sections["masters"])) >= len(masters)
    assert sorted(filters) == ["661_5", "NII_658", "R"]
    for filt in filters:
        part = sections["photometry"].split("<h3 ")[1:]
        assert any(f">{filt}</h3>" in p and DATA_IMG.search(p) for p in part), filt
    # Every stored plot of the night is in the page, embedded (the night's counts, groups, masters, fits).
    figures = sum(len(re.findall(r"<figure>", s)) for s in sections.values())
    assert figures == plots


def test_the_lineage_graph_is_svg_with_a_node_per_product(_reduced, tmp_path):
    db_path, _ = _reduced
    page = _write(db_path, tmp_path / "night.html")
    with open_readonly(db_path) as archive:
        products = {r[0] for r in archive.run("SELECT product_id FROM products WHERE night = ? AND current = 1",
                                              (NIGHT,))[1]}
        raw_of_reduced = {r[0] for r in archive.run(
            "SELECT file_id FROM products WHERE night = ? AND current = 1 AND kind = 'reduced'", (NIGHT,))[1]}
        stacks = archive.run("SELECT count(*) FROM products WHERE kind = 'stack' AND night = ? AND current = 1",
                             (NIGHT,))[1][0][0]
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == 1 + stacks  # the night's graph, and one per stack
    night = ET.fromstring(svgs[0])
    ns = "{http://www.w3.org/2000/svg}"
    nodes = list(night.iter(f"{ns}g"))
    ids = {int(g.get("data-product-id")) for g in nodes if g.get("data-product-id")}
    assert ids == products and len(ids) == sum(1 for g in nodes if g.get("data-product-id"))
    assert {int(g.get("data-file-id")) for g in nodes if g.get("data-file-id")} == raw_of_reduced
    assert len(list(night.iter(f"{ns}path"))) >= len(products)
    # Columns by depth: every arrow runs left to right.
    for path in night.iter(f"{ns}path"):
        start, end = re.match(r"M([\d.]+),.* ([\d.]+),[\d.]+$", path.get("d")).groups()
        assert float(start) < float(end)
    for svg in svgs[1:]:
        stack = ET.fromstring(svg)
        assert any(g.get("data-file-id") for g in stack.iter(f"{ns}g"))  # every raw frame its own box


def test_an_unknown_night_is_one_clear_error(_reduced, tmp_path):
    db_path, _ = _reduced
    out = tmp_path / "none.html"
    result = CliRunner().invoke(app, ["--db", str(db_path), "report", "1999-01-01", "--out", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: night '1999-01-01'") and NIGHT in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".none.html*"))


def test_a_solution_stored_without_its_plot_says_so(_reduced, tmp_path):
    from conftest import copy_database
    from nota.archive.database import open_archive
    from nota.archive.report import build_report, render_body

    path = copy_database(_reduced[0], tmp_path / "noplots.db")
    with open_archive(path) as archive:
        archive.conn.execute("DELETE FROM plots WHERE calibration_id IS NOT NULL")
        archive.conn.commit()
    with open_readonly(path) as archive:
        report = build_report(archive.conn, NIGHT)
    assert render_body(report).count("No fit plot stored.") == len(report.solutions) > 0
