"""Calibration groups and the user's overrides and pins, in the archive.

A master bias combines a night's biases (per readout binning); a master flat combines a
night's flats of one filter and one kind, and sky flats are preferred to dome flats, as
the lecture prefers them. Candidates come from the profile's selections; a member is left
out when a QC flag or the user says so, and the member row says which. Which master each
frame then gets is ``nota.archive.association``; ``nota groups`` (the pipeline's ``groups``)
runs both and draws the groups' plots.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

from nota.archive.database import Archive
from nota.archive.frames import find_frame, frame_facts
from nota.archive.provenance import utc_now
from nota.archive.selections import selected_file_ids, selection_condition
from nota.errors import NotaError
from nota.instruments import Profile, available_profiles, load_profile
from nota.settings import build

log = logging.getLogger(__name__)

__all__ = ["GroupSettings", "group_settings", "profiles", "selected_frames", "group_key", "GroupsBuilt",
           "rebuild_groups", "flat_pattern_members", "set_override", "clear_override", "pin_group",
           "groups_as_dicts"]


@dataclass(frozen=True)
class GroupSettings:
    """What is combined, what must match, how far in time a master reaches (``[groups]``)."""

    min_frames: Mapping[str, int] = field(default_factory=lambda: {"master_bias": 5, "master_dark": 3, "master_flat": 3})
    flat_kinds: tuple[str, ...] = ("sky_flat", "dome_flat")  # in order of preference
    selections: Mapping[str, str] = field(default_factory=lambda: {
        "master_bias": "biases", "master_dark": "darks", "sky_flat": "sky_flats", "dome_flat": "dome_flats",
        "to_calibrate": "to_calibrate",
    })
    match: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {
        "master_bias": ("instrument", "naxis1", "naxis2", "binning"),
        "master_dark": ("instrument", "naxis1", "naxis2", "binning"),
        "master_flat": ("instrument", "naxis1", "naxis2", "binning", "filter"),
    })
    validity_days: Mapping[str, int] = field(default_factory=lambda: {"master_bias": 7, "master_dark": 7,
                                                                       "master_flat": 3})
    dark_temperature_tolerance: float = 1.0  # C: a master dark serves frames this close to its temperature

    def __post_init__(self) -> None:
        object.__setattr__(self, "flat_kinds", tuple(self.flat_kinds))
        object.__setattr__(self, "match", {k: tuple(v) for k, v in dict(self.match).items()})
        for name in ("min_frames", "selections", "validity_days"):
            object.__setattr__(self, name, dict(getattr(self, name)))


_SETTINGS: dict[str, GroupSettings] = {}


def group_settings(profile: Profile) -> GroupSettings:
    """A profile's ``[groups]`` over nota's defaults (each key replaces a default whole), built once."""
    if profile.digest not in _SETTINGS:  # by its text: an edited profile is read again
        _SETTINGS[profile.digest] = build(GroupSettings, profile.groups, where=f"profile {profile.key}.toml [groups]")
    return _SETTINGS[profile.digest]


def profiles() -> list[Profile]:
    """The shipped profiles: groups are built (and frames associated) per instrument."""
    return [load_profile(key) for key in available_profiles()]


def selected_frames(archive: Archive, selection: str, profile: Profile) -> list[dict[str, Any]]:
    """The facts of the profile's frames a stored selection holds, in file_id order."""
    ids = selected_file_ids(archive, selection_condition(archive, selection))
    facts = frame_facts(archive, ids) if ids else {}
    return [facts[i] for i in sorted(facts) if facts[i]["instrument"] == profile.name]


def group_key(purpose: str, night: str, filter: str | None, flat_kind: str | None, binning: str,
              exptime: float | None = None, ccd_temp: float | None = None) -> str:
    """A group's stable name: master_flat/2008-04-12/R/sky_flat/4x4, master_dark/2026-11-30/300s/-10C/1x1."""
    parts = [purpose, night] + ([filter or "open", flat_kind or ""] if purpose == "master_flat" else [])
    if purpose == "master_dark":
        parts += [f"{exptime:g}s", "" if ccd_temp is None else f"{round(ccd_temp):+d}C"]
    return "/".join(p for p in parts + [binning] if p)


