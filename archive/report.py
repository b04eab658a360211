"""The night report: what an observer would otherwise type by hand, from the archive.

``build_report`` reads one night (any read-only sqlite3 connection: ``open_readonly``'s, or
Datasette's) into a ``NightReport``: the logbook (every frame with its time, object, filter,
exposure, counts, flags and thumbnail), the calibration groups with their plots, the
masters, the photometric solutions with their fit plots, and the products with their
lineage graph. ``render_body`` draws it as HTML; ``standalone_html`` wraps it in one page
with every picture embedded (``nota report``), ``nota serve`` puts the same body inside
Datasette's own page and serves the pictures from its routes instead.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nota.archive.lineage_graph import KIND_COLOURS, Graph, Node, night_graph, product_graph, to_svg
from nota.errors import NotaError

log = logging.getLogger(__name__)

__all__ = ["Picture", "LogEntry", "GroupEntry", "SolutionEntry", "ProductEntry", "NightReport",
           "known_nights", "build_report", "render_body", "standalone_html", "night_report_html", "report_css"]

ROUTE = "/-/nota"  # where nota serve serves pictures (archive/datasette_plugin.py)


@dataclass(frozen=True)
class Picture:
    """A stored PNG: embedded (``png``) in a written report, served from ``route`` otherwise."""

    title: str
    route: str
    png: bytes | None = None

    @property
    def src(self) -> str:
        if self.png is not None:
            return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")
        return self.route


@dataclass(frozen=True)
class LogEntry:
    file_id: int
    filename: str
    date_obs: str | None
    object: str | None
    kind: str
    filter: str | None
    exptime: float | None
    airmass: float | None
    mean: float | None
    median: float | None
    flags: tuple[tuple[str, str, bool], ...]  # (flag, message, excludes)
    override: str | None
    thumb: Picture | None


@dataclass(frozen=True)
class GroupEntry:
    group_id: int
    key: str
    purpose: str
    usable: bool
    preferred: bool
    note: str
    members: tuple[tuple[str, bool, str], ...]  # (file name, included, reason)
    plots: tuple[Picture, ...]


@dataclass(frozen=True)
class SolutionEntry:
    calibration_id: int
    filter: str
    figures: dict[str, Any]
    standards: tuple[dict[str, Any], ...]
    plot: Picture | None


@dataclass(frozen=True)
class ProductEntry:
    product_id: int
    kind: str
    name: str
    filter: str | None
    exptime: float | None
    airmass: float | None
    photzp: float | None
    wcs_status: str | None
    thumb: Picture | None
    group_key: str | None = None  # a master's: its calibration group, pictures and recipe
    plots: tuple[Picture, ...] = ()
    combined: int = 0  # raw frames combined
    left_out: int = 0  # members listed but not combined
    parameters: tuple[tuple[str, str], ...] = ()  # its step's parameters


@dataclass(frozen=True)
class NightReport:
    night: str
    frames: tuple[LogEntry, ...]
    night_plots: tuple[Picture, ...]
    groups: tuple[GroupEntry, ...]
    solutions: tuple[SolutionEntry, ...]
    products: tuple[ProductEntry, ...]
    graph: Graph
    stack_graphs: tuple[tuple[ProductEntry, Graph], ...] = field(default=())

    @property
    def masters(self) -> tuple[ProductEntry, ...]:
        return tuple(p for p in self.products if p.kind.startswith("master_"))


def _dicts(conn: sqlite3.Connection, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _name(path: str | None) -> str:
    return (path or "").rsplit("/", 1)[-1]


def known_nights(conn: sqlite3.Connection) -> list[str]:
    """Every night the archive holds frames of, in order."""
    return [r[0] for r in conn.execute("SELECT DISTINCT night FROM frames WHERE night IS NOT NULL ORDER BY night")]


def _pictures(conn: sqlite3.Connection, where: str, params: tuple, embed: bool) -> list[Picture]:
    rows = conn.execute(f"SELECT plot_id, title{', png' if embed else ''} FROM plots WHERE {where} ORDER BY plot_id",
                        params).fetchall()
    return [Picture(r[1], f"{ROUTE}/plot/{r[0]}.png", r[2] if embed else None) for r in rows]


def _thumbs(conn: sqlite3.Connection, column: str, ids: list[int], embed: bool) -> dict[int, Picture]:
    """Each file's (or product's) latest thumbnail, by id."""
    if not ids:
        return {}
    kind = "file" if column == "file_id" else "product"
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT {column}, {'png' if embed else 'NULL'} FROM previews WHERE size = 'thumb'"
                        f" AND {column} IN ({marks}) ORDER BY preview_id", ids).fetchall()
    return {key: Picture(f"{kind} {key}", f"{ROUTE}/preview/{kind}/{key}/thumb.png", png) for key, png in rows}


def build_report(conn: sqlite3.Connection, night: str, *, embed: bool = True) -> NightReport:
    """The report of ``night`` as the archive holds it; ``embed`` reads the pictures' bytes."""
    nights = known_nights(conn)
    if night not in nights:
        known = ", ".join(nights[:5]) + (", ..." if len(nights) > 5 else "") if nights else "none"
        raise NotaError(f"night {night!r} is not in the archive (nights: {known})")
    rows = _dicts(conn, "SELECT f.file_id, f.filename, f.date_obs, f.object, f.kind, f.filter, f.exptime, f.airmass,"
                        " q.mean, q.median FROM frames f LEFT JOIN qc q USING (file_id) WHERE f.night = ?"
                        " ORDER BY f.date_obs, f.filename", (night,))
    ids = [r["file_id"] for r in rows]
    marks = ",".join("?" * len(ids))
    flags: dict[int, list] = {}
    for file_id, flag, message, excludes in conn.execute(
            f"SELECT file_id, flag, message, excludes FROM flags WHERE file_id IN ({marks}) ORDER BY flag_id", ids):
        flags.setdefault(file_id, []).append((flag, message, bool(excludes)))
    overrides = {r[0]: f"{r[1]}: {r[2]}" for r in conn.execute(
        f"SELECT file_id, action, reason FROM overrides WHERE file_id IN ({marks})", ids)}
    thumbs = _thumbs(conn, "file_id", ids, embed)
    frames = tuple(LogEntry(**r, flags=tuple(flags.get(r["file_id"], ())), override=overrides.get(r["file_id"]),
                            thumb=thumbs.get(r["file_id"])) for r in rows)
    night_plots = _pictures(conn, "night = ? AND group_id IS NULL AND product_id IS NULL AND calibration_id IS NULL",
                            (night,), embed)
    groups = []
    for g in _dicts(conn, "SELECT group_id, group_key, purpose, usable, preferred, note FROM calibration_groups"
                          " WHERE night = ? ORDER BY purpose, group_key", (night,)):
        members = tuple((n, bool(i), r) for n, i, r in conn.execute(
            "SELECT f.name, m.included, m.reason FROM group_members m JOIN files f USING (file_id)"
            " WHERE m.group_id = ? ORDER BY f.name", (g["group_id"],)))
        groups.append(GroupEntry(g["group_id"], g["group_key"], g["purpose"], bool(g["usable"]), bool(g["preferred"]),
                                 g["note"], members,
                                 tuple(_pictures(conn, "group_id = ? AND product_id IS NULL", (g["group_id"],), embed))))
    products = _dicts(conn, "SELECT p.product_id, p.kind, p.path, p.filter, p.exptime, p.airmass, p.photzp,"
                            " p.wcs_status, p.parameters_json, g.group_key,"
                            " (SELECT count(*) FROM product_inputs i WHERE i.product_id = p.product_id"
                            "  AND i.file_id IS NOT NULL AND i.included = 1) AS combined,"
                            " (SELECT count(*) FROM product_inputs i WHERE i.product_id = p.product_id"
                            "  AND i.file_id IS NOT NULL AND i.included = 0) AS left_out"
                            " FROM products p LEFT JOIN calibration_groups g USING (group_id)"
                            " WHERE p.night = ? AND p.current = 1 ORDER BY p.kind, p.path", (night,))
    product_thumbs = _thumbs(conn, "product_id", [p["product_id"] for p in products], embed)
    solutions = tuple(_solution(conn, c, embed) for c in _dicts(
        conn, "SELECT * FROM calibrations WHERE night = ? AND current = 1 ORDER BY filter", (night,)))
    entries = tuple(ProductEntry(
        p["product_id"], p["kind"], _name(p["path"]), p["filter"], p["exptime"], p["airmass"], p["photzp"],
        p["wcs_status"], product_thumbs.get(p["product_id"]), p["group_key"],
        tuple(_pictures(conn, "product_id = ?", (p["product_id"],), embed)) if p["kind"].startswith("master_") else (),
        p["combined"], p["left_out"], _parameters(p["parameters_json"])) for p in products)
    stacks = tuple((e, product_graph(conn, e.product_id)) for e in entries if e.kind == "stack")
    return NightReport(night, frames, tuple(night_plots), tuple(groups), solutions, entries,
                       night_graph(conn, night), stacks)


