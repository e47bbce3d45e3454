"""The manifest of a batch run: one JSON file beside the outputs, rewritten atomically as files complete.

Schema ``neurolace.batch.manifest/1`` (docs/batch.md shows an example)::

    {"schema": "neurolace.batch.manifest/1", "operation": "detect", "options": {...},
     "options_sha256": "...", "created_unix_s": ..., "updated_unix_s": ...,
     "totals": {"n_files", "n_ok", "n_failed", "n_skipped", "input_bytes", "task_seconds"},
     "files": {"<input path>": {
         "status": "ok" | "failed",
         "input": {"path", "size_bytes", "mtime_ns"},
         "outputs": [{"path", "sha256", "size_bytes"}],
         "options_sha256": "...", "n_tasks", "n_chunks", "redone_chunks",
         "task_seconds", "wall_seconds", "workers": [...], "peak_rss_bytes",
         "summary": {...}, "error": null | {"type", "message"}, "finished_unix_s"}}}

The manifest is saved when a file completes and at least :data:`SAVE_INTERVAL_S` has passed since
the last save, and always at the end of the run (also when it is interrupted). A file counts as done on a re-run only if its entry is ``ok`` for the same options, its input
has the size and modification time recorded, and every recorded output exists with the recorded
SHA-256: an output changed or truncated since is redone. The manifest is written through
:func:`neurolace.io.atomic.atomic_output`, so a run killed at any moment leaves the previous
complete manifest or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from neurolace.batch.errors import BatchError

__all__ = ["MANIFEST_NAME", "SAVE_INTERVAL_S", "SCHEMA", "Manifest", "input_stat"]

SCHEMA = "neurolace.batch.manifest/1"
#: Least time between two saves while files complete, s (each save rewrites and fsyncs the whole
#: manifest: after every file, a run of n files would write O(n^2) bytes). A run killed in between
#: loses at most this much of the record; those files' outputs do not verify and are redone.
SAVE_INTERVAL_S = 1.0
MANIFEST_NAME = "manifest.json"


def input_stat(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "size_bytes", "mtime_ns"}`` of an input file (what tells a re-run it changed)."""
    status = os.stat(path)
    return {"path": str(path), "size_bytes": int(status.st_size), "mtime_ns": int(status.st_mtime_ns)}


def options_digest(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


class Manifest:
    """Entries per input file, loaded from and saved to ``path``.

    Parameters
    ----------
    path : Path
        The JSON file (``OUT/manifest.json``).
    operation : str
    options : dict
        Everything that changes the outputs (chain settings, codec mode, raw-file layout).
    """

    def __init__(self, path: str | os.PathLike, operation: str, options: dict[str, Any]) -> None:
        self.path = Path(path)
        self.operation = operation
        self.options = dict(options)
        self.options_sha256 = options_digest(self.options)
        self.created_unix_s = time.time()
        self.files: dict[str, dict[str, Any]] = {}
        self.save_interval_s = SAVE_INTERVAL_S
        self._saved_at = -float("inf")
        self._skipped = 0

    @classmethod
    def open(cls, path: str | os.PathLike, operation: str, options: dict[str, Any]) -> Manifest:
        """The manifest at ``path`` if there is one for ``operation``, else a new empty one.

        Raises
        ------
        BatchError
            ``path`` holds something that is not a manifest, or one of another operation (each
            operation writes to its own folder).
        """
        manifest = cls(path, operation, options)
        if not manifest.path.exists():
            return manifest
        try:
            stored = json.loads(manifest.path.read_text())
        except (OSError, ValueError) as exc:
            raise BatchError(f"cannot read the manifest {manifest.path}: {exc}") from None
        if not isinstance(stored, dict) or stored.get("schema") != SCHEMA:
            raise BatchError(f"{manifest.path} is not a neurolace batch manifest (schema {SCHEMA!r})")
        if stored.get("operation") != operation:
            raise BatchError(
                f"{manifest.path} records a {stored.get('operation')!r} run; write {operation!r} outputs to "
                "another --out folder"
            )
        manifest.created_unix_s = float(stored.get("created_unix_s", manifest.created_unix_s))
        manifest.files = dict(stored.get("files", {}))
        return manifest

    def verified(self, input_path: str | os.PathLike, outputs: list[Path]) -> bool:
        """Whether ``input_path`` was done with these options and every output still checks out."""
        if hasattr(input_path, "read_segment"):
            return False  # generated, not stored: nothing tells a re-run it is the same
        entry = self.files.get(_key(input_path))
        if not entry or entry.get("status") != "ok" or entry.get("options_sha256") != self.options_sha256:
            return False
        try:
            if entry.get("input") != input_stat(input_path):
                return False
        except OSError:
            return False
        recorded = {item["path"]: item for item in entry.get("outputs", [])}
        if sorted(recorded) != sorted(str(path) for path in outputs):
            return False
        from neurolace.batch.tasks import file_sha256

        for item in recorded.values():
            try:
                if os.path.getsize(item["path"]) != item["size_bytes"] or file_sha256(item["path"]) != item["sha256"]:
                    return False
            except OSError:
                return False
        return True

    def record(self, input_path: str | os.PathLike, entry: dict[str, Any]) -> None:
        """Set the entry of ``input_path``; save the manifest if ``save_interval_s`` has passed since the last save."""
        self.files[_key(input_path)] = {**entry, "options_sha256": self.options_sha256,
                                       "finished_unix_s": time.time()}
        if time.monotonic() - self._saved_at >= self.save_interval_s:
            self.save()

    def totals(self, skipped: int = 0) -> dict[str, Any]:
        entries = list(self.files.values())
        return {
            "n_files": len(entries),
            "n_ok": sum(entry.get("status") == "ok" for entry in entries),
            "n_failed": sum(entry.get("status") == "failed" for entry in entries),
            "n_skipped": skipped,
            "input_bytes": sum(int(entry.get("input", {}).get("size_bytes", 0)) for entry in entries),
            "task_seconds": sum(float(entry.get("task_seconds", 0.0)) for entry in entries),
        }

    def to_json(self, skipped: int = 0) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "operation": self.operation,
            "options": self.options,
            "options_sha256": self.options_sha256,
            "created_unix_s": self.created_unix_s,
            "updated_unix_s": time.time(),
            "totals": self.totals(skipped),
            "files": self.files,
        }

    def save(self, skipped: int | None = None) -> None:
        """Write the manifest atomically (temporary file, fsync, rename)."""
        from neurolace.io.atomic import atomic_output

        if skipped is not None:
            self._skipped = skipped
        text = json.dumps(self.to_json(self._skipped), indent=1, default=_jsonable) + "\n"
        with atomic_output(self.path) as temporary:
            temporary.write_text(text)
        self._saved_at = time.monotonic()


def _key(input_path: Any) -> str:
    """The entry's key: the input's path, or the name of a generated recording."""
    return str(getattr(input_path, "name", None) if hasattr(input_path, "read_segment") else input_path)


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
