"""Built-in node types; importing this package registers them (see :func:`neurolace.runtime.node.node_types`)."""

from neurolace.runtime.nodes import effectors, link, loop, mask, processing, record, sources  # noqa: F401  (registration)
