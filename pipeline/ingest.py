"""Ingest: index every header card of every FITS file under some directories.

``nota ingest N1/`` is the archive's first and most used step. It walks the directories,
hashes each file's bytes, reads every HDU's header without decoding pixels, and normalises
the frame for selection; ``nota.archive.files`` writes what was read. Re-running is cheap:
a file whose size and modification time are unchanged is skipped; a changed file is
re-indexed and the change recorded; a renamed file keeps its identity (and so its
overrides) through its content hash. Bad files are rejected one by one, with a reason,
and the batch goes on.

Readers (``nota.pipeline.reader``) run in worker processes and never touch the archive; only
this process writes it.
"""

from __future__ import annotations

import gc
import logging
import os
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from nota.archive import provenance
from nota.archive.database import Archive, checkpoints_beside
from nota.archive.files import IndexedContents, IndexedFile, KnownFile, Seen, Written, card_table, known_files
from nota.archive.files import mark_missing, write_batch
from nota.errors import NotaError
from nota.pipeline.reader import ReadTask, read_all

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fz")
BATCH = 200  # files per transaction: a crash loses at most one batch, never half a file
FIRST_BATCH = 25  # batches grow from this to BATCH, so writing starts while readers warm up

__all__ = ["FITS_SUFFIXES", "Problem", "IngestReport", "iter_fits", "fits_paths", "ingest"]


@dataclass(frozen=True)
class Problem:
    """Something wrong with one file, in one line a user can act on."""

    path: str
    severity: str  # error (file rejected) | warning (file indexed)
    problem: str

    def __str__(self) -> str:
        word = "rejected" if self.severity == "error" else "warning"
        return f"{word} {self.path}: {self.problem}"


@dataclass
class IngestReport:
    """What one ingest run saw and did."""

    activity_id: int
    roots: list[str]
    outcomes: Counter = field(default_factory=Counter)  # new, unchanged, changed, renamed, rejected, missing
    problems: list[Problem] = field(default_factory=list)

    @property
    def files_seen(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k != "missing")

    @property
    def rejected(self) -> int:
        return self.outcomes["rejected"]

    def add(self, written: Written) -> None:
        """Count what a batch did."""
        self.outcomes.update(written.outcomes)
        self.problems.extend(Problem(*p) for p in written.problems)


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def iter_fits(paths: Iterable[str | Path]) -> Iterator[Path]:
    """FITS files named or found (recursively) under ``paths``, sorted, absolute."""
    return map(Path, fits_paths(paths))


def _path_parts(path: str) -> list[str]:
    return path.split(os.sep)


def fits_paths(paths: Iterable[str | Path]) -> Iterator[str]:
    """``iter_fits`` as text: a directory of a thousand frames is listed and sorted (as
    ``Path`` sorts, by parts) without making a ``Path`` of each, which costs more."""
    for root in paths:
        root = Path(root).absolute()
        if root.is_file():
            yield str(root)
            continue
        if not root.is_dir():
            raise NotaError(f"{root}: no such file or directory")
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(os.path.join(dirpath, n) for n in filenames if is_fits_name(n))
        yield from sorted(found, key=_path_parts)


# The run --------------------------------------------------------------------------------


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Ingest makes hundreds of thousands of short-lived objects and no reference cycles;
    the cyclic collector, set off by the allocations, would walk every object the process
    holds over and over (a fifth of the indexing time in a process that has done other
    work). Reference counting still frees everything as it goes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ingest(
    archive: Archive,
    paths: Iterable[str | Path],
    *,
    hash_content: bool = True,
    profile_file: str | Path | None = None,
    jobs: int | None = None,
    on_file: Callable[[int, int, str], None] | None = None,
) -> IngestReport:
    """Index every FITS file under ``paths`` into the archive; returns what happened.

    ``hash_content=False`` indexes headers only: quicker on slow disks, but renamed files
    are then not recognised and provenance has no content hashes. ``jobs`` worker
    processes read the files (default: the cores); only this process writes the database.
    ``profile_file`` names the profile that reads every frame (else each header's own);
    frames already indexed whose profile's text changed are read again from their cards.
    """
    forced = str(Path(profile_file).absolute()) if profile_file else None
    if forced:
        from nota.instruments import load_profile_file

        load_profile_file(forced)  # a malformed profile stops the run before any file is read
    with _no_cycle_collection():
        return _ingest(archive, paths, hash_content=hash_content, jobs=jobs, on_file=on_file, forced=forced)


