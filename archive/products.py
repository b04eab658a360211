"""Products in the archive: registering one, finding one, listing them, walking their lineage.

A product is registered only once its file is complete, in one transaction with what its
activity used (``used``) and its pictures. Its lineage is the tree of what it was made
from: a reduced frame from its raw frame and the masters it used, each master from the
raw frames it combined; ``prov_document`` writes the same rows as W3C PROV-JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from nota.archive import provenance
from nota.archive.database import Archive
from nota.errors import NotaError

__all__ = ["register_product", "retire_products", "current_products", "find_product", "list_products", "lineage", "prov_document"]

_COLUMNS = (
    "product_id AS id, kind, night, filter, path, content_hash, size, recipe_key, step,"
    " code_version, created_at, file_id, airmass"
)


def register_product(archive: Archive, row: dict[str, Any], used: Iterable[dict[str, Any]],
                     previews: dict[str, bytes], plots: Iterable[tuple[str, str, bytes]]) -> int:
    """Add a finished product (it replaces the current one at its path), what its activity
    used (``record_used``'s keywords), its previews and plots; returns its id."""
    now = provenance.utc_now()
    with archive.transaction() as conn:
        conn.execute("UPDATE products SET current = 0 WHERE path = ? AND current = 1", (row["path"],))
        product_id = archive.insert("products", {**row, "current": 1, "created_at": now})
        for edge in used:
            provenance.record_used(archive, row["activity_id"], **edge)
        conn.executemany(
            "INSERT INTO previews (product_id, size, content_hash, png, made_at) VALUES (?, ?, ?, ?, ?)",
            [(product_id, size, row["content_hash"], png, now) for size, png in previews.items()],
        )
        conn.execute("DELETE FROM plots WHERE product_id IN (SELECT product_id FROM products WHERE path = ?"
                     " AND product_id != ?)", (row["path"], product_id))
        conn.executemany(
            "INSERT INTO plots (subject, title, night, group_id, product_id, png, made_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(subject, title, row.get("night"), row.get("group_id"), product_id, png, now)
             for subject, title, png in plots],
        )
    return product_id


def retire_products(archive: Archive, product_ids: Iterable[int]) -> int:
    """Products no reduction calls for any more stop being current (their files and their
    provenance stay); returns how many."""
    ids = [(product_id,) for product_id in product_ids]
    with archive.transaction() as conn:
        conn.executemany("UPDATE products SET current = 0 WHERE product_id = ? AND current = 1", ids)
    return len(ids)


def current_products(archive: Archive) -> dict[str, dict[str, Any]]:
    """Current products by recipe key: their id, path, size and content hash, and whose they are
    (kind, raw frame, group)."""
    return {r["recipe_key"]: r for r in archive.dicts(
        "SELECT recipe_key, product_id, path, size, content_hash, kind, file_id, group_id FROM products"
        " WHERE current = 1")}


