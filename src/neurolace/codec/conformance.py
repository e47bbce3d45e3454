"""Conformance suite every codec of the package passes: ``check_codec(codec)``.

A codec is any object with ``name``, ``encode(samples) -> bytes`` and
``decode(data) -> samples`` (int16, shape (n_samples, n_channels); a 1-D input
decodes as one channel). The suite round-trips the awkward cases that break
predictive coders (silence, full-scale noise, one sample, empty input, odd
lengths, every one of the 65,536 int16 values, steps and multichannel data),
and checks that foreign or truncated data raise :class:`CodecError` and
nothing else (in the scikit-learn ``check_estimator`` tradition).
"""

from __future__ import annotations

import numpy as np

from neurolace.codec.errors import CodecError
from neurolace.core.random import check_rng

__all__ = ["check_codec", "conformance_cases"]


def conformance_cases(rng: np.random.Generator, *, max_channels: int = 8) -> dict[str, np.ndarray]:
    """Named int16 test signals, shape (n_samples, n_channels).

    Parameters
    ----------
    rng : numpy.random.Generator
    max_channels : int
        Largest channel count used (the FLAC baseline holds at most 8).
    """
    every_value = np.arange(-32768, 32768, dtype=np.int64)
    cases = {
        "empty": np.zeros((0, 1), dtype=np.int16),
        "empty, 3 channels": np.zeros((0, 3), dtype=np.int16),
        "one sample": np.array([[-1234]], dtype=np.int16),
        "one sample at int16 minimum": np.array([[-32768]], dtype=np.int16),
        "silence": np.zeros((4099, 1), dtype=np.int16),
        "constant full scale": np.full((257, 1), 32767, dtype=np.int16),
        "full-scale noise": rng.integers(-32768, 32768, size=(5001, 1)).astype(np.int16),
        "all 65536 values, shuffled": rng.permutation(every_value).astype(np.int16)[:, None],
        "all 65536 values, ramp": every_value.astype(np.int16)[:, None],
        "alternating extremes": np.tile(np.array([-32768, 32767], dtype=np.int16), 501)[:, None],
        "odd length 10-bit grid": (64 * rng.integers(-512, 512, size=(1023, 1))).astype(np.int16),
        "sine plus noise": np.rint(3000 * np.sin(np.arange(7777) / 37.0) + rng.normal(0, 40, 7777)).astype(
            np.int16
        )[:, None],
        "multichannel, odd sizes": np.rint(
            np.cumsum(rng.normal(0, 30, size=(3001, min(5, max_channels))), axis=0)
        )
        .clip(-32768, 32767)
        .astype(np.int16),
        "multichannel, one constant channel": np.column_stack(
            [np.zeros(999, dtype=np.int16), rng.integers(-100, 100, 999).astype(np.int16)]
        ),
    }
    return cases


def check_codec(codec, *, rng: np.random.Generator | int | None = 0, max_channels: int = 8) -> dict[str, int]:
    """Run the conformance suite; raise AssertionError naming the failing case.

    Parameters
    ----------
    codec : object
        Has ``name``, ``encode`` and ``decode``.
    rng : Generator, int or None
        Seed of the random test signals.
    max_channels : int
        Largest channel count to test.

    Returns
    -------
    dict
        Compressed size in bytes of each case.
    """
    generator = check_rng(rng)
    sizes = {}
    for case, samples in conformance_cases(generator, max_channels=max_channels).items():
        data = codec.encode(samples)
        assert isinstance(data, bytes), (
            f"{codec.name}: encode({case!r}) returned {type(data).__name__}, not bytes"
        )
        decoded = codec.decode(data)
        assert isinstance(decoded, np.ndarray) and decoded.dtype == np.int16, (
            f"{codec.name}: decode({case!r}) returned {getattr(decoded, 'dtype', type(decoded))}, not int16"
        )
        assert decoded.shape == samples.shape, (
            f"{codec.name}: {case!r} decoded to shape {decoded.shape}, not {samples.shape}"
        )
        mismatches = np.flatnonzero((decoded != samples).any(axis=1)) if samples.size else []
        assert len(mismatches) == 0, (
            f"{codec.name}: {case!r} is not lossless (first wrong sample {mismatches[0]})"
        )
        sizes[case] = len(data)
    one_channel = codec.decode(codec.encode(np.arange(10, dtype=np.int16)))
    assert one_channel.shape == (10, 1), (
        f"{codec.name}: a 1-D input must decode as one channel, got {one_channel.shape}"
    )
    reference = codec.encode(conformance_cases(check_rng(1))["sine plus noise"])
    for label, bad in {
        "empty bytes": b"",
        "foreign magic": b"RIFF" + reference[4:],
        "truncated to half": reference[: len(reference) // 2],
        "truncated by one byte": reference[:-1],
    }.items():
        try:
            codec.decode(bad)
        except CodecError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"{codec.name}: decode({label}) raised {type(exc).__name__}, not CodecError: {exc}"
            ) from exc
        raise AssertionError(f"{codec.name}: decode({label}) returned data instead of raising CodecError")
    try:
        codec.encode(np.zeros(4, dtype=np.float32))
    except CodecError:
        pass
    else:
        raise AssertionError(f"{codec.name}: encoding float32 samples must raise CodecError")
    return sizes
