"""The work one Dask task does: one file through the codec, or one time range through the chain.

Every function here runs on a worker, takes plain values (paths, settings, sample ranges) and
returns a small dict, so a task can run on any machine that sees the input and output paths.
Outputs are published with :func:`neurolace.io.atomic.atomic_output` (temporary file, fsync,
rename): a task killed half-way leaves nothing under the output's name.

The codec tasks call the functions of ``neurolace codec encode/decode`` (and ``codec bench``'s
:func:`~neurolace.codec.evaluate.evaluate_codecs`); the chain tasks run the
:class:`~neurolace.dsp.chain.SignalChain` of ``neurolace detect`` block by block on the same
20 ms grid as :func:`~neurolace.dsp.chain.run_signal_chain`, so their outputs are the bytes the
single-file commands write:

- ``detect``: CSV ``sample_index,channel``, one detection per row (``neurolace detect --out``);
- ``features``: ``.npy`` of float64, shape (n_bins, 2 * n_channels), crossing counts then
  spike-band power per 20 ms bin, i.e. ``np.save(path, run_signal_chain(recording).features.data)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.batch.chunking import ChainSettings
from neurolace.batch.sources import RecordingSource
from neurolace.io.events_csv import EVENTS_HEADER, write_events_csv

__all__ = [
    "chain_range_task",
    "compress_task",
    "decompress_task",
    "evaluate_task",
    "file_sha256",
    "first_noise_task",
    "merge_parts",
    "write_events_csv",
]



def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _peak_rss_bytes() -> int:
    """Peak resident memory of this worker process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if os.uname().sysname == "Darwin" else peak * 1024)


def _publish(path: Path, write) -> dict[str, Any]:
    """Write ``path`` atomically with ``write(temporary_path)``; return its name, size and checksum."""
    from neurolace.io.atomic import atomic_output

    with atomic_output(path) as temporary:
        write(temporary)
        digest = file_sha256(temporary)
        size = temporary.stat().st_size
    return {"path": str(path), "sha256": digest, "size_bytes": size}


def _done(result: dict[str, Any], started: float, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **result,
        "outputs": outputs,
        "seconds": time.perf_counter() - started,
        "worker": _worker_name(),
        "peak_rss_bytes": _peak_rss_bytes(),
    }


# -- codec -------------------------------------------------------------------------------------

def compress_task(input_path: str, output_path: str, *, mode: str = "context", frame_samples: int | None = None
                  ) -> dict[str, Any]:
    """``neurolace codec encode INPUT OUTPUT`` (WAV in, ``.nlx`` out)."""
    from neurolace.codec.neural import DEFAULT_FRAME_SAMPLES, encode_wav
    from neurolace.io.paths import check_input_file

    started = time.perf_counter()
    data = check_input_file(input_path, "WAV file").read_bytes()
    packed = encode_wav(data, frame_samples=frame_samples or DEFAULT_FRAME_SAMPLES, mode=mode)
    output = _publish(Path(output_path), lambda temporary: temporary.write_bytes(packed))
    summary = {"input_bytes": len(data), "output_bytes": len(packed), "ratio": len(data) / len(packed)}
    return _done({"summary": summary}, started, [output])


def decompress_task(input_path: str, output_path: str) -> dict[str, Any]:
    """``neurolace codec decode INPUT OUTPUT`` (``.nlx`` in, the exact WAV out)."""
    from neurolace.codec.neural import decode_wav
    from neurolace.io.paths import check_input_file

    started = time.perf_counter()
    data = check_input_file(input_path, "codec file").read_bytes()
    restored = decode_wav(data)
    output = _publish(Path(output_path), lambda temporary: temporary.write_bytes(restored))
    return _done({"summary": {"input_bytes": len(data), "output_bytes": len(restored)}}, started, [output])


