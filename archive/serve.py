"""``nota serve``: the archive in Datasette, read-only, on loopback by default."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from pathlib import Path
from typing import Callable

from nota.archive.datasette_metadata import datasette_metadata
from nota.archive.database import ensure_current
from nota.errors import NotaError

log = logging.getLogger(__name__)

__all__ = ["make_datasette", "serve", "database_name"]

SETTINGS = {
    "sql_time_limit_ms": 3000,  # an over-long query is stopped, not left to run
    "default_page_size": 100,
    "allow_download": False,
    "num_sql_threads": 3,
    # Suggested facets try every column of a page's rows (three kinds of facet each): two
    # thirds of the frames page's time on a year's archive (bench/scale.py). The configured
    # facets stay, and any column can still be faceted from its menu.
    "suggest_facets": False,
}


def database_name(db_path: str | Path) -> str:
    """Datasette names a database after its file: demo/nota.db -> nota."""
    return Path(db_path).stem


def make_datasette(db_path: str | Path, time_limit_ms: int | None = None):
    """A Datasette over the archive with nota's metadata and plugin; it never writes."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    from nota.archive import datasette_plugin

    path = Path(db_path)
    if not path.exists():
        raise NotaError(f"{path}: no archive here (run `nota ingest` first)")
    ensure_current(path)
    if not pm.is_registered(datasette_plugin):
        pm.register(datasette_plugin, name="nota")
    settings = dict(SETTINGS)
    if time_limit_ms is not None:
        settings["sql_time_limit_ms"] = time_limit_ms
    # Datasette opens a mutable database with ?mode=ro for every query it runs, so new
    # rows written by `nota reduce` (WAL) show on reload and nothing here can write.
    # nota's pages extend Datasette's base.html from the templates shipped beside the plugin.
    templates = str(resources.files("nota.archive") / "templates")
    return Datasette([str(path)], metadata=datasette_metadata(database_name(path)), settings=settings,
                     template_dir=templates)


def serve(
    db_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8001,
    time_limit_ms: int | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the archive until interrupted."""
    import uvicorn

    datasette = make_datasette(db_path, time_limit_ms)
    asyncio.run(datasette.invoke_startup())
    url = f"http://{host}:{port}/{database_name(db_path)}"
    if on_ready:
        on_ready(url)
    uvicorn.run(datasette.app(), host=host, port=port, log_level="warning")