def _parameters(text: str | None) -> tuple[tuple[str, str], ...]:
    """A step's parameters as (name, value) pairs, the unset ones left out."""
    values = json.loads(text) if text else {}
    return tuple((k, str(v)) for k, v in values.items() if v not in (None, [], {}))


def _solution(conn: sqlite3.Connection, c: dict[str, Any], embed: bool) -> SolutionEntry:
    standards = _dicts(conn, "SELECT s.star, f.name AS frame, s.airmass, s.m_instrumental, s.m_instrumental_err,"
                             " s.m_catalogue, s.used, s.note FROM standard_measurements s"
                             " LEFT JOIN products p USING (product_id) LEFT JOIN files f ON f.file_id = p.file_id"
                             " WHERE s.calibration_id = ? ORDER BY f.name, s.star", (c["calibration_id"],))
    plots = _pictures(conn, "calibration_id = ?", (c["calibration_id"],), embed)
    return SolutionEntry(c["calibration_id"], c["filter"], c, tuple(standards), plots[-1] if plots else None)


# Rendering ------------------------------------------------------------------------------------

def report_css(name: str = "nota_report.css") -> str:
    """The report's own style, shipped beside the templates (Datasette's stylesheet, or the
    standalone one, does the rest); inlined, so a written report fetches nothing."""
    return resources.files("nota.archive").joinpath("templates", name).read_text()


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _img(picture: Picture | None, css: str = "thumb") -> str:
    if picture is None:
        return ""
    return f'<img class="{css}" loading="lazy" src="{_e(picture.src)}" alt="{_e(picture.title)}">'


