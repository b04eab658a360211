"""Calibration groups, the user's overrides, and which master each frame gets.

A master bias combines a night's biases (per readout binning); a master flat combines a
night's flats of one filter and one kind, and sky flats are preferred to dome flats, as
the lecture prefers them. Candidates come from the profile's selections; a member is left
out when a QC flag or the user says so, and the member row says which. Every frame to be
calibrated is then matched to its masters: same instrument, readout and filter; the same
night first, else the nearest night within the profile's validity window.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import sqlite_utils

from nota.archive import provenance
from nota.archive.database import ReadOnlyArchive, transaction
from nota.archive.selections import selected_file_ids, selection_condition, sync_shipped_selections
from nota.errors import NotaError
from nota.instruments import Profile, available_profiles, load_profile

log = logging.getLogger(__name__)

__all__ = [
    "GroupReport",
    "build_groups",
    "set_override",
    "clear_override",
    "pin_group",
    "resolve_frame",
    "groups_as_dicts",
    "explain",
]

DEFAULT_GROUPS = {
    "min_frames": {"master_bias": 5, "master_flat": 3},
    "flat_kinds": ["sky_flat", "dome_flat"],
    "selections": {
        "master_bias": "biases", "sky_flat": "sky_flats", "dome_flat": "dome_flats",
        "to_calibrate": "to_calibrate",
    },
    "match": {
        "master_bias": ["instrument", "naxis1", "naxis2", "binning"],
        "master_flat": ["instrument", "naxis1", "naxis2", "binning", "filter"],
    },
    "validity_days": {"master_bias": 7, "master_flat": 3},
}


@dataclass
class GroupReport:
    activity_id: int
    groups: int = 0
    unusable: list[str] = field(default_factory=list)
    associated: int = 0
    uncalibratable: list[str] = field(default_factory=list)


def _settings(profile: Profile) -> dict[str, Any]:
    merged = dict(DEFAULT_GROUPS)
    merged.update(profile.groups)
    return merged


def _frames(conn, file_ids: list[int]) -> list[dict[str, Any]]:
    if not file_ids:
        return []
    marks = ",".join("?" * len(file_ids))
    cursor = conn.execute(
        "SELECT file_id, filename, path, night, instrument, kind, filter, naxis1, naxis2,"
        f" binning, mjd, content_hash FROM frames WHERE file_id IN ({marks})",
        file_ids,
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def group_key(purpose: str, night: str, filter: str | None, flat_kind: str | None, binning: str) -> str:
    parts = [purpose, night] + ([filter or "open", flat_kind or ""] if purpose == "master_flat" else []) + [binning]
    return "/".join(p for p in parts if p)


def _member_decisions(conn) -> tuple[dict[int, list[str]], dict[int, tuple[str, str]], dict[str, set[int]]]:
    flags: dict[int, list[str]] = defaultdict(list)
    for file_id, name, message in conn.execute(
        "SELECT file_id, flag, message FROM flags WHERE excludes = 1 ORDER BY flag"
    ):
        flags[file_id].append(f"{name}: {message}")
    overrides = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT file_id, action, reason FROM overrides")}
    pins: dict[str, set[int]] = defaultdict(set)
    for key, file_id in conn.execute("SELECT group_key, file_id FROM group_pins"):
        pins[key].add(file_id)
    return flags, overrides, pins


def _decide(frame: dict, key: str, shape: tuple, flags, overrides, pins) -> tuple[bool, str]:
    """Included or not, and why: pins, then the user's word, then QC flags, then the shape."""
    fid = frame["file_id"]
    if key in pins:
        return (True, "pinned") if fid in pins[key] else (False, "not in the group's pinned list")
    if fid in overrides:
        action, reason = overrides[fid]
        return action == "include", f"{action}d by user: {reason}"
    if fid in flags:
        return False, "; ".join(flags[fid])
    if (frame["naxis1"], frame["naxis2"]) != shape:
        return False, f"{frame['naxis1']} x {frame['naxis2']} differs from the group's {shape[0]} x {shape[1]}"
    return True, "good"