def evaluate_task(input_path: str, output_path: str, *, mode: str = "context") -> dict[str, Any]:
    """Ratio, losslessness and CPU speed of the codec on one WAV (``codec bench``'s measurement), as JSON."""
    from neurolace.codec.evaluate import evaluate_codecs
    from neurolace.codec.neural import NeuralCodec

    started = time.perf_counter()
    (row,) = evaluate_codecs([input_path], [NeuralCodec(mode=mode)])
    report = {"input": str(input_path), **row}
    output = _publish(Path(output_path), lambda temporary: temporary.write_text(json.dumps(report, indent=1) + "\n"))
    summary = {key: row[key] for key in ("input_bytes", "compressed_bytes", "ratio", "lossless")}
    return _done({"summary": summary}, started, [output])


# -- signal chain ------------------------------------------------------------------------------

def first_noise_task(source: RecordingSource, settings: ChainSettings) -> np.ndarray:
    """Noise of each channel in µV from the first noise window, as the whole pass estimates it.

    The estimate is ``median(|x|)/0.6745`` of the chain's filtered, referenced output over its
    first ``noise_window_s``; that output depends on the first window of input only.
    """
    from neurolace.dsp.chain import SignalChain

    window = max(1, round(settings.noise_window_s * source.fs_hz))  # NoiseEstimator's window
    segment = source.read_segment(0, min(source.n_samples, window))
    chain = SignalChain.for_recording(segment, **settings.chain_options())
    for start, stop in _blocks(0, segment.n_samples, _block_samples(source.fs_hz)):
        chain.process(segment.samples[start:stop])
    if chain.noise_uv is None:  # a recording shorter than one window: estimated at its end
        chain.finish()
    return np.asarray(chain.noise_uv, dtype=np.float64)


def _block_samples(fs_hz: float) -> int:
    from neurolace.dsp.defaults import DEFAULT_CHUNK_MS

    return max(1, round(DEFAULT_CHUNK_MS * fs_hz / 1000.0))