def _figures(pictures: tuple[Picture, ...] | list[Picture]) -> str:
    return "".join(f"<figure>{_img(p, 'plot')}<figcaption>{_e(p.title)}</figcaption></figure>" for p in pictures)


def _link(base: str | None, path: str, text: str) -> str:
    return f'<a href="{_e(base + path)}">{_e(text)}</a>' if base is not None else _e(text)


def _logbook(report: NightReport, base: str | None) -> str:
    head = ("<tr><th></th><th>UT</th><th>File</th><th>Object</th><th>Kind</th><th>Filter</th><th>Exp (s)</th>"
            "<th>Airmass</th><th>Mean</th><th>Median</th><th>Flags</th></tr>")
    rows = []
    for f in report.frames:
        excluded = any(x for _, _, x in f.flags) or (f.override or "").startswith("exclude")
        notes = [f'<span class="flag" title="{_e(m)}"><b>{_e(n)}</b>: {_e(m)}</span>' if x else
                 f'<span class="flag" title="{_e(m)}">{_e(n)}: {_e(m)}</span>' for n, m, x in f.flags]
        if f.override:
            notes.append(f'<span class="flag">override {_e(f.override)}</span>')
        rows.append(f'<tr id="frame-{f.file_id}" class="{"excluded" if excluded else ""}">'
                    f"<td>{_img(f.thumb)}</td><td>{_e((f.date_obs or '')[11:19])}</td>"
                    f"<td>{_link(base, f'/files/{f.file_id}', f.filename)}</td><td>{_e(f.object)}</td>"
                    f"<td>{_e(f.kind)}</td><td>{_e(f.filter)}</td><td class='num'>{_num(f.exptime)}</td>"
                    f"<td class='num'>{_num(f.airmass, 3)}</td><td class='num'>{_num(f.mean, 0)}</td>"
                    f"<td class='num'>{_num(f.median, 0)}</td><td>{'<br>'.join(notes)}</td></tr>")
    return (f'<h2 id="logbook">Logbook: {len(report.frames)} frames</h2>{_figures(report.night_plots)}'
            f'<table class="rows-and-columns logbook">{head}{"".join(rows)}</table>')


