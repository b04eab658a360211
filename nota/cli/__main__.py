"""``python -m nota.cli``: the same as the ``nota`` command."""

from nota.cli import run

run()
