"""``check_node``: the contract every node type keeps, checked the same way for all of them.

Like scikit-learn's ``check_estimator`` (and ``neurolace.decode.check_decoder``),
a node type written outside neurolace can be checked before it is trusted in a
real-time loop: declarations (name, ports, parameters), then, if it can be
built, one life cycle -- ``setup``, a few messages or ``produce`` calls,
``summary``, ``teardown`` -- with every emitted message inspected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.messages import Message, now_ns
from neurolace.runtime.node import PORT_KINDS, REQUIRED, Node, NodeContext, Parameter, Port, get_node_type

__all__ = ["check_node"]


def _fail(node_class, message: str) -> AssertionError:
    return AssertionError(f"node type {getattr(node_class, 'type_name', node_class)!r}: {message}")


def _check_declarations(node_class) -> None:
    if not (isinstance(node_class, type) and issubclass(node_class, Node)):
        raise AssertionError(f"{node_class!r} is not a subclass of neurolace.runtime.node.Node")  # noqa: TRY004
    if not isinstance(node_class.type_name, str) or not node_class.type_name:
        raise _fail(node_class, "type_name must be a non-empty string")
    if get_node_type(node_class.type_name) is not node_class:
        raise _fail(node_class, "is not registered under its type_name (decorate it with @register_node)")
    if not node_class.description:
        raise _fail(node_class, "needs a one-line description (shown by 'neurolace run --list-types')")
    for section in ("inputs", "outputs"):
        ports = getattr(node_class, section)
        if not isinstance(ports, Mapping):
            raise _fail(node_class, f"{section} must be a dict of port name -> Port")
        for name, port in ports.items():
            if not isinstance(port, Port) or port.kind not in PORT_KINDS:
                raise _fail(
                    node_class, f"{section}[{name!r}] must be a Port of a kind in {sorted(PORT_KINDS)}"
                )
            if section == "outputs" and (port.feedback or port.many or port.optional):
                raise _fail(node_class, f"output {name!r} cannot be feedback, many or optional")
            if port.feedback and port.many:
                raise _fail(node_class, f"input {name!r} cannot be both feedback and many")
    for name, parameter in node_class.parameters.items():
        if not isinstance(parameter, Parameter):
            raise _fail(node_class, f"parameters[{name!r}] must be a Parameter")
        if parameter.default is not REQUIRED:
            try:
                accepted = parameter.check(parameter.default)
            except InvalidInputError as exc:
                raise _fail(node_class, f"default of parameter {name!r} fails its own check: {exc}") from None
            if accepted != parameter.default:
                raise _fail(node_class, f"default of parameter {name!r} changes when checked")
    hook = "produce" if node_class.is_source_type() else "on_message"
    if getattr(node_class, hook) is getattr(Node, hook):
        kind = "a source (no ordinary inputs)" if hook == "produce" else "a node with inputs"
        raise _fail(node_class, f"is {kind} but does not implement {hook}()")


def check_node(
    node_class: type[Node],
    *,
    params: Mapping | None = None,
    messages: Mapping[str, list[np.ndarray]] | None = None,
    n_produce: int = 3,
    life_cycle: bool = True,
    seed: int = 0,
    session_directory=None,
) -> list[Message]:
    """Check ``node_class`` against the node contract; raise ``AssertionError`` naming what is broken.

    Parameters
    ----------
    node_class : type
        A registered :class:`~neurolace.runtime.node.Node` subclass.
    params : mapping, optional
        Values of its required parameters (and any others to set). When a
        required parameter is missing, only the declarations are checked.
    messages : mapping of port -> list of ndarray, optional
        Payloads fed to ``on_message`` (nodes with inputs).
    n_produce : int
        ``produce`` calls made on a source.
    life_cycle : bool
        False checks the declarations only (for nodes that need a device).

    Returns
    -------
    list of Message
        What the node emitted during the life cycle.
    """
    _check_declarations(node_class)
    if not life_cycle:
        return []
    values = {}
    for name, parameter in node_class.parameters.items():
        if params is not None and name in params:
            values[name] = parameter.check(params[name])
        elif parameter.default is REQUIRED:
            return []
        else:
            values[name] = parameter.default
    unknown = set(params or {}) - set(node_class.parameters)
    if unknown:
        raise _fail(node_class, f"check_node was given unknown parameters {sorted(unknown)}")
    outputs = {port: f"checked.{port}" for port in node_class.outputs}
    emitted: list[Message] = []

    def emit(message: Message) -> Message:
        if message.stream not in outputs.values():
            raise _fail(node_class, f"emitted on undeclared stream {message.stream!r}")
        if not isinstance(message.payload, np.ndarray) or message.payload.dtype.hasobject:
            raise _fail(node_class, f"payload on {message.stream!r} must be a numeric ndarray")
        message.timestamp_ns = now_ns()
        emitted.append(message)
        return message

    context = NodeContext(
        name="checked",
        outputs=outputs,
        seed=seed,
        emit_function=emit,
        log=lambda event, **fields: None,
        session_directory=session_directory,
    )
    node = node_class(values, context)
    node.setup()
    try:
        if node_class.is_source_type():
            for _ in range(n_produce):
                if not node.produce():
                    break
        for port, payloads in (messages or {}).items():
            if port not in node_class.inputs:
                raise _fail(node_class, f"check_node was given messages for unknown input {port!r}")
            for index, payload in enumerate(payloads):
                parent = Message(
                    f"source.{port}",
                    np.asarray(payload),
                    sequence=index,
                    sample_index=100 * index,
                    origin_ns=now_ns(),
                    timestamp_ns=now_ns(),
                )
                before = len(emitted)
                node.on_message(port, parent)
                for message in emitted[before:]:
                    # an output depends on this input or an earlier one, never on a later sample
                    if not 0 < message.origin_ns <= parent.origin_ns:
                        raise _fail(
                            node_class,
                            "a message computed from an input must keep its origin_ns "
                            "(use emit(..., parent=message))",
                        )
        try:
            json.dumps(node.summary())
        except TypeError as exc:
            raise _fail(node_class, f"summary() must be JSON-serialisable: {exc}") from None
    finally:
        node.teardown()
    return emitted
