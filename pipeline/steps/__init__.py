"""The reduction's steps, one module each (see ``nota.pipeline.settings`` for their order).

A step module declares ``NAME``, ``VERSION``, a frozen ``Params`` dataclass, a ``Result``
dataclass, ``plan(context)`` (its tasks), ``make(task, inputs, work)`` (the work, in a
worker, no database), ``current(archive)`` and ``record_result(...)``. ``cosmics`` and
``astrometry`` are stages of the ``reduced`` step; ``measure`` is qc's.
"""
