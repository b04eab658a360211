"""Reducing a night while it is observed: ``nota watch DIR...``, without a message broker.

The archive is the state. Files already in the directories and files written later (the
kernel tells: watchfiles' notifier, inotify on Linux) are taken once they are complete: their
size and modification time unchanged over a settle interval AND a whole FITS file (every
HDU's header and data present, as ``fits_complete`` checks), so a file still being written is
never half-read. Each cycle then does what ``nota ingest FILES && nota reduce`` does, with
the same library calls: ingest, measure and regroup when needed, plan, run. What a late
frame changes (a master with a new member and the frames reduced with it, a night's
photometric solution refitted on a new standard) is rebuilt by the plan's own staleness
rules, nothing here. Files that arrive while a cycle runs wait for the next one; a burst
makes one cycle.

A stop (SIGINT, SIGTERM: ``stop_on_signals``) is honoured between tasks: nothing more is
handed out, tasks running finish and are recorded whole, and what was not made is planned
again by the next start. Products are written to temporary names and renamed
(``product_files``); none is left when the watch ends.
"""

from __future__ import annotations

import gzip
import logging
import os
import signal
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from nota.archive.database import Archive
from nota.archive.files import known_files
from nota.errors import NotaError
from nota.fitsheader import BLOCK, CARD, padded
from nota.pipeline.ingest import ingest, is_fits_name, iter_fits
from nota.pipeline.plan import ReduceOptions
from nota.pipeline.product_files import clean_temporaries
from nota.pipeline.reduction import reduce_archive
from nota.pipeline.tasks import Task

log = logging.getLogger(__name__)

__all__ = ["BLOCK", "WatchOptions", "WatchEvent", "WatchReport", "fits_complete", "stop_on_signals", "watch_night"]

DEBOUNCE_MS = 1000  # longest a burst of changes is gathered before a cycle looks at them
STEP_MS = 100  # a pause this long with no new change ends the gathering


@dataclass(frozen=True)
class WatchOptions:
    """What ``nota watch`` is asked: where to look, how to reduce, how long a file must rest."""

    directories: tuple[str, ...]
    reduce: ReduceOptions
    settle: float = 2.0  # seconds a file's size and mtime must stay unchanged before it is read
    jobs: int | None = None
    scheduler: str | None = None


@dataclass(frozen=True)
class WatchEvent:
    """One line of what the watch does, as it happens.

    ``event``: watching, ingested, rejected, warning, incomplete, note, built, calibrated,
    failed, waiting, stopped; ``subject`` the file, product or night it is about.
    """

    event: str
    subject: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"event": self.event, "subject": self.subject, "detail": self.detail}


@dataclass
class WatchReport:
    """What one watch did, from start to stop."""

    cycles: int = 0
    ingested: int = 0
    built: int = 0
    failed: int = 0
    stopped: bool = False  # by a signal (or the stop event), not by an error


# Completeness ------------------------------------------------------------------------------


def fits_complete(path: str | Path) -> bool:
    """True when the file is a whole FITS file: its size a multiple of 2880 bytes and every
    HDU's header ended (END) and its data all there, as BITPIX, NAXISn, PCOUNT and GCOUNT
    say. A file still being written, cut short or not FITS at all is False; it never raises.

    A file with no data at all is not complete either: it is a MEF's primary header with its
    extensions still to come. A MEF cut exactly between two extensions cannot be told from
    a whole one; the settle interval covers that. Bytes after the last HDU that do not begin
    an extension (special records, padding) do not make a file incomplete. A gzipped file is read through (its CRC and length checked
    by ``gzip``) and the same is asked of what it holds.
    """
    path = Path(path)
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return _hdus_complete(stream, None)
        size = path.stat().st_size
        if size == 0 or size % BLOCK:
            return False
        with open(path, "rb") as stream:
            return _hdus_complete(stream, size)
    except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
        return False


def _hdus_complete(stream: IO[bytes], size: int | None) -> bool:
    """Walk the HDUs; ``size`` known: seek past each one's data, else read through it."""
    block = stream.read(BLOCK)
    if not block.startswith(b"SIMPLE  ="):
        return False
    data = 0
    while True:
        cards = _header(stream, block)
        if cards is None or not _skip(stream, padded(_data_size(cards)), size):
            return False
        data += _data_size(cards)
        block = stream.read(BLOCK)
        if not block.startswith(b"XTENSION="):  # the end, or special records after the last HDU
            return data > 0


