"""The reduction plan: what must be made, from what, and the running of it.

This module owns the plan and is the only place that touches the disk and the database
for reductions. ``plan_reduction`` reads the calibration groups and associations and
names every product the night needs (master biases, master flats, reduced frames, stacks
of series) with a
*recipe key*: a hash of the step, its parameters, its code version and the content of
every input. A product whose key is already in the archive, with its file intact, is up
to date; anything else is stale and rebuilt, so an input changed on disk, a changed
parameter, an exclusion or a new step version rebuilds exactly what depends on it.

``run_plan`` builds the masters, the frames, the night's photometric calibration and
the stacks of series, each as soon as what it needs exists, in worker processes (or on a
Dask cluster). Workers (``nota.archive.steps``) read raw files and write products (to a
temporary name, then renamed); only this process writes the database, one transaction
per product.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import re
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import sqlite_utils

from nota.archive import provenance
from nota.archive.calibration import CALIBRATION_VERSION, calibrate_nights
from nota.archive.database import transaction
from nota.archive.selections import selected_file_ids, selection_condition
from nota.archive.steps import STEP_VERSIONS, TMP_PREFIX, RawInput, Task, execute_task
from nota.errors import NotaError
from nota.parallel import start_worker
from nota.instruments import Profile, available_profiles, load_profile
from nota.reduce.airmass import mid_exposure_airmass
from nota.reduce.cosmics import CosmicsParameters
from nota.reduce.sections import binned

log = logging.getLogger(__name__)

__all__ = [
    "ReduceOptions",
    "Task",
    "Plan",
    "RunReport",
    "plan_reduction",
    "run_plan",
    "default_products_root",
    "default_index_dir",
]


@dataclass(frozen=True)
class ReduceOptions:
    """Choices a user makes for a reduction; the profile's [reduce] section gives defaults."""

    products_root: str
    overscan: bool = False
    keep_intermediate: bool = False
    memory_bytes: int = 1024 * 2**20
    index_dir: str | None = None  # astrometry.net index files; None: frames are not solved
    cosmics: bool = True  # L.A.Cosmic on each reduced frame (the profile may turn it off)
    stacks: bool = True  # combine each series of exposures (the profile's [reduce.stack])
    photometry: bool = True  # calibrate each night on its standards, PHOTZP in science frames


@dataclass
class Plan:
    tasks: list[Task]
    up_to_date: list[Task]

    @property
    def to_build(self) -> list[Task]:
        return [t for t in self.tasks if t.failure is None]

    @property
    def impossible(self) -> list[Task]:
        return [t for t in self.tasks if t.failure is not None]


@dataclass
class RunReport:
    built: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (output or frame, message)
    up_to_date: int = 0
    worker_cpu_seconds: float = 0.0  # CPU the workers spent, wherever they ran
    worker_peak_rss_mb: float = 0.0  # the largest worker's peak memory
    calibrations: list[dict[str, Any]] = field(default_factory=list)  # photometric solutions made


def default_products_root(db_path: str | Path) -> str:
    """Products live in ``products/`` beside the archive database, never beside raw files."""
    return str(Path(db_path).absolute().parent / "products")


def default_index_dir(db_path: str | Path) -> str | None:
    """astrometry.net index files in ``astrometry/`` beside the archive, when there are any."""
    folder = Path(db_path).absolute().parent / "astrometry"
    return str(folder) if any(folder.glob("index-*.fits")) else None


