"""The reduction plan: every product the archive's groups and associations call for.

Each step of ``nota.pipeline.settings.STEPS`` plans its own tasks, in the table's order,
from the archive and the tasks planned before it (a master flat needs its night's master
bias task, a stack its exposures' tasks). A task whose recipe key is already current in
the archive, with its file intact, is up to date; anything else is stale and rebuilt, so
an input changed on disk, a changed parameter, an exclusion or a new step version rebuilds
exactly what depends on it.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from nota.archive.database import Archive
from nota.archive.products import current_products
from nota.errors import ProfileError
from nota.instruments import Profile, profile_named
from nota.pipeline.settings import PROFILE_TABLES, STEPS, step_module
from nota.pipeline.tasks import Task

__all__ = ["ReduceOptions", "PlanContext", "Plan", "plan_reduction", "default_products_root",
           "default_index_dir", "options_for"]


@dataclass(frozen=True)
class ReduceOptions:
    """Choices a user makes for a reduction; the profile's [reduce] tables give the rest."""

    products_root: str
    overscan: bool = False
    keep_intermediate: bool = False
    memory_bytes: int = 1024 * 2**20
    index_dir: str | None = None  # astrometry.net index files; None: frames are not solved
    cosmics: bool = True  # L.A.Cosmic on each reduced frame (the profile may turn it off)
    stacks: bool = True  # combine each series of exposures (the profile's [reduce.stack])
    photometry: bool = True  # calibrate each night on its standards, PHOTZP in science frames


@dataclass
class PlanContext:
    """What a step's ``plan`` sees: the archive, the options, and the tasks planned before it."""

    archive: Archive
    options: ReduceOptions
    tasks: dict[str, list[Task]] = field(default_factory=dict)  # by step NAME
    # One plan reads each profile once: the search stats every profile file per call, a
    # tenth of planning a year's archive (bench/scale.py).
    _profiles: dict[str | None, Profile] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return Path(self.options.products_root)

    def profile(self, instrument: str | None) -> Profile:
        """The profile that reads this instrument's frames (found once, then cached); its
        [reduce] may only hold the steps' tables."""
        if instrument in self._profiles:
            return self._profiles[instrument]
        profile = profile_named(instrument)
        unknown = sorted(set(profile.reduce) - set(PROFILE_TABLES))
        if unknown:
            raise ProfileError(f"profile {profile.key}.toml: [reduce] has {unknown[0]!r}, which is no step's"
                               f" table (known: {', '.join(PROFILE_TABLES)})")
        self._profiles[instrument] = profile
        return profile

    def planned(self, step: str) -> list[Task]:
        return self.tasks.get(step, [])


@dataclass
class Plan:
    tasks: list[Task]  # stale or missing, in the table's order
    up_to_date: list[Task]

    @property
    def to_build(self) -> list[Task]:
        return [t for t in self.tasks if t.failure is None]

    @property
    def impossible(self) -> list[Task]:
        return [t for t in self.tasks if t.failure is not None]


def default_products_root(db_path: str | Path) -> str:
    """Products live beside the archive database (``NAME.products/``), never beside raw files."""
    from nota.pipeline.products_root import default_products_root as default

    return default(db_path)


def default_index_dir(db_path: str | Path) -> str | None:
    """astrometry.net index files in ``astrometry/`` beside the archive, when there are any."""
    folder = Path(db_path).absolute().parent / "astrometry"
    return str(folder) if any(folder.glob("index-*.fits")) else None


def options_for(db_path: str | Path, *, products: str | Path | None = None, index_dir: str | Path | None = None,
                **settings) -> ReduceOptions:
    """The options of a reduction of this archive: where products go and which index files
    solve, the archive's defaults where none is given (the command and the API agree)."""
    return ReduceOptions(products_root=str(products or default_products_root(db_path)),
                         index_dir=str(index_dir) if index_dir else default_index_dir(db_path), **settings)


def plan_reduction(archive: Archive, options: ReduceOptions) -> Plan:
    """Every task the steps call for, split into what must be made and what is up to date."""
    context = PlanContext(archive, options)
    for row in STEPS:
        if row.enabled(options):
            context.tasks[row.name] = _apart(step_module(row.name).plan(context))
    _guard_paths(context.tasks, current_products(archive))
    stale, fresh = [], []
    for row in STEPS:
        if row.name not in context.tasks:
            continue
        current = step_module(row.name).current(archive)
        for task in sorted(context.tasks[row.name], key=lambda t: t.output):
            (fresh if _up_to_date(task, current.get(task.key)) else stale).append(task)
    return Plan(stale, fresh)


def _apart(tasks: list[Task]) -> list[Task]:
    """Products of a step that would share a path (two raw frames of one name, in two
    folders of a night) each get their raw frame's id in the name: paths never collide."""
    count = Counter(t.output for t in tasks)
    return [t if count[t.output] == 1 or t.file_id is None
            else replace(t, output=t.output.removesuffix(".fits") + f"_f{t.file_id}.fits") for t in tasks]


def _guard_paths(tasks: dict[str, list[Task]], current: dict[str, dict]) -> None:
    """A product never takes a path another product holds: two tasks of the plan, or a
    current product of another frame or group, on one path make the task impossible."""
    owners = {row["path"]: row for row in current.values()}
    every = [t for planned in tasks.values() for t in planned if t.output.endswith(".fits")]
    shared = {path for path, n in Counter(t.output for t in every).items() if n > 1}
    first_of_key: dict[str, Task] = {}
    for step, planned in tasks.items():
        for i, task in enumerate(planned):
            owner = owners.get(task.output)
            twin = first_of_key.setdefault(task.key, task)
            if twin is not task:  # the same recipe on the same bytes: one product is enough
                why = (f"{os.path.basename(task.output)}: the same inputs and recipe as"
                       f" {os.path.basename(twin.output)} (a copy of one raw frame?): made once")
            elif task.output in shared:
                why = f"{os.path.basename(task.output)}: another product of this plan has the same path"
            elif owner is not None and (owner["kind"], owner["file_id"], owner["group_id"]) != (
                    task.step, task.file_id, task.group_id):
                why = (f"{os.path.basename(task.output)}: the path of product #{owner['product_id']}"
                       f" ({owner['kind']} of another frame or group): not written over")
            else:
                continue
            planned[i] = replace(task, failure=task.failure or why)


def _up_to_date(task: Task, current: dict | None) -> bool:
    """Its key is current and (for a product) its file is where and as large as recorded."""
    if current is None:
        return False
    if "path" not in current:
        return True
    try:
        return current["path"] == task.output and os.path.getsize(task.output) == current["size"]
    except OSError:
        return False