def build_groups(db: sqlite_utils.Database) -> GroupReport:
    """Rebuild every calibration group and association from selections, flags and overrides."""
    sync_shipped_selections(db)
    conn = db.conn
    activity_id = provenance.start_activity(conn, "groups", {})
    report = GroupReport(activity_id)
    try:
        with transaction(db):
            keys = _build(conn, activity_id, report)
            marks = ",".join("?" * len(keys)) or "''"
            conn.execute(f"DELETE FROM calibration_groups WHERE group_key NOT IN ({marks})", list(keys))
            _associate(conn, report)
            _plot_flat_patterns(conn)
            provenance.finish_activity(
                conn, activity_id, "ok",
                f"{report.groups} groups ({len(report.unusable)} unusable), {report.associated} frames associated",
            )
    except BaseException:
        provenance.finish_activity(conn, activity_id, "failed", "interrupted or failed")
        raise
    return report


def _build(conn, activity_id: int, report: GroupReport) -> set[str]:
    flags, overrides, pins = _member_decisions(conn)
    now = provenance.utc_now()
    keys: set[str] = set()
    built: list[dict] = []
    for profile in map(load_profile, available_profiles()):
        cfg = _settings(profile)
        sources = [("master_bias", None, cfg["selections"]["master_bias"])] + [
            ("master_flat", kind, cfg["selections"][kind]) for kind in cfg["flat_kinds"]
        ]
        for purpose, flat_kind, selection in sources:
            frames = [
                f for f in _frames(conn, selected_file_ids(conn, selection_condition(conn, selection)))
                if f["instrument"] == profile.name
            ]
            buckets: dict[str, list[dict]] = defaultdict(list)
            for f in frames:
                if f["night"] is None:
                    continue
                key = group_key(purpose, f["night"], f["filter"], flat_kind, f["binning"])
                buckets[key].append(f)
            for key, members in sorted(buckets.items()):
                shape = Counter((m["naxis1"], m["naxis2"]) for m in members).most_common(1)[0][0]
                decisions = [(m, *_decide(m, key, shape, flags, overrides, pins)) for m in members]
                included = [m for m, ok, _ in decisions if ok]
                minimum = int(cfg["min_frames"][purpose])
                usable = len(included) >= minimum
                first = members[0]
                group = {
                    "group_key": key, "purpose": purpose, "night": first["night"],
                    "instrument": profile.name,
                    "filter": first["filter"] if purpose == "master_flat" else None,
                    "flat_kind": flat_kind, "naxis1": shape[0], "naxis2": shape[1],
                    "binning": first["binning"], "selection": selection,
                    "n_members": len(members), "n_included": len(included), "usable": int(usable),
                    "note": f"{len(included)} good frame(s)" if usable
                    else f"unusable: {len(included)} good frame(s), {minimum} needed",
                    "members_hash": hashlib.sha256(
                        "\n".join(sorted(m["content_hash"] or str(m["file_id"]) for m in included)).encode()
                    ).hexdigest()[:32],
                    "decisions": decisions, "kind_rank": cfg["flat_kinds"].index(flat_kind) if flat_kind else 0,
                }
                built.append(group)
    _choose_preferred(built)
    for g in built:
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
        keys.add(g["group_key"])
        report.groups += 1
        if not g["usable"]:
            report.unusable.append(f"{g['group_key']}: {g['note']}")
            log.info("group %s is %s", g["group_key"], g["note"])
    return keys


