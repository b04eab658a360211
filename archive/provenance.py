"""Provenance: every step nota runs is an activity; what it used is in ``used``.

One model, after W3C PROV's core: an *activity* is a run of a step (its parameters, the
software versions and host that did the work, when it started and ended, how it went);
``used`` lists what it used (raw files with the content they had, products), once each;
what it made names it (``products.activity_id``, ``calibrations.activity_id``). A
product's inputs (the ``product_inputs`` view), its ``lineage`` and its PROV-JSON are all
read from these rows. The activity row is made when the work starts and closed when it
ends, so a crash leaves a ``running`` row behind as a trace.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timezone
from typing import Any

import nota
from nota.archive.database import Archive

__all__ = ["utc_now", "software_versions", "start_activity", "finish_activity", "record_used"]

_LIBRARIES = ("astropy", "numpy", "ccdproc", "sqlite-utils", "xxhash", "astroscrappy", "photutils")


def utc_now() -> str:
    """Now, as ISO 8601 UTC text (the archive's time format)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_VERSIONS: dict[str, str] = {}


def software_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour shapes nota's results."""
    if not _VERSIONS:
        _VERSIONS.update(python=sys.version.split()[0], nota=nota.__version__)  # as platform.python_version()
        installed = _installed_versions()
        for name in _LIBRARIES:
            version = installed.get(_normalized(name)) or _version_from_metadata(name)
            if version:
                _VERSIONS[name] = version
    return dict(_VERSIONS)


def _normalized(name: str) -> str:
    """A distribution's name as wheel's ``.dist-info`` directories spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _installed_versions() -> dict[str, str]:
    """Versions read from the names of the ``NAME-VERSION.dist-info`` directories on
    ``sys.path``: importing ``importlib.metadata`` to learn the same costs 40 ms of every
    command that records an activity, most of a CLI's start. The first on the path wins, as
    for an import."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = [e.name for e in os.scandir(entry or ".") if e.name.endswith(".dist-info")]
        except OSError:
            continue
        for directory in names:
            name, _, version = directory[: -len(".dist-info")].partition("-")
            if version:
                found.setdefault(_normalized(name), version)
    return found


def _version_from_metadata(name: str) -> str | None:
    """The slow way, for a library installed otherwise (an egg, a legacy editable install)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def start_activity(archive: Archive, step: str, parameters: Any) -> int:
    """Record that a step starts now (committed at once unless inside a transaction)."""
    with archive.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO activities (step, parameters_json, nota_version, versions_json, host,"
            " started_at, status) VALUES (?, ?, ?, ?, ?, ?, 'running')",
            (step, json.dumps(parameters, sort_keys=True, default=str), nota.__version__,
             json.dumps(software_versions(), sort_keys=True), os.uname().nodename, utc_now()),
        )
    return int(cursor.lastrowid)


def finish_activity(archive: Archive, activity_id: int, status: str, message: str | None = None,
                    host: str | None = None) -> None:
    """Close an activity with its outcome: ok, partial (some inputs failed) or failed; the
    host that did the work when it was not this one."""
    with archive.transaction() as conn:
        conn.execute(
            "UPDATE activities SET ended_at = ?, status = ?, message = ?, host = coalesce(?, host)"
            " WHERE activity_id = ?",
            (utc_now(), status, message, host or None, activity_id),
        )


def record_used(archive: Archive, activity_id: int, role: str, *, file_id: int | None = None,
                product_id: int | None = None, content_hash: str | None = None, included: bool = True,
                reason: str | None = None) -> None:
    """One thing an activity used: a raw file (with its content) or a product, in a role."""
    archive.conn.execute(
        "INSERT INTO used (activity_id, role, file_id, product_id, content_hash, included, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (activity_id, role, file_id, product_id, content_hash, int(included), reason),
    )