_Plan = list[tuple[str, "os.stat_result | None", "KnownFile | None"]]


def _ingest(archive: Archive, paths: Iterable[str | Path], *, hash_content: bool, jobs: int | None,
            on_file: Callable[[int, int, str], None] | None, forced: str | None) -> IngestReport:
    roots = [str(Path(p).absolute()) for p in paths]
    files = list(fits_paths(roots))
    activity_id = provenance.start_activity(archive, "ingest", {"paths": roots, "hash_content": hash_content,
                                                                "profile": forced})
    if files or forced:  # the instrument profiles are imported only when there are frames
        from nota.pipeline.profiles import register_profiles
        register_profiles(archive, forced)
    report = IngestReport(activity_id, roots)
    known = known_files(archive, under=roots)
    gone_by_hash = _gone(known, set(files))
    plan = _plan(files, known, report)
    session = uuid.uuid4().hex  # names this run's card numbering in every reader
    tasks = [ReadTask(path, st.st_size, st.st_mtime_ns, hash_content, session, forced)
             for path, st, _ in plan if st]
    parsed = read_all(tasks, jobs)
    try:
        with card_table(archive), checkpoints_beside(archive) as after_commit:
            _write_all(archive, activity_id, plan, parsed, gone_by_hash, IndexedContents(archive), report,
                       on_file, after_commit)
            unchanged = [known.file_id for _, st, known in plan if st is None and known is not None]
            if unchanged:
                from nota.pipeline.profiles import renormalise
                report.outcomes.update(renormalised=renormalise(archive, unchanged, forced))
                report.outcomes += Counter()  # a count of 0 is no outcome
            with archive.transaction():
                missing = [file_id for entries in gone_by_hash.values() for file_id, _ in entries]
                if missing:
                    mark_missing(archive, missing)
                    report.outcomes["missing"] += len(missing)
                status = "partial" if report.rejected else "ok"
                provenance.finish_activity(archive, activity_id, status, _summary_line(report))
    except BaseException:
        provenance.finish_activity(archive, activity_id, "failed", "interrupted")
        raise
    finally:
        parsed.close()
    return report


def _gone(known: dict[str, KnownFile], seen_paths: set[str]) -> dict[str, list[tuple[int, str]]]:
    """Files the archive knew (under the roots being ingested) that are no longer where
    they were, by content: candidates for a rename, else missing."""
    gone_by_hash: dict[str, list[tuple[int, str]]] = {}
    for path, previous in known.items():
        if path not in seen_paths and not os.path.exists(path):
            gone_by_hash.setdefault(previous.content_hash, []).append((previous.file_id, path))
    return gone_by_hash


def _plan(files: list[str], known: dict[str, KnownFile], report: IngestReport) -> _Plan:
    """Decide from a stat what needs reading (a stat result) and what not (None)."""
    plan: _Plan = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            report.problems.append(Problem(path, "error", f"cannot stat: {exc.strerror}"))
            report.outcomes["rejected"] += 1
            continue
        previous = known.get(path)
        unchanged = (
            previous is not None
            and previous.size == st.st_size
            and previous.mtime_ns == st.st_mtime_ns
            and previous.status == "ok"
        )
        plan.append((path, None if unchanged else st, previous))
    return plan


def _write_all(archive: Archive, activity_id: int, plan: _Plan, parsed: Iterator[IndexedFile],
               gone_by_hash: dict[str, list[tuple[int, str]]], present_by_hash: IndexedContents,
               report: IngestReport, on_file: Callable[[int, int, str], None] | None,
               after_commit: Callable[[], None] = lambda: None) -> None:
    """Hand the files to the archive in growing batches, as the readers deliver them."""
    batch: list[Seen] = []
    batch_size = FIRST_BATCH
    for n, (path, st, previous) in enumerate(plan, 1):
        batch.append(Seen(path, next(parsed) if st else None, previous))
        if len(batch) >= batch_size:
            report.add(write_batch(archive, activity_id, batch, gone_by_hash, present_by_hash))
            after_commit()
            batch, batch_size = [], min(2 * batch_size, BATCH)
        if on_file:
            on_file(n, len(plan), path)
    report.add(write_batch(archive, activity_id, batch, gone_by_hash, present_by_hash))


def _summary_line(report: IngestReport) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "no files"
