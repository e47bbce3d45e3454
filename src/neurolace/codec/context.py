"""Code-popularity context: the residual's distribution given the predicted code.

The N1 ADC's codes are not equally wide (differential non-linearity): after
dividing the code histogram of the 496 public clips by its 9-code moving
average, single codes sit anywhere from 0.3x to 1.9x their neighbours (std
0.39). A residual histogram alone cannot see that, because the same residual
lands on a wide code after one prediction and on a narrow one after the next.
The context mode therefore codes each sample with

    P(c | pred) = f(c - pred) w(c) / Z(pred)

where ``f`` is the channel's residual histogram and ``w`` a per-code weight,
fitted jointly by iterative proportional fitting (alternately matching the
residual and the code marginals). On one eighth of the clips this lowers the
empirical cost from 4.648 to 4.551 bits/sample (-2.1 %) with unquantised ``w``;
quantised, regularised and net of the ~100 bytes per clip that store it, the
saving is 0.086 bits/sample (every 12th clip). ``w`` is stored as ``round(8 log2 w)``.

The model depends on the prediction, which the decoder knows only after the
previous sample. The current context mode (format mode 2) therefore codes with
the numba rANS coder of :mod:`.rans`, one integer row per predicted code. The
per-sample constriction loop here (:func:`decode_with_context`) only decodes
files of the first context mode (format mode 1).
"""

from __future__ import annotations

import functools
from operator import mul

import numpy as np

from neurolace.codec.bitpack import ByteReader, encode_varint
from neurolace.codec.entropy import (
    RangeDecoder,
    RangeEncoder,
    categorical,
    decode_symbols,
    fixed_geometric_model,
)
from neurolace.codec.errors import CodecError
from neurolace.codec.histogram import ResidualModel, level_weights
from neurolace.codec.lpc import LinearPredictor
from neurolace.codec.rans import PairCounts

__all__ = [
    "MAX_CONTEXT_SYMBOLS",
    "CodeWeights",
    "decode_with_context",
    "fit_code_weights",
    "model_cache",
]

#: weight levels are eighth-octaves in [-MAX_WEIGHT_LEVEL, MAX_WEIGHT_LEVEL] (0.125x .. 8x)
MAX_WEIGHT_LEVEL = 24
#: integer weight of level 0; level l weighs round(WEIGHT_ONE * 2**(l/8))
WEIGHT_ONE = 256
_WEIGHTS = np.rint(WEIGHT_ONE * 2.0 ** (np.arange(-MAX_WEIGHT_LEVEL, MAX_WEIGHT_LEVEL + 1) / 8.0)).astype(
    np.int64
)
#: residual alphabets wider than this are coded without the context (one model per prediction would be too slow)
MAX_CONTEXT_SYMBOLS = 2048
#: iterations of proportional fitting and the pseudo-count that shrinks rarely seen codes towards
#: weight 1; measured on every 12th clip, net of the stored weights: (1, 5) saves 0.0860 bits/sample,
#: (2, 0.5) 0.0853, (4, 0.5) 0.0849 -- more iterations fit noise that then costs bytes to store
FIT_ITERATIONS = 1
PSEUDO_COUNT = 5.0


@functools.cache
def _level_model():
    return fixed_geometric_model(MAX_WEIGHT_LEVEL, 200)


class CodeWeights:
    """Per-code weights ``w`` over grid codes ``[first_code, first_code + n)`` as eighth-octave levels.

    Codes outside the range weigh 1 (level 0).
    """

    def __init__(self, first_code: int, levels: np.ndarray) -> None:
        self.first_code = int(first_code)
        self.levels = np.asarray(levels, dtype=np.int64)

    def integer_weights(self, n_codes: int) -> np.ndarray:
        """Integer weight of every grid code, shape (n_codes,)."""
        weights = np.full(n_codes, WEIGHT_ONE, dtype=np.int64)
        stop = min(self.first_code + self.levels.size, n_codes)
        if stop > self.first_code:
            weights[self.first_code : stop] = _WEIGHTS[
                self.levels[: stop - self.first_code] + MAX_WEIGHT_LEVEL
            ]
        return weights

    def to_bytes(self) -> bytes:
        encoder = RangeEncoder()
        encoder.encode((self.levels + MAX_WEIGHT_LEVEL).astype(np.int32), _level_model())
        words = encoder.get_compressed()
        return (
            encode_varint(self.first_code)
            + encode_varint(self.levels.size)
            + encode_varint(words.size)
            + words.tobytes()
        )

    @classmethod
    def from_reader(cls, reader: ByteReader) -> CodeWeights:
        first_code = reader.varint(maximum=1 << 17)
        n_levels = reader.varint(maximum=1 << 17)
        n_words = reader.varint(maximum=1 << 17)
        words = np.frombuffer(reader.take(4 * n_words), dtype=np.uint32)
        levels = decode_symbols(RangeDecoder(words), _level_model(), n_levels) - MAX_WEIGHT_LEVEL
        return cls(first_code, levels)


