"""Typed exceptions. Every error a user can trigger with bad input is a :class:`PolarffError`.

The command line prints these as one line (``polarff: error: ...``); ``-T`` shows the traceback.
"""

from __future__ import annotations


class PolarffError(Exception):
    """Base class of all errors that polarff raises on purpose."""


class InputError(PolarffError, ValueError):
    """Raised when an input file or array is malformed.

    The message names the file, the frame (0-based), the field, what was expected and what was found.

    Parameters
    ----------
    message : str
        What is wrong, in words.
    file : str, optional
        Path of the offending file.
    frame : int, optional
        Index of the offending frame in the file.
    field : str, optional
        Name of the offending field (label, array or keyword).
    expected, found : object, optional
        What was expected and what was found.
    """

    def __init__(self, message: str, *, file: str | None = None, frame: int | None = None,
                 field: str | None = None, expected: object = None, found: object = None):
        self.file, self.frame, self.field = file, frame, field
        self.expected, self.found = expected, found
        where = []
        if file is not None:
            where.append(str(file))
        if frame is not None:
            where.append(f"frame {frame}")
        if field is not None:
            where.append(f"field '{field}'")
        text = (": ".join([", ".join(where), message]) if where else message)
        if expected is not None or found is not None:
            text += f" (expected {expected}, found {found})"
        super().__init__(text)


class ModelError(PolarffError):
    """Raised when a model artifact is missing, corrupt, of an unknown format version, or does not
    match the system it is applied to (unknown species, wrong atom count)."""


class ConfigError(PolarffError, ValueError):
    """Raised when a configuration file or option has an unknown key or an invalid value."""
