"""Thin layer over ``constriction``'s range coder: integer-frequency categorical models.

Models are built from integer frequency tables only (never from libm
results), so the encoder and the decoder derive bit-identical models on any
machine. Symbols outside a model's alphabet are the caller's job (escapes).
"""

from __future__ import annotations

import numpy as np

from neurolace.codec.errors import CodecError

__all__ = ["RangeDecoder", "RangeEncoder", "categorical", "decode_symbols", "fixed_geometric_model"]

import constriction

RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder


def categorical(frequencies: np.ndarray):
    """A constriction categorical model over ``{0, ..., len(frequencies) - 1}``.

    Parameters
    ----------
    frequencies : ndarray of int, shape (n_symbols,)
        Non-negative integer weights; zero-weight symbols still get the smallest
        representable probability (constriction's leaky quantisation), so every
        symbol of the alphabet stays encodable.
    """
    weights = np.asarray(frequencies, dtype=np.float64)
    if weights.size == 1:  # constriction needs two symbols; the padding symbol has the minimum probability
        weights = np.array([weights[0], 0.0])
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    return constriction.stream.model.Categorical(weights, perfect=False)


def fixed_geometric_model(half_width: int, decay_per_step_q8: int):
    """Symmetric two-sided geometric model over ``[-half_width, half_width]`` (symbol = value + half_width).

    The weights are integers (``2**20`` scaled, decayed by ``decay_per_step_q8 / 256``
    per step in exact integer arithmetic), so the model is the same everywhere.
    """
    weights = np.empty(2 * half_width + 1, dtype=np.int64)
    weight = 1 << 20
    for step in range(half_width + 1):
        weights[half_width + step] = weights[half_width - step] = max(weight, 1)
        weight = (weight * decay_per_step_q8) >> 8
    return categorical(weights)


def decode_symbols(decoder, model, n_symbols: int) -> np.ndarray:
    """Decode ``n_symbols`` with ``model``; constriction's own errors become :class:`CodecError`."""
    if n_symbols == 0:
        return np.zeros(0, dtype=np.int32)
    try:
        return np.asarray(decoder.decode(model, n_symbols), dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - constriction raises plain exceptions on exhausted/invalid data
        raise CodecError(f"corrupt compressed payload: the range decoder failed ({exc})") from None
