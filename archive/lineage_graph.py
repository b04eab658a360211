"""Lineage as a picture: products and raw frames as boxes, inputs as arrows, in columns.

A product's column is its height above the raw frames (raw frames 0, a master bias 1, a
master flat 2, a reduced frame 3, a stack 4), so the chain reads left to right as the
lecture does it. Rows in each column follow their neighbours (a barycentre sweep), which
keeps most arrows short. ``product_graph`` is one product's whole ancestry;
``night_graph`` is every product of a night, the raw members of each master folded into
one box ("10 bias frames") so a night of a hundred products stays readable. ``to_svg``
draws either as an inline ``<svg>``; it only reads the archive (any sqlite3 connection).
"""

from __future__ import annotations

import html
import logging
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

log = logging.getLogger(__name__)

__all__ = ["Node", "Edge", "Graph", "product_graph", "night_graph", "to_svg", "KIND_COLOURS"]

KIND_COLOURS = {  # box fill by kind: calibrations cool, science warm, raw frames pale
    "master_bias": "#c6dbef", "master_dark": "#bcbddc", "master_flat": "#fdd0a2",
    "reduced": "#c7e9c0", "stack": "#74c476", "raw": "#f0f0f0", "raw_bundle": "#e0e0e0",
}
ROLE_COLOURS = {"master_bias": "#4292c6", "master_dark": "#807dba", "master_flat": "#f16913",
                "exposure": "#238b45", "raw": "#525252", "member": "#969696"}
BOX_WIDTH, BOX_HEIGHT, THUMB_HEIGHT = 220, 20, 52
COLUMN_GAP, ROW_GAP, MARGIN = 80, 4, 8
BUNDLE_AT = 3  # a master's raw members fold into one box in the night graph beyond this many
LABEL_CHARS = 32


@dataclass(frozen=True)
class Node:
    """A box: a product (``p:ID``), a raw frame (``f:ID``) or a fold of raw frames (``b:ID``)."""

    key: str
    label: str
    kind: str
    product_id: int | None = None
    file_id: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Edge:
    """An input (``source``) going into a product (``target``) in a role; left-out members too."""

    source: str
    target: str
    role: str
    included: bool = True


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def _name(path: str | None) -> str:
    return (path or "").rsplit("/", 1)[-1]


def _inputs(conn: sqlite3.Connection, product_ids: Iterable[int]) -> tuple[dict, list[tuple]]:
    """Products reachable from ``product_ids`` (id -> kind, name) and their input rows."""
    products: dict[int, tuple[str, str]] = {}
    rows: list[tuple] = []
    todo = sorted(set(product_ids))
    while todo:
        marks = ",".join("?" * len(todo))
        for pid, kind, path in conn.execute(
                f"SELECT product_id, kind, path FROM products WHERE product_id IN ({marks})", todo):
            products[pid] = (kind, _name(path))
        found = conn.execute(
            "SELECT i.product_id, i.role, i.file_id, i.input_product_id, i.included, i.reason, f.name, o.kind"
            f" FROM product_inputs i LEFT JOIN files f USING (file_id) LEFT JOIN observations o USING (file_id)"
            f" WHERE i.product_id IN ({marks}) ORDER BY i.product_id, f.name", todo).fetchall()
        rows += found
        todo = sorted({r[3] for r in found if r[3] is not None} - set(products))
    return products, rows