def _plot_flat_patterns(conn) -> None:
    """Each flat group's illumination patterns side by side: a rotated filter stands out."""
    import json

    import numpy as np

    from nota.reduce.plots import flat_patterns_png

    conn.execute("DELETE FROM plots WHERE subject = 'flat_patterns'")
    groups = conn.execute(
        "SELECT group_id, group_key, night FROM calibration_groups WHERE purpose = 'master_flat'"
    ).fetchall()
    for group_id, key, night in groups:
        members = conn.execute(
            "SELECT f.name, q.pattern_json, m.included FROM group_members m JOIN files f USING (file_id)"
            " JOIN qc q USING (file_id) WHERE m.group_id = ? AND q.pattern_json IS NOT NULL ORDER BY f.name",
            (group_id,),
        ).fetchall()
        patterns = [(name, np.array(json.loads(p)), bool(inc)) for name, p, inc in members]
        shapes = {p.shape for _, p, _ in patterns}
        if not patterns or len(shapes) != 1:
            continue
        included = [p for _, p, inc in patterns if inc]
        reference = np.median(included, axis=0) if included else None
        conn.execute(
            "INSERT INTO plots (subject, title, night, group_id, png, made_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("flat_patterns", f"Illumination patterns of {key}", night, group_id,
             flat_patterns_png(patterns, reference), provenance.utc_now()),
        )


def _choose_preferred(groups: list[dict]) -> None:
    """Bias groups are used when usable; of a night's flats per filter, the first usable kind."""
    flats: dict[tuple, list[dict]] = defaultdict(list)
    for g in groups:
        if g["purpose"] == "master_bias":
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


def _days_between(a: str, b: str) -> int:
    return abs((date.fromisoformat(a) - date.fromisoformat(b)).days)


def _associate(conn, report: GroupReport) -> None:
    conn.execute("DELETE FROM associations")
    groups = [
        dict(zip(("group_id", "group_key", "purpose", "night", "instrument", "filter", "naxis1",
                  "naxis2", "binning", "usable", "preferred"), r))
        for r in conn.execute(
            "SELECT group_id, group_key, purpose, night, instrument, filter, naxis1, naxis2,"
            " binning, usable, preferred FROM calibration_groups"
        )
    ]
    for profile in map(load_profile, available_profiles()):
        cfg = _settings(profile)
        targets = _frames(conn, selected_file_ids(conn, selection_condition(conn, cfg["selections"]["to_calibrate"])))
        for frame in targets:
            if frame["instrument"] != profile.name:
                continue
            for purpose in ("master_bias", "master_flat"):
                group, rule = choose_master(frame, purpose, groups, cfg)
                conn.execute(
                    "INSERT INTO associations (file_id, purpose, group_id, rule) VALUES (?, ?, ?, ?)",
                    (frame["file_id"], purpose, group["group_id"] if group else None, rule),
                )
                if group is None:
                    report.uncalibratable.append(f"{frame['filename']}: {purpose}: {rule}")
            report.associated += 1


def choose_master(frame: dict, purpose: str, groups: list[dict], cfg: dict) -> tuple[dict | None, str]:
    """The group a frame gets for ``purpose`` and the rule that chose it (or why none)."""
    match = cfg["match"][purpose]
    window = int(cfg["validity_days"][purpose])
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


# Overrides and pins ---------------------------------------------------------------------


def resolve_frame(conn, frame: str) -> dict[str, Any]:
    """A frame by file name, path or file_id; a clear error if none or several match."""
    rows = conn.execute(
        "SELECT file_id, name, path FROM files WHERE name = ? OR path = ? OR CAST(file_id AS TEXT) = ?",
        (frame, str(Path(frame).absolute()), frame),
    ).fetchall()
    if not rows:
        raise NotaError(f"no frame {frame!r} in the archive (give its file name, path or file_id)")
    if len(rows) > 1:
        raise NotaError(f"{frame!r} names {len(rows)} files; give the full path: " + ", ".join(r[2] for r in rows))
    return {"file_id": rows[0][0], "filename": rows[0][1], "path": rows[0][2]}


def set_override(db: sqlite_utils.Database, frame: str, action: str, reason: str) -> dict[str, Any]:
    """Record the user's include/exclude for a frame; it survives re-ingest and re-grouping."""
    if action not in ("include", "exclude"):
        raise NotaError(f"override action must be include or exclude, not {action!r}")
    found = resolve_frame(db.conn, frame)
    with transaction(db) as conn:
        conn.execute(
            "INSERT INTO overrides (file_id, action, reason, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (file_id) DO UPDATE SET action = excluded.action, reason = excluded.reason,"
            " created_at = excluded.created_at",
            (found["file_id"], action, reason, provenance.utc_now()),
        )
    return found


