"""Nodes of the runtime graph: ports, parameters, states and the registry of node types.

A node type declares what it reads and writes (:class:`Port`, each with a
*kind* such as ``"raw"`` or ``"features"``, so a session that wires a raw
stream into a decoder is refused before anything starts) and its parameters
(:class:`Parameter`, checked with the same messages as every public function).

Life cycle (explicit states, as in BRAND's node supervisor)::

    starting --setup()--> ready --start barrier--> running --stop--> stopped
        \\________________________\\________________________--> failed

A node only computes: :meth:`Node.on_message` receives a message on an input
port and calls :meth:`Node.emit` for each output; a node whose work per call
outweighs its work per sample sets ``max_batch`` and implements
:meth:`Node.on_batch` to take a backlog in one call. Source nodes (no inputs)
implement :meth:`Node.produce`, called in a loop, which paces itself on the
monotonic clock. Threads, buses and restarts belong to the graph runner.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.messages import Message, now_ns

__all__ = [
    "PORT_KINDS",
    "REQUIRED",
    "Node",
    "NodeContext",
    "NodeState",
    "Parameter",
    "Port",
    "get_node_type",
    "node_types",
    "register_node",
]


class NodeState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


#: kinds of data a port carries; "any" accepts every kind (recorder, dashboard)
PORT_KINDS = {
    "raw": "ADC codes, int16, shape (n_samples, n_channels)",
    "features": "one feature bin, float, shape (n_features,)",
    "intention": "intended (vx, vy, click) of a participant, shape (3,)",
    "velocity": "decoded (vx, vy, click, assisted), shape (4,); assisted = 1 while calibration drives it",
    "cursor": "cursor (x, y, click, assisted) in the unit square, y up, shape (4,)",
    "target": "target (x, y, width) in task units, shape (3,)",
    "score": "task score (correct, incorrect, bits per second), shape (3,)",
    "block": "block of a calibration session (index, noise-seed key x4), shape (5,)",
    "any": "any stream",
}


@dataclass(frozen=True)
class Port:
    """An input or output of a node.

    Parameters
    ----------
    kind : str
        One of :data:`PORT_KINDS`.
    optional : bool
        Inputs only: the session may leave it unconnected.
    feedback : bool
        Inputs only: read the newest value without waiting (a loop-back input,
        e.g. the participant watching the cursor); such an edge may close a
        cycle, an ordinary edge may not.
    many : bool
        Inputs only: accepts a list of streams (the recorder).
    """

    kind: str
    optional: bool = False
    feedback: bool = False
    many: bool = False
    help: str = ""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Parameter:
    """A parameter of a node type, as written in the session file.

    Parameters
    ----------
    type : type or tuple of type
        Expected Python type(s) after TOML parsing (``float`` also accepts ints).
    default : object
        Value when absent; :data:`REQUIRED` makes it mandatory.
    choices : tuple, optional
        Allowed values.
    minimum, maximum : float, optional
        Inclusive bounds for numbers.
    """

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    help: str = ""
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        text = " or ".join(t.__name__ for t in types)
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        if self.minimum is not None:
            text += f" >= {self.minimum:g}"
        if self.maximum is not None:
            text += f"{' and' if self.minimum is not None else ''} <= {self.maximum:g}"
        return text

    def check(self, value: Any) -> Any:
        """Return ``value`` converted, or raise ``InvalidInputError`` saying what was expected."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = False
        for expected in types:
            if expected is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
                value, ok = float(value), True
                break
            if expected is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
                value, ok = int(value), True
                break
            if expected not in (int, float) and isinstance(value, expected):
                ok = True
                break
        if not ok or (self.choices is not None and value not in self.choices):
            raise InvalidInputError(f"expected {self.describe()}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"expected a finite {self.describe()}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidInputError(f"expected {self.describe()}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidInputError(f"expected {self.describe()}, got {value!r}")
        return value


@dataclass
class NodeContext:
    """What the runner gives a node: its name, its output streams, the session seed and a log.

    ``emit_function(stream, message)`` publishes; ``log(event, **fields)``
    records a structured event (restart, gap, dropped data) in the run log.
    ``feedback(port)`` returns the newest message on a feedback input or None.
    ``clock`` is the session's clock: ``"realtime"``, or ``"stepped"``, where a
    source runs as fast as the graph settles (the runner waits after each
    ``produce`` until every message it caused was handled) and ends by itself
    after ``duration_s`` on its own sample clock (0: when exhausted); other
    nodes do synchronously what they would otherwise do in the background.
    """

    name: str
    outputs: dict[str, str]
    seed: int
    emit_function: Callable[[Message], Message]
    log: Callable[..., None]
    feedback: Callable[[str], Message | None] = lambda port: None
    stop_requested: Callable[[], bool] = lambda: False
    session_directory: Any = None
    extra: dict = field(default_factory=dict)
    clock: str = "realtime"
    duration_s: float = 0.0

    @property
    def stepped(self) -> bool:
        return self.clock == "stepped"


class Node:
    """Base class of every node type; subclasses set the class attributes and override hooks."""

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    parameters: ClassVar[dict[str, Parameter]] = {}
    #: most messages of one port the runner may hand to :meth:`on_batch` at once (1: one at a time)
    max_batch: int = 1

    def __init__(self, params: dict, context: NodeContext) -> None:
        self.params = dict(params)
        self.context = context
        self.name = context.name
        self.emitted = 0

    # -- hooks ---------------------------------------------------------------
    def setup(self) -> None:
        """Open devices, load models; runs in state ``starting``."""

    def on_message(self, port: str, message: Message) -> None:
        """Handle one message on input ``port`` (nodes with inputs)."""
        raise NotImplementedError(f"{type(self).__name__} has inputs but no on_message")

    def on_batch(self, port: str, messages: list[Message]) -> None:
        """Handle several messages of ``port`` that were waiting together, oldest first.

        Called only when ``max_batch > 1`` and a backlog formed; the default
        hands them to :meth:`on_message` one by one.
        """
        for message in messages:
            self.on_message(port, message)

    def produce(self) -> bool:
        """Source nodes: emit the next block(s), pacing on the clock; return False when exhausted."""
        raise NotImplementedError(f"{type(self).__name__} has no inputs but no produce")

    def on_idle(self) -> None:
        """Called when no message arrived for a while (a timeout); e.g. to notice a stale input."""

    def teardown(self) -> None:
        """Release what setup opened; runs on stop and after a failure."""

    def summary(self) -> dict:
        """Counters and results reported at the end of the run (JSON-serialisable)."""
        return {}

    # -- helpers -------------------------------------------------------------
    @classmethod
    def is_source_type(cls) -> bool:
        """True when the node has no ordinary inputs (only feedback ones): it runs ``produce``."""
        return all(port.feedback for port in cls.inputs.values())

    @property
    def is_source(self) -> bool:
        return self.is_source_type()

    def emit(
        self,
        port: str,
        payload: np.ndarray,
        *,
        parent: Message | None = None,
        sample_index: int | None = None,
        origin_ns: int | None = None,
    ) -> Message:
        """Publish ``payload`` on output ``port``, inheriting clocks from ``parent`` when given."""
        stream = self.context.outputs[port]
        if parent is not None:
            message = parent.derive(stream, payload, sample_index=sample_index)
            if origin_ns is not None:
                message.origin_ns = int(origin_ns)
        else:
            message = Message(
                stream=stream,
                payload=payload,
                sample_index=0 if sample_index is None else int(sample_index),
                origin_ns=now_ns() if origin_ns is None else int(origin_ns),
            )
        self.emitted += 1
        return self.context.emit_function(message)


_REGISTRY: dict[str, type[Node]] = {}


def register_node(cls: type[Node]) -> type[Node]:
    """Class decorator adding a node type under ``cls.type_name``."""
    if not cls.type_name:
        raise InvalidInputError(f"node class {cls.__name__} must set type_name")
    for port in (*cls.inputs.values(), *cls.outputs.values()):
        assert port.kind in PORT_KINDS, f"{cls.__name__}: unknown port kind {port.kind!r}"
    _REGISTRY[cls.type_name] = cls
    return cls


def _load_builtin_nodes() -> None:
    from neurolace.runtime import nodes  # noqa: F401  (registers the built-in node types)


def node_types() -> dict[str, type[Node]]:
    """All registered node types, by type name."""
    _load_builtin_nodes()
    return dict(sorted(_REGISTRY.items()))


def get_node_type(type_name: str) -> type[Node] | None:
    _load_builtin_nodes()
    return _REGISTRY.get(type_name)
