"""The stimulation package's error classes: a refused pattern names every field at fault.

The safety envelope's refusals are not exceptions (an unsafe train is an answer,
:class:`~neurolace.stim.envelope.EnvelopeResult` with its violations); these classes
are for input that is not a stimulation pattern or command at all.
"""

from __future__ import annotations

from neurolace.core.errors import InvalidInputError, NeurolaceError

__all__ = ["CommandError", "DriverError", "PatternError"]


class PatternError(InvalidInputError):
    """A pulse-train pattern with missing, negative, unknown or malformed fields.

    Parameters
    ----------
    problems : sequence of (str, str)
        ``(field, what was expected and what was given)`` for every field at fault; ``"<pattern>"``
        names the pattern as a whole (not a JSON object, malformed JSON).

    Attributes
    ----------
    problems : tuple of (str, str)
    fields : tuple of str
        The fields named, in the order found.
    """

    def __init__(self, problems) -> None:
        self.problems = tuple((str(field), str(message)) for field, message in problems)
        assert self.problems, "a PatternError names at least one field"
        self.fields = tuple(field for field, _ in self.problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.problems))


class CommandError(InvalidInputError):
    """Bytes that are not a well-formed, signed, versioned stimulation command.

    ``reason`` says why, one of :data:`neurolace.stim.commands.COMMAND_REFUSALS`.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        self.reason = reason
        super().__init__(message)


class DriverError(NeurolaceError):
    """A stimulator driver refused a train (its own hardware check: defence in depth)."""
