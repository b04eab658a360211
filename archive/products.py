"""Products in the archive: listing them, and walking their lineage back to raw frames.

A product's lineage is the tree of what it was made from: a reduced frame from its raw
frame and the master bias and flat it used, each master from the raw frames it combined.
``prov_document`` writes the same graph as W3C PROV-JSON for tools that speak it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from nota.archive.database import ReadOnlyArchive
from nota.errors import NotaError

__all__ = ["list_products", "find_product", "lineage", "prov_document", "read_product"]

def read_product(path: str | Path) -> CCDData:
    """A product as CCDData (data, UNCERT, MASK, header), without parsing a WCS from it."""
    with fits.open(path, memmap=False) as hdul:
        return CCDData(
            hdul[0].data.astype(np.float32),
            unit="adu",
            meta=hdul[0].header,
            uncertainty=StdDevUncertainty(hdul["UNCERT"].data.astype(np.float32)),
            mask=hdul["MASK"].data.astype(bool),
        )


_PRODUCT_COLUMNS = (
    "product_id AS id, kind, night, filter, path, content_hash, size, recipe_key, step,"
    " code_version, created_at"
)


def list_products(db_path: str | Path, *, current_only: bool = True) -> list[dict[str, Any]]:
    """Products with the ids of their inputs, for ``nota products --json``."""
    with ReadOnlyArchive(db_path) as archive:
        products = archive.dicts(
            f"SELECT {_PRODUCT_COLUMNS} FROM products"
            + (" WHERE current = 1" if current_only else "")
            + " ORDER BY night, kind, path"
        )
        for p in products:
            _, inputs = archive.run(
                "SELECT role, file_id, input_product_id, included FROM product_inputs WHERE product_id = ?",
                (p["id"],),
            )
            p["input_files"] = [f for role, f, _, inc in inputs if f is not None and inc]
            p["input_products"] = [q for role, _, q, _ in inputs if q is not None]
            p["inputs"] = [
                {"role": role, "file_id": f, "product_id": q} for role, f, q, inc in inputs if inc
            ]
    return products


def find_product(archive: ReadOnlyArchive, product: str) -> dict[str, Any]:
    """A current product by id, recipe key, file name or path."""
    columns, rows = archive.run(
        f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE current = 1 AND"
        " (CAST(product_id AS TEXT) = :p OR recipe_key = :p OR path = :p OR path LIKE '%/' || :p)",
        {"p": product},
    )
    if not rows:
        raise NotaError(f"no product {product!r} (give its id, file name, path or NOTAKEY)")
    if len(rows) > 1:
        raise NotaError(f"{product!r} names {len(rows)} products; give its id or full path")
    return dict(zip(columns, rows[0]))


def _tree(archive: ReadOnlyArchive, product: dict[str, Any], seen: set[int]) -> dict[str, Any]:
    node = {k: product[k] for k in ("id", "kind", "night", "filter", "path", "content_hash")}
    node["inputs"] = []
    if product["id"] in seen:
        return node
    seen = seen | {product["id"]}
    _, inputs = archive.run(
        "SELECT i.role, i.file_id, i.input_product_id, i.content_hash, i.included, i.reason,"
        " f.name, f.path FROM product_inputs i LEFT JOIN files f USING (file_id)"
        " WHERE i.product_id = ? ORDER BY i.role, f.name",
        (product["id"],),
    )
    for role, file_id, input_product, digest, included, reason, name, path in inputs:
        if input_product is not None:
            (parent,) = archive.dicts(f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_id = ?", (input_product,))
            child = _tree(archive, parent, seen)
            child["role"] = role
            node["inputs"].append(child)
        else:
            node["inputs"].append({
                "role": role, "kind": "raw", "file_id": file_id, "filename": name, "path": path,
                "content_hash": digest, "included": bool(included), "reason": reason,
            })
    return node


def lineage(db_path: str | Path, product: str) -> dict[str, Any]:
    """The tree of a product's inputs, down to the raw frames."""
    with ReadOnlyArchive(db_path) as archive:
        return _tree(archive, find_product(archive, product), set())


def prov_document(db_path: str | Path, product: str) -> dict[str, Any]:
    """A product's lineage as W3C PROV-JSON (entities, activities, used, wasGeneratedBy)."""
    with ReadOnlyArchive(db_path) as archive:
        start = find_product(archive, product)
        doc: dict[str, Any] = {
            "prefix": {"nota": "https://nota.invalid/ns#"},
            "entity": {}, "activity": {}, "used": {}, "wasGeneratedBy": {},
        }
        todo, seen = [start["id"]], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            _, rows = archive.run(
                "SELECT p.path, p.content_hash, p.kind, p.activity_id, a.step, a.started_at, a.ended_at,"
                " a.parameters_json FROM products p JOIN activities a USING (activity_id) WHERE p.product_id = ?",
                (pid,),
            )
            path, digest, kind, activity_id, step, started, ended, params = rows[0]
            entity = f"nota:product/{pid}"
            activity = f"nota:activity/{activity_id}"
            doc["entity"][entity] = {"prov:label": Path(path).name, "prov:location": path,
                                     "nota:content_hash": digest, "prov:type": kind}
            doc["activity"][activity] = {"prov:label": step, "prov:startTime": started,
                                         "prov:endTime": ended, "nota:parameters": json.loads(params)}
            doc["wasGeneratedBy"][f"_:g{pid}"] = {"prov:entity": entity, "prov:activity": activity}
            _, inputs = archive.run(
                "SELECT i.role, i.file_id, i.input_product_id, i.content_hash, f.path FROM product_inputs i"
                " LEFT JOIN files f USING (file_id) WHERE i.product_id = ? AND i.included = 1",
                (pid,),
            )
            for n, (role, file_id, input_product, digest, raw_path) in enumerate(inputs):
                if input_product is not None:
                    used = f"nota:product/{input_product}"
                    todo.append(input_product)
                else:
                    used = f"nota:raw/{file_id}/{digest}"
                    doc["entity"][used] = {"prov:label": Path(raw_path).name, "prov:location": raw_path,
                                           "nota:content_hash": digest, "prov:type": "raw"}
                doc["used"][f"_:u{pid}_{n}"] = {"prov:activity": activity, "prov:entity": used, "prov:role": role}
    return doc
