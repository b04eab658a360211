"""The pipeline: where pixels (``nota.reduce``) and the record (``nota.archive``) meet.

``ingest`` and ``qc`` read raw files into the archive; ``plan`` turns the archive's groups
and associations into tasks, one per product, by the step table of ``settings``; ``run``
hands each to a worker (``worker``, ``runners``) as soon as what it needs exists and
``record``s what comes back. Each step is a module of ``nota.pipeline.steps``.
"""
