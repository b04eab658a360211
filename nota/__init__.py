"""nota: an archive and reducer for CCD imaging nights.

``nota.archive`` is the database (headers, selections, groups, products, provenance);
``nota.reduce`` the pixels (pure functions over ``CCDData``); ``nota.pipeline`` joins them
(ingest, qc, the reduction's steps, planned and run in workers); ``nota.simulate`` writes
realistic nights to try them on.
"""

__version__ = "0.1.0"