def fit_code_weights(
    codes: np.ndarray,
    predictions: np.ndarray,
    model: ResidualModel,
    n_codes: int,
    *,
    pairs: PairCounts | None = None,
) -> CodeWeights:
    """Fit ``w`` so that ``f(c - pred) w(c) / Z(pred)`` matches the observed code counts.

    Parameters
    ----------
    codes, predictions : ndarray of int64, shape (n_samples,)
        Grid codes of one channel and their predicted codes.
    model : ResidualModel
        The channel's (quantised) residual histogram ``f``; every ``codes - predictions``
        must lie in its alphabet.
    n_codes : int
        Size of the grid-code alphabet.
    pairs : PairCounts, optional
        The (prediction, symbol) counts of these samples, if already counted.
    """
    if codes.size == 0:
        return CodeWeights(0, np.zeros(0, dtype=np.int64))
    if pairs is None:
        predictions = np.ascontiguousarray(predictions, dtype=np.int64)
        pairs = PairCounts(np.asarray(codes, dtype=np.int64) - predictions - model.low, predictions, model.n_symbols)
    first, observed = pairs.code_histogram(model.low)
    lowest_prediction, pred_counts = pairs.lowest, pairs.prediction_histogram()
    span = observed.size
    f = level_weights(model.levels).astype(np.float64)
    f /= f.sum()
    # support of prediction j (= lowest_prediction + j) starts at code pred + low, offset lo_offset + j from `first`
    lo_offset = int(lowest_prediction) + model.low - int(first)
    observed = observed.astype(np.float64)
    pred_counts = pred_counts.astype(np.float64)
    weights = np.ones(span)
    n_symbols = f.size
    for _ in range(FIT_ITERATIONS):
        padded = _embed(weights, lo_offset, n_symbols, pred_counts.size)
        # Z[j] = sum_k f[k] w[lo_offset + j + k]
        normaliser = np.correlate(padded, f, mode="valid")[: pred_counts.size]
        ratio = np.divide(pred_counts, normaliser, out=np.zeros_like(pred_counts), where=normaliser > 0)
        expected_padded = np.convolve(ratio, f)  # position j + k
        expected = _unembed(expected_padded, lo_offset, span) * weights
        weights = weights * (observed + PSEUDO_COUNT) / (expected + PSEUDO_COUNT)
        weights /= np.exp(np.mean(np.log(weights[observed > 0]))) if (observed > 0).any() else 1.0
    levels = np.clip(np.rint(8.0 * np.log2(np.maximum(weights, 1e-9))), -MAX_WEIGHT_LEVEL, MAX_WEIGHT_LEVEL)
    return CodeWeights(first, levels.astype(np.int64))


def _embed(weights: np.ndarray, lo_offset: int, n_symbols: int, n_predictions: int) -> np.ndarray:
    """Weights on positions ``lo_offset + j + k`` for j < n_predictions, k < n_symbols (1 outside [first, last])."""
    length = n_predictions + n_symbols - 1
    out = np.ones(length)
    start = -lo_offset  # position in `out` of code `first`
    a, b = max(start, 0), min(start + weights.size, length)
    if b > a:
        out[a:b] = weights[a - start : b - start]
    return out


def _unembed(values: np.ndarray, lo_offset: int, span: int) -> np.ndarray:
    out = np.zeros(span)
    start = -lo_offset
    a, b = max(start, 0), min(start + span, values.size)
    if b > a:
        out[a - start : b - start] = values[a:b]
    return out


class _ModelCache:
    """Categorical model of the residual symbol for each predicted code, built on first use."""

    def __init__(self, model: ResidualModel, weights: CodeWeights, n_codes: int) -> None:
        self.f = level_weights(model.levels)
        self.low = model.low
        self.code_weights = np.concatenate([weights.integer_weights(n_codes), np.zeros(1, dtype=np.int64)])
        self.n_codes = n_codes
        self.cache: dict[int, object] = {}

    def __call__(self, prediction: int):
        model = self.cache.get(prediction)
        if model is None:
            codes = prediction + self.low + np.arange(self.f.size)
            inside = (codes >= 0) & (codes < self.n_codes)
            weights = self.f * self.code_weights[np.where(inside, codes, self.n_codes)]
            if not weights.any():
                weights = self.f.copy()
            model = categorical(weights)
            self.cache[prediction] = model
        return model


def decode_with_context(
    decoder, n_samples: int, predictor: LinearPredictor, cache: _ModelCache, n_codes: int
) -> np.ndarray:
    """Decode one frame of one channel: grid codes, shape (n_samples,), history starting empty."""
    coefficients = predictor.coefficients.tolist()
    order = len(coefficients)
    shift = predictor.shift
    half = (1 << shift) >> 1
    mean_code = predictor.mean_code
    low = cache.low
    history = [0] * order  # centred codes, most recent first
    out = [0] * n_samples
    top = n_codes - 1
    models = cache.cache
    build = cache
    decode = decoder.decode
    try:
        for t in range(n_samples):
            prediction = mean_code + ((sum(map(mul, coefficients, history)) + half) >> shift)
            prediction = 0 if prediction < 0 else (min(prediction, top))
            model = models.get(prediction)
            if model is None:
                model = build(prediction)
            code = prediction + low + decode(model)
            out[t] = code
            if order:
                history.pop()
                history.insert(0, code - mean_code)
    except CodecError:
        raise
    except Exception as exc:  # noqa: BLE001 - constriction reports exhausted or invalid data with plain exceptions
        raise CodecError(f"corrupt compressed payload: the range decoder failed ({exc})") from None
    return np.asarray(out, dtype=np.int64)


def model_cache(model: ResidualModel, weights: CodeWeights, n_codes: int) -> _ModelCache:
    """The per-prediction model cache shared by encoder and decoder."""
    return _ModelCache(model, weights, n_codes)
