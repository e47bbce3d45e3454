"""The surgery package's error classes.

A plan that cannot place every site is an answer (fewer sites, with the reason), not an
exception; these classes are for input that is not usable at all.
"""

from __future__ import annotations

from neurolace.core.errors import InvalidInputError

__all__ = ["ImageError"]


class ImageError(InvalidInputError):
    """A file or array that is not a readable 2-D grey, RGB or RGBA image.

    Attributes
    ----------
    path : str or None
        The file at fault, when the image came from a file.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)
