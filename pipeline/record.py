"""The record of a product: what the coordinator writes when a worker is done.

Workers never open the archive. When a product's file is complete, the coordinator
registers it here, in one transaction, with everything its activity used: the raw frames
(members left out stay listed, with why) and the products it needed.
"""

from __future__ import annotations

import json
from typing import Any

from nota.archive import frames, products
from nota.archive.database import Archive
from nota.pipeline.params import as_dict
from nota.pipeline.settings import step_module
from nota.pipeline.tasks import ProductResult, Task

__all__ = ["header_of", "current_products", "record_product"]


def header_of(archive: Archive, file_id: int) -> tuple:
    """A raw frame's header cards, as a task carries them to the worker."""
    return frames.header_cards(archive, file_id)


def current_products(archive: Archive) -> dict[str, dict[str, Any]]:
    """What is already made, by recipe key (a product step's ``current``)."""
    return products.current_products(archive)


def _role(task: Task) -> str:
    return "raw" if task.file_id is not None else "member"


def record_product(archive: Archive, task: Task, result: ProductResult, needed: dict[str, dict],
                   activity_id: int) -> dict[str, Any]:
    """Register a finished product and what it used; returns how later tasks find it."""
    row = {
        "kind": task.step, "night": task.night, "filter": task.filter, "path": result.path,
        "content_hash": result.content_hash, "size": result.size, "recipe_key": task.key, "step": task.step,
        "parameters_json": json.dumps(as_dict(task.params), sort_keys=True), "code_version": step_module(task.step).VERSION,
        "group_id": task.group_id, "file_id": task.file_id, "activity_id": activity_id,
        "exptime": result.exptime, "airmass": result.airmass, "photzp": result.photzp,
        "cosmic_pixels": result.cosmic_pixels, "wcs_status": result.wcs_status,
        "wcs_rms_arcsec": result.wcs_rms_arcsec, "wcs_matched": result.wcs_matched,
    }
    used = [{"role": _role(task), "file_id": raw.file_id, "content_hash": raw.content_hash,
             "included": raw.included, "reason": raw.reason} for raw in task.inputs]
    used += [{"role": role.split(":")[0], "product_id": known["product_id"], "content_hash": known["content_hash"]}
             for role, known in needed.items() if "product_id" in known]
    product_id = products.register_product(archive, row, used, result.previews, result.plots)
    return {"product_id": product_id, "path": result.path, "content_hash": result.content_hash, "size": result.size}

