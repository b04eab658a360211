"""Association: which master each frame to be calibrated gets, and why not the others.

Every frame of the profile's ``to_calibrate`` selection is matched, per purpose (master
bias, master flat), to a calibration group: same instrument, readout and filter (the
profile's ``[groups] match``); the same night first, else the nearest night with a usable
group within the profile's validity window. The rule that chose, or why none could be
chosen, is stored with it; ``nota explain`` reads it back with the groups not chosen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from nota.archive.database import Archive
from nota.archive.frames import find_frame
from nota.archive.groups import GroupSettings, group_settings, profiles, selected_frames
from nota.errors import NotaError

log = logging.getLogger(__name__)

__all__ = ["Associated", "associate", "choose_master", "explain"]

PURPOSES = ("master_bias", "master_flat")


@dataclass(frozen=True)
class Associated:
    """How many frames were associated, and each purpose that found no master, with why."""

    frames: int
    uncalibratable: tuple[str, ...]


def _days_between(a: str, b: str) -> int:
    return abs((date.fromisoformat(a) - date.fromisoformat(b)).days)


def associate(archive: Archive) -> Associated:
    """Replace every association from the current groups."""
    groups = archive.dicts(
        "SELECT group_id, group_key, purpose, night, instrument, filter, naxis1, naxis2,"
        " binning, usable, preferred FROM calibration_groups"
    )
    rows, uncalibratable, frames = [], [], 0
    for profile in profiles():
        cfg = group_settings(profile)
        for frame in selected_frames(archive, cfg.selections["to_calibrate"], profile):
            for purpose in PURPOSES:
                group, rule = choose_master(frame, purpose, groups, cfg)
                rows.append((frame["file_id"], purpose, group["group_id"] if group else None, rule))
                if group is None:
                    uncalibratable.append(f"{frame['filename']}: {purpose}: {rule}")
            frames += 1
    with archive.transaction() as conn:
        conn.execute("DELETE FROM associations")
        conn.executemany(
            "INSERT INTO associations (file_id, purpose, group_id, rule) VALUES (?, ?, ?, ?)", rows
        )
    return Associated(frames, tuple(uncalibratable))


def choose_master(frame: dict, purpose: str, groups: list[dict], cfg: GroupSettings) -> tuple[dict | None, str]:
    """The group a frame gets for ``purpose`` and the rule that chose it (or why none)."""
    match = cfg.match[purpose]
    window = int(cfg.validity_days[purpose])
    candidates = [g for g in groups if g["purpose"] == purpose]
    matching = [g for g in candidates if all(g[k] == frame[k] for k in match)]
    if not matching:
        if purpose == "master_flat" and not frame["filter"]:
            return None, "none: the frame has no filter in the beam"
        return None, (
            "none: no " + purpose.replace("_", " ") + " group with the same "
            + ", ".join(match) + f" ({', '.join(str(frame[k]) for k in match)})"
        )
    usable = [g for g in matching if g["preferred"] and frame["night"]]
    if not usable:
        return None, "none: the matching groups are unusable (" + ", ".join(g["group_key"] for g in matching) + ")"
    usable.sort(key=lambda g: (_days_between(g["night"], frame["night"]), g["night"]))
    best = usable[0]
    days = _days_between(best["night"], frame["night"])
    if days == 0:
        return best, "same night"
    if days <= window:
        return best, f"nearest night with a usable group: {best['night']}, {days} day(s) away (window {window})"
    return None, f"none within {window} day(s): the nearest usable group is {best['group_key']}, {days} days away"


# Explaining a frame's calibrations ----------------------------------------------------------


def _why_not(frame: dict, g: dict) -> str:
    for k in ("instrument", "binning", "naxis1", "naxis2") + (("filter",) if g["purpose"] == "master_flat" else ()):
        if g[k] != frame[k]:
            return f"{k} differs ({g[k]} vs the frame's {frame[k]})"
    if not g["usable"]:
        return g["note"]
    if not g["preferred"]:
        return g["note"]
    if g["night"] != frame["night"]:
        return f"another night ({g['night']})"
    return "not chosen"


def _facts(archive: Archive, found: dict[str, Any]) -> dict[str, Any]:
    """What ``explain`` reads of one frame: its row, flags, override, groups and associations."""
    file_id = found["file_id"]
    facts = archive.one("SELECT * FROM frames WHERE file_id = ?", (file_id,))
    if facts is None:
        raise NotaError(f"{found['filename']} was rejected at ingest: it is not a frame")
    return {
        "frame": facts,
        "flags": archive.run("SELECT flag, excludes, message FROM flags WHERE file_id = ? ORDER BY flag",
                             (file_id,))[1],
        "override": archive.run("SELECT action, reason FROM overrides WHERE file_id = ?", (file_id,))[1],
        "memberships": archive.run(
            "SELECT g.group_key, m.included, m.reason FROM group_members m"
            " JOIN calibration_groups g USING (group_id) WHERE m.file_id = ?", (file_id,))[1],
        "associations": archive.run(
            "SELECT a.purpose, g.group_key, a.rule FROM associations a"
            " LEFT JOIN calibration_groups g USING (group_id) WHERE a.file_id = ? ORDER BY a.purpose",
            (file_id,))[1],
        "groups": archive.dicts(
            "SELECT group_id, group_key, purpose, night, instrument, filter, naxis1, naxis2, binning,"
            " usable, preferred, note FROM calibration_groups ORDER BY purpose, night"),
    }


def explain(archive: Archive, frame: str) -> dict[str, Any]:
    """Which calibrations a frame will get and why, and why not the other candidates."""
    read = _facts(archive, find_frame(archive, frame))
    facts = read["frame"]
    calibrations = []
    for purpose, key, rule in read["associations"]:
        others = [{"group": g["group_key"], "why_not": _why_not(facts, g)} for g in read["groups"]
                  if g["purpose"] == purpose and g["group_key"] != key]
        calibrations.append({"purpose": purpose, "group": key, "rule": rule, "not_chosen": others})
    override = read["override"]
    return {
        "frame": facts["filename"],
        "path": facts["path"],
        "night": facts["night"],
        "kind": facts["kind"],
        "kind_rule": facts["kind_rule"],
        "filter": facts["filter"],
        "flags": [{"flag": f, "excludes": bool(e), "message": m} for f, e, m in read["flags"]],
        "override": {"action": override[0][0], "reason": override[0][1]} if override else None,
        "member_of": [{"group": k, "included": bool(i), "reason": r} for k, i, r in read["memberships"]],
        "calibrations": calibrations,
        "note": None if calibrations else
        f"a {facts['kind']} frame is not calibrated with masters (only the to_calibrate selection is)",
    }


def associations(archive: Archive) -> dict[int, dict[str, tuple[int | None, str]]]:
    """Each frame to be calibrated: purpose -> (the group it gets, the rule that chose it)."""
    out: dict[int, dict[str, tuple[int | None, str]]] = {}
    for file_id, purpose, group_id, rule in archive.run(
            "SELECT file_id, purpose, group_id, rule FROM associations ORDER BY file_id, purpose")[1]:
        out.setdefault(file_id, {})[purpose] = (group_id, rule)
    return out