def _header(stream: IO[bytes], block: bytes) -> dict[str, str] | None:
    """The cards that size an HDU's data, read from ``block`` on; None when the file ends
    before the header's END card."""
    cards: dict[str, str] = {}
    while len(block) == BLOCK:
        for start in range(0, BLOCK, CARD):
            card = block[start:start + CARD].decode("ascii", "replace")
            keyword = card[:8].rstrip()
            if keyword == "END":
                return cards
            if card[8:10] == "= " and keyword.startswith(("BITPIX", "NAXIS", "PCOUNT", "GCOUNT")):
                cards[keyword] = card[10:].split("/", 1)[0].strip()
        block = stream.read(BLOCK)
    return None


def _data_size(cards: dict[str, str]) -> int:
    """Bytes of data the header announces: |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn)."""
    try:
        naxis = int(cards.get("NAXIS", "0"))
        if naxis == 0:
            return 0
        pixels = 1
        for n in range(1, naxis + 1):
            pixels *= int(cards[f"NAXIS{n}"])
        return abs(int(cards["BITPIX"])) // 8 * int(cards.get("GCOUNT", "1")) * (int(cards.get("PCOUNT", "0")) + pixels)
    except (KeyError, ValueError):
        return 1 << 62  # a header that cannot size its data: never complete


def _skip(stream: IO[bytes], n: int, size: int | None) -> bool:
    """Past ``n`` bytes of data; False when the file ends first."""
    if size is not None:
        return stream.seek(n, os.SEEK_CUR) <= size
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            return False
        n -= len(chunk)
    return True


# Settling ----------------------------------------------------------------------------------


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class _Settling:
    """Files seen and not taken yet, each with its size and mtime when last seen to change."""

    settle: float
    products: Path  # nota's own products, should the root be inside a watched directory
    files: dict[Path, tuple[tuple[int, int] | None, float]] = field(default_factory=dict)

    def add(self, paths: Iterable[Path], now: float) -> None:
        for path in paths:  # seen again: its clock starts again
            if not path.is_relative_to(self.products):
                self.files[path] = (_signature(path), now)

    def take(self, now: float) -> tuple[list[Path], list[Path]]:
        """(complete, incomplete) among the files that rested long enough. Both leave the
        list: an incomplete file comes back with the next write to it."""
        complete, incomplete = [], []
        for path, (seen, since) in list(self.files.items()):
            if now - since < self.settle:
                continue
            current = _signature(path)
            if current is None:  # gone
                del self.files[path]
            elif current != seen:
                self.files[path] = (current, now)
            else:
                del self.files[path]
                (complete if fits_complete(path) else incomplete).append(path)
        return sorted(complete), sorted(incomplete)

    def timeout_ms(self, now: float) -> int:
        """How long the notifier may wait: until the next file has rested (0: no limit)."""
        if not self.files:
            return 0
        due = min(since for _, since in self.files.values()) + self.settle
        return max(1, int((due - now) * 1000) + 1)


