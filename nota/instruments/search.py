"""Where profiles are found: the user's directories first, the shipped ones last.

A camera is the user's, so its profile must live outside the installed package: nota
looks in each directory of ``NOTA_PROFILES`` (``:``-separated), then in the user's config
directory (``~/.config/nota/instruments/`` on Linux), then beside this module. A name found
earlier shadows a later one. Files are read once per content: caches are keyed by the
file's path, modification time and size (by its bytes when it changed in the last two
seconds), and the search is redone on every call (a few ``stat`` calls), so a changed
``NOTA_PROFILES``, a new file or an edited one is seen at once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from nota.errors import ProfileError
from nota.instruments.profile import Profile
from nota.instruments.read import read_profile_text

__all__ = ["ENV", "SHIPPED", "available_profiles", "load_profile", "load_profile_file", "load_profiles",
           "profile_dirs", "profile_for_header", "profile_named", "profile_paths"]

ENV = "NOTA_PROFILES"
SHIPPED = Path(__file__).resolve().parent


# The environment the user's config directory is derived from (Linux, macOS, Windows).
_CONFIG_ENV = ("XDG_CONFIG_HOME", "HOME", "APPDATA", "LOCALAPPDATA", "USERPROFILE")


@functools.lru_cache(maxsize=16)
def _user_dir(environment: tuple[str | None, ...]) -> Path:
    if sys.platform.startswith("linux"):
        # platformdirs' XDG rule, without its import (5 ms of every ingest's start)
        xdg = (os.environ.get("XDG_CONFIG_HOME") or "").strip()
        return Path(xdg or os.path.expanduser("~/.config")) / "nota" / "instruments"
    import platformdirs

    return Path(platformdirs.user_config_dir("nota")) / "instruments"


def profile_dirs() -> tuple[Path, ...]:
    """The directories searched, in order: NOTA_PROFILES, the user's config, the shipped."""
    given = [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]
    return (*given, _user_dir(tuple(os.environ.get(v) for v in _CONFIG_ENV)), SHIPPED)


# A modification within this long of now may share its timestamp with the next one (file
# systems keep mtimes in coarse ticks), so such a file or directory is not known by its
# stamp alone: it is listed again, or known by its content (git's "racy" rule).
_RACY_NS = 2_000_000_000


def _racy(mtime_ns: int) -> bool:
    return time.time_ns() - mtime_ns < _RACY_NS


def _folder_stamp(folder: Path) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


@functools.lru_cache(maxsize=32)
def _listing(folder: Path, mtime_ns: int | None) -> tuple[tuple[str, Path], ...]:
    """(key, file) of a directory's profiles, read again whenever the directory changes."""
    if mtime_ns is None:
        return ()
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".toml") and e.is_file())
    except OSError:  # unreadable: nothing found there
        return ()
    return tuple((name.removesuffix(".toml"), folder / name) for name in names)


def profile_paths() -> dict[str, Path]:
    """Profile key -> its file, in search order; an earlier directory shadows a later one."""
    found: dict[str, Path] = {}
    for folder in profile_dirs():
        stamp = _folder_stamp(folder)
        listing = _listing.__wrapped__ if stamp is not None and _racy(stamp) else _listing
        for key, path in listing(folder, stamp):
            found.setdefault(key, path)
    return found


def available_profiles() -> tuple[str, ...]:
    """The keys of the profiles found, in search order (``alfosc``, ``generic``, yours)."""
    return tuple(profile_paths())


def _stamp(path: Path) -> tuple[str, int, int]:
    """(path, mtime, size): what a cached reading is valid for; a file changed just now is
    known by a hash of its bytes instead of its mtime (negative, so the two never meet)."""
    try:
        st = os.stat(path)
        if not _racy(st.st_mtime_ns):
            return str(path), st.st_mtime_ns, st.st_size
        content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc.strerror or exc}") from None
    return str(path), -int(content[:15], 16) - 1, st.st_size


@functools.lru_cache(maxsize=128)
def _read(path: str, mtime_ns: int, size: int, key: str | None) -> Profile:
    resolved = str(Path(path).resolve())
    try:
        text = Path(resolved).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{resolved}: cannot read the profile: {exc}") from None
    return read_profile_text(text, resolved, key)


def load_profile_file(path: str | Path, key: str | None = None) -> Profile:
    """One profile file, checked (``nota ingest --profile FILE``); its key is the file's stem."""
    return _read(*_stamp(Path(path).absolute()), key)


def load_profile(key: str = "alfosc") -> Profile:
    """A profile by key, through the search (a user's ``alfosc.toml`` shadows nota's)."""
    paths = profile_paths()
    if key not in paths:
        searched = ", ".join(str(d) for d in profile_dirs())
        raise ProfileError(f"no instrument profile {key!r}; known: {', '.join(paths) or 'none'} (searched {searched})")
    return load_profile_file(paths[key])


def _state() -> tuple[tuple[str, int, int], ...]:
    return tuple(_stamp(path) for path in profile_paths().values())


@functools.lru_cache(maxsize=8)
def _all(state: tuple[tuple[str, int, int], ...]) -> tuple[Profile, ...]:
    return tuple(_read(*stamp, None) for stamp in state)


def load_profiles() -> tuple[Profile, ...]:
    """Every profile of the search, in order; the first malformed one raises its ProfileError."""
    return _all(_state())


@functools.lru_cache(maxsize=64)
def _named(name: str, state: tuple[tuple[str, int, int], ...]) -> Profile:
    errors: list[ProfileError] = []
    for stamp in state:
        try:
            profile = _read(*stamp, None)
        except ProfileError as exc:
            errors.append(exc)
            continue
        if profile.name == name:
            return profile
    if errors:
        raise errors[0]
    known = ", ".join(_read(*s, None).name for s in state)
    raise ProfileError(f"no instrument profile for {name!r} (known: {known})")


def profile_named(name: str) -> Profile:
    """The profile of an instrument by its ``[instrument] name`` (``ALFOSC``, as the archive
    stores it): the one way from a frame's ``instrument`` to its profile."""
    return _named(name, _state())


def profile_if_any(name: str | None) -> Profile | None:
    """``profile_named``, or None for a camera nota has no profile for (or no name)."""
    try:
        return profile_named(name) if name else None
    except ProfileError:
        return None


def profile_for_header(header: Mapping[str, Any], profiles: Iterable[Profile] | None = None) -> Profile | None:
    """The profile a header belongs to: the first (of the search, or of ``profiles``) whose
    ``match`` it meets; else the first profile without ``match`` (a fallback: the shipped
    ``generic``, or a user's) whose ``fallback`` accepts it; else None, an unknown camera."""
    candidates = tuple(load_profiles() if profiles is None else profiles)
    for profile in candidates:
        if not profile.is_fallback and profile.matches(header):
            return profile
    for profile in candidates:
        if profile.is_fallback and profile.accepts(header):
            return profile
    return None