def _graph(products: dict, rows: list[tuple], fold: bool) -> Graph:
    nodes: dict[str, Node] = {f"p:{pid}": Node(f"p:{pid}", name, kind, product_id=pid)
                              for pid, (kind, name) in products.items()}
    edges: list[Edge] = []
    raw_by_product: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        pid, role, file_id, input_product, included, reason, fname, fkind = row
        if input_product is not None:
            edges.append(Edge(f"p:{input_product}", f"p:{pid}", role, bool(included)))
        else:
            raw_by_product[pid].append(row)
    for pid, raws in raw_by_product.items():
        if fold and len(raws) > BUNDLE_AT:
            kinds = sorted({r[7] or "raw" for r in raws})
            left_out = [r for r in raws if not r[4]]
            label = f"{len(raws)} {'/'.join(kinds)} frames" + (f" ({len(left_out)} left out)" if left_out else "")
            note = "; ".join(f"{r[6]}{'' if r[4] else ' (left out: ' + (r[5] or '') + ')'}" for r in raws)
            nodes[f"b:{pid}"] = Node(f"b:{pid}", label, "raw_bundle", note=note)
            edges.append(Edge(f"b:{pid}", f"p:{pid}", raws[0][1], not left_out or len(left_out) < len(raws)))
            continue
        for _, role, file_id, _, included, reason, fname, fkind in raws:
            key = f"f:{file_id}"
            nodes.setdefault(key, Node(key, fname or f"file {file_id}", "raw", file_id=file_id,
                                       note=f"raw {fkind or 'frame'}"))
            edges.append(Edge(key, f"p:{pid}", role, bool(included)))
    return Graph(tuple(nodes.values()), tuple(edges))


def product_graph(conn: sqlite3.Connection, product_id: int) -> Graph:
    """One product's whole ancestry, every raw frame its own box."""
    products, rows = _inputs(conn, [product_id])
    return _graph(products, rows, fold=False)


def night_graph(conn: sqlite3.Connection, night: str) -> Graph:
    """Every current product of a night (and masters of other nights they used), raw members folded."""
    ids = [r[0] for r in conn.execute("SELECT product_id FROM products WHERE night = ? AND current = 1", (night,))]
    products, rows = _inputs(conn, ids)
    return _graph(products, rows, fold=True)


# Layout -----------------------------------------------------------------------------------


def _columns(graph: Graph) -> list[list[str]]:
    """Nodes by column (height above the raw frames), rows ordered by their neighbours."""
    inputs: dict[str, list[str]] = defaultdict(list)
    consumers: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        inputs[e.target].append(e.source)
        consumers[e.source].append(e.target)
    height: dict[str, int] = {}

    def depth(key: str, trail: frozenset = frozenset()) -> int:
        if key not in height:
            ins = [k for k in inputs[key] if k not in trail]
            height[key] = 1 + max((depth(k, trail | {key}) for k in ins), default=-1) if ins else (
                0 if not key.startswith("p:") else 1)
        return height[key]

    for node in graph.nodes:
        depth(node.key)
    by_key = {n.key: n for n in graph.nodes}
    columns: list[list[str]] = [[] for _ in range(max(height.values(), default=0) + 1)]
    for key, h in height.items():
        columns[h].append(key)
    columns[0].sort(key=lambda k: (by_key[k].kind, by_key[k].label))
    for column in columns[1:]:
        column.sort(key=lambda k: (by_key[k].kind, by_key[k].label))

    def sweep(order: Iterable[int], neighbours: dict[str, list[str]]) -> None:
        """Sort columns by the mean height of their neighbours (columns are centred)."""
        for c in order:
            place = {k: i - (len(col) - 1) / 2 for col in columns for i, k in enumerate(col)}

            def centre(k: str) -> float:
                near = [n for n in neighbours[k] if n in place]
                near = [n for n in near if n.startswith("p:")] or near  # masters, not one's own raw frame
                return sum(place[n] for n in near) / len(near) if near else place[k]
            columns[c].sort(key=lambda k: (round(centre(k), 3), by_key[k].label))

    # Products follow their masters (reduced frames grouped by flat, in name order), then
    # each raw frame moves level with what it went into, so most arrows run straight.
    sweep(range(1, len(columns)), inputs)
    sweep([0], consumers)
    return columns


