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

__all__ = ["Associated", "associate", "choose_master", "choose_dark", "takes_darks", "explain",
           "flat_group_bias", "flat_group_dark", "associations"]

PURPOSES = ("master_bias", "master_dark", "master_flat")


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
        " binning, usable, preferred, exptime, ccd_temp FROM calibration_groups"
    )
    rows, uncalibratable, frames = [], [], 0
    for profile in profiles():
        cfg = group_settings(profile)
        for frame in selected_frames(archive, cfg.selections["to_calibrate"], profile):
            for purpose in PURPOSES:
                if purpose == "master_dark" and not takes_darks(frame, groups, cfg):
                    continue  # no darks with this readout: the camera needs none
                group, rule = choose_master(frame, purpose, groups, cfg)
                rows.append((frame["file_id"], purpose, group["group_id"] if group else None, rule))
                if group is None:
                    uncalibratable.append(f"{frame['filename']}: {purpose}: {rule}")
            frames += 1
    biases = _groups_masters(groups, "master_bias", ("master_flat", "master_dark"))
    darks = _groups_masters(groups, "master_dark", ("master_flat",), _longest_exposures(archive))
    with archive.transaction() as conn:
        conn.execute("DELETE FROM associations")
        conn.executemany(
            "INSERT INTO associations (file_id, purpose, group_id, rule) VALUES (?, ?, ?, ?)", rows
        )
        conn.executemany("UPDATE calibration_groups SET master_bias_group_id = ?, master_bias_rule = ?"
                         " WHERE group_id = ?", biases)
        conn.executemany("UPDATE calibration_groups SET master_dark_group_id = ?, master_dark_rule = ?"
                         " WHERE group_id = ?", darks)
    return Associated(frames, tuple(uncalibratable))


def _longest_exposures(archive: Archive) -> dict[int, float]:
    """Each group's longest member exposure: a flat group's dark must reach it."""
    return dict(archive.run("SELECT m.group_id, max(o.exptime) FROM group_members m JOIN observations o USING (file_id)"
                            " WHERE m.included = 1 GROUP BY m.group_id")[1])


def _groups_masters(groups: list[dict], purpose: str, of: tuple[str, ...],
                    exposures: dict[int, float] | None = None) -> list[tuple[int | None, str, int]]:
    """The master of ``purpose`` each group of the kinds ``of`` is corrected with, chosen by
    the rules a frame's is (same readout; the same night, else the nearest within the
    validity window; for darks, the exposure and temperature): (master group, rule, group)."""
    settings = {p.name: group_settings(p) for p in profiles()}
    out = []
    for g in groups:
        cfg = settings.get(g["instrument"])
        if g["purpose"] not in of or cfg is None:
            continue
        as_frame = {**g, "exptime": (exposures or {}).get(g["group_id"]), "ccd_temp": g["ccd_temp"]}
        if purpose == "master_dark" and not takes_darks(as_frame, groups, cfg):
            continue
        chosen, rule = choose_master(as_frame, purpose, groups, cfg)
        out.append((chosen["group_id"] if chosen else None, rule, g["group_id"]))
    return out


def takes_darks(frame: dict, groups: list[dict], cfg: GroupSettings) -> bool:
    """True when darks were taken with this frame's readout (any night): then it needs one."""
    return any(g["purpose"] == "master_dark" and all(g[k] == frame[k] for k in cfg.match["master_dark"])
               for g in groups)


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
    if purpose == "master_dark":
        return choose_dark(frame, usable, cfg)
    usable.sort(key=lambda g: (_days_between(g["night"], frame["night"]), g["night"]))
    best = usable[0]
    days = _days_between(best["night"], frame["night"])
    if days == 0:
        return best, "same night"
    if days <= window:
        return best, f"nearest night with a usable group: {best['night']}, {days} day(s) away (window {window})"
    return None, f"none within {window} day(s): the nearest usable group is {best['group_key']}, {days} days away"