def find_product(archive: Archive, product: str, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A current product by id, recipe key, file name, path, or the raw frame it was made from."""
    rows = archive.dicts(
        f"SELECT {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))}, f.name AS raw_name"
        " FROM products p LEFT JOIN files f ON f.file_id = p.file_id WHERE p.current = 1 AND"
        " (CAST(p.product_id AS TEXT) = :p OR p.recipe_key = :p OR p.path = :p OR p.path LIKE '%/' || :p"
        "  OR f.name = :p)",
        {"p": product},
    )
    if kinds is not None:
        rows = [r for r in rows if r["kind"] in kinds]
    if not rows:
        raise NotaError(f"no product {product!r} (give its id, file name, path or NOTAKEY, or its raw frame)")
    if len(rows) > 1:
        raise NotaError(f"{product!r} names {len(rows)} products; give its id or full path")
    return rows[0]


def list_products(archive: Archive, *, current_only: bool = True) -> list[dict[str, Any]]:
    """Products with the ids of their inputs, for ``nota products --json``."""
    products = archive.dicts(
        f"SELECT {_COLUMNS} FROM products" + (" WHERE current = 1" if current_only else "")
        + " ORDER BY night, kind, path"
    )
    for p in products:
        inputs = archive.run(
            "SELECT role, file_id, input_product_id, included FROM product_inputs WHERE product_id = ?"
            " ORDER BY used_id", (p["id"],))[1]
        p["input_files"] = [f for role, f, _, inc in inputs if f is not None and inc]
        p["input_products"] = [q for role, _, q, _ in inputs if q is not None]
        p["inputs"] = [{"role": role, "file_id": f, "product_id": q} for role, f, q, inc in inputs if inc]
    return products


def _inputs(archive: Archive, product_id: int, included_only: bool = False) -> list[dict[str, Any]]:
    return archive.dicts(
        "SELECT i.role, i.file_id, i.input_product_id, i.content_hash, i.included, i.reason, f.name, f.path"
        " FROM product_inputs i LEFT JOIN files f USING (file_id) WHERE i.product_id = ?"
        + (" AND i.included = 1" if included_only else "") + " ORDER BY i.role, f.name",
        (product_id,),
    )


def _tree(archive: Archive, product: dict[str, Any], seen: set[int]) -> dict[str, Any]:
    node = {k: product[k] for k in ("id", "kind", "night", "filter", "path", "content_hash")}
    node["inputs"] = []
    if product["id"] in seen:
        return node
    seen = seen | {product["id"]}
    for i in _inputs(archive, product["id"]):
        if i["input_product_id"] is not None:
            parent = archive.one(f"SELECT {_COLUMNS} FROM products WHERE product_id = ?", (i["input_product_id"],))
            child = _tree(archive, parent, seen)
            child["role"] = i["role"]
            node["inputs"].append(child)
        else:
            node["inputs"].append({
                "role": i["role"], "kind": "raw", "file_id": i["file_id"], "filename": i["name"],
                "path": i["path"], "content_hash": i["content_hash"], "included": bool(i["included"]),
                "reason": i["reason"],
            })
    return node


def lineage(archive: Archive, product: str) -> dict[str, Any]:
    """The tree of a product's inputs, down to the raw frames."""
    return _tree(archive, find_product(archive, product), set())


def prov_document(archive: Archive, product: str) -> dict[str, Any]:
    """A product's lineage as W3C PROV-JSON (entities, activities, used, wasGeneratedBy)."""
    doc: dict[str, Any] = {"prefix": {"nota": "https://nota.invalid/ns#"},
                           "entity": {}, "activity": {}, "used": {}, "wasGeneratedBy": {}}
    todo, seen = [find_product(archive, product)["id"]], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        p = archive.one(
            "SELECT p.path, p.content_hash, p.kind, p.activity_id, a.step, a.started_at, a.ended_at,"
            " a.parameters_json FROM products p JOIN activities a USING (activity_id) WHERE p.product_id = ?",
            (pid,),
        )
        entity, activity = f"nota:product/{pid}", f"nota:activity/{p['activity_id']}"
        doc["entity"][entity] = {"prov:label": Path(p["path"]).name, "prov:location": p["path"],
                                 "nota:content_hash": p["content_hash"], "prov:type": p["kind"]}
        doc["activity"][activity] = {"prov:label": p["step"], "prov:startTime": p["started_at"],
                                     "prov:endTime": p["ended_at"], "nota:parameters": json.loads(p["parameters_json"])}
        doc["wasGeneratedBy"][f"_:g{pid}"] = {"prov:entity": entity, "prov:activity": activity}
        for n, i in enumerate(_inputs(archive, pid, included_only=True)):
            if i["input_product_id"] is not None:
                used = f"nota:product/{i['input_product_id']}"
                todo.append(i["input_product_id"])
            else:
                used = f"nota:raw/{i['file_id']}/{i['content_hash']}"
                doc["entity"][used] = {"prov:label": i["name"], "prov:location": i["path"],
                                       "nota:content_hash": i["content_hash"], "prov:type": "raw"}
            doc["used"][f"_:u{pid}_{n}"] = {"prov:activity": activity, "prov:entity": used, "prov:role": i["role"]}
    return doc
