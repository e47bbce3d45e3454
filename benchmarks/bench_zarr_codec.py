"""The neurolace codec inside zarr: ratio and speed beside zarr's and numcodecs' compressors on N1 data.

Data: the WAVs of ../shared/data/neuralink-compression/wav (``--quick``: the first 16), in two layouts:

- **per clip**: each clip its own zarr array, shape (n_samples, 1), chunks of ``CHUNK_SAMPLES``
  (32768 samples, 1.68 s: the codec's frame) along time;
- **stacked**: the first ``N_STACK`` clips (64; ``--quick`` 16), cut to the shortest, as one
  (n_samples, n_clips) array, chunks (32768, n_clips): the layout of a SpikeInterface zarr recording
  (time chunks of every channel). The clips were recorded separately, so channels are independent.

Compressors: neurolace (context and fast modes), zarr 2's default (Blosc lz4, level 5, byte
shuffle), SpikeInterface's zarr default (Blosc zstd level 5, bit shuffle), Blosc zstd level 9 with
byte shuffle, Zstd levels 3 and 19, LZ4. Ratio = int16 sample bytes / bytes of the stored chunks
(zarr's JSON metadata left out); every array is read back and checked equal. Write and read MB/s of
sample bytes are CPU seconds of this process (``time.process_time``) with Blosc on one thread, after
one untimed warm-up write and read per compressor (numba loads its kernels).

Then the neurolace codec's chunk length (4096, 32768, 131072 samples: the last chunk padded by zarr
with zeros; and one chunk of exactly the clip) on the per-clip layout, and a
SpikeInterface zarr recording of the stacked clips saved with ``save(format="zarr",
compressor=NeurolaceCodec())`` against SpikeInterface's default compressor (traces bytes on disk,
read back exact).

``python -m benchmarks zarr_codec [--quick]``; writes bench-results/zarr_codec.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks._common import console, shared_data, table

CHUNK_SAMPLES = 32768
N_STACK = 64


def _compressors() -> dict:
    import zarr
    from numcodecs import LZ4, Blosc, Zstd

    from neurolace.codec.numcodecs import NeurolaceCodec

    return {
        "neurolace (context)": NeurolaceCodec(),
        "neurolace (fast)": NeurolaceCodec(mode="fast"),
        "zarr default: Blosc lz4-5 shuffle": zarr.storage.default_compressor,
        "SpikeInterface default: Blosc zstd-5 bitshuffle": Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE),
        "Blosc zstd-9 shuffle": Blosc(cname="zstd", clevel=9, shuffle=Blosc.SHUFFLE),
        "Zstd-3": Zstd(level=3),
        "Zstd-19": Zstd(level=19),
        "LZ4": LZ4(),
    }


def _clips(quick: bool) -> list[np.ndarray]:
    from neurolace.io import read_wav

    paths = sorted(shared_data("neuralink-compression", "wav").glob("*.wav"))
    if not paths:
        raise SystemExit("benchmark data missing: no WAV in ../shared/data/neuralink-compression/wav")
    return [read_wav(path).samples for path in paths[: 16 if quick else None]]


def _chunk_bytes(store) -> int:
    return sum(len(store[key]) for key in store if not key.split("/")[-1].startswith("."))


def _store_and_read(
    arrays: list[np.ndarray], compressor, chunk_samples: int | None
) -> tuple[int, float, float, bool]:
    """(stored chunk bytes, write CPU s, read CPU s, exact) of ``arrays`` each in its own zarr array.

    ``chunk_samples=None``: one chunk per array, exactly its length (zarr pads a partial chunk with
    the fill value, 0, which the codec must then code too).
    """
    import zarr

    stores = [zarr.storage.MemoryStore() for _ in arrays]
    start = time.process_time()
    for store, samples in zip(stores, arrays):
        array = zarr.create(
            shape=samples.shape, chunks=(chunk_samples or samples.shape[0], samples.shape[1]), dtype="int16",
            compressor=compressor, store=store,
        )
        array[:] = samples
    middle = time.process_time()
    restored = [zarr.open_array(store, mode="r")[:] for store in stores]
    end = time.process_time()
    exact = all(np.array_equal(a, b) for a, b in zip(arrays, restored))
    return sum(_chunk_bytes(store) for store in stores), middle - start, end - middle, exact


def _compare(arrays: list[np.ndarray], compressors: dict, chunk_samples: int | None) -> list[dict]:
    sample_bytes = sum(a.nbytes for a in arrays)
    results = []
    for name, compressor in compressors.items():
        _store_and_read(arrays[:1], compressor, chunk_samples)  # warm-up, untimed
        stored, write_s, read_s, exact = _store_and_read(arrays, compressor, chunk_samples)
        assert exact, f"{name}: zarr round trip not exact"
        results.append(
            {
                "compressor": name,
                "config": compressor.get_config(),
                "sample_bytes": sample_bytes,
                "stored_bytes": stored,
                "ratio": sample_bytes / stored,
                "write_mb_s": sample_bytes / 1e6 / max(write_s, 1e-9),
                "read_mb_s": sample_bytes / 1e6 / max(read_s, 1e-9),
                "exact": exact,
            }
        )
    return results


def _spikeinterface_zarr(stacked: np.ndarray, folder: Path) -> list[dict]:
    """Traces bytes on disk of a SpikeInterface zarr recording with the neurolace codec and SI's default."""
    import spikeinterface.core as si
    import zarr
    from spikeinterface.core.zarrextractors import get_default_zarr_compressor

    from neurolace.codec.numcodecs import NeurolaceCodec
    from neurolace.io.wav import N1_WAV_GAIN_UV

    recording = si.NumpyRecording([stacked], sampling_frequency=19531.0)
    recording.set_channel_gains(N1_WAV_GAIN_UV)
    recording.set_channel_offsets(0.0)
    rows = []
    for name, compressor in (
        ("neurolace (context)", NeurolaceCodec()),
        ("SpikeInterface default: Blosc zstd-5 bitshuffle", get_default_zarr_compressor()),
    ):
        path = folder / f"{name.split()[0].strip(':')}.zarr"
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not serializable to file": a NumpyRecording has no provenance
            recording.save(format="zarr", folder=path, compressor=compressor, n_jobs=1, progress_bar=False)
        save_s = time.perf_counter() - start
        loaded = si.load(path)
        exact = bool(np.array_equal(loaded.get_traces(), stacked))
        assert exact, f"SpikeInterface zarr with {name} not exact"
        traces = sum(p.stat().st_size for p in (path / "traces_seg0").iterdir() if not p.name.startswith("."))
        chunks = zarr.open(str(path), mode="r")["traces_seg0"].chunks
        rows.append(
            {
                "compressor": name,
                "traces_bytes": traces,
                "ratio": stacked.nbytes / traces,
                "save_wall_s": save_s,
                "chunks": list(chunks),
                "exact": exact,
            }
        )
    return rows


