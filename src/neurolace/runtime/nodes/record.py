"""The recorder node: every stream it reads goes to a crash-safe record file, then to NWB."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from neurolace.core.errors import InvalidInputError
from neurolace.runtime.messages import Message
from neurolace.runtime.node import Node, Parameter, Port, register_node
from neurolace.runtime.recorder import RecordWriter, next_free_record_path, record_to_nwb

__all__ = ["RecorderNode"]


@register_node
class RecorderNode(Node):
    """Append every message of its streams to ``path`` (see :mod:`neurolace.runtime.recorder`).

    ``streams = "*"`` records every output of the session. At the end of the
    run the file is converted to NWB (``nwb_path``; empty: beside the record
    with the suffix ``.nwb``; ``"none"``: no conversion).
    """

    type_name = "recorder"
    description = "append-only checksummed record of streams, converted to NWB at the end"
    inputs: ClassVar[dict[str, Port]] = {
        "streams": Port("any", many=True, help='streams to record, or "*" for all')
    }
    outputs: ClassVar[dict[str, Port]] = {}
    parameters: ClassVar[dict[str, Parameter]] = {
        "path": Parameter(str, help="record file to write (.nlrec)"),
        "block_ms": Parameter(float, 100.0, "longest a message waits in memory", minimum=1.0),
        "fsync": Parameter(bool, True, "fsync every block"),
        "nwb_path": Parameter(str, "", "NWB file written at the end ('' beside the record, 'none' to skip)"),
        "raw_fs_hz": Parameter(
            float, 19531.25, "sample rate of raw streams, for NWB timestamps", minimum=1e-6
        ),
    }

    def setup(self) -> None:
        requested = Path(self.params["path"])
        if requested.is_dir():
            raise InvalidInputError(
                f"recorder path {requested} is a directory; expected a record file such as {requested / 'run.nlrec'}"
            )
        # never overwrite what an earlier run or an earlier instance of this node recorded
        self.path = next_free_record_path(requested)
        if self.path != requested:
            self.context.log("record_renamed", requested=str(requested), path=str(self.path))
        self.writer = RecordWriter(
            self.path,
            header={"session": self.context.extra.get("session", ""), "node": self.name},
            block_ms=self.params["block_ms"],
            fsync=self.params["fsync"],
        )
        self.nwb_report = None

    def on_message(self, port: str, message: Message) -> None:
        self.writer.append(message)

    def on_idle(self) -> None:
        self.writer.poll()

    def teardown(self) -> None:
        self.writer.close()
        nwb_path = self.params["nwb_path"]
        if nwb_path.lower() == "none":
            return
        target = Path(nwb_path) if nwb_path else self.path.with_suffix(".nwb")
        report = record_to_nwb(self.path, target, raw_fs_hz=self.params["raw_fs_hz"])
        self.nwb_report = {"nwb_path": str(target), "recovery": report.describe()}

    def summary(self) -> dict:
        return {
            "record_path": str(self.path),
            "blocks": self.writer.blocks,
            "messages": self.writer.messages,
            "bytes": self.writer.bytes_written,
            "nwb": self.nwb_report,
        }