def _groups(report: NightReport) -> str:
    out = [f'<h2 id="groups">Calibration groups: {len(report.groups)}</h2>']
    if not report.groups:
        out.append("<p>None yet: <code>nota groups</code> (or <code>nota reduce</code>) builds them.</p>")
    for g in report.groups:
        state = ("used" if g.preferred else "usable, not used") if g.usable else "unusable"
        members = ", ".join(_e(name) if inc else f"<s title='{_e(why)}'>{_e(name)}</s> ({_e(why)})"
                            for name, inc, why in g.members)
        out.append(f'<h3 id="group-{g.group_id}">{_e(g.key)}</h3><p><b>{state}</b>: {_e(g.note)}</p>'
                   f"<p>{len(g.members)} members: {members}</p>{_figures(g.plots)}")
    return "".join(out)


def _masters(report: NightReport) -> str:
    out = [f'<h2 id="masters">Masters: {len(report.masters)}</h2>']
    if not report.masters:
        out.append("<p>None yet: <code>nota reduce</code> makes them.</p>")
    for m in report.masters:
        left = f", {m.left_out} left out" if m.left_out else ""
        how = "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in m.parameters)
        out.append(f'<h3 id="product-{m.product_id}">{_e(m.name)}</h3><p>{_e(m.kind.replace("_", " "))} of'
                   f" {m.combined} frames{left} from group {_e(m.group_key)}: {_e(how)}</p>{_figures(m.plots)}")
    return "".join(out)


def _solutions(report: NightReport) -> str:
    out = [f'<h2 id="photometry">Photometric solutions: {len(report.solutions)}</h2>']
    if not report.solutions:
        out.append("<p>No photometric solution for this night (no standards reduced yet).</p>")
    for s in report.solutions:
        c = s.figures
        colour = (f"{_num(c.get('colour_term'), 3)} ± {_num(c.get('colour_term_err'), 3)} ({_e(c.get('colour_index'))})"
                  if c.get("colour_term") is not None else "not fitted")
        figures = (f"<tr><td>ZP (AB)</td><td>{_num(c['zp'], 3)} ± {_num(c['zp_err'], 3)}</td></tr>"
                   f"<tr><td>k (mag/airmass)</td><td>{_num(c['k'], 3)} ± {_num(c['k_err'], 3)}</td></tr>"
                   f"<tr><td>colour term</td><td>{colour}</td></tr><tr><td>rms (mag)</td><td>{_num(c['rms'], 3)}</td></tr>"
                   f"<tr><td>standards</td><td>{c['n_used']} used, {c['n_rejected']} rejected, airmass"
                   f" {_num(c['airmass_min'], 2)}-{_num(c['airmass_max'], 2)}</td></tr>"
                   f"<tr><td>method</td><td>{_e(c['method'])}</td></tr>")
        stars = "".join(f"<tr><td>{_e(m['star'])}</td><td>{_e(m['frame'])}</td><td class='num'>{_num(m['airmass'], 3)}</td>"
                        f"<td class='num'>{_num(m['m_instrumental'], 3)}</td><td class='num'>{_num(m['m_catalogue'], 3)}</td>"
                        f"<td>{'yes' if m['used'] else 'no'}</td><td>{_e(m['note'])}</td></tr>" for m in s.standards)
        plot = _figures([s.plot]) if s.plot else "<p>No fit plot stored.</p>"
        out.append(f'<h3 id="calibration-{s.calibration_id}">{_e(s.filter)}</h3><table class="figures">{figures}</table>'
                   f"{plot}<table class='rows-and-columns'><tr><th>Star</th><th>Frame</th><th>Airmass</th>"
                   f"<th>m instr.</th><th>m cat. (AB)</th><th>Used</th><th>Note</th></tr>{stars}</table>")
    return "".join(out)


