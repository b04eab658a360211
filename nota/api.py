"""nota from Python: the archive for a notebook, as tables, ``CCDData`` and a solution.

``nota.open("nota.db")`` gives a ``NotaArchive``. Its readers go through one read-only
connection (``archive.database.open_readonly``: writes, ATTACH and extensions refused),
opened at the first read, so a notebook can look at an archive that ``nota reduce`` is
writing without any risk to it. The two methods that write, ``ingest`` and ``reduce``,
say so and open a writable connection for their call only; they run what the commands
run. Like the CLI this is a layer: it calls ``nota.archive`` and ``nota.pipeline`` and
runs no SQL of its own (``query`` runs the user's, read-only).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
from astropy.nddata import CCDData
from astropy.table import Column, MaskedColumn, Table

from nota.archive import calibrations as archive_calibrations, frames as archive_frames
from nota.archive import products as archive_products, query as archive_query, selections as archive_selections
from nota.archive.database import Archive, open_archive, open_readonly
from nota.errors import NotaError, QueryError

if TYPE_CHECKING:
    from nota.pipeline.ingest import IngestReport
    from nota.pipeline.plan import Plan
    from nota.pipeline.run import RunReport

log = logging.getLogger(__name__)

__all__ = ["NotaArchive", "Calibration"]


@dataclass(frozen=True)
class Calibration:
    """A night's photometric solution in one filter (AB), as ``nota calibration --json`` gives it.

    The fit is m_catalogue - m_instrumental = zp - k X + c C, with m_instrumental =
    -2.5 log10(ADU/s), X the mid-exposure airmass and C the catalogue colour in
    ``colour_index`` (zp is for C = 0; ``colour_term`` is None when it was not fitted, and
    ``method`` says why).
    """

    id: int
    night: str
    filter: str
    magnitude_system: str
    zp: float
    zp_err: float
    k: float
    k_err: float
    cov_zp_k: float
    colour_term: float | None
    colour_term_err: float | None
    colour_index: str | None
    rms: float
    n_used: int
    n_rejected: int
    airmass_min: float
    airmass_max: float
    method: str
    stars_used: tuple[tuple[str, str], ...]  # (star, raw frame)

    def magnitude(self, m_instrumental: float | np.ndarray, airmass: float,
                  colour: float = 0.0) -> float | np.ndarray:
        """Calibrated magnitude of a source of instrumental -2.5 log10(ADU/s) at ``airmass``
        (the colour term, when fitted, for its catalogue ``colour``; 0 if unknown)."""
        return m_instrumental + self.zp - self.k * airmass + (self.colour_term or 0.0) * colour

    def magnitude_error(self, airmass: float) -> float:
        """Error the calibration adds to a magnitude at ``airmass`` (zp and k correlated)."""
        var = self.zp_err**2 + (airmass * self.k_err) ** 2 - 2 * airmass * (self.cov_zp_k or 0.0)
        return float(np.sqrt(max(var, 0.0)))


class NotaArchive:
    """An archive opened from Python: tables of frames and products, pixels as ``CCDData``,
    lineage, photometric solutions; read-only but for ``ingest`` and ``reduce``."""

    def __init__(self, path: str | Path = "nota.db", *, time_limit: float = 10.0):
        self.path = Path(path)
        self.time_limit = time_limit
        self._reader: Archive | None = None

    def __repr__(self) -> str:
        return f"<NotaArchive {str(self.path)!r} (read-only)>"

    # Lifetime -------------------------------------------------------------------------------

    @property
    def _db(self) -> Archive:
        """The read-only connection, opened at the first read (the archive may not exist
        yet when it is opened: ``ingest`` makes it)."""
        if self._reader is None:
            self._reader = open_readonly(self.path, time_limit=self.time_limit)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> "NotaArchive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Frames and selections --------------------------------------------------------------------

    def frames(self, *, night: str | None = None, kind: str | None = None, filter: str | None = None,
               where: str | None = None, **params: Any) -> Table:
        """The frames of a night, kind and filter (name or wheel id), one row each with every
        column of the ``frames`` view, as ``nota frames``; ``where`` adds an SQL condition
        (``header('FBFLTID') = 78``, ``object REGEXP 'flat'``) with its ``:name`` params."""
        columns, rows = archive_query.list_frames(self._db, night=night, kind=kind, filter=filter, columns=("*",))
        if where is not None:
            keep = {r[0] for r in archive_selections.select(self._db, where, params, "file_id")[1]}
            at = columns.index("file_id")
            rows = [r for r in rows if r[at] in keep]
        elif params:
            raise QueryError(f"parameter(s) {', '.join(sorted(params))} given without a where condition")
        return _table(columns, rows, {"where": where} if where else {})

    def select(self, name: str, **params: Any) -> Table:
        """The frames a named selection picks (``nota select NAME -p night=...``), e.g.
        ``select("sky_flats", night="2008-04-12", filter="R")``; its doc is in ``meta``."""
        chosen = self._selection(name)
        columns, rows = archive_selections.select(self._db, chosen.condition, params)
        return _table(columns, rows, {"selection": chosen.name, "doc": chosen.doc, "condition": chosen.condition})

    def selections(self) -> Table:
        """The named selections stored in the archive, with what each is for."""
        found = archive_selections.list_selections(self._db)
        return _table(["name", "source", "parameters", "condition", "doc"],
                      [(s.name, s.source, ", ".join(s.parameters), s.condition, s.doc) for s in found])

    def _selection(self, name: str) -> archive_selections.Selection:
        """A stored selection; else one the profiles ship (they are stored at the first
        grouping, which a read-only archive cannot do itself)."""
        try:
            return archive_selections.get_selection(self._db, name)
        except QueryError:
            from nota.instruments import available_profiles, load_profile

            for key in available_profiles():
                for shipped in archive_selections.shipped_selections(load_profile(key)):
                    if shipped.name == name:
                        return shipped
            raise

    def query(self, sql: str, **params: Any) -> Table:
        """One read-only SQL SELECT over the archive (``nota query``): ``header('KEY')`` and
        ``REGEXP`` work; writes, ATTACH and PRAGMA are refused (``QueryError``)."""
        columns, rows = archive_query.run_query(self._db, sql, params)
        return _table(columns, rows, {"sql": sql})

    # Products ---------------------------------------------------------------------------------

    def products(self, *, kind: str | None = None, night: str | None = None,
                 filter: str | None = None) -> Table:
        """Current products (``nota products --json``), optionally of one kind (``master_bias``,
        ``master_dark``, ``master_flat``, ``reduced``, ``stack``), night and filter."""
        found = [p for p in archive_products.list_products(self._db)
                 if (kind is None or p["kind"] == kind) and (night is None or p["night"] == night)
                 and (filter is None or p["filter"] == filter)]
        columns = ["id", "kind", "name", "night", "filter", "path", "content_hash", "size", "recipe_key",
                   "step", "code_version", "created_at", "file_id", "airmass", "input_files", "input_products"]
        rows = [tuple(Path(p["path"]).name if c == "name" else p[c] for c in columns) for p in found]
        return _table(columns, rows)

    def read(self, name: str | int) -> CCDData:
        """A product (id, file name, path or NOTAKEY) as ``CCDData.read`` reads its file: data,
        uncertainty (UNCERT), mask (MASK), header and WCS; or a raw frame (its file name or
        path) as the camera wrote it, in ADU. ``read("ALrd120103.fits")`` is the raw frame,
        ``read("fzt_ALrd120103.fits")`` its reduced product."""
        raw, found = self._product_or_raw(name)
        if raw:
            return self._read_raw(found["file_id"])
        from astropy.wcs import FITSFixedWarning

        with warnings.catch_warnings():  # ALFOSC's old WCS cards: astropy's notes, not errors
            warnings.simplefilter("ignore", FITSFixedWarning)
            return CCDData.read(found["path"], hdu_uncertainty="UNCERT", hdu_mask="MASK")

    def _product_or_raw(self, name: str | int) -> tuple[bool, dict[str, Any]]:
        """(False, product) named by its own id, name, path or key; else (True, raw frame)
        named by its file name or path."""
        text = str(name)
        if isinstance(name, int) or text.isdigit():
            return False, archive_products.find_product(self._db, text)
        try:
            product = archive_products.find_product(self._db, text)
        except NotaError as not_a_product:
            try:
                return True, archive_frames.find_frame(self._db, text)
            except NotaError:
                raise not_a_product from None
        if product["raw_name"] == text and Path(product["path"]).name != text:
            return True, archive_frames.find_frame(self._db, text)  # the raw frame's own name
        return False, product

    def _read_raw(self, file_id: int) -> CCDData:
        from nota.pipeline.product_files import raw_header
        from nota.pipeline.steps.common import read_raw

        pixels = read_raw(archive_frames.raw_frame(self._db, file_id))
        return CCDData(pixels, unit="adu", meta=raw_header(*archive_frames.header_cards(self._db, file_id)))

    def lineage(self, name: str | int) -> Table:
        """The tree a product was made from (``nota lineage``), one row per node, depth first:
        products (``id``) down to the raw frames (``file_id``), each raw frame ``included`` in
        its master or not and why."""
        rows: list[tuple] = []

        def walk(node: dict[str, Any], depth: int) -> None:
            if node.get("kind") == "raw":
                rows.append((depth, node["role"], "raw", node["filename"], None, node["file_id"],
                             node["content_hash"], node["included"], node["reason"], node["path"]))
                return
            rows.append((depth, node.get("role", ""), node["kind"], Path(node["path"]).name, node["id"], None,
                         node["content_hash"], True, "", node["path"]))
            for child in node["inputs"]:
                walk(child, depth + 1)

        walk(archive_products.lineage(self._db, str(name)), 0)
        return _table(["depth", "role", "kind", "name", "id", "file_id", "content_hash", "included", "reason",
                       "path"], rows)

    # Photometric calibration --------------------------------------------------------------------

    def calibration(self, night: str, filter: str) -> Calibration:
        """The current photometric solution of ``night`` in ``filter`` (``nota calibration``)."""
        found = [c for c in archive_calibrations.list_calibrations(self._db, night) if c["filter"] == filter]
        if not found:
            known = ", ".join(f"{c['night']} {c['filter']}" for c in archive_calibrations.list_calibrations(self._db))
            raise NotaError(f"no photometric calibration of {night} in {filter!r} (made: {known or 'none'};"
                            " `nota reduce` makes them from the night's standards)")
        row = found[0]
        cov = (archive_calibrations.solution_for(self._db, night, filter) or {}).get("cov_zp_k")
        fields = {k: row[k] for k in Calibration.__dataclass_fields__ if k in row and k != "stars_used"}
        return Calibration(**fields, cov_zp_k=cov or 0.0,
                           stars_used=tuple((s["star"], s["frame"]) for s in row["stars_used"]))

    # Writing ------------------------------------------------------------------------------------

    def ingest(self, *paths: str | Path, profile: str | Path | None = None,
               jobs: int | None = None) -> IngestReport:
        """Writes: index the FITS files under ``paths`` (``nota ingest``); returns its report.
        Creates the archive when there is none; files already indexed are skipped."""
        from nota.pipeline.ingest import ingest

        if not paths:
            raise NotaError("give the directories (or files) to ingest")
        with open_archive(self.path) as archive:
            return ingest(archive, paths, profile_file=profile, jobs=jobs)

    def reduce(self, *, dry_run: bool = False, jobs: int | None = None, scheduler: str | None = None,
               overscan: bool = False, keep_intermediate: bool = False, memory_bytes: int = 1024 * 2**20,
               cosmics: bool = True, stacks: bool = True, photometry: bool = True,
               products: str | Path | None = None, index_dir: str | Path | None = None) -> RunReport | Plan:
        """Writes: make what is missing or stale, exactly as ``nota reduce`` with the same
        options does (frames measured and groups rebuilt first when needed); returns the
        run's report (``built``, ``failed``, ``up_to_date``, ``calibrations``), or with
        ``dry_run`` the plan (``to_build``, ``impossible``, ``up_to_date``), writing nothing."""
        from nota.pipeline.plan import options_for, plan_reduction
        from nota.pipeline.reduction import reduce_archive

        if not self.path.exists():
            raise NotaError(f"{self.path}: no archive here (ingest a night first)")
        products = products or os.environ.get("NOTA_PRODUCTS")  # the command's defaults, its variables too
        index_dir = index_dir or os.environ.get("NOTA_INDEX_DIR")
        options = options_for(self.path, products=products, index_dir=index_dir, overscan=overscan,
                              keep_intermediate=keep_intermediate, memory_bytes=memory_bytes,
                              cosmics=cosmics, stacks=stacks, photometry=photometry)
        with open_archive(self.path) as archive:
            if dry_run:
                return plan_reduction(archive, options)
            done = reduce_archive(archive, options, jobs=jobs, scheduler=scheduler)
            for line in done.refreshed.messages:
                log.info("%s", line)
            return done.report


# Tables ---------------------------------------------------------------------------------------


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], meta: dict[str, Any] | None = None) -> Table:
    """Rows as an astropy Table: NULLs masked, mixed or list values kept as objects."""
    rows = list(rows)
    table = Table([_column(name, [r[i] for r in rows]) for i, name in enumerate(columns)])
    table.meta.update(meta or {})
    return table


def _sort(value: Any) -> str:
    if isinstance(value, (bool, int, float, np.number)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "object"


def _column(name: str, values: list[Any]) -> Column:
    present = [v for v in values if v is not None]
    sorts = {_sort(v) for v in present}
    if len(sorts) > 1 or sorts == {"object"}:  # lists, bytes, or text beside numbers: as they are
        array = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            array[i] = v
        return Column(array, name=name)
    if len(present) == len(values):
        return Column(values, name=name) if values else Column(np.array([], dtype=object), name=name)
    fill = "" if sorts == {"text"} else 0 if all(isinstance(v, (bool, int)) for v in present) and present else 0.0
    return MaskedColumn([fill if v is None else v for v in values], mask=[v is None for v in values], name=name)
