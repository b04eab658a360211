"""The archive in Datasette: words for every table and column, facets,
labels, and stored queries for what the lecture does by hand.

``datasette_metadata(name)`` returns Datasette metadata for a database called ``name``
(Datasette names a database after its file). Everything here is read-only: the stored
queries are SELECTs and none of them writes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["datasette_metadata", "STORED_QUERIES"]

_COMMON_FRAME_COLUMNS = {
    "file_id": "The file's id in the archive (in Datasette, its thumbnail: click for the file).",
    "filename": "File name as written at the telescope (ALrd12NNNN.fits).",
    "path": "Where the raw file is on disk.",
    "night": "The night, named by the local date on which it began (frames after midnight belong to the evening before).",
    "instrument": "Instrument profile that read the header (ALFOSC), empty for an unknown camera.",
    "kind": "What the frame is: bias, dome_flat, sky_flat, standard (a spectrophotometric standard star), science, focus, or unknown. Decided by the instrument profile's rules.",
    "kind_rule": "The profile rule that decided the kind, in words.",
    "filter": "Filter in the beam, resolved from the wheel ids (R = Bessell R #76, NII_658 = [NII] #78, 661_5 = #49); empty when all wheels are open.",
    "filter_ids": "NOT filter numbers in the beam (ALFLTID/FAFLTID/FBFLTID), e.g. 78.",
    "exptime": "Exposure time, seconds.",
    "date_obs": "Start of the exposure (UTC).",
    "mjd": "Modified Julian date of the start of the exposure.",
    "airmass": "Airmass at the start of the exposure (sec z), from the header.",
    "naxis1": "Image columns.",
    "naxis2": "Image rows.",
    "binning": "On-chip binning, columns x rows.",
    "object": "The observers' OBJECT, typos and all.",
    "imagetyp": "IMAGETYP as written (ALFOSC sets it only for biases).",
    "ra": "Telescope pointing, right ascension, degrees.",
    "dec": "Telescope pointing, declination, degrees.",
    "content_hash": "XXH3-128 of the file's bytes: the same hash means the same content.",
    "ccd_temp": "Detector temperature at the start of the exposure (CCD-TEMP), when the camera writes it.",
}

_TABLES: dict[str, dict[str, Any]] = {
    "frames": {
        "description": "Every good raw frame, normalised: what you select on. One row per file that ingest read.",
        "columns": _COMMON_FRAME_COLUMNS,
        # No "units" here: Datasette formats each value with pint, a third of the page's
        # time at a year's scale (bench/scale.py); the descriptions say the units instead.
        "facets": ["night", "kind", "filter", "object"],
        "sort": "date_obs",
        # 50 frames a page, not Datasette's 100: the page's time is mostly its cells drawn
        # (a third of a second under a few clients at a year's scale); ?_size=max for more.
        "size": 50,
    },
    "files": {
        "description": "Every file ingest has seen, good or bad, with its status. Rejected files say why in error.",
        "label_column": "name",
        "columns": {
            "name": "File name.", "size": "Bytes on disk.", "status": "ok, rejected (unreadable: see error) or missing (gone from disk).",
            "layout": "simple FITS, mef (multi-extension) or tile-compressed; +gzip when gzipped.",
            "data_hdu": "The HDU that holds the image.", "content_hash": "XXH3-128 of the file's bytes.",
            "error": "Why the file was rejected.",
        },
        "units": {"size": "byte"},
        "facets": ["status", "layout", "directory"],
    },
    "headers": {
        "description": "Every header card of every HDU, in order: COMMENT, HISTORY, blank and repeated keywords included.",
        "columns": {"hdu": "0 is the primary HDU.", "position": "1 is the first card of the HDU.",
                    "keyword": "Keyword ('' for blank cards).", "value": "Typed value (logicals as 1/0).",
                    "raw": "The value exactly as written in the card."},
        "facets": ["keyword"],
    },
    "observations": {"description": "The normalised facts behind the frames view.", "columns": _COMMON_FRAME_COLUMNS},
    "hdus": {"description": "Header-data units of each file."},
    "qc": {
        "description": "Quality figures measured once per frame on its useful section (raw counts, before any correction).",
        "columns": {
            "mean": "Mean counts (ADU).", "median": "Median counts (ADU, from a 1-in-16 sample).",
            "std": "Robust standard deviation: 1.4826 x the median absolute deviation.",
            "min": "Lowest pixel.", "max": "Highest pixel (65535 is saturation).",
            "saturated_fraction": "Fraction of the pixels at saturation.",
            "bias_level": "Median of the overscan strip (BIASSEC).", "signal": "Median above the overscan level.",
            "pattern_json": "Flats: an 8 x 8 grid of block medians over their median (the illumination pattern).",
            "bright_sources": "Sky flats: stars found (the median combine removes them).",
        },
        "units": {"mean": "count", "median": "count", "std": "count", "min": "count", "max": "count",
                  "bias_level": "count", "signal": "count"},
    },
    "flags": {
        "description": "Why a frame may be unfit, each with its figure and the instrument profile's threshold. excludes = 1 keeps the frame out of calibration groups.",
        "columns": {
            "flag": "odd_shape (not the night's readout), too_faint / too_bright (flat counts), blocked_beam (part of the field far darker than in the sky flats: a rotated filter), pattern_mismatch, star (noted, not excluded), bias_level, bias_noise, saturated, saturated_pixels.",
            "figure": "The measured value.", "threshold": "The limit it was held to.", "excludes": "1: out of every group.",
        },
        "facets": ["flag", "excludes"],
    },
    "overrides": {"description": "Frames you included or excluded by hand (nota include / nota exclude); they outlive re-ingest and re-grouping."},
    "selections": {"description": "Named SQL conditions over frames: shipped by the instrument profile, or yours.", "label_column": "name"},
    "calibration_groups": {
        "description": "Frames combined into one master: a master bias per night and binning, a master flat per night, filter and flat kind. preferred = 1 marks the group frames get (sky flats over dome flats).",
        "label_column": "group_key",
        "columns": {"usable": "1 when it has enough good frames.", "preferred": "1 for the group its night's frames are calibrated with.",
                    "note": "Why (not) usable or preferred."},
        "facets": ["night", "purpose", "filter", "usable"],
    },
    "group_members": {"description": "Each candidate frame of each group: included or not, and why (a flag, or your override).",
                      "facets": ["included"]},
    "associations": {"description": "Which master each standard and science frame gets, and the rule that chose it.",
                     "facets": ["purpose", "rule"]},
    "products": {
        "description": "Masters and reduced frames nota made, each linked to its inputs (see product_inputs, the lineage view and the lineage page).",
        "label_column": "path",
        "columns": {"recipe_key": "The product's id: a hash of step, parameters, code version and inputs (NOTAKEY in its header). Click for its lineage.",
                    "current": "0 once a rebuild replaced it.",
                    "activity_id": "The run that made it.",
                    "cosmic_pixels": "Reduced frame: pixels cleaned of cosmic rays (CRMASK).",
                    "wcs_status": "Reduced frame: solved, or why not.",
                    "wcs_rms_arcsec": "Reduced frame: rms offset of the stars matched to the reference catalogue after the astrometric fit.",
                    "wcs_matched": "Reduced frame: stars matched to the reference catalogue."},
        "facets": ["night", "kind", "filter"],
    },
    "product_inputs": {"description": "What each product was made from (what its activity used): raw frames (members left out stay listed with why) and masters."},
    "lineage": {"description": "Every ancestor of every product, at any depth (a recursive view): filter on product_id, or on file_id to find every product made from a raw frame."},
    "activities": {"description": "Every run of every step (ingest, qc, groups, master_bias, master_flat, reduced): parameters, software versions, host, times, status.",
                   "facets": ["step", "status"]},
    "profiles": {"description": "Every instrument profile text that read a frame: its file, its instrument, its text as it was (observations.profile_hash names it).",
                 "label_column": "key"},
    "used": {"description": "Provenance: what each activity used, in which role: raw files (with the content they had) and products. A product's inputs are what its activity used."},
    "problems": {"description": "Every problem ingest met, one line each: error = file rejected, warning = file indexed.",
                 "facets": ["severity"]},
    "previews": {"description": "Preview pictures of frames and products (zscale, as DS9)."},
    "calibrations": {
        "description": "Each night's photometric solution per filter from its standard stars: m_catalogue - m_instrumental = zp - k * airmass + colour_term * colour, AB magnitudes, m_instrumental = -2.5 log10(ADU/s) on the reduced frames, colour the star's catalogue colour in colour_index.",
        "columns": {"zp": "Zero point (for a star of colour 0 in colour_index).", "k": "Extinction coefficient.",
                    "colour_term": "Magnitudes per magnitude of colour_index; empty when not fitted (method says why).",
                    "colour_index": "The catalogue colour the colour term multiplies, e.g. B-V (from the instrument profile).",
                    "rms": "Scatter of the standards used.",
                    "method": "Whether k was fitted or fixed from the La Palma curve, and whether the colour term was fitted, given or left out, and why.",
                    "current": "0 once a newer calibration replaced it."},
        "facets": ["night", "filter"],
    },
    "sources": {
        "description": "Sources measured on reduced frames by nota photometry: pixel and sky positions, aperture fluxes, calibrated AB magnitudes, and for narrow bands the flux in erg/s/cm2.",
        "columns": {"mag": "Calibrated magnitude (AB): mag_instrumental + zp - k * airmass.",
                    "mag_instrumental": "-2.5 log10(ADU/s).", "line_flux": "Narrow bands: flux in the passband, erg/s/cm2."},
        "units": {"ra": "degree", "dec": "degree"},  # Datasette's units (pint) know no magnitudes
    },
    "standard_measurements": {"description": "Each standard star measured for a calibration: instrumental and catalogue (AB, synthetic from CALSPEC) magnitudes, used or why not."},
    "plots": {"description": "Bias histograms per group, flat patterns side by side, masters, the night's statistics against time.",
              "facets": ["subject", "night"], "label_column": "title"},
}

STORED_QUERIES: dict[str, dict[str, str]] = {
    "long_exposures": {
        "title": "Exposures longer than a limit",
        "description": "The lecture's first selection: EXPTIME > 600 s.",
        "sql": "SELECT file_id, filename, object, filter, exptime, airmass, night FROM frames"
               " WHERE exptime > CAST(coalesce(nullif(:seconds, ''), '600') AS REAL) ORDER BY date_obs",
    },
    "frames_by_wheel_id": {
        "title": "Frames by filter-wheel id",
        "description": "Frames with a NOT filter number in any wheel (ALFLTID, FAFLTID, FBFLTID): the lecture's FBFLTID == 78.",
        "sql": "SELECT file_id, filename, object, filter, exptime FROM frames WHERE file_id IN ("
               "SELECT file_id FROM headers WHERE keyword IN ('ALFLTID', 'FAFLTID', 'FBFLTID')"
               " AND value = CAST(coalesce(nullif(:wheel_id, ''), '78') AS INTEGER)) ORDER BY date_obs",
    },
    "object_matches": {
        "title": "Frames whose OBJECT matches a pattern",
        "description": "A regular expression on OBJECT, case-insensitive: the lecture's object ~ 'flat'.",
        "sql": "SELECT file_id, filename, object, kind, filter, exptime FROM frames"
               " WHERE object REGEXP coalesce(nullif(:pattern, ''), 'flat') ORDER BY date_obs",
    },
    "odd_shapes": {
        "title": "Frames whose size differs from their night's majority",
        "description": "The 800 x 800 focus window the lecture deletes by hand.",
        "sql": "WITH shapes AS (SELECT night, naxis1, naxis2, binning, count(*) AS n FROM frames"
               " GROUP BY night, naxis1, naxis2, binning), majority AS (SELECT night, naxis1, naxis2, binning"
               " FROM shapes s WHERE n = (SELECT max(n) FROM shapes t WHERE t.night IS s.night))"
               " SELECT f.file_id, f.filename, f.object, f.naxis1, f.naxis2, f.binning, m.naxis1 AS night_naxis1,"
               " m.naxis2 AS night_naxis2 FROM frames f JOIN majority m ON m.night IS f.night"
               " WHERE (f.naxis1, f.naxis2, f.binning) IS NOT (m.naxis1, m.naxis2, m.binning)",
    },
    "night_log": {
        "title": "The night's log",
        "description": "The logbook table the lecture types by hand: file, object, filter, exposure, mean counts and notes from the flags.",
        "sql": "SELECT f.file_id, f.filename, f.object, f.filter, f.exptime, round(q.mean) AS mean_counts,"
               " (SELECT group_concat(g.flag || ': ' || g.message, '; ') FROM flags g WHERE g.file_id = f.file_id)"
               " AS notes FROM frames f LEFT JOIN qc q USING (file_id)"
               " WHERE coalesce(:night, '') = '' OR f.night = :night ORDER BY f.date_obs",
    },
    "group_members_and_reasons": {
        "title": "Calibration groups, their members, and why",
        "description": "Every group with its members: included or not, and the flag or override that decided.",
        "sql": "SELECT g.group_key, g.usable, g.preferred, f.name AS filename, m.included, m.reason"
               " FROM calibration_groups g JOIN group_members m USING (group_id) JOIN files f USING (file_id)"
               " WHERE coalesce(:group, '') = '' OR g.group_key LIKE '%' || :group || '%' ORDER BY g.group_key, f.name",
    },
    "explain_frame": {
        "title": "Which calibrations a frame gets, and why",
        "description": "nota explain: the masters chosen for a frame and the rule that chose each; its flags.",
        "sql": "SELECT f.filename, a.purpose, g.group_key AS chosen_group, a.rule,"
               " (SELECT group_concat(x.flag, ', ') FROM flags x WHERE x.file_id = f.file_id) AS flags"
               " FROM frames f LEFT JOIN associations a USING (file_id)"
               " LEFT JOIN calibration_groups g ON g.group_id = a.group_id"
               " WHERE f.filename = coalesce(nullif(:filename, ''), 'ALrd120103.fits')",
    },
    "products_from_raw_frame": {
        "title": "Every product made from a raw frame",
        "description": "Follows the lineage down from a raw file: the masters it went into, and the frames those masters calibrated.",
        "sql": "SELECT DISTINCT p.product_id, p.kind, p.path, l.depth FROM lineage l"
               " JOIN products p USING (product_id) JOIN files f ON f.file_id = l.file_id"
               " WHERE f.name = coalesce(nullif(:filename, ''), 'ALrd120001.fits') AND p.current = 1"
               " ORDER BY l.depth, p.kind, p.path",
    },
    "product_lineage": {
        "title": "A product's ancestry",
        "description": "Every raw frame and master behind a product, at any depth.",
        "sql": "SELECT l.depth, l.role, l.file_id, f.name AS raw_file, l.input_product_id, q.path AS input_product"
               " FROM lineage l LEFT JOIN files f ON f.file_id = l.file_id"
               " LEFT JOIN products q ON q.product_id = l.input_product_id"
               " WHERE l.product_id = CAST(coalesce(nullif(:product_id, ''), (SELECT max(product_id) FROM products"
               " WHERE kind = 'reduced')) AS INTEGER) ORDER BY l.depth, l.role, raw_file",
    },
}


def datasette_metadata(name: str) -> dict[str, Any]:
    """Datasette metadata for the archive database called ``name``."""
    return {
        "title": "nota archive",
        "description_html": (
            "Raw CCD frames indexed header card by header card, the quality figures and flags that"
            " decide what is combined, the calibration groups, and every product linked to the raw"
            " frames it was made from. Start with <a href='/{0}/frames'>frames</a>, the"
            " <a href='/{0}/night_log'>night's log</a>, the <a href='/{0}/products'>products</a>"
            " or the <a href='/-/nota/reports'>night reports</a> (every night links to its own)."
        ).format(name),
        "databases": {
            name: {
                "description": "One archive: every table and view below is described in words.",
                "tables": _TABLES,
                "queries": STORED_QUERIES,
            }
        },
    }