def choose_dark(frame: dict, candidates: list[dict], cfg: GroupSettings) -> tuple[dict | None, str]:
    """A frame's master dark, the way IRAF's ccdred chooses one, matched on temperature: its
    own exposure's master (same night, else the nearest within the window), else the nearest
    longer one, scaled by exposure time; never one warmer or colder than the tolerance."""
    window, tolerance = int(cfg.validity_days["master_dark"]), cfg.dark_temperature_tolerance
    exposure, temperature = float(frame["exptime"] or 0.0), frame.get("ccd_temp")
    days = {g["group_id"]: _days_between(g["night"], frame["night"]) for g in candidates}
    near = [g for g in candidates if days[g["group_id"]] <= window]
    if not near:
        best = min(candidates, key=lambda g: days[g["group_id"]])
        return None, f"none within {window} day(s): the nearest master dark is {best['group_key']}, {days[best['group_id']]} days away"
    fitting = [g for g in near if temperature is None or g["ccd_temp"] is None
               or abs(g["ccd_temp"] - temperature) <= tolerance]
    if not fitting:
        return None, (f"none at the frame's {temperature:.1f} C (tolerance {tolerance:g} C): "
                      + ", ".join(f"{g['group_key']} is at {g['ccd_temp']:.1f} C" for g in near))
    exact = [g for g in fitting if abs((g["exptime"] or 0.0) - exposure) < 1e-3]
    longer = sorted((g for g in fitting if (g["exptime"] or 0.0) > exposure), key=lambda g: g["exptime"])
    if not exact and not longer:
        have = ", ".join(sorted({f"{g['exptime']:g}" for g in fitting}))
        return None, f"none: no master dark of {exposure:g} s or longer to scale from (there are {have} s)"
    pool = exact or [g for g in longer if g["exptime"] == longer[0]["exptime"]]
    best = min(pool, key=lambda g: (days[g["group_id"]], g["night"]))
    when = "same night" if days[best["group_id"]] == 0 else (
        f"nearest night with one: {best['night']}, {days[best['group_id']]} day(s) away (window {window})")
    how = f"its exposure ({exposure:g} s)" if exact else (
        f"scaled by exposure from {best['exptime']:g} s (no {exposure:g} s master; the nearest longer)")
    warm = "" if best["ccd_temp"] is None else f", at {best['ccd_temp']:.1f} C"
    return best, f"{how}, {when}{warm}"


# Explaining a frame's calibrations ----------------------------------------------------------


def _why_not(frame: dict, g: dict) -> str:
    if g["purpose"] == "master_dark" and g.get("exptime") is not None and frame.get("exptime") is not None:
        if g["exptime"] < frame["exptime"]:
            return f"shorter ({g['exptime']:g} s) than the frame's {frame['exptime']:g} s: darks are only scaled down"
        if None not in (g.get("ccd_temp"), frame.get("ccd_temp")) and abs(g["ccd_temp"] - frame["ccd_temp"]) > 1.0:
            return f"temperature differs ({g['ccd_temp']:.1f} C vs the frame's {frame['ccd_temp']:.1f} C)"
        if g["exptime"] > frame["exptime"]:
            return f"longer ({g['exptime']:g} s): scaled down only when no master of the frame's exposure serves"
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
            "SELECT g.group_key, m.included, m.reason, b.group_key, g.master_bias_rule FROM group_members m"
            " JOIN calibration_groups g USING (group_id)"
            " LEFT JOIN calibration_groups b ON b.group_id = g.master_bias_group_id WHERE m.file_id = ?",
            (file_id,))[1],
        "associations": archive.run(
            "SELECT a.purpose, g.group_key, a.rule FROM associations a"
            " LEFT JOIN calibration_groups g USING (group_id) WHERE a.file_id = ? ORDER BY a.purpose",
            (file_id,))[1],
        "groups": archive.dicts(
            "SELECT group_id, group_key, purpose, night, instrument, filter, naxis1, naxis2, binning,"
            " usable, preferred, note, exptime, ccd_temp FROM calibration_groups ORDER BY purpose, night"),
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
        "member_of": [{"group": k, "included": bool(i), "reason": r, "master_bias": bias, "master_bias_rule": rule}
                      for k, i, r, bias, rule in read["memberships"]],
        "calibrations": calibrations,
        "note": None if calibrations else
        f"a {facts['kind']} frame is not calibrated with masters (only the to_calibrate selection is)",
    }


def flat_group_bias(archive: Archive, group_id: int) -> tuple[int | None, str]:
    """The master-bias group a flat or dark group is corrected with, and the rule that chose it."""
    row = archive.one("SELECT master_bias_group_id, master_bias_rule FROM calibration_groups WHERE group_id = ?",
                      (group_id,))
    return (row["master_bias_group_id"], row["master_bias_rule"] or "not associated") if row else (None, "no such group")


def flat_group_dark(archive: Archive, group_id: int) -> tuple[int | None, str | None]:
    """The master-dark group a flat group is corrected with (None, None: its camera takes no darks)."""
    row = archive.one("SELECT master_dark_group_id, master_dark_rule FROM calibration_groups WHERE group_id = ?",
                      (group_id,))
    return (row["master_dark_group_id"], row["master_dark_rule"]) if row else (None, None)


def associations(archive: Archive) -> dict[int, dict[str, tuple[int | None, str]]]:
    """Each frame to be calibrated: purpose -> (the group it gets, the rule that chose it)."""
    out: dict[int, dict[str, tuple[int | None, str]]] = {}
    for file_id, purpose, group_id, rule in archive.run(
            "SELECT file_id, purpose, group_id, rule FROM associations ORDER BY file_id, purpose")[1]:
        out.setdefault(file_id, {})[purpose] = (group_id, rule)
    return out