def run(quick: bool = False) -> dict:
    import numcodecs.blosc

    from neurolace.codec.budget import MEASURED_N1_RATIO
    from neurolace.codec.numcodecs import NeurolaceCodec

    numcodecs.blosc.set_nthreads(1)
    clips = _clips(quick)
    n_stack = min(16 if quick else N_STACK, len(clips))
    length = min(clip.shape[0] for clip in clips[:n_stack])
    stacked = np.ascontiguousarray(np.hstack([clip[:length] for clip in clips[:n_stack]]))
    compressors = _compressors()
    console.print(f"{len(clips)} clips per clip; stacked {stacked.shape}; chunks of {CHUNK_SAMPLES} samples")
    per_clip = _compare(clips, compressors, CHUNK_SAMPLES)
    stacked_results = _compare([stacked], compressors, CHUNK_SAMPLES)
    columns = ["compressor", "ratio", "write MB/s", "read MB/s"]
    for title, results in (("per clip (n, 1)", per_clip), (f"stacked {stacked.shape}", stacked_results)):
        table(
            f"zarr on N1 clips, {title}, chunks of {CHUNK_SAMPLES} samples",
            columns,
            [[r["compressor"], r["ratio"], r["write_mb_s"], r["read_mb_s"]] for r in results],
        )
    chunk_rows = []
    for chunk_samples in (4096, CHUNK_SAMPLES, 131072, None):
        result = _compare(clips, {"neurolace (context)": NeurolaceCodec()}, chunk_samples)[0]
        chunk_rows.append({"chunk_samples": chunk_samples or "whole clip", **result})
    table(
        f"neurolace codec chunk length, per clip (the WAV-file codec measures {MEASURED_N1_RATIO} with WAV headers)",
        ["chunk samples", "ratio", "write MB/s", "read MB/s"],
        [[r["chunk_samples"], r["ratio"], r["write_mb_s"], r["read_mb_s"]] for r in chunk_rows],
    )
    with tempfile.TemporaryDirectory(prefix="bench-zarr-") as folder:
        si_rows = _spikeinterface_zarr(stacked, Path(folder))
    table(
        f"SpikeInterface zarr recording {stacked.shape}, save(format='zarr', compressor=...)",
        ["compressor", "ratio", "traces bytes", "chunks", "save wall s"],
        [[r["compressor"], r["ratio"], r["traces_bytes"], str(tuple(r["chunks"])), r["save_wall_s"]] for r in si_rows],
    )
    return {
        "quick": quick,
        "n_clips": len(clips),
        "stacked_shape": list(stacked.shape),
        "chunk_samples": CHUNK_SAMPLES,
        "per_clip": per_clip,
        "stacked": stacked_results,
        "neurolace_chunk_length": chunk_rows,
        "spikeinterface_zarr": si_rows,
        "time_note": "CPU s of this process (process_time), Blosc on one thread; SpikeInterface save is wall s",
    }
