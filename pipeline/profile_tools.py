"""What ``nota profile`` shows: the profiles found, one profile's text, and how a profile
would read a directory of frames, all without writing an archive.

A profile is the user's description of their camera, and a wrong one is found out only
when a night reduces badly. These functions let the user look first: which file nota
would use (and which it hides), and frame by frame the kind, rule, filter, binning, gain
and sections the profile gives, with the keywords it names that the headers lack.
Drafting a profile is ``nota.pipeline.profile_draft``'s work, the sections picture
``nota.pipeline.profile_sections``'.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nota.errors import FitsError, NotaError, ProfileError
from nota.fitsheader import Hdu, read_file_hdus
from nota.instruments import Profile, load_profile, load_profile_file, profile_dirs
from nota.instruments.observation import observation_row
from nota.instruments.profile import header_value
from nota.pipeline.ingest import iter_fits
from nota.pipeline.reader import merged_header

__all__ = ["FrameHeader", "ProfileEntry", "CheckReport", "read_headers", "resolve_profile",
           "list_profiles", "profile_facts", "show_profile", "named_keywords", "check_directory"]


@dataclass(frozen=True)
class FrameHeader:
    """One frame's merged header (image HDU over primary) and its cards' comments."""

    path: Path
    name: str  # the path relative to the directory it was found under
    header: dict[str, Any]
    comments: dict[str, str]
    data_hdu: int


@dataclass(frozen=True)
class ProfileEntry:
    """One profile file of the search order, read or not."""

    key: str
    name: str | None
    source: str
    matches: str
    fallback: bool
    shadowed_by: str | None
    error: str | None = None


@dataclass
class CheckReport:
    """How a profile reads every frame of a directory (``nota profile check``)."""

    profile: str
    source: str
    directory: str
    frames: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    unread: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unmatched(self) -> list[str]:
        """The frames no kind rule matched."""
        return [f["file"] for f in self.frames if f["kind"] == "unknown"]

    @property
    def kinds(self) -> dict[str, int]:
        return dict(Counter(f["kind"] for f in self.frames).most_common())

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "source": self.source, "directory": self.directory,
                "kinds": self.kinds, "frames": self.frames, "unmatched": self.unmatched,
                "missing_keywords": self.missing, "unread": self.unread, "unreadable": self.unreadable}


# Reading headers -----------------------------------------------------------------------------


def _comments(hdus: list[Hdu], data_hdu: int) -> dict[str, str]:
    """Keyword -> comment of its first card, the image HDU's over the primary's."""
    found: dict[str, str] = {}
    for hdu in (hdus[data_hdu], hdus[0]):
        for card in hdu.cards:
            found.setdefault(card.keyword, card.comment)
    return found


def _root_of(path: Path, roots: list[Path]) -> Path:
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return root
    return path.parent


def read_headers(paths: Iterable[str | Path]) -> tuple[list[FrameHeader], list[dict[str, str]]]:
    """Every FITS frame named or found under ``paths``: (frames, unreadable files with why).

    Files without an image HDU and nota's own products are not frames and are reported."""
    roots = [Path(p).absolute() for p in paths]
    frames, unreadable = [], []
    for path in iter_fits(roots):
        name = str(path.relative_to(_root_of(path, roots)))
        try:
            hdus = read_file_hdus(str(path))
        except (FitsError, OSError) as exc:
            unreadable.append({"file": name, "problem": str(exc)})
            continue
        data_hdu = next((h.index for h in hdus if h.is_image), None)
        if data_hdu is None:
            unreadable.append({"file": name, "problem": "no image HDU: not a frame"})
            continue
        header = merged_header(hdus, data_hdu)
        if "NOTAKEY" in header:
            unreadable.append({"file": name, "problem": "a nota product, not a raw frame"})
            continue
        frames.append(FrameHeader(path, name, header, _comments(hdus, data_hdu), data_hdu))
    return frames, unreadable


# Profiles: finding, listing, showing --------------------------------------------------------


def resolve_profile(name: str) -> Profile:
    """A profile by key (through the search) or by file path (a ``.toml`` or a file that exists)."""
    path = Path(name).expanduser()
    if name.endswith(".toml") or path.is_file() or "/" in name:
        if not path.is_file():
            raise ProfileError(f"{path}: no such profile file")
        return load_profile_file(path)
    return load_profile(name)


def _matches_text(profile: Profile) -> str:
    table = profile.fallback if profile.is_fallback else profile.match
    words = ", ".join(f"{k} ~ {v}" for k, v in table.items())
    if profile.is_fallback:
        return f"fallback: {words}" if words else "fallback: any frame"
    return words


def _entry(path: Path, seen: dict[str, str]) -> ProfileEntry:
    key = path.stem
    shadowed_by = seen.get(key)
    seen.setdefault(key, str(path))
    try:
        profile = load_profile_file(path)
    except ProfileError as exc:
        return ProfileEntry(key, None, str(path), "", False, shadowed_by, str(exc).splitlines()[0])
    return ProfileEntry(key, profile.name, profile.source, _matches_text(profile), profile.is_fallback,
                        shadowed_by)