def _blocks(start: int, stop: int, block: int):
    """``[a, b)`` blocks of ``block`` samples on the global grid (multiples of ``block``) covering the range."""
    position = start
    while position < stop:
        end = min(stop, (position // block + 1) * block)
        yield position, end
        position = end


def _events_in(sample_index: np.ndarray, channel_index: np.ndarray, start: int, stop: int) -> np.ndarray:
    keep = (sample_index >= start) & (sample_index < stop)
    return np.column_stack([sample_index[keep], channel_index[keep]]).astype(np.int64)


def chain_range_task(
    source: RecordingSource,
    settings: ChainSettings,
    *,
    kind: str,
    start: int,
    stop: int,
    read_start: int,
    read_stop: int,
    noise_uv: np.ndarray | None,
    output_path: str,
    whole: bool,
) -> dict[str, Any]:
    """Run the chain over ``[read_start, read_stop)`` and write what falls in the core ``[start, stop)``.

    Parameters
    ----------
    source : RecordingSource
    settings : ChainSettings
    kind : {"detect", "features"}
    start, stop : int
        The core, in samples of the recording.
    read_start, read_stop : int
        The range read (core plus margins), ``read_start`` on the 20 ms block grid.
    noise_uv : ndarray of float64, shape (n_channels,), or None
        Noise of the first window (:func:`first_noise_task`); None when ``read_start == 0``.
    output_path : str
        ``whole``: the final output (CSV with its header, or ``.npy``); else a part for
        :func:`merge_parts` (CSV rows without a header, or ``.npy`` of the core's bins).
    whole : bool

    Returns
    -------
    dict
        ``outputs``, ``summary`` (``n_spikes`` or ``n_bins`` of the core), ``seam``: the events in
        the dead time before ``start`` and before ``stop`` (``head_events``, ``tail_events``, arrays
        of (sample, channel)) and the spike-band-power filter state at ``start`` and ``stop``.
    """
    from neurolace.core.events import SpikeEvents
    from neurolace.dsp.chain import SignalChain

    started = time.perf_counter()
    recording = source.read_segment(read_start, read_stop)
    chain = SignalChain.for_recording(recording, **settings.chain_options())
    if noise_uv is not None:
        chain.noise.noise_uv = np.asarray(noise_uv, dtype=np.float64)  # the whole pass's first window
    block = _block_samples(source.fs_hz)
    event_parts, feature_parts, states = [], [], {}
    for block_start, block_stop in _blocks(read_start, read_stop, block):
        output = chain.process(recording.samples[block_start - read_start : block_stop - read_start])
        event_parts.append(output.events)
        feature_parts.append((output.features.start_sample, output.features.data))
        for name, boundary in (("head_state", start), ("tail_state", stop)):
            if block_stop == boundary and chain.sbp_bandpass is not None and chain.sbp_bandpass.state is not None:
                states[name] = chain.sbp_bandpass.state.copy()
    output = chain.finish()
    event_parts.append(output.events)
    feature_parts.append((output.features.start_sample, output.features.data))
    events = SpikeEvents.concatenate(event_parts)
    sample_index = events.sample_index + read_start
    channel_index = events.channel_index
    dead = chain.detector.dead_samples
    seam = {
        "head_events": _events_in(sample_index, channel_index, start - dead, start),
        "tail_events": _events_in(sample_index, channel_index, stop - dead, stop),
        "head_state": states.get("head_state"),
        "tail_state": states.get("tail_state"),
    }
    path = Path(output_path)
    if kind == "detect":
        core = (sample_index >= start) & (sample_index < stop)
        rows = (sample_index[core], channel_index[core])
        outputs = [_publish(path, lambda temporary: write_events_csv(temporary, *rows, header=whole))]
        summary = {"n_spikes": int(core.sum()), "n_channels": source.n_channels}
    else:
        bin_samples = chain.sbp.bin_samples
        first_bin, last_bin = start // bin_samples, -(-stop // bin_samples)
        kept = []
        for local_start, data in feature_parts:
            global_first = (read_start + local_start) // bin_samples
            bins = np.arange(global_first, global_first + data.shape[0])
            kept.append(data[(bins >= first_bin) & (bins < last_bin)])
        table = np.concatenate(kept) if kept else np.zeros((0, 2 * source.n_channels))
        outputs = [_publish(path, lambda temporary: _save_npy(temporary, table))]
        summary = {"n_bins": int(table.shape[0]), "n_channels": source.n_channels}
    summary["seconds_of_recording"] = (stop - start) / source.fs_hz
    return _done({"summary": summary, "seam": seam, "core": [start, stop], "read": [read_start, read_stop]},
                 started, outputs)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as stream:  # a file object: np.save would append ".npy" to a ".part" name
        np.save(stream, array)


def merge_parts(kind: str, part_paths: list[str], output_path: str) -> dict[str, Any]:
    """Join the parts of a chunked file into the output one pass would write, byte for byte.

    ``detect``: the CSV header, then each part's rows. ``features``: one ``.npy`` header for the
    total shape (what :func:`numpy.save` writes), then each part's rows, read part by part.
    """
    def write_csv(temporary: Path) -> None:
        with open(temporary, "w") as out:
            out.write(EVENTS_HEADER + "\n")
            for part in part_paths:
                with open(part) as stream:
                    shutil.copyfileobj(stream, out, 1 << 20)

    def write_npy(temporary: Path) -> None:
        arrays = [np.load(part, mmap_mode="r") for part in part_paths]
        n_rows = sum(array.shape[0] for array in arrays)
        width = arrays[0].shape[1]
        merged = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float64, shape=(n_rows, width))
        row = 0
        for array in arrays:
            merged[row : row + array.shape[0]] = array
            row += array.shape[0]
        merged.flush()
        del merged

    return _publish(Path(output_path), write_csv if kind == "detect" else write_npy)