def _graph_svg(graph: Graph, base: str | None, title: str) -> str:
    def href(node: Node) -> str | None:
        if not base:  # within the page: a product's row or heading, a raw frame's logbook line
            return (f"#product-{node.product_id}" if node.product_id is not None else
                    f"#frame-{node.file_id}" if node.file_id is not None else None)
        if node.product_id is not None:
            return f"{ROUTE}/lineage/{node.product_id}"
        return f"{base}/files/{node.file_id}" if node.file_id is not None else None

    return f'<div class="graph">{to_svg(graph, href=href, title=title)}</div>'


def _products(report: NightReport, base: str | None) -> str:
    legend = "".join(f'<span style="background:{KIND_COLOURS[k]}">{_e(k.replace("_", " "))}</span>'
                     for k in ("master_bias", "master_dark", "master_flat", "reduced", "stack", "raw"))
    rows = "".join(
        f'<tr id="product-{p.product_id}"><td>{_img(p.thumb)}</td>'
        f"<td>{_link(base, f'/products/{p.product_id}', p.name)}</td><td>{_e(p.kind)}</td><td>{_e(p.filter)}</td>"
        f"<td class='num'>{_num(p.exptime)}</td><td class='num'>{_num(p.airmass, 3)}</td>"
        f"<td class='num'>{_num(p.photzp, 3)}</td><td>{_e(p.wcs_status)}</td>"
        f"<td>{_link('', f'{ROUTE}/lineage/{p.product_id}', 'lineage') if base else ''}</td></tr>"
        for p in report.products if not p.kind.startswith("master_"))
    stacks = "".join(f"<details><summary>Lineage of {_e(p.name)}</summary>"
                     f"{_graph_svg(g, base, 'Lineage of ' + p.name)}</details>" for p, g in report.stack_graphs)
    if not report.products:
        return f'<h2 id="products">Products: 0</h2><p>None yet: <code>nota reduce</code> makes them.</p>'
    return (f'<h2 id="products">Products: {len(report.products)}</h2>'
            f"<p>Every product of the night and what it was made from, raw frames on the left; a master's raw"
            f" frames are folded into one box (hover for their names).</p><p class='legend'>{legend}</p>"
            f"{_graph_svg(report.graph, base, 'Lineage of the night ' + report.night)}{stacks}"
            f"<table class='rows-and-columns'><tr><th></th><th>Product</th><th>Kind</th><th>Filter</th><th>Exp (s)</th>"
            f"<th>Airmass</th><th>PHOTZP</th><th>WCS</th><th></th></tr>{rows}</table>")


def render_body(report: NightReport, base: str | None = None) -> str:
    """The report's sections as HTML; ``base`` (a served database's path) links rows to their pages."""
    kinds: dict[str, int] = {}
    for f in report.frames:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    times = [f.date_obs for f in report.frames if f.date_obs]
    summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
    span = f" from {times[0][:19].replace('T', ' ')} to {times[-1][:19].replace('T', ' ')} UT" if times else ""
    toc = " · ".join(f'<a href="#{a}">{t}</a>' for a, t in (("logbook", "Logbook"), ("groups", "Calibration groups"),
                                                             ("masters", "Masters"), ("photometry", "Photometry"),
                                                             ("products", "Products")))
    return (f'<div class="nota-report"><p>{len(report.frames)} frames{span}: {_e(summary)}.</p><p>{toc}</p>'
            f"{_logbook(report, base)}{_groups(report)}{_masters(report)}{_solutions(report)}"
            f"{_products(report, base)}</div>")


def standalone_html(report: NightReport, source: str = "") -> str:
    """One self-contained page: inline style, every picture a data: URI, no external file."""
    from datetime import datetime, timezone
    from importlib.metadata import version

    title = f"Night of {report.night}"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"Written by nota {version('nota')}{' from ' + source if source else ''} on {made}."
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{report_css('nota_standalone.css')}{report_css()}</style></head><body><h1>{_e(title)}</h1>"
            f"{render_body(report)}<footer><p>{_e(footer)}</p></footer></body></html>")


def night_report_html(db_path: str | Path, night: str) -> str:
    """``nota report``: the night's self-contained report page from the archive at ``db_path``."""
    from nota.archive.database import open_readonly

    with open_readonly(db_path, time_limit=600.0) as archive:
        report = build_report(archive.conn, night, embed=True)
    return standalone_html(report, source=Path(db_path).name)
