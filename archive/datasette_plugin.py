"""nota's Datasette plugin: pictures in cells, links through provenance, nota's own pages.

Registered by ``nota serve``; it only reads. Previews and plots are PNG BLOBs in the
archive, served from ``/-/nota/...`` routes so table pages stay light; a thumbnail shows
in the ``file_id`` column of frames, a larger view on file and product row pages. Every
night cell links to the night's report (``/-/nota/report/NIGHT``, the page ``nota report``
writes, its pictures served here), ``/-/nota/reports`` lists the nights, and
``/-/nota/lineage/ID`` draws a product's lineage; these pages extend Datasette's own
``base.html`` (``templates/nota_page.html``) so they look like the rest of the catalogue.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from nota.archive import report
from nota.archive.database import regexp
from nota.archive.lineage_graph import Node, product_graph, to_svg
from nota.errors import NotaError

ROUTE = "/-/nota"
_ID_COLUMNS = {"file_id": "files", "product_id": "products", "input_product_id": "products",
               "group_id": "calibration_groups"}


@hookimpl
def prepare_connection(conn):
    conn.create_function("regexp", 2, regexp, deterministic=True)


def _thumbnail(database: str, file_id: int) -> Markup:
    return Markup(
        f'<a href="/{database}/files/{file_id}" title="file {file_id}">'
        f'<img class="nota-thumb" loading="lazy" src="{ROUTE}/preview/file/{file_id}/thumb.png"'
        f' alt="file {file_id}" style="max-width:96px;max-height:96px;display:block"></a>'
    )


@hookimpl
def render_cell(row, value, column, table, database, datasette):
    if value is None:
        return None
    if column == "night" and database:
        night = str(value)
        return Markup(f'<a href="{ROUTE}/report/{quote(night)}" title="the night\'s report">{html.escape(night)}</a>')
    if table == "frames" and column == "file_id":
        return _thumbnail(database, int(value))
    if column == "png" and table in ("plots", "previews"):
        key = row["plot_id"] if table == "plots" else row["preview_id"]
        kind = "plot" if table == "plots" else "preview-id"
        return Markup(f'<img src="{ROUTE}/{kind}/{key}.png" style="max-width:480px" alt="{table} {key}">')
    if table == "products" and column == "recipe_key":
        return Markup(f'<a href="{ROUTE}/lineage/{row["product_id"]}">{html.escape(str(value))}</a>')
    # Views have no foreign keys: link their ids by hand so provenance stays walkable.
    if column in _ID_COLUMNS and table in ("lineage", "frames") or (
        column in _ID_COLUMNS and table is None
    ):
        target = _ID_COLUMNS[column]
        return Markup(f'<a href="/{database}/{target}/{int(value)}">{int(value)}</a>')
    return None


_FOLD_DESCRIPTIONS = """
(function () {
  // Column descriptions are there when wanted, folded so the rows come first.
  var list = document.querySelector('dl.column-descriptions');
  if (!list) return;
  var fold = document.createElement('details');
  var title = document.createElement('summary');
  title.textContent = 'What the columns mean';
  fold.appendChild(title);
  list.parentNode.insertBefore(fold, list);
  fold.appendChild(list);
})();
"""


@hookimpl
def extra_body_script(template, database, table, view_name, request, datasette):
    """Fold column descriptions; on a file's or product's row page, show its picture large."""
    if view_name == "table":
        return _FOLD_DESCRIPTIONS
    if view_name != "row" or table not in ("files", "products"):
        return ""
    kind = "file" if table == "files" else "product"
    return f"""