@dataclass(frozen=True)
class _Decisions:
    """What decides a member: excluding flags, the user's overrides, pinned groups."""

    flags: Mapping[int, list[str]]
    overrides: Mapping[int, tuple[str, str]]
    pins: Mapping[str, set[int]]


def _member_decisions(archive: Archive) -> _Decisions:
    conn = archive.conn
    flags: dict[int, list[str]] = defaultdict(list)
    for file_id, name, message in conn.execute(
        "SELECT file_id, flag, message FROM flags WHERE excludes = 1 ORDER BY flag"
    ):
        flags[file_id].append(f"{name}: {message}")
    overrides = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT file_id, action, reason FROM overrides")}
    pins: dict[str, set[int]] = defaultdict(set)
    for key, file_id in conn.execute("SELECT group_key, file_id FROM group_pins"):
        pins[key].add(file_id)
    return _Decisions(flags, overrides, pins)


def _decide(frame: dict, key: str, shape: tuple, known: _Decisions) -> tuple[bool, str]:
    """Included or not, and why: pins, then the user's word, then QC flags, then the shape."""
    fid = frame["file_id"]
    if key in known.pins:
        return (True, "pinned") if fid in known.pins[key] else (False, "not in the group's pinned list")
    if fid in known.overrides:
        action, reason = known.overrides[fid]
        return action == "include", f"{action}d by user: {reason}"
    if fid in known.flags:
        return False, "; ".join(known.flags[fid])
    if (frame["naxis1"], frame["naxis2"]) != shape:
        return False, f"{frame['naxis1']} x {frame['naxis2']} differs from the group's {shape[0]} x {shape[1]}"
    return True, "good"


@dataclass(frozen=True)
class GroupsBuilt:
    """How many groups were built, and the unusable ones with why."""

    groups: int
    unusable: tuple[str, ...]


def rebuild_groups(archive: Archive, activity_id: int) -> GroupsBuilt:
    """Rebuild every calibration group from selections, flags, overrides and pins."""
    known = _member_decisions(archive)
    built: list[dict] = []
    for profile in profiles():
        cfg = group_settings(profile)
        sources = [("master_bias", None, cfg.selections["master_bias"]),
                   ("master_dark", None, cfg.selections["master_dark"])] + [
            ("master_flat", kind, cfg.selections[kind]) for kind in cfg.flat_kinds
        ]
        for purpose, flat_kind, selection in sources:
            buckets: dict[str, list[dict]] = defaultdict(list)
            for f in selected_frames(archive, selection, profile):
                if f["night"] is not None:
                    buckets[group_key(purpose, f["night"], f["filter"], flat_kind, f["binning"],
                                      f["exptime"] or 0.0, f["ccd_temp"])].append(f)
            for key, members in sorted(buckets.items()):
                built.append(_group(key, members, purpose, flat_kind, selection, profile, cfg, known))
    _choose_preferred(built)
    now = utc_now()
    with archive.transaction() as conn:
        unusable = [_write_group(archive, g, activity_id, now) for g in built]
        keys = [g["group_key"] for g in built]
        marks = ",".join("?" * len(set(keys))) or "''"
        conn.execute(f"DELETE FROM calibration_groups WHERE group_key NOT IN ({marks})", list(set(keys)))
    return GroupsBuilt(len(built), tuple(u for u in unusable if u))


def _group(key: str, members: list[dict], purpose: str, flat_kind: str | None, selection: str,
           profile: Profile, cfg: GroupSettings, known: _Decisions) -> dict[str, Any]:
    """One group's row (with its members' decisions, and its kind's rank for preference)."""
    shape = Counter((m["naxis1"], m["naxis2"]) for m in members).most_common(1)[0][0]
    decisions = [(m, *_decide(m, key, shape, known)) for m in members]
    included = [m for m, ok, _ in decisions if ok]
    minimum = int(cfg.min_frames[purpose])
    usable = len(included) >= minimum
    first = members[0]
    return {
        "group_key": key, "purpose": purpose, "night": first["night"], "instrument": profile.name,
        "filter": first["filter"] if purpose == "master_flat" else None,
        "flat_kind": flat_kind, "naxis1": shape[0], "naxis2": shape[1],
        "binning": first["binning"], "selection": selection,
        "n_members": len(members), "n_included": len(included), "usable": int(usable),
        "note": f"{len(included)} good frame(s)" if usable
        else f"unusable: {len(included)} good frame(s), {minimum} needed",
        "members_hash": hashlib.sha256(
            "\n".join(sorted(m["content_hash"] or str(m["file_id"]) for m in included)).encode()
        ).hexdigest()[:32],
        "decisions": decisions, "kind_rank": cfg.flat_kinds.index(flat_kind) if flat_kind else 0,
        "exptime": float(first["exptime"] or 0.0) if purpose == "master_dark" else None,
        "ccd_temp": _median([m["ccd_temp"] for m in included or members]) if purpose == "master_dark" else None,
    }


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    middle = len(known) // 2
    return known[middle] if len(known) % 2 else (known[middle - 1] + known[middle]) / 2