def list_profiles() -> list[ProfileEntry]:
    """Every profile file of the search order, shadowed ones included (a user's
    ``alfosc.toml`` hides nota's): a malformed file is listed with its first problem."""
    seen: dict[str, str] = {}
    entries, folders = [], set()
    for folder in profile_dirs():
        if folder.resolve() in folders:  # NOTA_PROFILES naming a directory twice, or nota's own
            continue
        folders.add(folder.resolve())
        if folder.is_dir():
            entries += [_entry(p, seen) for p in sorted(folder.glob("*.toml")) if p.is_file()]
    return entries


def _filter_facts(profile: Profile) -> dict[str, Any]:
    return {"keyword": list(profile.filter_keywords), "wheels": list(profile.filter_wheels),
            "aliases": dict(profile.filter_aliases),
            "passbands": {n: f.passband or [f.centre_nm, f.fwhm_nm] for n, f in profile.named_filters.items()},
            "table": len(profile.filters)}


def profile_facts(profile: Profile) -> dict[str, Any]:
    """A profile's main facts as plain data (``nota profile show --json``)."""
    return {
        "key": profile.key, "name": profile.name, "telescope": profile.telescope, "source": profile.source,
        "digest": profile.digest, "match": dict(profile.match), "fallback": dict(profile.fallback),
        "site": dict(profile.site), "detector": dict(profile.detector),
        "keywords": {k: list(v) for k, v in profile.keywords.items()},
        "required_keywords": list(profile.required_keywords), "filters": _filter_facts(profile),
        "kinds": [{"kind": r.kind, "rule": r.rule} for r in profile.kinds],
        "standards": dict(profile.standards),
    }


def show_profile(name: str) -> tuple[Profile, str]:
    """(the profile, its file's text) by key or path."""
    profile = resolve_profile(name)
    return profile, profile.text or Path(profile.source).read_text()


# Checking a directory against a profile -----------------------------------------------------


def named_keywords(profile: Profile) -> dict[str, list[str]]:
    """Every header keyword the profile names -> where it names it (``keywords.exptime``,
    ``filters.keyword``, ``kinds[5].header``)."""
    named: dict[str, list[str]] = {}

    def add(keyword: str, where: str) -> None:
        named.setdefault(keyword, [])
        if where not in named[keyword]:
            named[keyword].append(where)

    for role, keywords in profile.keywords.items():
        for keyword in keywords:
            add(keyword, f"keywords.{role}")
    for keyword in profile.required_keywords:
        add(keyword, "keywords.required")
    for keyword in profile.filter_keywords:
        add(keyword, "filters.keyword")
    for keyword in profile.filter_wheels:
        add(keyword, "filters.wheels")
    for number, rule in enumerate(profile.kinds, start=1):
        for keyword, _ in rule.header:
            add(keyword, f"kinds[{number}].header")
    return named


def _present(header: dict[str, Any], keyword: str) -> bool:
    value = header_value(header, keyword)
    return value is not None and value != ""


def _missing(frames: list[FrameHeader], profile: Profile) -> list[dict[str, Any]]:
    """Each named keyword that some frames lack, with how many lack it."""
    rows = []
    for keyword, where in named_keywords(profile).items():
        lacking = sum(not _present(f.header, keyword) for f in frames)
        if lacking:
            rows.append({"keyword": keyword, "named_in": where, "frames_lacking": lacking, "frames": len(frames)})
    return sorted(rows, key=lambda r: (-r["frames_lacking"], r["keyword"]))


def _unread(frames: list[FrameHeader], profile: Profile) -> list[dict[str, Any]]:
    """Each ``[keywords]`` fact for which some frames carry none of its keywords at all."""
    rows = []
    for role, keywords in profile.keywords.items():
        lacking = sum(not any(_present(f.header, k) for k in keywords) for f in frames)
        if lacking:
            rows.append({"fact": role, "keywords": list(keywords), "frames_lacking": lacking})
    return rows


def _frame_row(frame: FrameHeader, profile: Profile) -> dict[str, Any]:
    row = observation_row(frame.header, profile)
    xbin, ybin = (int(b) for b in row["binning"].split("x"))
    return {"file": frame.name, "kind": row["kind"], "rule": row["kind_rule"], "filter": row["filter"],
            "binning": row["binning"], "exptime": row["exptime"], "gain": row["gain"],
            "read_noise": row["read_noise"], "ccd_temp": row["ccd_temp"], "object": row["object"],
            "imagetyp": row["imagetyp"], "naxis1": row["naxis1"], "naxis2": row["naxis2"],
            "trimsec": _section_or_problem(profile.trimsec_for, xbin, ybin, row["naxis1"], row["naxis2"]),
            "biassec": _section_or_problem(profile.biassec_for, xbin, ybin)}


def _section_or_problem(function, *args: Any) -> str | None:
    try:
        return function(*args)
    except NotaError as exc:  # a section the binning cannot map
        return f"error: {exc}"


def check_directory(profile_name: str, directory: str | Path) -> CheckReport:
    """How ``profile_name`` (a key or a file) would read every frame under ``directory``;
    nothing is written. A malformed profile raises its ProfileError."""
    profile = resolve_profile(profile_name)
    if not Path(directory).exists():
        raise NotaError(f"{directory}: no such file or directory")
    frames, unreadable = read_headers([directory])
    report = CheckReport(profile.key, profile.source, str(directory), unreadable=unreadable)
    report.frames = [_frame_row(f, profile) for f in frames]
    report.missing = _missing(frames, profile)
    report.unread = _unread(frames, profile)
    return report
