"""nota's exceptions: the CLI turns these into one ``Error: ...`` line and an exit code.

Any other exception escaping a command is a bug and may show a traceback.
"""


class NotaError(Exception):
    """Base of every error a user can cause and fix; shown as a one-line message."""


class DatabaseError(NotaError):
    """The archive database cannot be opened, is newer than this nota, or is damaged."""


class QueryError(NotaError):
    """A user's SQL was refused (a write, ATTACH, too slow) or is not valid SQL."""


class ProfileError(NotaError):
    """An instrument profile file is missing or malformed."""


class FitsError(NotaError):
    """A FITS file cannot be read: empty, truncated, not FITS, or a damaged header."""


class SimulationError(NotaError):
    """The night simulator was asked for something it cannot make."""


class PhotometryError(NotaError):
    """A star cannot be measured (off the frame, no source found)."""


class CalibrationError(NotaError):
    """A night and filter cannot be calibrated (no usable standards, no extinction to fall back on)."""
