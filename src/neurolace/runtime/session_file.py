"""Session files (TOML): parse, validate, and say exactly what is wrong and where.

A session declares nodes and wires outputs to inputs::

    [session]
    name = "closed-loop"
    duration_s = 30.0
    seed = 7
    clock = "realtime"   # or "stepped": one source step at a time, the same result on every run
    cursor_gain_per_s = 0.5   # set once: every node with this parameter gets it

    [bus]                  # only for a shared (Redis) bus; see neurolace.runtime.bus_auth
    key_file = "bus.key"   # the session's message key (64 hex digits, mode 0600); default: NEUROLACE_BUS_KEY
    authenticate = true    # false: no message authentication (the bus warns)

    [nodes.participant]
    type = "sim_participant"
    n_units = 96
    feedback = { cursor = "cursor.cursor" }   # loop-back input: newest value, no waiting

    [nodes.decoder]
    type = "decoder"
    inputs = { features = "participant.features", intention = "participant.intention" }

Everything is checked before any node starts: unknown node types and
parameters, missing parameters, values of the wrong type, inputs wired to
streams that do not exist or that carry another kind of data, and cycles of
ordinary (non-feedback) edges. Each error names the file, the line and what was
expected, e.g. ``session.toml:12: node 'decoder': parameter 'decoder' expected
one of 'kalman', 'wiener', got 'kalmann'``.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.node import REQUIRED, get_node_type, node_types

__all__ = ["CLOCKS", "NodeSpec", "SessionError", "SessionSpec", "load_session", "parse_session"]

#: keys of a node table that are not parameters of the node type
_NODE_KEYS = {"type", "inputs", "feedback", "restart", "max_restarts", "queue_length"}
_SESSION_KEYS = {
    "name": (str, "a string"),
    "duration_s": ((int, float), "a number of seconds >= 0 (0: until the sources end)"),
    "seed": (int, "an integer >= 0"),
    "bus": (str, "a bus URL such as 'inprocess://' or 'redis://127.0.0.1:6379'"),
    "description": (str, "a string"),
    "clock": (str, "'realtime' (paced on the wall clock) or 'stepped' (one source step at a time)"),
    "cursor_gain_per_s": ((int, float), "a number > 0 (workspace units per second per unit velocity)"),
}
#: keys of the [bus] table: how a shared bus authenticates its messages (never a secret itself)
_BUS_KEYS = {
    "key_file": (str, "the path of a key file (64 hex digits, mode 0600), relative to the session file"),
    "authenticate": (bool, "true (tag and check every message, the default) or false"),
}
#: a parameter a session sets once: every node that declares it gets the one value
GAIN_PARAMETER = "cursor_gain_per_s"
#: how a session's time advances: on the wall clock, or one source step at a time (reproducible)
CLOCKS = ("realtime", "stepped")


class SessionError(InvalidInputError):
    """A session file that cannot run; the message starts with ``file:line:``."""


@dataclass
class NodeSpec:
    """One validated node of a session."""

    name: str
    type_name: str
    params: dict[str, Any]
    inputs: dict[str, list[str]] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)
    restart: bool = True
    max_restarts: int = 5
    queue_length: int = 1024
    line: int = 0

    @property
    def node_class(self):
        return get_node_type(self.type_name)

    def output_streams(self) -> dict[str, str]:
        return {port: f"{self.name}.{port}" for port in self.node_class.outputs}


@dataclass
class SessionSpec:
    """A validated session: nodes in an order where every ordinary input comes before its reader."""

    name: str
    path: str
    nodes: list[NodeSpec]
    duration_s: float = 0.0
    seed: int = 0
    bus: str | None = None
    description: str = ""
    clock: str = "realtime"
    #: ``[bus] key_file`` as written (resolved against the session file's folder by :meth:`bus_options`)
    bus_key_file: str | None = None
    bus_authenticate: bool = True

    def bus_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~neurolace.runtime.bus.open_bus` from the ``[bus]`` table."""
        options: dict[str, Any] = {"authenticate": self.bus_authenticate}
        if self.bus_key_file is not None:
            key_file = Path(self.bus_key_file).expanduser()
            if not key_file.is_absolute():
                key_file = Path(self.path).parent / key_file
            options["key_file"] = key_file
        return options

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise InvalidInputError(
            f"session {self.name!r} has no node {name!r}; nodes: {[n.name for n in self.nodes]}"
        )

    def streams(self) -> list[str]:
        return [stream for spec in self.nodes for stream in spec.output_streams().values()]