def _recipe_key(kind: str, params: dict[str, Any], inputs: Iterable[str], needs: dict[str, str]) -> str:
    text = json.dumps(
        {"step": kind, "version": STEP_VERSIONS[kind], "params": params,
         "inputs": sorted(inputs), "needs": needs},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# Planning -----------------------------------------------------------------------------------

_RAW_SQL = """
SELECT f.file_id, f.path, f.name, f.content_hash, f.layout, f.data_hdu, h.data_offset,
       h.naxis1, h.naxis2, h.bitpix,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu = f.data_hdu
          AND c.keyword = 'BZERO') AS bzero,
       (SELECT value FROM headers c WHERE c.file_id = f.file_id AND c.hdu = f.data_hdu
          AND c.keyword = 'BSCALE') AS bscale
FROM files f JOIN hdus h ON h.file_id = f.file_id AND h.hdu = f.data_hdu
WHERE f.file_id = ?
"""


def _raw_input(conn, file_id: int, included: bool = True, reason: str = "good") -> RawInput:
    row = conn.execute(_RAW_SQL, (file_id,)).fetchone()
    if row is None:
        raise NotaError(f"file {file_id} has no image data in the archive")
    (fid, path, name, digest, layout, data_hdu, offset, n1, n2, bitpix, bzero, bscale) = row
    return RawInput(fid, path, name, digest, layout, data_hdu, offset, n1, n2, bitpix,
                    float(bzero or 0.0), float(bscale or 1.0), included, reason)


def _frame_facts(conn, file_id: int) -> dict[str, Any]:
    cursor = conn.execute(
        "SELECT o.file_id, f.name AS filename, o.night, o.instrument, o.filter, o.binning, o.gain,"
        " o.read_noise, o.kind, o.object, o.exptime, o.date_obs, o.ra, o.dec, o.airmass"
        " FROM observations o JOIN files f USING (file_id)"
        " WHERE o.file_id = ? AND f.status = 'ok'",
        (file_id,),
    )
    columns = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    return dict(zip(columns, row)) if row else {}


def _sections(conn, file_id: int, profile: Profile, binning: str) -> dict[str, str]:
    """TRIMSEC and BIASSEC from the header when present, else the profile's (binned)."""
    found = dict(conn.execute(
        "SELECT keyword, value FROM headers WHERE file_id = ? AND keyword IN ('TRIMSEC', 'BIASSEC')",
        (file_id,),
    ).fetchall())
    xbin, ybin = (int(v) for v in (binning or "1x1").split("x"))
    return {
        "trimsec": found.get("TRIMSEC") or binned(profile.detector["trimsec"], xbin, ybin),
        "biassec": found.get("BIASSEC") or binned(profile.detector["biassec"], xbin, ybin),
    }


def _profile_of(instrument: str | None) -> Profile:
    for key in available_profiles():
        profile = load_profile(key)
        if profile.name == instrument:
            return profile
    raise NotaError(f"no instrument profile for {instrument!r}: nota cannot reduce its frames")


def _params(kind: str, profile: Profile, options: ReduceOptions, sections: dict[str, str], facts: dict) -> dict:
    r = profile.reduce
    params: dict[str, Any] = {"trimsec": sections["trimsec"], "overscan": options.overscan}
    if options.overscan:
        params["biassec"] = sections["biassec"]
        params["overscan_model"] = r.get("overscan_model", "median")
    if kind == "master_bias":
        params["clip_max"] = r.get("bias_clip_max", 800.0)
        params["combine"] = r.get("bias_combine", "median")
    elif kind == "master_flat":
        params["combine"] = r.get("flat_combine", "median")
        params["scaling"] = "inverse median"
    else:
        params["flat_min_value"] = r.get("flat_min_value", 0.1)
        params["gain"] = facts.get("gain") or profile.detector["gain"]
        params["read_noise"] = facts.get("read_noise") or profile.detector["read_noise"]
        params["saturation"] = profile.detector["saturation"]
        params["keep_intermediate"] = options.keep_intermediate
        cosmics = _cosmics_params(options, profile)
        if cosmics:
            params["cosmics"] = cosmics
        astrometry = _astrometry_params(options, profile, facts)
        if astrometry:
            params["astrometry"] = astrometry
    return params


def _cosmics_params(options: ReduceOptions, profile: Profile) -> dict | None:
    """L.A.Cosmic's settings: nota's defaults under the profile's [reduce.cosmics]."""
    settings = dict(profile.reduce.get("cosmics", {}))
    if not options.cosmics or not settings.pop("clean", True):
        return None
    try:
        return dataclasses.asdict(CosmicsParameters(**settings))
    except TypeError as exc:
        raise NotaError(f"profile {profile.name}: [reduce.cosmics] {exc}") from exc


def _astrometry_params(options: ReduceOptions, profile: Profile, facts: dict) -> dict | None:
    """What solving a frame depends on: the index files (by name and size) and the scale."""
    if not options.index_dir:
        return None
    folder = Path(options.index_dir)
    index = sorted((p.name, p.stat().st_size) for p in folder.glob("index-*.fits")) if folder.is_dir() else []
    if not index:
        return None
    xbin = int((facts.get("binning") or "1x1").split("x")[0])
    scale = float(profile.detector["pixel_scale"]) * xbin
    return {"index_dir": str(folder.absolute()), "index": index, "pixel_scale": scale,
            "fwhm_px": float(profile.detector.get("typical_seeing", 1.0)) / scale, "timeout": 5.0}


def plan_reduction(db: sqlite_utils.Database, options: ReduceOptions) -> Plan:
    """Every product the archive's groups and associations call for, and which are stale."""
    conn = db.conn
    root = Path(options.products_root)
    tasks: dict[str, Task] = {}
    group_tasks: dict[int, Task] = {}
    groups = conn.execute(
        "SELECT group_id, purpose, night, instrument, filter, flat_kind, binning"
        " FROM calibration_groups WHERE usable = 1 AND preferred = 1 ORDER BY purpose, night"
    ).fetchall()
    for purpose in ("master_bias", "master_flat"):
        for group_id, gpurpose, night, instrument, filt, flat_kind, binning in groups:
            if gpurpose != purpose:
                continue
            profile = _profile_of(instrument)
            members = conn.execute(
                "SELECT file_id, included, reason FROM group_members WHERE group_id = ? ORDER BY file_id",
                (group_id,),
            ).fetchall()
            inputs = tuple(_raw_input(conn, fid, bool(inc), why) for fid, inc, why in members)
            used = [i for i in inputs if i.included]
            sections = _sections(conn, used[0].file_id, profile, binning)
            params = _params(purpose, profile, options, sections, {})
            needs: dict[str, str] = {}
            failure = None
            if purpose == "master_flat":
                bias = _bias_group_for(conn, night, instrument, binning, used[0].file_id)
                if bias is None or bias not in group_tasks:
                    failure = f"no usable master bias for the {night} flats ({filt})"
                else:
                    needs["master_bias"] = group_tasks[bias].key
            key = _recipe_key(purpose, params, [i.content_hash for i in used], needs)
            name = f"{purpose}_{night}" + (f"_{filt}_{flat_kind}" if purpose == "master_flat" else "") + f"_{binning}.fits"
            task = Task(purpose, key, str(root / night / purpose / name), night, filt, params,
                        inputs, group_id=group_id, needs=needs, failure=failure)
            tasks[key] = task
            group_tasks[group_id] = task
    associations = conn.execute(
        "SELECT a.file_id, a.purpose, a.group_id, a.rule FROM associations a ORDER BY a.file_id, a.purpose"
    ).fetchall()
    by_frame: dict[int, dict[str, tuple]] = {}
    for file_id, purpose, group_id, rule in associations:
        by_frame.setdefault(file_id, {})[purpose] = (group_id, rule)
    frames = []  # (task fields, facts) of every frame to reduce, keyed when all are known
    for file_id, chosen in sorted(by_frame.items()):
        facts = _frame_facts(conn, file_id)
        if not facts:
            continue
        profile = _profile_of(facts["instrument"])
        raw = _raw_input(conn, file_id)
        sections = _sections(conn, file_id, profile, facts["binning"])
        params = _params("reduced", profile, options, sections, facts)
        params.update(airmass=_mid_airmass(facts, profile), exptime=facts["exptime"])
        needs, failure = {}, None
        for purpose in ("master_bias", "master_flat"):
            group_id, rule = chosen.get(purpose, (None, "not associated"))
            if group_id is None or group_id not in group_tasks:
                failure = f"{facts['filename']}: no {purpose.replace('_', ' ')} ({rule})"
                break
            if group_tasks[group_id].failure:
                failure = f"{facts['filename']}: {group_tasks[group_id].failure}"
                break
            needs[purpose] = group_tasks[group_id].key
        frames.append((facts, profile, raw, params, needs, failure))
    standards: dict[tuple, list[str]] = {}  # (night, filter) -> recipe keys of its standards
    for facts, _, raw, params, needs, failure in frames:
        if facts["kind"] == "standard" and failure is None:
            key = _recipe_key("reduced", params, [raw.content_hash], needs)
            standards.setdefault((facts["night"], facts["filter"]), []).append(key)
    by_file: dict[int, Task] = {}
    for facts, profile, raw, params, needs, failure in frames:
        if facts["kind"] != "standard" and options.photometry:
            params.update(_photometry_params(facts, profile, standards))
        key = _recipe_key("reduced", params, [raw.content_hash], needs)
        output = root / (facts["night"] or "unknown") / "reduced" / f"fzt_{facts['filename'].split('.')[0]}.fits"
        task = Task("reduced", key, str(output), facts["night"], facts["filter"], params,
                    (raw,), file_id=facts["file_id"], needs=needs, failure=failure)
        tasks[key] = by_file[facts["file_id"]] = task
    if options.stacks:
        facts_of = {facts["file_id"]: facts for facts, *_ in frames}
        for task in _stack_tasks(conn, by_file, facts_of, standards if options.photometry else {}, root):
            tasks[task.key] = task
    current = {
        row[0]: (row[1], row[2])
        for row in conn.execute("SELECT recipe_key, path, size FROM products WHERE current = 1")
    }
    stale, fresh = [], []
    for task in tasks.values():
        have = current.get(task.key)
        if have and have[0] == task.output and _intact(have[0], have[1]):
            fresh.append(task)
        else:
            stale.append(task)
    order = {"master_bias": 0, "master_flat": 1, "reduced": 2, "stack": 3}
    stale.sort(key=lambda t: (order[t.kind], t.output))
    return Plan(stale, fresh)


def _mid_airmass(facts: dict, profile: Profile) -> float | None:
    """Mid-exposure airmass from the pointing and time; the header's (start) when unknown."""
    try:
        return round(mid_exposure_airmass(float(facts["ra"]), float(facts["dec"]), facts["date_obs"],
                                          float(facts["exptime"] or 0.0), float(profile.site["latitude"]),
                                          float(profile.site["longitude"])), 5)
    except (KeyError, TypeError, ValueError):
        return facts.get("airmass")


def _photometry_params(facts: dict, profile: Profile, standards: dict[tuple, list[str]]) -> dict:
    """A science frame waits for its night's standards: PHOTZP depends on their products."""
    keys = standards.get((facts["night"], facts["filter"]))
    if not keys:
        return {}
    return {"photometry": {"standards": sorted(keys), "version": CALIBRATION_VERSION,
                           "settings": dict(profile.photometry)}}


def _stack_tasks(conn, by_file: dict[int, Task], facts_of: dict[int, dict], standards: dict[tuple, list[str]],
                 root: Path) -> list[Task]:
    """One stack per series: reduced frames of the profile's stack selection sharing its keys."""
    out = []
    for instrument in sorted({f["instrument"] for f in facts_of.values() if f["instrument"]}):
        profile = _profile_of(instrument)
        cfg = dict(profile.reduce.get("stack", {}))
        if not cfg:
            continue
        ids = set(selected_file_ids(conn, selection_condition(conn, cfg.get("selection", "science"))))
        series: dict[tuple, list[dict]] = {}
        for file_id in sorted(ids & by_file.keys()):
            facts = facts_of[file_id]
            if facts["instrument"] == instrument:
                series.setdefault(tuple(facts.get(k) for k in cfg.get("by", ("night", "object", "filter"))),
                                  []).append(facts)
        for members in series.values():
            if len(members) < int(cfg.get("min_exposures", 3)):
                continue
            members.sort(key=lambda f: f["date_obs"] or "")
            exposures = [by_file[f["file_id"]] for f in members]
            first = members[0]
            params = {field: cfg[field] for field in ("high", "low", "relative", "order", "min_frames") if field in cfg}
            params.update(exptimes=[float(f["exptime"]) for f in members],
                          airmasses=[t.params["airmass"] for t in exposures],
                          frames=[f["filename"] for f in members])
            params.update(_photometry_params(first, profile, standards))
            needs = {f"exposure:{f['filename']}": t.key for f, t in zip(members, exposures)}
            failure = next((t.failure for t in exposures if t.failure), None)
            key = _recipe_key("stack", params, [], needs)
            name = f"stack_{_slug(first['object'] or 'series')}_{first['filter']}.fits"
            out.append(Task("stack", key, str(root / (first["night"] or "unknown") / "stack" / name),
                            first["night"], first["filter"], params, (), needs=needs, failure=failure))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9+.-]+", "_", text).strip("_") or "series"


