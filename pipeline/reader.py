"""Reading one file for ingest, in a worker process: its hash, every HDU's cards, its frame.

The readers never touch the archive: they send what they read to the one process that
writes it (``nota.pipeline.ingest``), each distinct card once and then only its number.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from functools import partial
from itertools import compress
from typing import Any, Iterator

from nota.archive.files import PID_BITS, IndexedFile
from nota.errors import FitsError
from nota.fitsheader import Card, Hdu, Truncated, read_file_hdus
from nota.hashing import content_hash

__all__ = ["ReadTask", "read_all", "merged_header"]

PARALLEL_FROM = 64  # files to read before worker processes pay for their start-up
CHUNK = 32  # files a reader takes at a time: each hand-over costs about 0.2 ms of CPU (8: 15 % slower)


def _layout(hdus: list[Hdu], data_hdu: int | None, path: str) -> str:
    if data_hdu is None:
        layout = "no-image"
    elif hdus[data_hdu].get("ZIMAGE") is True:
        layout = "tile-compressed"
    elif data_hdu == 0 and len(hdus) == 1:
        layout = "simple"
    else:
        layout = "mef"
    return layout + ("+gzip" if path.endswith(".gz") else "")


def merged_header(hdus: list[Hdu], data_hdu: int | None) -> dict[str, Any]:
    """Keyword -> value as a frame sees it: the image HDU's cards over the primary's."""
    if not hdus:
        return {}
    if data_hdu in (None, 0):
        return hdus[0].first_values
    return {**hdus[0].first_values, **hdus[data_hdu].first_values}


_is_none = partial(operator.is_, None)
_CARD_NUMBERS_MAX = 500_000  # distinct cards a reader remembers before it starts afresh


class _CardNumbers:
    """Numbers for the distinct cards one reader process has sent in one ingest.

    Most cards repeat exactly from file to file (a frame has about a dozen of its own), so a
    reader sends each distinct card once, then only its number. The writer keeps the cards
    in a temporary table and SQLite expands the numbers into ``headers`` rows in C, with no
    Python per row. In that table a card's id is its number shifted left past the reader's
    process id (``PID_BITS``), so readers never collide.
    """

    _current: "_CardNumbers | None" = None

    def __init__(self, session: str) -> None:
        self.session = session
        self.pid = os.getpid()
        self.numbers: dict[Card, str] = {}
        self.issued = 0

    @classmethod
    def for_session(cls, session: str) -> "_CardNumbers":
        """This process's numbering for one ingest (a forked reader inherits none)."""
        current = cls._current
        if current is None or current.session != session or current.pid != os.getpid():
            current = cls._current = cls(session)
        return current

    def number(self, cards: list[Card], new: list[tuple]) -> str:
        """The cards' numbers as a JSON array (no spaces: fewer bytes to send and for SQLite
        to read); cards not sent before are appended to ``new``."""
        if len(self.numbers) > _CARD_NUMBERS_MAX:
            self.numbers.clear()  # numbers already issued stay valid: none is ever reused
        listed = list(map(self.numbers.get, cards))
        if None in listed:  # a dozen new cards in a frame: found and numbered without a loop over all
            for card in dict.fromkeys(compress(cards, map(_is_none, listed))):
                self._issue(card, new)
            listed = list(map(self.numbers.__getitem__, cards))
        return f"[{','.join(listed)}]"  # each number kept as its text: json.dumps took longer

    def _issue(self, card: Card, new: list[tuple]) -> None:
        self.issued += 1
        self.numbers[card] = str(self.issued)
        new.append((self.issued << PID_BITS | self.pid, *_sql_card(card)))


@dataclass(frozen=True)
class ReadTask:
    """A file for a reader: where it is, its stat, whether to hash it, the ingest's session."""

    path: str
    size: int
    mtime_ns: int
    hash_it: bool
    session: str
    profile_file: str | None = None  # `nota ingest --profile FILE`: this profile reads every frame


_SESSION_PROFILES: dict[str, tuple] = {}


def _profiles_of(session: str) -> tuple:
    """The instrument profiles of the search, read once per ingest in each reader: one
    ingest reads all its frames with one set of profiles (even if a file is edited
    meanwhile), and does not look at the profile folders again for every file."""
    if session not in _SESSION_PROFILES:
        from nota.instruments import load_profiles

        _SESSION_PROFILES.clear()
        _SESSION_PROFILES[session] = load_profiles()
    return _SESSION_PROFILES[session]


def _observation(hdus: list[Hdu], data_hdu: int | None, warnings: list[str],
                 profile_file: str | None = None, session: str = "") -> dict[str, Any] | None:
    """The frame's normalised row, or None for a file that is not a raw frame (warned)."""
    from nota.instruments import load_profile_file, observation, profile_for_header  # in the readers only
    from nota.pipeline.profiles import read_through
    if data_hdu is None:
        warnings.append("no image HDU: indexed, but not a frame")
        return None
    header = merged_header(hdus, data_hdu)
    if "NOTAKEY" in header:
        # A product nota made (it carries the raw header): never a raw frame.
        warnings.append("a nota product, not a raw frame: indexed, but not a frame")
        return None
    profile = (load_profile_file(profile_file) if profile_file
               else profile_for_header(header, _profiles_of(session)))
    if profile is None:
        instrument = header.get("INSTRUME")
        warnings.append(f"no instrument profile for INSTRUME={instrument!r}: kind set to unknown")
    else:
        missing = observation.missing_keywords(header, profile)
        if missing:
            warnings.append(f"missing keyword(s) {', '.join(missing)}")
    return read_through(header, profile)


def _read(task: ReadTask) -> IndexedFile:
    """Hash and parse one file; never raises for bad content, reports it instead."""
    path = task.path
    digest = content_hash(path) if task.hash_it else None
    error = None
    try:
        hdus = read_file_hdus(path)
    except Truncated as exc:
        hdus, error = exc.hdus, str(exc)
    except FitsError as exc:
        hdus, error = [], str(exc)
    except OSError as exc:
        hdus, error = [], f"cannot read: {exc.strerror or exc}"
    warnings = [w for h in hdus for w in h.warnings]
    data_hdu = next((h.index for h in hdus if h.is_image), None)
    observation = _observation(hdus, data_hdu, warnings, task.profile_file, task.session) if error is None else None
    hdu_rows = [
        (h.index, h.name, h.xtension, _int_or_none(h.get("BITPIX")), _int_or_none(h.get("NAXIS1")),
         _int_or_none(h.get("NAXIS2")), len(h.cards), h.header_offset, h.data_offset, h.data_size)
        for h in hdus
    ]
    numbers = _CardNumbers.for_session(task.session)
    new_cards: list[tuple] = []
    card_lists = [
        (h.index, numbers.number(h.cards, new_cards), len(h.cards)) for h in hdus if h.cards
    ]
    layout = _layout(hdus, data_hdu, path) if hdus else None
    return IndexedFile(
        path, task.size, task.mtime_ns, digest, layout, len(hdus), data_hdu, hdu_rows, card_lists,
        new_cards, numbers.pid, error, warnings, observation,
    )


def read_all(tasks: list[ReadTask], jobs: int | None) -> Iterator[IndexedFile]:
    """Parse files in worker processes when there are enough to pay for them, in order."""
    from nota.parallel import map_in_processes
    return map_in_processes(_read, tasks, jobs=jobs, parallel_from=PARALLEL_FROM, chunksize=CHUNK)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sql_card(card: Card) -> Card:
    """SQLite has no complex numbers: store those as text."""
    return card if type(card.value) is not complex else card._replace(value=str(card.value))