class _Locator:
    """Line numbers of tables and keys in TOML text (tomllib does not keep them)."""

    _header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._header.match(line)
            if header:
                table = self._split(header.group(1))
                self.lines.setdefault(table, number)
                continue
            key = self._key.match(line)
            if key:
                path = table + self._split(key.group(1))
                self.lines.setdefault(path, number)
                inline = re.findall(r"([A-Za-z0-9_\-]+)\s*=", line[key.end() :])
                for inner in inline:
                    self.lines.setdefault(path + (inner,), number)

    @staticmethod
    def _split(dotted: str) -> tuple[str, ...]:
        return tuple(part.strip().strip("\"'") for part in dotted.split("."))

    def line(self, *path: str) -> int:
        """Line of the deepest known prefix of ``path`` (0 when unknown)."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(tuple(path[:end]))
            if found:
                return found
        return 0


def load_session(path: str | Path) -> SessionSpec:
    """Read and validate a session file; raise :class:`SessionError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise SessionError(f"session file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SessionError(f"{path}: not a text file (TOML must be UTF-8): {exc.reason} at byte {exc.start}") from None
    return parse_session(text, source=str(path))


def parse_session(text: str, *, source: str = "<session>") -> SessionSpec:
    """Validate session TOML ``text``; ``source`` names it in error messages."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = match.group(1) if match else "?"
        raise SessionError(f"{source}:{line}: not valid TOML: {exc}") from None
    locate = _Locator(text)

    def fail(message: str, *path: str) -> SessionError:
        return SessionError(f"{source}:{locate.line(*path)}: {message}")

    unknown_top = set(document) - {"session", "nodes", "bus"}
    if unknown_top:
        name = min(unknown_top)
        raise fail(f"unknown table [{name}]; expected [session], [bus] and [nodes.NAME]", name)
    bus_settings = document.get("bus", {})
    if not isinstance(bus_settings, dict):
        raise fail(f"bus must be a table [bus], got {bus_settings!r}", "bus")
    for key, value in bus_settings.items():
        if key not in _BUS_KEYS:
            raise fail(f"unknown key {key!r} in [bus]; expected one of {sorted(_BUS_KEYS)}", "bus", key)
        expected_type, description = _BUS_KEYS[key]
        if not isinstance(value, expected_type) or (key == "key_file" and not value.strip()):
            raise fail(f"[bus] {key} must be {description}, got {value!r}", "bus", key)
    settings = document.get("session", {})
    for key, value in settings.items():
        if key not in _SESSION_KEYS:
            raise fail(
                f"unknown key {key!r} in [session]; expected one of {sorted(_SESSION_KEYS)}", "session", key
            )
        expected_type, description = _SESSION_KEYS[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, expected_type)
            or (isinstance(value, float) and not math.isfinite(value))
            or (key in ("duration_s", "seed") and value < 0)
            or (key == GAIN_PARAMETER and value <= 0)
            or (key == "clock" and value not in CLOCKS)
        ):
            raise fail(f"[session] {key} must be {description}, got {value!r}", "session", key)
    nodes_table = document.get("nodes")
    if not isinstance(nodes_table, dict) or not nodes_table:
        raise fail(
            "the session declares no nodes; expected at least one [nodes.NAME] table with a type", "nodes"
        )

    known = node_types()
    specs: dict[str, NodeSpec] = {}
    for name, table in nodes_table.items():
        if not isinstance(table, dict):
            raise fail(f"nodes.{name} must be a table [nodes.{name}]", "nodes", name)
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\-]*", name):
            raise fail(
                f"node name {name!r} must start with a letter and hold only letters, digits, _ and -",
                "nodes",
                name,
            )
        type_name = table.get("type")
        if type_name is None:
            raise fail(f"node {name!r} has no type; expected type = one of {sorted(known)}", "nodes", name)
        node_class = known.get(type_name) if isinstance(type_name, str) else None
        if node_class is None:
            raise fail(
                f"node {name!r}: unknown node type {type_name!r}; expected one of {sorted(known)}",
                "nodes",
                name,
                "type",
            )
        params = {}
        for key, value in table.items():
            if key in _NODE_KEYS:
                continue
            parameter = node_class.parameters.get(key)
            if parameter is None:
                allowed = sorted(node_class.parameters) or ["(none)"]
                raise fail(
                    f"node {name!r} ({type_name}): unknown parameter {key!r}; expected one of {allowed}",
                    "nodes",
                    name,
                    key,
                )
            try:
                params[key] = parameter.check(value)
            except InvalidInputError as exc:
                raise fail(
                    f"node {name!r} ({type_name}): parameter {key!r} {exc}", "nodes", name, key
                ) from None
        for key, parameter in node_class.parameters.items():
            if key not in params:
                if parameter.default is REQUIRED:
                    raise fail(
                        f"node {name!r} ({type_name}): missing parameter {key!r} ({parameter.help or parameter.describe()}); "
                        f"expected {parameter.describe()}",
                        "nodes",
                        name,
                    )
                params[key] = parameter.default
        restart = table.get("restart", True)
        if not isinstance(restart, bool):
            raise fail(
                f"node {name!r}: restart must be true or false, got {restart!r}", "nodes", name, "restart"
            )
        spec = NodeSpec(
            name=name, type_name=type_name, params=params, restart=restart, line=locate.line("nodes", name)
        )
        for key in ("max_restarts", "queue_length"):
            if key in table:
                value = table[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or value < (0 if key == "max_restarts" else 1)
                ):
                    raise fail(
                        f"node {name!r}: {key} must be an integer >= {0 if key == 'max_restarts' else 1}, "
                        f"got {value!r}",
                        "nodes",
                        name,
                        key,
                    )
                setattr(spec, key, value)
        specs[name] = spec

    outputs = {name: spec.node_class.outputs for name, spec in specs.items()}

    def resolve(name: str, section: str, port_name: str, reference: Any, port) -> str:
        where = ("nodes", name, section, port_name)
        if not isinstance(reference, str) or reference.count(".") != 1:
            raise fail(
                f"node {name!r}: {section}.{port_name} must be a stream 'node.port', got {reference!r}",
                *where,
            )
        source_node, source_port = reference.split(".")
        if source_node not in specs:
            raise fail(
                f"node {name!r}: {section}.{port_name} reads {reference!r}, but there is no node "
                f"{source_node!r}; nodes: {sorted(specs)}",
                *where,
            )
        if source_port not in outputs[source_node]:
            raise fail(
                f"node {name!r}: {section}.{port_name} reads {reference!r}, but node {source_node!r} "
                f"({specs[source_node].type_name}) has outputs {sorted(outputs[source_node])}",
                *where,
            )
        produced = outputs[source_node][source_port].kind
        if port.kind != "any" and produced != port.kind:
            raise fail(
                f"node {name!r}: type mismatch on {section}.{port_name}: expected a {port.kind!r} stream "
                f"({port.help or port.kind}), but {reference!r} carries {produced!r}",
                *where,
            )
        return reference

    for name, spec in specs.items():
        node_class = spec.node_class
        table = nodes_table[name]
        for section in ("inputs", "feedback"):
            wiring = table.get(section, {})
            if not isinstance(wiring, dict):
                raise fail(
                    f'node {name!r}: {section} must be a table of port = "node.port", got {wiring!r}',
                    "nodes",
                    name,
                    section,
                )
            for port_name, reference in wiring.items():
                port = node_class.inputs.get(port_name)
                if port is None:
                    raise fail(
                        f"node {name!r} ({spec.type_name}): unknown input port {port_name!r}; expected one "
                        f"of {sorted(node_class.inputs) or ['(none: it is a source)']}",
                        "nodes",
                        name,
                        section,
                        port_name,
                    )
                if port.feedback != (section == "feedback"):
                    right = "feedback" if port.feedback else "inputs"
                    raise fail(
                        f"node {name!r}: port {port_name!r} must be wired under {right}, not {section}",
                        "nodes",
                        name,
                        section,
                        port_name,
                    )
                if port.many:
                    if reference == "*":
                        streams = [
                            s
                            for other, o in outputs.items()
                            if other != name
                            for s in (f"{other}.{p}" for p in o)
                        ]
                    else:
                        references = reference if isinstance(reference, list) else [reference]
                        streams = [resolve(name, section, port_name, r, port) for r in references]
                    spec.inputs[port_name] = streams
                elif section == "feedback":
                    spec.feedback[port_name] = resolve(name, section, port_name, reference, port)
                else:
                    spec.inputs[port_name] = [resolve(name, section, port_name, reference, port)]
        for port_name, port in node_class.inputs.items():
            if not port.optional and port_name not in spec.inputs and port_name not in spec.feedback:
                section = "feedback" if port.feedback else "inputs"
                raise fail(
                    f"node {name!r} ({spec.type_name}): input {port_name!r} is not connected; expected "
                    f'{section}.{port_name} = "node.port" carrying {port.kind!r}',
                    "nodes",
                    name,
                )

    _set_gain_once(settings, nodes_table, specs, fail)
    order = _topological_order(specs, fail)
    duration = float(settings.get("duration_s", 0.0))
    return SessionSpec(
        name=settings.get("name", Path(source).stem),
        path=source,
        nodes=[specs[name] for name in order],
        duration_s=duration,
        seed=int(settings.get("seed", 0)),
        bus=settings.get("bus"),
        description=settings.get("description", ""),
        clock=settings.get("clock", "realtime"),
        bus_key_file=bus_settings.get("key_file"),
        bus_authenticate=bus_settings.get("authenticate", True),
    )


def _set_gain_once(settings: dict, nodes_table: dict, specs: dict[str, NodeSpec], fail) -> None:
    """The cursor gain is set in one place: ``[session] cursor_gain_per_s`` or one node's parameter.

    Every node that declares ``cursor_gain_per_s`` (the participant, who expects it; the loop or
    cursor, which applies it) then gets that one value. Setting it in two places is an error
    naming both, even with equal values (two places drift apart).
    """
    places = [("session", None)] if GAIN_PARAMETER in settings else []
    places += [("nodes", name) for name, table in nodes_table.items()
               if GAIN_PARAMETER in table and GAIN_PARAMETER in specs[name].node_class.parameters]
    if len(places) > 1:
        first, second = (f"[session] {GAIN_PARAMETER}" if section == "session" else f"[nodes.{name}] {GAIN_PARAMETER}"
                         for section, name in places[:2])
        where = ("session", GAIN_PARAMETER) if places[1][0] == "session" else ("nodes", places[1][1], GAIN_PARAMETER)
        raise fail(f"the cursor gain is set twice, in {first} and in {second}; set it once "
                   f"(e.g. [session] {GAIN_PARAMETER}) and every node that needs it reads that value", *where)
    if not places:
        return
    section, name = places[0]
    value = float(settings[GAIN_PARAMETER]) if section == "session" else specs[name].params[GAIN_PARAMETER]
    for spec in specs.values():
        if GAIN_PARAMETER in spec.node_class.parameters:
            spec.params[GAIN_PARAMETER] = value


def _topological_order(specs: dict[str, NodeSpec], fail) -> list[str]:
    """Order nodes so ordinary inputs come first; a cycle is an error naming its nodes."""
    readers: dict[str, list[str]] = {name: [] for name in specs}
    for name, spec in specs.items():
        for streams in spec.inputs.values():
            for stream in streams:
                readers[stream.split(".")[0]].append(name)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(specs, white)
    order: list[str] = []
    path: list[str] = []

    def visit(name: str) -> None:
        colour[name] = grey
        path.append(name)
        for reader in readers[name]:
            if colour[reader] == grey:
                cycle = path[path.index(reader) :] + [reader]
                raise fail(
                    "cycle in the node graph: " + " -> ".join(cycle) + "; a loop-back input must be "
                    "declared under feedback (read as the newest value, without waiting)",
                    "nodes",
                    reader,
                    "inputs",
                )
            if colour[reader] == white:
                visit(reader)
        path.pop()
        colour[name] = black
        order.append(name)

    for name in specs:
        if colour[name] == white:
            visit(name)
    return order[::-1]
