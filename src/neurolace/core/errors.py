"""Exception types shared by every neurolace package.

Every error a user can cause derives from :class:`NeurolaceError`, so the CLI
can turn it into a clear message and a non-zero exit status without catching
programming errors by accident.
"""

from __future__ import annotations

__all__ = ["NeurolaceError", "InvalidInputError", "FormatError", "NotFittedError"]


class NeurolaceError(Exception):
    """Base class of the errors neurolace raises on purpose."""


class InvalidInputError(NeurolaceError, ValueError):
    """A parameter or array has the wrong value, type, shape or content."""


class FormatError(NeurolaceError, ValueError):
    """A file is truncated, corrupt, or not of the format it claims to be."""


class NotFittedError(NeurolaceError, AttributeError):
    """An estimator was used before ``fit``."""
