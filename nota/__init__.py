"""nota: an archive and reducer for CCD imaging nights.

``nota.archive`` is the database (headers, selections, groups, products, provenance);
``nota.reduce`` the pixels (pure functions over ``CCDData``); ``nota.pipeline`` joins them
(ingest, qc, the reduction's steps, planned and run in workers); ``nota.simulate`` writes
realistic nights to try them on. ``nota.open`` is the archive from Python (``nota.api``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nota.api import NotaArchive

__version__ = "0.1.0"


def open(path: str | os.PathLike[str] = "nota.db", *, time_limit: float = 10.0) -> NotaArchive:  # noqa: A001
    """The archive at ``path`` for a notebook, read-only but for its ``ingest`` and ``reduce``.

    Example: ``archive = nota.open("nota.db"); archive.frames(kind="bias")``. Imported here
    lazily: ``import nota`` (every command's start) stays free of astropy and numpy.
    """
    from nota.api import NotaArchive

    return NotaArchive(path, time_limit=time_limit)
