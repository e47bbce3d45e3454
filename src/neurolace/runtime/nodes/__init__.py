"""Built-in node types; importing this package registers them (see :func:`neurolace.runtime.node.node_types`)."""

from neurolace.runtime.nodes import effectors, link, loop, processing, record, sources  # noqa: F401  (registration)
