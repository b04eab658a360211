"""nota watch: reduce a night while it is being observed."""

from __future__ import annotations