def to_svg(graph: Graph, *, href: Callable[[Node], str | None] = lambda n: None,
           thumbnail: Callable[[Node], str | None] | None = None, title: str = "Lineage") -> str:
    """The graph as an inline ``<svg>``: one ``g.node`` per box (``data-product-id`` or
    ``data-file-id``), one ``path.edge`` per input, links where ``href`` gives one, and a
    picture in each box where ``thumbnail`` gives a source."""
    columns = _columns(graph)
    by_key = {n.key: n for n in graph.nodes}
    box_h = THUMB_HEIGHT if thumbnail else BOX_HEIGHT
    box_w = BOX_WIDTH + (box_h if thumbnail else 0)  # the picture takes its own room, not the label's
    tallest = max((len(c) for c in columns), default=1)
    height = 2 * MARGIN + tallest * (box_h + ROW_GAP)
    width = 2 * MARGIN + len(columns) * (box_w + COLUMN_GAP) - COLUMN_GAP
    where: dict[str, tuple[float, float]] = {}
    for c, column in enumerate(columns):
        top = MARGIN + (tallest - len(column)) * (box_h + ROW_GAP) / 2
        for r, key in enumerate(column):
            where[key] = (MARGIN + c * (box_w + COLUMN_GAP), top + r * (box_h + ROW_GAP))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="nota-lineage-graph" width="{width}" height="{height:.0f}"'
           f' viewBox="0 0 {width} {height:.0f}" role="img" font-family="sans-serif" font-size="11">',
           f"<title>{html.escape(title)}</title>"]
    for e in graph.edges:
        if e.source not in where or e.target not in where:
            continue
        (x0, y0), (x1, y1) = where[e.source], where[e.target]
        x0, y0, y1 = x0 + box_w, y0 + box_h / 2, y1 + box_h / 2
        bend = (x1 - x0) / 2
        colour = ROLE_COLOURS.get(e.role, "#737373") if e.included else "#d62728"
        dash = "" if e.included else ' stroke-dasharray="4 3"'
        out.append(f'<path class="edge" data-role="{html.escape(e.role)}" d="M{x0:.1f},{y0:.1f} C{x0 + bend:.1f},{y0:.1f}'
                   f' {x1 - bend:.1f},{y1:.1f} {x1:.1f},{y1:.1f}" fill="none" stroke="{colour}"'
                   f' stroke-opacity="0.6" stroke-width="1.2"{dash}><title>{html.escape(e.role)}'
                   f"{'' if e.included else ' (left out)'}</title></path>")
    for key, (x, y) in where.items():
        node = by_key[key]
        ident = (f' data-product-id="{node.product_id}"' if node.product_id is not None else
                 f' data-file-id="{node.file_id}"' if node.file_id is not None else "")
        tip = f"{node.label} ({node.kind.replace('_', ' ')}){': ' + node.note if node.note else ''}"
        parts = [f'<g class="node {html.escape(node.kind)}"{ident}><title>{html.escape(tip)}</title>',
                 f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="4"'
                 f' fill="{KIND_COLOURS.get(node.kind, "#f0f0f0")}" stroke="#636363" stroke-width="0.8"/>']
        text_x = x + 6
        picture = thumbnail(node) if thumbnail else None
        if picture:
            parts.append(f'<image href="{html.escape(picture)}" x="{x + 3:.1f}" y="{y + 3:.1f}" width="{box_h - 6}"'
                         f' height="{box_h - 6}" preserveAspectRatio="xMidYMid meet"/>')
            text_x = x + box_h + 2
        chars = LABEL_CHARS
        label = node.label if len(node.label) <= chars else node.label[:chars - 1] + "…"
        parts.append(f'<text x="{text_x:.1f}" y="{y + box_h / 2 + 4:.1f}">{html.escape(label)}</text></g>')
        link = href(node)
        if link:
            parts = [f'<a href="{html.escape(link)}">', *parts, "</a>"]
        out.extend(parts)
    out.append("</svg>")
    return "".join(out)
