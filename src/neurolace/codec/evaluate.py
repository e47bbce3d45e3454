"""Measure codecs on WAV files the way the compression challenge does.

Ratio = total bytes of the WAV files / total compressed bytes (headers
included); every file must round-trip (byte for byte for neurolace's WAV
format, sample for sample plus the stored header for the other codecs).
Speeds are MB/s of WAV input on one core (BLAS limited to one thread; numba
kernels are single-threaded), reported as the total and as the median over
files. Times are CPU seconds of this process (``time.process_time``): on a
shared machine the wall clock also counts time spent waiting for a core.
Each codec first encodes and decodes the first file once, untimed (numba
loads its compiled kernels from the cache on first use, ~0.2-0.5 s once per
process); that first round trip is reported separately as ``first_call_s``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from neurolace.codec.errors import CodecError
from neurolace.core.errors import NeurolaceError
from neurolace.codec.neural import NeuralCodec

__all__ = ["default_codecs", "evaluate_codecs", "load_wav_samples"]


def load_wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    """int16 samples (n_samples, n_channels) of a WAV file and the byte count around them."""
    from neurolace.io.wav import parse_wav_header

    header = parse_wav_header(data)
    samples = np.frombuffer(data, dtype="<i2", count=header.data_size_bytes // 2, offset=header.data_offset)
    return samples.reshape(-1, header.n_channels).astype(np.int16), len(data) - header.data_size_bytes


def default_codecs() -> list:
    """neurolace (context and fast modes) and every baseline that imports."""
    from neurolace.codec.baselines import baseline_codecs

    return [NeuralCodec(mode="context"), NeuralCodec(mode="fast"), *baseline_codecs()]


def _round_trip(codec, data: bytes) -> tuple[int, bool, tuple[float, float, float]]:
    """Code one WAV file with ``codec``: (stored bytes, lossless, CPU clock before, between and after)."""
    if isinstance(codec, NeuralCodec):
        start = time.process_time()
        packed = codec.encode_wav(data)
        middle = time.process_time()
        restored = codec.decode_wav(packed)
        end = time.process_time()
        return len(packed), restored == data, (start, middle, end)
    samples, envelope_bytes = load_wav_samples(data)
    start = time.process_time()
    packed = codec.encode(samples)
    middle = time.process_time()
    restored = codec.decode(packed)
    end = time.process_time()
    return len(packed) + envelope_bytes, bool(np.array_equal(restored, samples)), (start, middle, end)


def evaluate_codecs(
    paths: Sequence[str | os.PathLike],
    codecs: Sequence | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """Compress and decompress every file with every codec; check losslessness.

    Parameters
    ----------
    paths : sequence of path
        WAV files (16-bit PCM).
    codecs : sequence, optional
        Codec objects (default :func:`default_codecs`). :class:`NeuralCodec`
        instances code whole WAV files; the others code the samples and the
        WAV header is counted at its stored size.
    progress : callable, optional
        Called as ``progress(codec_name, files_done, n_files)``.

    Returns
    -------
    list of dict
        Per codec: ``name``, ``ratio``, ``input_bytes``, ``compressed_bytes``,
        ``encode_mb_s``, ``decode_mb_s`` (totals), ``encode_mb_s_median``,
        ``decode_mb_s_median`` (over files), ``lossless`` (bool), ``n_files``,
        ``first_call_s`` (CPU s of the untimed warm-up round trip of the first file).
    """
    from threadpoolctl import threadpool_limits

    codecs = default_codecs() if codecs is None else list(codecs)
    names = [Path(p) for p in paths]
    files = []
    for path in names:
        try:
            files.append(path.read_bytes())
        except OSError as exc:
            raise CodecError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not files:
        raise CodecError("paths must name at least one WAV file, got none")
    results = []
    with threadpool_limits(limits=1):
        for codec in codecs:
            start = time.process_time()
            try:  # untimed warm-up (numba compiles, tables build)
                _round_trip(codec, files[0])
            except NeurolaceError as exc:
                raise CodecError(f"{names[0]}: {exc}") from exc
            first_call_s = time.process_time() - start
            input_bytes = compressed_bytes = 0
            encode_s, decode_s, encode_rates, decode_rates = [], [], [], []
            lossless = True
            for done, data in enumerate(files):
                try:
                    size, same, (start, middle, end) = _round_trip(codec, data)
                except NeurolaceError as exc:  # a bad file is named, not only described
                    raise CodecError(f"{names[done]}: {exc}") from exc
                lossless &= same
                input_bytes += len(data)
                compressed_bytes += size
                encode_s.append(middle - start)
                decode_s.append(end - middle)
                encode_rates.append(len(data) / 1e6 / max(middle - start, 1e-9))
                decode_rates.append(len(data) / 1e6 / max(end - middle, 1e-9))
                if progress is not None:
                    progress(codec.name, done + 1, len(files))
            results.append(
                {
                    "name": codec.name,
                    "n_files": len(files),
                    "input_bytes": input_bytes,
                    "compressed_bytes": compressed_bytes,
                    "ratio": input_bytes / compressed_bytes,
                    "encode_mb_s": input_bytes / 1e6 / sum(encode_s),
                    "decode_mb_s": input_bytes / 1e6 / sum(decode_s),
                    "encode_mb_s_median": statistics.median(encode_rates),
                    "decode_mb_s_median": statistics.median(decode_rates),
                    "lossless": bool(lossless),
                    "first_call_s": first_call_s,
                }
            )
    return results