def clear_override(db: sqlite_utils.Database, frame: str) -> dict[str, Any]:
    found = resolve_frame(db.conn, frame)
    with transaction(db) as conn:
        conn.execute("DELETE FROM overrides WHERE file_id = ?", (found["file_id"],))
    return found


def pin_group(db: sqlite_utils.Database, key: str, frames: list[str]) -> list[dict[str, Any]]:
    """Pin a group (by its key) to exactly these frames; an empty list unpins it."""
    found = [resolve_frame(db.conn, f) for f in frames]
    with transaction(db) as conn:
        conn.execute("DELETE FROM group_pins WHERE group_key = ?", (key,))
        conn.executemany(
            "INSERT INTO group_pins (group_key, file_id, created_at) VALUES (?, ?, ?)",
            [(key, f["file_id"], provenance.utc_now()) for f in found],
        )
    return found


# Reading them back ----------------------------------------------------------------------


def groups_as_dicts(db_path: str | Path, night: str | None = None) -> list[dict[str, Any]]:
    """Every group with its members, for ``nota groups --json``."""
    with ReadOnlyArchive(db_path) as archive:
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


def explain(db_path: str | Path, frame: str) -> dict[str, Any]:
    """Which calibrations a frame will get and why, and why not the other candidates."""
    with ReadOnlyArchive(db_path) as archive:
        found = resolve_frame(archive.conn, frame)
        cols, rows = archive.run("SELECT * FROM frames WHERE file_id = ?", (found["file_id"],))
        if not rows:
            raise NotaError(f"{found['filename']} was rejected at ingest: it is not a frame")
        facts = dict(zip(cols, rows[0]))
        _, flag_rows = archive.run(
            "SELECT flag, excludes, message FROM flags WHERE file_id = ? ORDER BY flag", (found["file_id"],)
        )
        _, override = archive.run("SELECT action, reason FROM overrides WHERE file_id = ?", (found["file_id"],))
        _, memberships = archive.run(
            "SELECT g.group_key, m.included, m.reason FROM group_members m"
            " JOIN calibration_groups g USING (group_id) WHERE m.file_id = ?",
            (found["file_id"],),
        )
        _, assoc = archive.run(
            "SELECT a.purpose, g.group_key, a.rule FROM associations a"
            " LEFT JOIN calibration_groups g USING (group_id) WHERE a.file_id = ? ORDER BY a.purpose",
            (found["file_id"],),
        )
        groups = archive.dicts(
            "SELECT group_id, group_key, purpose, night, instrument, filter, naxis1, naxis2, binning,"
            " usable, preferred, note FROM calibration_groups ORDER BY purpose, night"
        )
    calibrations = []
    for purpose, key, rule in assoc:
        others = []
        for g in groups:
            if g["purpose"] != purpose or g["group_key"] == key:
                continue
            others.append({"group": g["group_key"], "why_not": _why_not(facts, g)})
        calibrations.append({"purpose": purpose, "group": key, "rule": rule, "not_chosen": others})
    return {
        "frame": facts["filename"],
        "path": facts["path"],
        "night": facts["night"],
        "kind": facts["kind"],
        "kind_rule": facts["kind_rule"],
        "filter": facts["filter"],
        "flags": [{"flag": f, "excludes": bool(e), "message": m} for f, e, m in flag_rows],
        "override": {"action": override[0][0], "reason": override[0][1]} if override else None,
        "member_of": [{"group": k, "included": bool(i), "reason": r} for k, i, r in memberships],
        "calibrations": calibrations,
        "note": None if calibrations else
        f"a {facts['kind']} frame is not calibrated with masters (only the to_calibrate selection is)",
    }


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