(function () {{
  var id = decodeURIComponent(location.pathname.split('/').pop());
  var box = document.createElement('div');
  box.className = 'nota-view';
  box.innerHTML = '<h2>Picture</h2><img id="nota-view" src="{ROUTE}/preview/{kind}/' + id + '/view.png"'
    + ' style="max-width:384px" alt="preview">'
    + ({'true' if kind == 'product' else 'false'} ? '<p><a href="{ROUTE}/lineage/' + id + '">Lineage of this product</a></p>' : '');
  var content = document.querySelector('section.content') || document.body;
  content.appendChild(box);
}})();
"""


async def _png(datasette, sql, params):
    db = datasette.get_database()
    rows = (await db.execute(sql, params)).rows
    if not rows or rows[0][0] is None:
        return Response.text("no picture", status=404)
    return Response(rows[0][0], content_type="image/png", headers={"Cache-Control": "max-age=60"})


async def preview(request, datasette):
    kind, key, size = (request.url_vars[k] for k in ("kind", "id", "size"))
    column = "file_id" if kind == "file" else "product_id"
    return await _png(datasette, f"SELECT png FROM previews WHERE {column} = ? AND size = ?"
                      " ORDER BY preview_id DESC LIMIT 1", [int(key), size])


async def preview_by_id(request, datasette):
    return await _png(datasette, "SELECT png FROM previews WHERE preview_id = ?", [int(request.url_vars["id"])])


async def plot(request, datasette):
    return await _png(datasette, "SELECT png FROM plots WHERE plot_id = ?", [int(request.url_vars["id"])])


async def _page(datasette, request, title: str, body: str, *, page_class: str, crumb_table: str | None = None,
                intro: str = "", status: int = 200) -> Response:
    """One of nota's pages inside Datasette's base.html (its stylesheet, header and footer)."""
    context = {"title": title, "body": Markup(body), "intro": intro, "nota_css": Markup(report.report_css()),
               "database": datasette.get_database().name, "crumb_table": crumb_table, "page_class": page_class}
    page = await datasette.render_template("nota_page.html", context, request=request)
    return Response.html(page, status=status)


async def report_page(request, datasette):
    """The night's report, as ``nota report`` writes it, with pictures from the routes above."""
    db = datasette.get_database()
    night = request.url_vars["night"]

    def build(conn):
        try:
            return report.build_report(conn, night, embed=False)
        except NotaError as exc:
            return exc

    built = await db.execute_fn(build)
    if isinstance(built, NotaError):
        return await _page(datasette, request, "No such night", f"<p>{html.escape(str(built))}</p>"
                           f"<p><a href='{ROUTE}/reports'>The nights in the archive</a></p>",
                           page_class="nota-report-page", status=404)
    return await _page(datasette, request, f"Night of {night}", report.render_body(built, base=f"/{db.name}"),
                       page_class="nota-report-page", crumb_table="frames")


async def reports_page(request, datasette):
    """Every night in the archive, each linked to its report."""
    db = datasette.get_database()
    rows = (await db.execute("SELECT night, count(*), min(date_obs), max(date_obs) FROM frames"
                             " WHERE night IS NOT NULL GROUP BY night ORDER BY night")).rows
    items = "".join(f'<tr><td><a href="{ROUTE}/report/{quote(n)}">{html.escape(n)}</a></td>'
                    f"<td>{k}</td><td>{html.escape(a or '')}</td><td>{html.escape(b or '')}</td></tr>"
                    for n, k, a, b in rows)
    body = ("<table class='rows-and-columns'><tr><th>Night</th><th>Frames</th><th>First</th><th>Last</th></tr>"
            f"{items}</table>")
    return await _page(datasette, request, "Night reports", body, page_class="nota-reports-page")


