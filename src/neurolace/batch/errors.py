"""The error the batch layer raises for problems of a whole run (inputs, output folder, manifest)."""

from __future__ import annotations

from neurolace.core.errors import NeurolaceError

__all__ = ["BatchError"]


class BatchError(NeurolaceError):
    """A batch run cannot start or a file of it cannot be processed; the message says which and why."""