def _write_group(archive: Archive, g: dict[str, Any], activity_id: int, now: str) -> str | None:
    """Upsert a group and replace its members; the unusable group's line, else None."""
    conn = archive.conn
    decisions = g.pop("decisions")
    g.pop("kind_rank")
    g.update(built_at=now, activity_id=activity_id)
    conn.execute(
        f"INSERT INTO calibration_groups ({', '.join(g)}) VALUES ({', '.join('?' * len(g))})"
        " ON CONFLICT (group_key) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in g if c != "group_key"),
        list(g.values()),
    )
    group_id = conn.execute(
        "SELECT group_id FROM calibration_groups WHERE group_key = ?", (g["group_key"],)
    ).fetchone()[0]
    conn.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
    conn.executemany(
        "INSERT INTO group_members (group_id, file_id, included, reason) VALUES (?, ?, ?, ?)",
        [(group_id, m["file_id"], int(ok), why) for m, ok, why in decisions],
    )
    if g["usable"]:
        return None
    log.info("group %s is %s", g["group_key"], g["note"])
    return f"{g['group_key']}: {g['note']}"


def _choose_preferred(groups: list[dict]) -> None:
    """Bias and dark groups are used when usable; of a night's flats per filter, the first usable kind."""
    flats: dict[tuple, list[dict]] = defaultdict(list)
    for g in groups:
        if g["purpose"] != "master_flat":
            g["preferred"] = g["usable"]
        else:
            g["preferred"] = 0
            flats[(g["night"], g["instrument"], g["filter"], g["binning"])].append(g)
    for candidates in flats.values():
        candidates.sort(key=lambda g: g["kind_rank"])
        chosen = next((g for g in candidates if g["usable"]), None)
        for g in candidates:
            if g is chosen:
                g["preferred"] = 1
                g["note"] += "; preferred" + (
                    f" (no usable {candidates[0]['flat_kind']} group)" if g is not candidates[0] else ""
                )
            elif chosen is not None and g["usable"]:
                g["note"] += f"; not used: {chosen['flat_kind']} flats are preferred"


def flat_pattern_members(archive: Archive) -> list[tuple[int, str, str, list[tuple[str, str, bool]]]]:
    """Each flat group (group_id, key, night) with its measured members' illumination
    patterns as (file name, pattern JSON, included), by name."""
    found = []
    for group_id, key, night in archive.conn.execute(
        "SELECT group_id, group_key, night FROM calibration_groups WHERE purpose = 'master_flat'"
    ).fetchall():
        members = archive.conn.execute(
            "SELECT f.name, q.pattern_json, m.included FROM group_members m JOIN files f USING (file_id)"
            " JOIN qc q USING (file_id) WHERE m.group_id = ? AND q.pattern_json IS NOT NULL ORDER BY f.name",
            (group_id,),
        ).fetchall()
        found.append((group_id, key, night, [(name, p, bool(inc)) for name, p, inc in members]))
    return found


# Overrides and pins ---------------------------------------------------------------------


def set_override(archive: Archive, frame: str, action: str, reason: str) -> dict[str, Any]:
    """Record the user's include/exclude for a frame; it survives re-ingest and re-grouping."""
    if action not in ("include", "exclude"):
        raise NotaError(f"override action must be include or exclude, not {action!r}")
    found = find_frame(archive, frame)
    with archive.transaction() as conn:
        conn.execute(
            "INSERT INTO overrides (file_id, action, reason, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (file_id) DO UPDATE SET action = excluded.action, reason = excluded.reason,"
            " created_at = excluded.created_at",
            (found["file_id"], action, reason, utc_now()),
        )
    return found