def _intact(path: str, size: int) -> bool:
    try:
        return os.path.getsize(path) == size
    except OSError:
        return False


def _bias_group_for(conn, night, instrument, binning, file_id) -> int | None:
    """The master-bias group a night's flats are corrected with: same night and readout."""
    row = conn.execute(
        "SELECT group_id FROM calibration_groups WHERE purpose = 'master_bias' AND usable = 1"
        " AND preferred = 1 AND night = ? AND instrument IS ? AND binning = ?",
        (night, instrument, binning),
    ).fetchone()
    return row[0] if row else None


# Running the plan ---------------------------------------------------------------------------


def _clean_temporaries(root: Path) -> None:
    """Half-written files of a killed run: never registered, safe to remove."""
    if root.exists():
        for leftover in root.rglob(f"{TMP_PREFIX}*"):
            leftover.unlink(missing_ok=True)
        for leftover in root.rglob(".stack-*.npy"):
            leftover.unlink(missing_ok=True)


def _worker_context():
    """How worker processes start: forked from this process when it runs no other thread
    (instant: nota is already imported), else from a fork server that imports nota once
    (a thread, such as a progress bar's, holding a lock at the fork would leave it held in
    the child). Either way no database handle is used by a worker."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nota.archive.steps", "matplotlib.figure", "matplotlib.backends.backend_agg"])
    return context


class _Local:
    """Runs tasks in local worker processes (or in this process for jobs=1)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.pool = None
        self.running: dict[Any, Task] = {}
        self._finished: list[dict] = []  # jobs=1: results of tasks run as they were submitted
        self._count = itertools.count()
        if jobs > 1:
            self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_worker_context(),
                                            initializer=start_worker)

    def submit(self, task: Task, inputs: dict[str, Any], memory: int, scratch: str) -> None:
        if self.pool is None:
            self._finished.append(execute_task(task, inputs, memory, scratch))
            self.running[next(self._count)] = task
        else:
            self.running[self.pool.submit(execute_task, task, inputs, memory, scratch)] = task

    def next_result(self) -> dict:
        """The result of a task that finished (waits for the first to finish)."""
        if self.pool is None:
            self.running.pop(next(iter(self.running)))
            return self._finished.pop(0)
        finished, _ = wait(self.running, return_when=FIRST_COMPLETED)
        future = next(iter(finished))
        del self.running[future]
        return future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class _Dask:
    """Runs tasks on a Dask distributed cluster; results come back here to be recorded."""

    def __init__(self, scheduler: str):
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError as exc:  # pragma: no cover - distributed is a dependency
            raise NotaError("the Dask scheduler needs the 'distributed' package") from exc
        if scheduler == "local":
            self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.cluster = None
            self.client = Client(scheduler)
        self.running: dict[Any, Task] = {}
        self._completed = as_completed()

    def submit(self, task: Task, inputs: dict[str, Any], memory: int, scratch: str) -> None:
        future = self.client.submit(execute_task, task, inputs, memory, scratch, pure=False)
        self.running[future] = task
        self._completed.add(future)

    def next_result(self) -> dict:
        future = next(self._completed)
        del self.running[future]
        return future.result()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def run_plan(
    db: sqlite_utils.Database,
    plan: Plan,
    options: ReduceOptions,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    on_task: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Build what the plan says is missing, each product as soon as what it needs exists.

    A task is handed to a worker once the products it needs are made (a frame once its
    night's masters are; a stack once its exposures are) and, for a science frame, once
    its night and filter are calibrated, which happens here as soon as that night's
    standards in that filter are reduced. So no worker waits for a whole stage to end.
    """
    report = RunReport(up_to_date=len(plan.up_to_date))
    root = Path(options.products_root)
    _clean_temporaries(root)
    conn = db.conn
    known = {
        row[0]: row[1] for row in conn.execute("SELECT recipe_key, path FROM products WHERE current = 1")
    }
    for task in plan.impossible:
        _record_failure(conn, task, task.failure)
        report.failed.append((task.output, task.failure))
    workers = jobs or os.cpu_count() or 1
    runner = _Dask(scheduler) if scheduler else _Local(workers)
    pending = list(plan.to_build)  # in plan order: masters first
    by_key = {t.key: t for t in pending}
    given: dict[str, dict] = {}  # what each submitted task was handed
    calibrations: dict[tuple, dict] = {}
    calibrated: set[tuple] = set()
    done, total = 0, len(pending)
    scratch = str(root / ".scratch")
    try:
        while pending or runner.running:
            before = (len(pending), len(calibrated))
            if options.photometry:
                _calibrate_ready(db, report, pending, runner.running.values(), calibrated, calibrations)
            coming = {t.key for t in pending} | {t.key for t in runner.running.values()}
            waiting = []
            for task in pending:
                lost = [role for role, key in task.needs.items() if key not in known and key not in coming]
                if lost:
                    message = f"{os.path.basename(task.output)}: its {', '.join(lost)} could not be made"
                    _record_failure(conn, task, message)
                    report.failed.append((task.output, message))
                    done += 1
                elif all(key in known for key in task.needs.values()) and (
                        not _waits_for_standards(task) or (task.night, task.filter) in calibrated):
                    # Masters are big: a share of the memory budget each, as several combine at once.
                    memory = options.memory_bytes if task.kind in ("reduced", "stack") else options.memory_bytes // workers
                    given[task.key] = _inputs_of(task, known, calibrations)
                    runner.submit(task, given[task.key], memory, scratch)
                else:
                    waiting.append(task)
            pending = waiting
            if not runner.running:
                if (len(pending), len(calibrated)) == before:  # nothing can move any more
                    for task in pending:
                        _record_failure(conn, task, f"{os.path.basename(task.output)}: could not be scheduled")
                        report.failed.append((task.output, "could not be scheduled"))
                    pending = []
                continue
            result = runner.next_result()
            task = by_key[result["key"]]
            report.worker_cpu_seconds += result.get("cpu_seconds", 0.0)
            report.worker_peak_rss_mb = max(report.worker_peak_rss_mb, result.get("peak_rss_mb", 0.0))
            if result["error"]:
                _record_failure(conn, task, result["error"], result)
                report.failed.append((task.output, result["error"]))
            else:
                _record_product(db, task, result, given[task.key])
                known[task.key] = task.output
                report.built.append({"kind": task.kind, "path": task.output, "key": task.key})
            done += 1
            if on_task:
                on_task(done, total)
    finally:
        runner.close()
    return report


def _waits_for_standards(task: Task) -> bool:
    return "photometry" in task.params


def _calibrate_ready(db, report: RunReport, pending: list[Task], running: Iterable[Task],
                     calibrated: set[tuple], calibrations: dict[tuple, dict]) -> None:
    """Fit each night and filter whose standards are all reduced (or failed), once."""
    unfinished = {(t.night, t.filter) for t in [*pending, *running]
                  if t.kind == "reduced" and not _waits_for_standards(t)}  # standards, among others
    wanted = {(t.night, t.filter) for t in pending if _waits_for_standards(t)} - calibrated
    ready = wanted - unfinished
    if not ready:
        return
    made = calibrate_nights(db, only=ready)
    report.calibrations.extend(made.made)
    report.failed.extend((f"calibration {where}", why) for where, why in made.failed)
    cursor = db.conn.execute("SELECT calibration_id, night, filter, zp, zp_err, k, k_err, cov_zp_k"
                             " FROM calibrations WHERE current = 1")
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        if (row[1], row[2]) in ready:
            calibrations[(row[1], row[2])] = dict(zip(columns, row))
    calibrated |= ready


def _inputs_of(task: Task, known: dict[str, str], calibrations: dict[tuple, dict]) -> dict[str, Any]:
    """What a worker is handed besides the task: the paths of the products it needs, and
    the photometric solution of its night and filter when it waits for one."""
    inputs: dict[str, Any] = {role: known[key] for role, key in task.needs.items()}
    if _waits_for_standards(task) and (task.night, task.filter) in calibrations:
        inputs["calibration"] = calibrations[(task.night, task.filter)]
    return inputs


def _activity(conn, task: Task, status: str, message: str | None, result: dict | None) -> int:
    activity_id = provenance.start_activity(conn, task.kind, task.params)
    if result:
        conn.execute(
            "UPDATE activities SET started_at = ?, host = ? WHERE activity_id = ?",
            (result["started_at"], result["host"], activity_id),
        )
    provenance.finish_activity(conn, activity_id, status, message)
    return activity_id


def _record_failure(conn, task: Task, message: str, result: dict | None = None) -> None:
    with conn:
        _activity(conn, task, "failed", message, result)
    log.warning("%s", message)


def _record_astrometry(conn, task: Task, astrometry: dict | None, activity_id: int) -> None:
    """The solution's figures go to qc; a frame that did not solve is flagged, not dropped."""
    if astrometry is None or task.file_id is None:
        return
    conn.execute("DELETE FROM flags WHERE file_id = ? AND source = 'astrometry'", (task.file_id,))
    conn.execute("UPDATE qc SET wcs_rms_arcsec = ?, wcs_matched = ? WHERE file_id = ?",
                 (astrometry["rms_arcsec"], astrometry["matched"], task.file_id))
    if astrometry["status"] != "solved":
        conn.execute(
            "INSERT INTO flags (file_id, flag, figure, threshold, excludes, message, activity_id, source)"
            " VALUES (?, 'not_solved', NULL, NULL, 0, ?, ?, 'astrometry')",
            (task.file_id, f"astrometry: {astrometry['status']}; the frame is kept", activity_id),
        )


def _record_product(db: sqlite_utils.Database, task: Task, result: dict, masters: dict[str, Any]) -> None:
    """Register a finished product and its provenance, all in one transaction."""
    with transaction(db) as conn:
        activity_id = _activity(conn, task, "ok", None, result)
        entity_id = provenance.record_entity(conn, "product", task.output, result["content_hash"], result["size"])
        provenance.record_generated(conn, activity_id, entity_id, task.kind)
        conn.execute("UPDATE products SET current = 0 WHERE path = ? AND current = 1", (task.output,))
        product_id = conn.execute(
            "INSERT INTO products (kind, night, filter, path, content_hash, size, recipe_key, step,"
            " parameters_json, code_version, group_id, file_id, entity_id, activity_id, current,"
            " created_at, exptime, airmass, photzp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
            (task.kind, task.night, task.filter, task.output, result["content_hash"], result["size"],
             task.key, task.kind, json.dumps(task.params, sort_keys=True), STEP_VERSIONS[task.kind],
             task.group_id, task.file_id, entity_id, activity_id, provenance.utc_now(),
             result.get("exptime"), result.get("airmass"), result.get("photzp")),
        ).lastrowid
        for raw in task.inputs:
            role = "member" if task.kind != "reduced" else "raw"
            conn.execute(
                "INSERT INTO product_inputs (product_id, role, file_id, content_hash, included, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (product_id, role, raw.file_id, raw.content_hash, int(raw.included), raw.reason),
            )
            if raw.included:
                raw_entity = provenance.record_entity(conn, "raw", raw.path, raw.content_hash, None, raw.file_id)
                provenance.record_used(conn, activity_id, raw_entity, role)
        conn.executemany(
            "INSERT INTO previews (product_id, size, content_hash, png, made_at) VALUES (?, ?, ?, ?, ?)",
            [(product_id, size, result["content_hash"], png, provenance.utc_now())
             for size, png in result.get("previews", {}).items()],
        )
        conn.execute("DELETE FROM plots WHERE product_id IN (SELECT product_id FROM products WHERE path = ?"
                     " AND product_id != ?)", (task.output, product_id))
        conn.executemany(
            "INSERT INTO plots (subject, title, night, group_id, product_id, png, made_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(subject, title, task.night, task.group_id, product_id, png, provenance.utc_now())
             for subject, title, png in result.get("plots", [])],
        )
        _record_astrometry(conn, task, result.get("astrometry"), activity_id)
        if result.get("cosmic_pixels") is not None and task.file_id is not None:
            conn.execute("UPDATE qc SET cosmic_pixels = ? WHERE file_id = ?", (result["cosmic_pixels"], task.file_id))
        for role, path in masters.items():
            if role == "calibration":  # a solution, not a product: PHOTCAL in the header names it
                continue
            role = role.split(":")[0]  # exposure:NAME -> exposure
            master = conn.execute(
                "SELECT product_id, entity_id, content_hash FROM products WHERE path = ? AND current = 1", (path,)
            ).fetchone()
            conn.execute(
                "INSERT INTO product_inputs (product_id, role, input_product_id, content_hash) VALUES (?, ?, ?, ?)",
                (product_id, role, master[0], master[2]),
            )
            provenance.record_used(conn, activity_id, master[1], role)
