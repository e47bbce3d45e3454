"""Batch work over many recordings on Dask: compress, decompress, evaluate, detect, features.

One task per file, or per time chunk of a long recording (with margins, seams checked, merged
bit for bit into what one pass writes); a manifest of inputs, outputs, checksums, timings and
errors, rewritten atomically as files complete (at most once a second), so a re-run skips what
is done and redoes what is missing or damaged. ``neurolace batch`` is the command; :func:`run_batch` the library call. Dask is imported
only when a run starts (extra ``batch``).

==========================  ==================================================================
module                      owns
==========================  ==================================================================
:mod:`.runner`              :func:`run_batch`, the cluster (:func:`open_client`), the report
:mod:`.tasks`               the work of one task (codec calls, one chain range, merges)
:mod:`.chunking`            time chunks and their margins (:func:`plan_chunks`)
:mod:`.sources`             inputs expanded to files; a recording read range by range
:mod:`.manifest`            the JSON manifest and what "done" means on a re-run
==========================  ==================================================================
"""

from __future__ import annotations

from neurolace.batch.chunking import DEFAULT_CHUNK_S, ChainSettings, ChunkPlan, plan_chunks
from neurolace.batch.errors import BatchError
from neurolace.batch.manifest import MANIFEST_NAME, Manifest
from neurolace.batch.runner import EXIT_SOME_FAILED, OPERATIONS, BatchReport, RawLayout, open_client, run_batch
from neurolace.batch.sources import RecordingSource, expand_inputs

__all__ = [
    "DEFAULT_CHUNK_S",
    "EXIT_SOME_FAILED",
    "MANIFEST_NAME",
    "OPERATIONS",
    "BatchError",
    "BatchReport",
    "ChainSettings",
    "ChunkPlan",
    "Manifest",
    "RawLayout",
    "RecordingSource",
    "expand_inputs",
    "open_client",
    "plan_chunks",
    "run_batch",
]
