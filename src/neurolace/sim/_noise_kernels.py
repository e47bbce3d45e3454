"""Numba kernels of :mod:`neurolace.sim.background`: Gaussian noise from raw bits, filtered, summed, quantised.

Kept apart so that importing :mod:`neurolace.sim` does not import numba; the
background generator loads this module on first use.

Why a kernel (profile of ``simulate_implant``, 1024 channels, AVX2 code paths,
CPU seconds per simulated second): numpy's float32 ``standard_normal`` cost
0.17 per stream and the background drew two (thermal noise and the hash's
input), 0.35 of a 0.67 total; numpy's quantisation passes another 0.12. The raw
words those draws consume cost only 0.017 (``random_raw``); the ziggurat below
turns them into normals, filters them, adds LFP and spikes and writes the ADC
codes in one pass: 0.017 s per 4096-sample chunk (0.08 per simulated second)
against 0.61 s for the numpy reference; whole run 0.67 -> 0.32
(``python -m benchmarks sim --avx2`` measures all of these).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def normal_slow_path(layer, magnitude, scale, height, tail_start, rng):  # pragma: no cover - numba
    """The ziggurat's rare branch: the base layer's tail, or a wedge (accept, else a fresh normal).

    ``layer`` and ``magnitude`` are the word's 8 layer bits and 23 magnitude bits;
    the result is non-negative before the caller applies the sign bit, except
    for a fresh draw, which is symmetric already. Uniforms and fresh draws come
    from ``rng`` (numpy ``Generator``), in call order.
    """
    if layer == 0:
        # Tail beyond tail_start (Marsaglia 1964, as in Marsaglia & Tsang 2000, J Stat Softw 5(8)).
        while True:
            x = -math.log(1.0 - rng.random()) / tail_start
            y = -math.log(1.0 - rng.random())
            if 2.0 * y > x * x:
                return tail_start + x
    x = magnitude * scale[layer]
    if height[layer] + rng.random() * (height[layer + 1] - height[layer]) < math.exp(-0.5 * x * x):
        return x
    return rng.standard_normal()


@numba.njit(cache=True, nogil=True)
def render_rows(
    out,
    add,
    words,
    accept,
    scale,
    height,
    tail_start,
    rng,
    numerators,
    denominator,
    state,
    low,
    offset,
    decimation,
    inverse_gain,
    mid,
    top,
    quantise,
):  # pragma: no cover - numba
    """See :func:`neurolace.sim.background.render_numpy` (the reference, same arguments)."""
    n, n_channels = out.shape
    a1 = denominator[1]
    a2 = denominator[2]
    normal = np.empty(n_channels)
    for i in range(n):
        for c in range(n_channels):
            word = np.int64(words[i, c])
            layer = word & 0xFF
            magnitude = word >> 9
            if magnitude < accept[layer]:
                value = magnitude * scale[layer]
            else:
                value = normal_slow_path(layer, magnitude, scale, height, tail_start, rng)
            normal[c] = -value if word & 0x100 else value
        position = offset + i
        index = position // decimation
        fraction = np.float32((position % decimation) / decimation)
        for c in range(n_channels):
            # One second-order section per channel, transposed direct form II (as scipy's lfilter).
            x = normal[c]
            y = numerators[0, c] * x + state[0, c]
            state[0, c] = numerators[1, c] * x - a1 * y + state[1, c]
            state[1, c] = numerators[2, c] * x - a2 * y
            left = low[index, c]
            value32 = np.float32(y) + (left + fraction * (low[index + 1, c] - left)) + add[i, c]
            if quantise:
                out[i, c] = min(max(np.rint(value32 * inverse_gain + mid), np.float32(0.0)), top)
            else:
                out[i, c] = value32
