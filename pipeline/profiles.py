"""Which profile read each frame, and reading frames again when their profile changed.

The archive keeps every profile text that read a frame (``profiles``) and each frame's
profile and text hash (``observations.profile``, ``profile_hash``). A frame ingest did not
need to read again (its file is unchanged) is read again from its stored cards when the
profile that reads it now is another text: a user who fixes a kind rule re-ingests and
the frames follow, without a file being opened.
"""

from __future__ import annotations

from typing import Any

from nota.archive.database import Archive
from nota.archive.files import frames_read_by, merged_header, register_profiles as store_profiles, replace_observation
from nota.instruments import Profile, load_profile_file, load_profiles, profile_for_header
from nota.instruments.observation import observation_row

__all__ = ["read_through", "register_profiles", "renormalise"]


def read_through(header: dict[str, Any], profile: Profile | None) -> dict[str, Any]:
    """A frame's observations row, and which profile (and which text of it) made it."""
    row = observation_row(header, profile)
    row["profile"], row["profile_hash"] = (profile.key, profile.digest) if profile is not None else (None, None)
    return row


def _row(profile: Profile) -> dict[str, Any]:
    return {"digest": profile.digest, "key": profile.key, "name": profile.name, "source": str(profile.source),
            "text": profile.text}


def _profiles(forced: str | None) -> list[Profile]:
    """The profiles of the search order (a malformed one stops the run here), or the one named."""
    return [load_profile_file(forced)] if forced else list(load_profiles())


def register_profiles(archive: Archive, forced: str | None) -> None:
    """Store the texts of the profiles this ingest may read frames with."""
    store_profiles(archive, [_row(p) for p in _profiles(forced)])


def renormalise(archive: Archive, file_ids: list[int], forced: str | None) -> int:
    """Read again, from their cards, the frames whose profile is now another text (or, with
    ``forced``, another profile); returns how many."""
    profiles = _profiles(forced)
    by_key = {p.key: p for p in profiles}
    count = 0
    for file_id, (key, digest) in sorted(frames_read_by(archive, file_ids).items()):
        if forced:
            profile = profiles[0]
        elif key is None:  # no profile read it: one may now
            profile = profile_for_header(merged_header(archive, file_id))
        else:
            profile = by_key.get(key)
        if profile is None or profile.digest == digest:
            continue
        replace_observation(archive, file_id, read_through(merged_header(archive, file_id), profile))
        count += 1
    return count
