"""The recorder node: every stream it reads goes to a crash-safe record file (or the vault), then to NWB."""

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

    With ``vault = true`` the record goes into the encrypted vault of the site
    (``site``; empty: ``$NEUROLACE_SITE_DIR`` or ``./out/site``) as participant
    ``participant``'s entry named after ``path``'s file name, one sealed chunk per
    block, and the NWB export goes into the vault too (built in memory). The
    passphrase comes from ``NEUROLACE_SITE_PASSPHRASE`` or the OS keyring. The
    site's audit log gets ``record_start`` and ``record_end``.
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
        "vault": Parameter(bool, False, "record into the site's encrypted vault (needs participant)"),
        "participant": Parameter(str, "", "participant id whose vault holds the record (with vault = true)"),
        "site": Parameter(str, "", "site directory of the vault ('' : $NEUROLACE_SITE_DIR or ./out/site)"),
    }

    def setup(self) -> None:
        self.audit = None
        self.nwb_report = None
        if self.params["vault"]:
            requested = self._vault_target()
        elif self.params["participant"]:
            raise InvalidInputError(
                f"recorder {self.name}: participant = {self.params['participant']!r} needs vault = true"
            )
        else:
            requested = Path(self.params["path"])
            if requested.is_dir():
                raise InvalidInputError(
                    f"recorder path {requested} is a directory; expected a record file such as "
                    f"{requested / 'run.nlrec'}"
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
        if self.audit is not None:
            self.audit.append("record_start", actor=self.actor, participant_id=self.path.participant_id,
                              name=self.path.name)

    def _vault_target(self):
        """Open the site's vault (and its audit log); the entry the record goes to."""
        from neurolace.privacy.audit import AuditLog
        from neurolace.privacy.site import check_name, check_participant_id, resolve_site_dir
        from neurolace.privacy.vault import Vault

        if not self.params["participant"]:
            raise InvalidInputError(f"recorder {self.name}: vault = true needs participant = \"<id>\"")
        participant = check_participant_id(self.params["participant"])
        site = resolve_site_dir(self.params["site"] or None)
        name = check_name(Path(self.params["path"]).name)
        self.audit = AuditLog.for_site(site)
        self.actor = f"recorder:{self.context.extra.get('session', '') or 'session'}/{self.name}"
        vault = Vault.open(site, audit=self.audit.append, actor=self.actor)
        return vault.ref(participant, name)

    def on_message(self, port: str, message: Message) -> None:
        self.writer.append(message)

    def on_idle(self) -> None:
        self.writer.poll()

    def teardown(self) -> None:
        self.writer.close()
        nwb_path = self.params["nwb_path"]
        target = None
        if nwb_path.lower() != "none":
            if isinstance(self.path, Path):
                target = Path(nwb_path) if nwb_path else self.path.with_suffix(".nwb")
            else:  # a vault entry: the NWB export is an entry beside it
                stem = Path(nwb_path).name if nwb_path else str(Path(self.path.name).with_suffix(".nwb"))
                target = next_free_record_path(self.path.vault.ref(self.path.participant_id, stem))
            report = record_to_nwb(self.path, target, raw_fs_hz=self.params["raw_fs_hz"])
            self.nwb_report = {"nwb_path": str(target), "recovery": report.describe()}
        if self.audit is not None:
            self.audit.append(
                "record_end", actor=self.actor, participant_id=self.path.participant_id, name=self.path.name,
                blocks=self.writer.blocks, messages=self.writer.messages,
                nwb=None if target is None else target.name,
            )

    def summary(self) -> dict:
        return {
            "vault": bool(self.params["vault"]),
            "record_path": str(self.path),
            "blocks": self.writer.blocks,
            "messages": self.writer.messages,
            "bytes": self.writer.bytes_written,
            "nwb": self.nwb_report,
        }