def clear_override(archive: Archive, frame: str) -> dict[str, Any]:
    """Forget the user's word on a frame."""
    found = find_frame(archive, frame)
    with archive.transaction() as conn:
        conn.execute("DELETE FROM overrides WHERE file_id = ?", (found["file_id"],))
    return found


def pin_group(archive: Archive, key: str, frames: list[str]) -> list[dict[str, Any]]:
    """Pin a group (by its key) to exactly these frames; an empty list unpins it."""
    found = [find_frame(archive, f) for f in frames]
    with archive.transaction() as conn:
        conn.execute("DELETE FROM group_pins WHERE group_key = ?", (key,))
        conn.executemany(
            "INSERT INTO group_pins (group_key, file_id, created_at) VALUES (?, ?, ?)",
            [(key, f["file_id"], utc_now()) for f in found],
        )
    return found


# Reading them back ----------------------------------------------------------------------


def groups_as_dicts(archive: Archive, night: str | None = None) -> list[dict[str, Any]]:
    """Every group with its members, for ``nota groups --json``."""
    groups = archive.dicts(
        "SELECT group_id AS id, group_key AS key, purpose, night, instrument, filter, flat_kind,"
        " naxis1, naxis2, binning, usable, preferred, n_included, n_members, note"
        " FROM calibration_groups WHERE (:night IS NULL OR night = :night)"
        " ORDER BY night, purpose, filter, flat_kind",
        {"night": night},
    )
    for g in groups:
        g["usable"], g["preferred"] = bool(g["usable"]), bool(g["preferred"])
        mcols, mrows = archive.run(
            "SELECT f.name AS filename, f.path, m.included, m.reason FROM group_members m"
            " JOIN files f USING (file_id) WHERE m.group_id = ? ORDER BY f.name",
            (g["id"],),
        )
        g["members"] = [dict(zip(mcols, r)) | {"included": bool(r[2])} for r in mrows]
    return groups


# What the reduction plan reads ------------------------------------------------------------


def usable_groups(archive: Archive, purpose: str) -> list[dict[str, Any]]:
    """The groups masters are made from: usable and preferred, by night."""
    return archive.dicts(
        "SELECT group_id, group_key, purpose, night, instrument, filter, flat_kind, binning, exptime, ccd_temp"
        " FROM calibration_groups"
        " WHERE usable = 1 AND preferred = 1 AND purpose = ? ORDER BY night, group_id", (purpose,))


def group_members(archive: Archive, group_id: int) -> list[dict[str, Any]]:
    """A group's candidates, included or not and why."""
    return archive.dicts("SELECT file_id, included, reason FROM group_members WHERE group_id = ? ORDER BY file_id",
                         (group_id,))



# Whether the groups are up to date -----------------------------------------------------------

_GROUPING_INPUTS = (
    "SELECT file_id, content_hash, instrument, kind, night, filter, binning, naxis1, naxis2, exptime, ccd_temp"
    " FROM frames ORDER BY file_id",
    "SELECT file_id, flag, excludes FROM flags ORDER BY file_id, flag",
    "SELECT file_id, action, reason FROM overrides ORDER BY file_id",
    "SELECT group_key, file_id FROM group_pins ORDER BY group_key, file_id",
    "SELECT name, condition FROM selections ORDER BY name",
)


def grouping_inputs(archive: Archive) -> str:
    """A digest of everything groups and associations are built from: the frames, their
    flags, the user's overrides and pins, the selections and the profiles' texts."""
    digest = hashlib.sha256()
    for sql in _GROUPING_INPUTS:
        for row in archive.run(sql)[1]:
            digest.update(repr(row).encode())
    for profile in profiles():
        digest.update(profile.digest.encode())
    return digest.hexdigest()[:24]


def last_grouping_inputs(archive: Archive) -> str | None:
    """What the last successful grouping was built from (its digest), if any."""
    row = archive.one("SELECT parameters_json FROM activities WHERE step = 'groups' AND status = 'ok'"
                      " ORDER BY activity_id DESC LIMIT 1")
    return json.loads(row["parameters_json"] or "{}").get("inputs") if row else None