async def lineage_page(request, datasette):
    """A product's tree down to the raw frames: a graph in columns and a list, a thumbnail at each node."""
    db = datasette.get_database()
    name = db.name
    product_id = int(request.url_vars["id"])
    graph = await db.execute_fn(lambda conn: product_graph(conn, product_id))
    nodes = {n.key: n for n in graph.nodes}
    if f"p:{product_id}" not in nodes:
        return await _page(datasette, request, f"Lineage of product {product_id}",
                           f"<p>No product {product_id} in the archive.</p>", page_class="nota-lineage-page", status=404)
    inputs: dict[str, list] = {}
    for edge in graph.edges:
        inputs.setdefault(edge.target, []).append(edge)
    reasons = {(r[0], r[1]): r[2] for r in (await db.execute(
        "SELECT l.product_id, l.file_id, l.reason FROM product_inputs l WHERE l.included = 0")).rows}
    seen: set[str] = set()

    def thumb(node: Node) -> str | None:
        if node.product_id is not None:
            return f"{ROUTE}/preview/product/{node.product_id}/thumb.png"
        return f"{ROUTE}/preview/file/{node.file_id}/thumb.png" if node.file_id is not None else None

    def item(key: str, role: str, included: bool, target: str | None) -> str:
        node = nodes[key]
        role_html = f'<span class="role">{html.escape(role)}</span>'
        picture = f'<img class="thumb" src="{thumb(node)}" alt="{html.escape(node.label)}">'
        if node.product_id is None:
            why = reasons.get((int(target[2:]), node.file_id), "") if target else ""
            note = "" if included else f" <em>left out: {html.escape(why or '')}</em>"
            return (f'<li>{picture}{role_html}<a class="nota-raw" href="/{name}/files/{node.file_id}">'
                    f"{html.escape(node.label)}</a> ({html.escape(node.note)}){note}</li>")
        out = [f'<li>{picture}{role_html}<a class="nota-product" href="/{name}/products/{node.product_id}">'
               f'{html.escape(node.label)}</a> ({html.escape(node.kind)}) <a href="{ROUTE}/lineage/{node.product_id}">'
               "lineage</a>"]
        if key not in seen:
            seen.add(key)
            children = sorted(inputs.get(key, []), key=lambda e: (e.role, nodes[e.source].label))
            out += ["<ul>", *(item(e.source, e.role, e.included, key) for e in children), "</ul>"]
        out.append("</li>")
        return "".join(out)

    def href(node: Node) -> str:
        if node.product_id is not None:
            return f"{ROUTE}/lineage/{node.product_id}"
        return f"/{name}/files/{node.file_id}"

    label = nodes[f"p:{product_id}"].label
    svg = to_svg(graph, href=href, thumbnail=thumb, title=f"Lineage of {label}")
    body = (f'<div class="nota-report"><p>{html.escape(label)}: what it was made from, raw frames on the left'
            f' (a dashed red arrow: a member left out). Click a box for its own lineage or its raw file.</p>'
            f'<div class="graph">{svg}</div><h2>As a tree</h2><ul class="nota-lineage">'
            f'{item(f"p:{product_id}", "product", True, None)}</ul></div>')
    return await _page(datasette, request, f"Lineage of product {product_id}", body,
                       page_class="nota-lineage-page", crumb_table="products")


async def check_page(request, datasette):
    """The last `nota check`: when, whether all was well, and each problem it named."""
    db = datasette.get_database()
    rows = (await db.execute("SELECT value FROM archive_info WHERE key = 'last_check'")).rows
    if not rows:
        return await _page(datasette, request, "Last check", "<p>Never checked: run <code>nota check</code>.</p>",
                           page_class="nota-check-page")
    last = json.loads(rows[0][0])
    verdict = "all is well" if last["ok"] else f"{len(last['problems'])} problem(s) (first 500 kept)"
    items = "".join(f"<tr><td>{html.escape(p['path'])}</td><td>{html.escape(p['problem'])}</td></tr>"
                    for p in last["problems"])
    body = (f"<p class='nota-check-{'ok' if last['ok'] else 'failed'}'><strong>{html.escape(verdict)}</strong>"
            f" at {html.escape(last['checked_at'])}{' (--full)' if last.get('full') else ''}:"
            f" {html.escape(last['summary'])}</p>"
            + (f"<table class='rows-and-columns'><tr><th>File</th><th>Problem</th></tr>{items}</table>" if items else ""))
    return await _page(datasette, request, "Last check", body, page_class="nota-check-page")


@hookimpl
def menu_links(datasette, actor):
    """Datasette's menu (top right of every page) leads to the nights' reports and the last check."""
    return [{"href": f"{ROUTE}/reports", "label": "Night reports"},
            {"href": f"{ROUTE}/check", "label": "Last check"}]


@hookimpl
def register_routes():
    return [
        (rf"^{ROUTE}/preview/(?P<kind>file|product)/(?P<id>\d+)/(?P<size>thumb|view)\.png$", preview),
        (rf"^{ROUTE}/preview-id/(?P<id>\d+)\.png$", preview_by_id),
        (rf"^{ROUTE}/plot/(?P<id>\d+)\.png$", plot),
        (rf"^{ROUTE}/lineage/(?P<id>\d+)$", lineage_page),
        (rf"^{ROUTE}/report/(?P<night>[^/]+)$", report_page),
        (rf"^{ROUTE}/reports$", reports_page),
        (rf"^{ROUTE}/check$", check_page),
    ]


@hookimpl
def asgi_wrapper(datasette):
    """The catalogue is read-only: anything but GET and HEAD is refused outright."""

    def wrap(app):
        async def read_only(scope, receive, send):
            if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
                body = b"nota serve is read-only: writes are refused\n"
                await send({"type": "http.response.start", "status": 405,
                            "headers": [(b"content-type", b"text/plain"), (b"allow", b"GET, HEAD")]})
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)

        return read_only

    return wrap
