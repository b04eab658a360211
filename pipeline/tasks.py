"""What travels between the plan, the workers and the record: frozen dataclasses.

The plan makes a ``Task`` per product (or photometric solution); a worker, wherever it
runs, turns it into an ``Outcome`` holding the step's result; the coordinator records
that. Nothing here touches a database: a task carries what the worker needs to know
(where the raw pixels are, the raw header's cards) so workers never open the archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nota.archive.frames import RawFrame

__all__ = ["RawFrame", "Card", "Task", "Outcome", "ProductResult", "Picture"]

Card = tuple[str, Any, str]  # (keyword, value, comment) of a header card, as the archive holds it


@dataclass(frozen=True)
class Task:
    """One thing to make: a product (``output`` is its path) or a night's solution."""

    step: str  # the step's NAME: master_bias, master_flat, reduced, photometric_calibration, stack
    key: str  # recipe key
    output: str
    night: str | None
    filter: str | None
    params: Any  # the step's frozen Params
    inputs: tuple[RawFrame, ...] = ()
    header: tuple = ()  # (primary cards, image-HDU cards) the product's header starts from
    group_id: int | None = None
    file_id: int | None = None
    needs: Mapping[str, str] = field(default_factory=dict)  # role -> recipe key it waits for
    optional: frozenset[str] = frozenset()  # roles it goes on without when they cannot be made
    failure: str | None = None  # set when the plan already knows it cannot be made


Picture = tuple[str, str, bytes]  # (subject, title, png) of a plot


@dataclass(frozen=True)
class ProductResult:
    """What every product step returns: the file written, its pictures, its figures."""

    path: str
    content_hash: str
    size: int
    previews: Mapping[str, bytes] = field(default_factory=dict)  # size -> png
    plots: tuple[Picture, ...] = ()
    exptime: float | None = None
    airmass: float | None = None
    photzp: float | None = None
    cosmic_pixels: int | None = None
    wcs_status: str | None = None
    wcs_rms_arcsec: float | None = None
    wcs_matched: int | None = None


@dataclass(frozen=True)
class Outcome:
    """A task's end, as the worker reports it: the result, or the error (and a bug's traceback)."""

    key: str
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    host: str = ""
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
