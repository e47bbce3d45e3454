"""The one exception the codec raises on bad compressed data or unrepresentable input."""

from __future__ import annotations

from neurolace.core.errors import FormatError

__all__ = ["CodecError"]


class CodecError(FormatError):
    """Compressed data is truncated, corrupt or foreign, or input cannot be coded losslessly.

    Attributes
    ----------
    frame_index : int or None
        Index of the frame where the problem was found, when it concerns one frame.
    """

    def __init__(self, message: str, *, frame_index: int | None = None) -> None:
        super().__init__(message)
        self.frame_index = frame_index
