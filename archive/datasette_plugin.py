"""nota's Datasette plugin: pictures in cells, links through provenance, a lineage page.

Registered by ``nota serve``; it only reads. Previews and plots are PNG BLOBs in the
archive, served from ``/-/nota/...`` routes so table pages stay light; a thumbnail shows
in the ``file_id`` column of frames, a larger view on file and product row pages.
"""

from __future__ import annotations

import html

from datasette import hookimpl
from datasette.utils.asgi import Response
from markupsafe import Markup

from nota.archive.database import regexp

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


async def lineage_page(request, datasette):
    """A product's tree down to the raw frames, every node a link."""
    db = datasette.get_database()
    name = db.name
    product_id = int(request.url_vars["id"])
    seen: set[int] = set()

    async def node(pid: int, role: str, depth: int) -> str:
        rows = (await db.execute("SELECT kind, path FROM products WHERE product_id = ?", [pid])).rows
        if not rows:
            return f"<li>missing product {pid}</li>"
        kind, path = rows[0]
        label = html.escape(path.rsplit("/", 1)[-1])
        out = [f'<li>{html.escape(role)} <a class="nota-product" href="/{name}/products/{pid}">{label}</a> ({kind})'
               f' <a href="{ROUTE}/lineage/{pid}">lineage</a>']
        if pid not in seen and depth < 6:
            seen.add(pid)
            inputs = (await db.execute(
                "SELECT i.role, i.file_id, i.input_product_id, i.included, i.reason, f.name"
                " FROM product_inputs i LEFT JOIN files f USING (file_id) WHERE i.product_id = ?"
                " ORDER BY i.role, f.name", [pid])).rows
            out.append("<ul>")
            for role_, file_id, input_product, included, reason, fname in inputs:
                if input_product is not None:
                    out.append(await node(input_product, role_, depth + 1))
                else:
                    note = "" if included else f" <em>left out: {html.escape(reason or '')}</em>"
                    out.append(f'<li>{html.escape(role_)} <a class="nota-raw" href="/{name}/files/{file_id}">'
                               f"{html.escape(fname or str(file_id))}</a>{note}</li>")
            out.append("</ul>")
        out.append("</li>")
        return "".join(out)

    tree = await node(product_id, "product", 0)
    body = (f"<!DOCTYPE html><html><head><title>Lineage of product {product_id}</title></head><body>"
            f"<p><a href='/{name}'>{html.escape(name)}</a> / <a href='/{name}/products'>products</a></p>"
            f"<h1>Lineage of product {product_id}</h1><ul class='nota-lineage'>{tree}</ul></body></html>")
    return Response.html(body)


@hookimpl
def register_routes():
    return [
        (rf"^{ROUTE}/preview/(?P<kind>file|product)/(?P<id>\d+)/(?P<size>thumb|view)\.png$", preview),
        (rf"^{ROUTE}/preview-id/(?P<id>\d+)\.png$", preview_by_id),
        (rf"^{ROUTE}/plot/(?P<id>\d+)\.png$", plot),
        (rf"^{ROUTE}/lineage/(?P<id>\d+)$", lineage_page),
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