# The watch ---------------------------------------------------------------------------------


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so the watch stops between tasks; a second
    signal interrupts at once (KeyboardInterrupt). Worker processes forked meanwhile
    inherit the handler, so a Ctrl-C to the terminal's process group does not kill a
    task half way: they finish it and the coordinator records it."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def watch_night(archive: Archive, options: WatchOptions, *, stop: threading.Event,
                on_event: Callable[[WatchEvent], None] = lambda event: None) -> WatchReport:
    """Watch the directories and reduce what can be reduced, until ``stop`` is set."""
    from watchfiles import Change
    from watchfiles._rust_notify import RustNotify

    roots = [Path(d).absolute() for d in options.directories]
    for root in roots:
        if not root.is_dir():
            raise NotaError(f"{root}: not a directory")
    report = WatchReport()
    settling = _Settling(options.settle, Path(options.reduce.products_root).absolute())
    # The notifier starts before the directories are listed: no file falls between the two.
    with RustNotify([str(r) for r in roots], False, False, 50, True, False) as notify:
        settling.add(iter_fits(roots), time.monotonic())
        on_event(WatchEvent("watching", ", ".join(map(str, roots)), f"{len(settling.files)} FITS file(s) there"))
        first = True
        while not stop.is_set():
            complete, incomplete = settling.take(time.monotonic())
            for path in incomplete:
                on_event(WatchEvent("incomplete", str(path), "not a whole FITS file yet: waiting for the rest"))
            if complete or (first and not settling.files):
                _cycle(archive, complete, options, stop, on_event, report, resume=first)
                first = False
                if not stop.is_set():
                    on_event(WatchEvent("waiting", ", ".join(map(str, roots)),
                                        f"{report.ingested} file(s) ingested, {report.built} product(s) made"))
                continue  # files that came during the cycle are already in the notifier's set
            changes = notify.watch(DEBOUNCE_MS, STEP_MS, settling.timeout_ms(time.monotonic()), stop)
            if changes in ("stop", "signal"):
                break
            if changes != "timeout":
                settling.add(_fits_paths(changes, Change.deleted), time.monotonic())
    clean_temporaries(Path(options.reduce.products_root))  # workers are done: nothing is being written
    report.stopped = stop.is_set()
    on_event(WatchEvent("stopped", ", ".join(map(str, roots)),
                        f"{report.cycles} cycle(s), {report.ingested} file(s) ingested, {report.built} product(s) made"))
    return report


def _fits_paths(changes: set[tuple[int, str]], deleted: int) -> set[Path]:
    """FITS files added or modified, outside hidden directories (as ingest walks them)."""
    out = set()
    for change, name in changes:
        path = Path(name)
        if change != deleted and is_fits_name(path.name) and not any(p.startswith(".") for p in path.parts):
            out.add(path)
    return out


def _new_or_changed(archive: Archive, paths: list[Path]) -> list[Path]:
    """The files ingest would read: unknown, or changed since (size or mtime), or not read
    well before. A restart passes over what the archive already holds."""
    known = known_files(archive, under=sorted({str(p.parent) for p in paths}))
    fresh = []
    for path in paths:
        previous, current = known.get(str(path)), _signature(path)
        if current is not None and (previous is None or previous.status != "ok"
                                    or (previous.size, previous.mtime_ns) != current):
            fresh.append(path)
    return fresh


def _cycle(archive: Archive, complete: list[Path], options: WatchOptions, stop: threading.Event,
           on_event: Callable[[WatchEvent], None], report: WatchReport, *, resume: bool) -> None:
    """Ingest the complete files, then what ``nota reduce`` does. The first cycle runs even
    with no new file: it finishes what a stopped watch or reduce left unmade."""
    fresh = _new_or_changed(archive, complete)
    if fresh:
        ingested = ingest(archive, fresh, jobs=options.jobs)
        rejected = {p.path for p in ingested.problems if p.severity == "error"}
        for problem in ingested.problems:
            on_event(WatchEvent("rejected" if problem.severity == "error" else "warning", problem.path, problem.problem))
        for path in fresh:
            if str(path) not in rejected:
                on_event(WatchEvent("ingested", str(path)))
                report.ingested += 1
    if not (fresh or resume) or stop.is_set():
        return
    report.cycles += 1
    told: set[str] = set()

    def landed(done: int, total: int, task: Task, error: str | None) -> None:
        if error:
            told.add(task.output)
            on_event(WatchEvent("failed", task.output, error))
        elif task.step == "photometric_calibration":
            on_event(WatchEvent("calibrated", f"{task.night} {task.filter}", f"{done}/{total}"))
        else:
            report.built += 1
            on_event(WatchEvent("built", task.output, f"{task.step} {done}/{total}"))

    done = reduce_archive(archive, options.reduce, jobs=options.jobs, scheduler=options.scheduler,
                          on_task=landed, stop=stop.is_set)
    for line in done.refreshed.messages:
        on_event(WatchEvent("note", line))
    if done.report is None:
        return
    run = done.report
    for output, error in run.failed:  # those that never reached a worker, too
        if output not in told:
            on_event(WatchEvent("failed", output, error))
    report.failed += len(run.failed)
    if run.retired:
        on_event(WatchEvent("note", f"{run.retired} product(s) no longer called for: not current any more"))
    if run.stopped:
        on_event(WatchEvent("note", "stopped between tasks: the next start makes the rest"))
