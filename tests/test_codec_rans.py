"""The context mode's rANS coder: known code lengths, exact rows, exact float kernels, old files, damage."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolace.codec import CodecError, NeuralCodec
from neurolace.codec.context import CodeWeights
from neurolace.codec.histogram import ResidualModel
from neurolace.codec.lpc import (
    LinearPredictor,
    _autocorrelation_kernel,
    _float_autocorrelation_kernel,
    _residual_kernel,
    prediction_residual,
    prediction_synthesis,
)
from neurolace.codec.neural import _read_header, _row_table
from neurolace.codec.rans import (
    PROBABILITY_BITS,
    FrameDecoder,
    PairCounts,
    RowTable,
    base_frequencies,
    encode_frame,
    ideal_bits,
)


def legacy_samples() -> np.ndarray:
    """The signal of LEGACY_CONTEXT_FILE: an AR(1) level plus LCG noise (no RNG, so it never changes),
    quantised by an ADC whose odd codes are a third as wide as its even ones (code popularity)."""
    state, level, codes = 12345, 0, []
    for _ in range(4000):
        state = (state * 1103515245 + 12345) % (1 << 31)
        level = (level * 15) // 16 + (state >> 16) % 161 - 80
        pair, rest = divmod(level, 40)
        codes.append(2 * pair + (1 if rest >= 30 else 0))
    return (np.array(codes, dtype=np.int64) * 64).astype(np.int16)


#: ``NeuralCodec(frame_samples=1024).encode(legacy_samples())`` written by the first context mode (format
#: version 1, mode byte 1: constriction, one call per sample) before the rANS coder replaced it
LEGACY_FILE = base64.b64decode(
    "TkxYQwEAAQGgH4AIJv8SQEACDyQfAQH4YXlfAQ4irOwBCQsD8Gv5/+OQVhjTjTpYACcGJ9FSVcK1CUw2tmh48ypR5mn6xreDA6TM"
    "I5ioeqdOAAAAAIADvarRtHV/NWZ5lCQBDQ9eOyJ5o+neIMXn1Erap5Vpe2fCHyQnMDj8fpLNZE4c8tmuidxwZVQHprhv9lcBo1Cx"
    "NRM5C6/fqv7n0R657LR/IlPkJ6KPPvzn9P7TK6PSpmr05FXbmMQ08HSZoF9RMb5XDNoW6xJuvU4iU61IKYMNI3LM3pVIvX6nTKgz"
    "9U+rw95Ast2mHepTuZI2ZyaIJX5YEfvB6Y3K+WPpmgd7J3tH/ywNez1PZhRgpxSUD6babkHbMDadfNNErLcUCcYsPZIMb60L+OxU"
    "vkOuq+OBfF1n4qOICrBdwJflX3HQcRjweUldBmgFkAZAxq3lPa+oyi+wUAeajtpWtyqgLiBLinrigktEMRrxgzQ5wek/qb04baba"
    "/MXj9knmTWmzRY2BBhx6wlI62HfBHCwjo16cgMR7LIbOnUE6IhOWXmBto/Q/FSwDvMDL9vITJ7SpbFu2J6z/VFa8hPkEbOrAWEO/"
    "MhXQoDICDDam0p00A0BpMBzMDocQ+kMLx6dOAQAAAIgDSPQD2Vpnc2DOgEsI3+LyVo+5q5OvSD7GVpOHnz+D/88XOpIxYgRUhfDp"
    "vUOOPmdoEoVZX6VC73n70glE8N3WPALHUeqWAxccEbgmmtW3FFknq4Rl1BAAJF1PFhrcQWwyb0KElcaGQpTo+9iBlt6gJZg9xMGb"
    "z96wQX2XilBapCC/zFwnutjxWs8v/QzI2nYeLWfhYpeqTLXPXJTgwuCacCedd742fMTyBseTTzydnnGoBGvyvbJod14Q2hPhGJH4"
    "e8oMSzNO1sn49xpBeLTytqNigMLQektF2vEP3jV2SeTmw2zvd8VldEveGaBItprkCnZVU+IFMgo4PslwtUR/2MM99FhHzFYMruW2"
    "OeKa/TR9VqeWqI+jsR+cHe2t1LwQRlB8KhXOcRNqSTqwP/ACw6Q+f9sndpd1/9Htu7upR5skbqu/AHI08+Xhgs3Z6lLeOiMcOyWd"
    "TJ7+6WhqnfHEMKlcMBbgZJOktPiAfgiRiP1AGnxPveAa1LmY/S6vUqrpG+xz8A8atKJMbkSOp04CAAAAiAOxcTNizDdHAITitOib"
    "e5TfgcvwY0f9TJ5qlZHIHoVb0YQSsVmOsDwXeV8hDkU5Kh7smi8rLLbl1oPEyRyXIUvAzXcaC4Dtokd39+eur62Co3V/Awy6so2k"
    "Nej1Sd9CNNKbH+lEYrDNzsI4/3Qdy5CkSeQr9DlYkrX+JAjzFRoRFhaMb2yEWIFAk0L9lPIIcL2oj7ZEhY372XrsfoVy1GUBp//6"
    "Q1cOKLT3Ag56rj5OaY3GwakrcYxvx6tCcMyZoARfvLUZDKAiWFOI7VdRHA0NQvkva+vR4yjpkElzYIyMbEGe2iMOscz+r+len0mC"
    "KP9bFzbSqtUQ1ZO8s1oixXfIO1maf7oRhas6kayYTWH2YpzXg1k6yCTSt8xUY1yWBQ+sVNXZtcnrsePKKJyONtTqTVislVpFYgjD"
    "z6P1L0S2W20a9hsE+zYWMwlTn0YZjdjNSzNJpFzB1EUowLY+KCgF3ya8lxoc1PtP9PKpYW600oIgsowRKXSHkPFHGL3Iqn5Rd3sf"
    "a01F1ej5KZKnTgMAAADcAnE0Vulb7phJDgFRftsyjzba1btQDy8sZtobzLCNAZPOJUNuLSEmu5VVNMuPsqnDNv16UqRmiuoKwtwx"
    "QVmRbBY0Fn/iDY3Ahix9ctzsqQSDj4JS6ZfTSbwyNJ5cBhMjPpQdLdOYuFt1ksmn/5JLSeuBbkA5Ya76KDdf5cFSEQ9yzg9s5Mlu"
    "kUiSJ2zMctIQykC3jd8rIhx3WBG4V5nCpDU/ObMXltbi8gCpmAV/NYoNg0tEHvxocGtH5LOpxT1mh2mOOjDQTLn02zaHjojDBr4B"
    "Qsb+VXPaJ+wdgqW6xfXJ9VojB5zjfCTQkERD0wI5o7sEc1MNmntiuF/5lcsEZRkU5J/DsuUHG802FoVWPygG7wKQtWqAWUU+nXp3"
    "6nNn+7y6tWkYwXaT0DQ9IrCksuOKLA7BVt0PHSFuxMnR6q3XCIySsw7u2r2SNnQvBA4kK8r0VyKp3NBfzJcQ3NgKJSg="
)


def _plain_table(frequencies: np.ndarray, low: int = 0) -> RowTable:
    return RowTable(base_frequencies(np.asarray(frequencies, dtype=np.int64)), low, None, 1)


def test_code_length_is_the_ideal_length_plus_the_flush(rng):
    # i.i.d. symbols from a known distribution: payload = sum of -log2 q(s) (quantised q) + 8 bytes of state
    probabilities = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    symbols = rng.choice(5, size=200_000, p=probabilities).astype(np.int64)
    table = _plain_table(np.rint(probabilities * 2**20))
    payload = encode_frame([(symbols, np.zeros_like(symbols), table)])
    bits = ideal_bits(symbols, np.zeros_like(symbols), table)
    # dyadic probabilities are exact in 2**20: the ideal length is the entropy count, 1.875 bits/symbol on average
    counts = np.bincount(symbols, minlength=5)
    assert bits == pytest.approx(float(counts @ -np.log2(probabilities)), rel=1e-4)
    assert 8 * len(payload) == pytest.approx(bits + 64, abs=64)
    decoder = FrameDecoder(payload)
    predictor = LinearPredictor(np.zeros(0, dtype=np.int64), 0, 0)
    # a plain table and an order-0 predictor at code 0 make the decoded codes the symbols themselves
    wide = RowTable(table.base, 0, None, 5)
    assert np.array_equal(decoder.decode_channel(symbols.size, predictor, wide), symbols)
    decoder.finish()


def test_rows_sum_to_two_to_the_twenty_and_exclude_impossible_codes():
    model = ResidualModel(-2, np.array([1, 9, 17, 9, 5]))  # counts ~1, 4, 16, 4, 2 over residuals -2..2
    weights = CodeWeights(0, np.array([8, -8, 0, 24]))  # codes 0..3 weigh 2x, 0.5x, 1x, 8x; code 4 weighs 1x
    table = _row_table(model, weights, n_codes=5)
    symbols = np.array([2, 2, 2, 1], dtype=np.int64)
    predictions = np.array([0, 4, 2, 2], dtype=np.int64)
    ideal_bits(symbols, predictions, table)  # builds the rows of predictions 0, 4 and 2
    assert table.n_rows[0] == 3
    for prediction in (0, 4, 2):
        row = np.diff(table.cumulative[table.slot_of[prediction]])
        assert row.sum() == 2**PROBABILITY_BITS
        codes = prediction - 2 + np.arange(5)
        inside = (codes >= 0) & (codes < 5)
        assert (row[inside] >= 1).all() and (row[~inside] == 0).all()
    # prediction 2 sees every code: P(c) ~ f(c - 2) w(c), up to the quantisation
    row = np.diff(table.cumulative[table.slot_of[2]]) / 2**PROBABILITY_BITS
    expected = np.array([1, 4, 16, 4, 2]) * 2.0 ** (np.array([8, -8, 0, 24, 0]) / 8)
    expected /= expected.sum()
    level_rounding = 2 ** (0.5 / 4) * 2 ** (0.5 / 8)  # quarter-octave counts, eighth-octave weights
    assert np.all(row / expected < level_rounding**2) and np.all(expected / row < level_rounding**2)


def test_pair_counts_give_the_code_and_prediction_histograms():
    symbols = np.array([2, 2, 0, 1, 2], dtype=np.int64)
    predictions = np.array([5, 3, 5, 7, 3], dtype=np.int64)
    pairs = PairCounts(symbols, predictions, n_symbols=3)
    assert pairs.lowest == 3 and pairs.order.tolist() == [5, 3, 7]  # first appearance
    assert pairs.prediction_histogram().tolist() == [2, 0, 2, 0, 1]
    first, observed = pairs.code_histogram(low=-1)  # codes = prediction - 1 + symbol: 6, 4, 4, 7, 4
    assert first == 4 and observed.tolist() == [3, 0, 1, 1]
    with pytest.raises(CodecError, match=r"symbol 3 at sample 1 is outside \[0, 3\)"):
        PairCounts(np.array([0, 3]), np.array([1, 1]), n_symbols=3)
    with pytest.raises(CodecError, match="non-empty and of one shape"):
        PairCounts(np.zeros(0), np.zeros(0), n_symbols=3)


def test_a_certain_symbol_costs_nothing():
    samples = np.full(5000, 640, dtype=np.int16)  # one value: one symbol of probability 1
    codec = NeuralCodec()
    packed = codec.encode(samples)
    assert np.array_equal(codec.decode(packed), samples[:, None])
    # the frame's payload is the bare 8-byte flush of the initial state 2**31, however many samples
    assert packed.endswith(b"\x08" + packed[-12:-8] + b"\x00\x00\x00\x00\x00\x00\x00\x80")
    longer = codec.encode(np.full(20000, 640, dtype=np.int16))
    assert len(longer) - len(packed) <= 2  # only the varint of the sample count grows


def test_float_kernels_equal_the_integer_kernels(rng):
    for _ in range(60):
        n_samples = int(rng.integers(1, 3000))
        magnitude = int(rng.integers(1, 1 << 16))
        centred = rng.integers(-magnitude, magnitude + 1, n_samples).astype(np.int64)
        max_lag = int(rng.integers(0, 40))
        assert np.array_equal(
            _float_autocorrelation_kernel(centred.astype(np.float64), max_lag),
            _autocorrelation_kernel(centred, max_lag).astype(np.float64),
        )
        n_codes = int(rng.integers(1, 1 << 17))
        codes = rng.integers(0, n_codes, n_samples).astype(np.int64)
        predictor = LinearPredictor(
            rng.integers(-32767, 32768, int(rng.integers(0, 40))),
            int(rng.integers(0, 15)),
            int(rng.integers(0, n_codes)),
        )
        block = int(rng.integers(1, 700))
        residual = prediction_residual(codes, predictor, n_codes, block)
        reference = _residual_kernel(
            codes, predictor.coefficients, predictor.shift, predictor.mean_code, n_codes, block
        )
        assert np.array_equal(residual, reference)
        assert np.array_equal(prediction_synthesis(residual, predictor, n_codes, block), codes)


def test_residual_and_synthesis_fall_back_to_integers_beyond_float_precision():
    # taps near 2**40 times codes near 2**17 overflow float64's exact integers; the int64 kernel answers
    predictor = LinearPredictor(np.array([1 << 40, -(1 << 39)]), 30, 0)
    codes = np.array([100_000, 90_000, 120_000, 5, 131_000], dtype=np.int64)
    expected = _residual_kernel(codes, predictor.coefficients, 30, 0, 131_072, 1000)
    assert np.array_equal(prediction_residual(codes, predictor, 131_072, 1000), expected)
    assert np.array_equal(prediction_synthesis(expected, predictor, 131_072, 1000), codes)


def test_files_of_the_first_context_mode_still_decode():
    packed = LEGACY_FILE
    assert packed[4:7] == b"\x01\x00\x01"  # version 1, bare samples, mode 1
    assert _read_header(packed)[6][0][2] is not None  # the channel really uses code weights
    assert np.array_equal(NeuralCodec().decode(packed), legacy_samples()[:, None])
    # the current context mode is smaller than the plain fast mode on the same signal
    assert len(NeuralCodec(frame_samples=1024).encode(legacy_samples())) < len(
        NeuralCodec(frame_samples=1024, mode="fast").encode(legacy_samples())
    )


def test_unknown_coding_mode_is_refused():
    packed = bytearray(NeuralCodec().encode(np.arange(100, dtype=np.int16)))
    packed[6] = 7
    with pytest.raises(CodecError, match="unknown coding mode 7"):
        NeuralCodec().decode(bytes(packed))


_N1_LIKE = legacy_samples()
_PACKED = NeuralCodec(frame_samples=4000).encode(_N1_LIKE)
_HEADER = _read_header(_PACKED)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=400))
def test_garbage_payloads_give_codec_error_or_codes_in_range(payload):
    # the CRC normally stops damaged payloads before the coder; here garbage reaches the numba decoder directly
    _, _, _, _, _, table, channels, _ = _HEADER
    predictor, _, row_table = channels[0]
    try:
        decoder = FrameDecoder(payload)
        codes = decoder.decode_channel(4000, predictor, row_table)
        decoder.finish()
    except CodecError as error:
        assert "corrupt" in str(error)
        return
    assert codes.min() >= 0 and codes.max() < table.n_codes


def test_payload_errors_are_named():
    with pytest.raises(CodecError, match="not a whole rANS stream"):
        FrameDecoder(b"\x00" * 7)
    with pytest.raises(CodecError, match="rANS state is out of range"):
        FrameDecoder(b"\x00" * 8)


def test_context_and_plain_channels_share_a_frame(rng):
    # channel 0 has code popularity (the weights pay); channel 1 is uniform noise on the same grid, where
    # weights would only cost bytes (plain row)
    popular = legacy_samples()
    codes = popular.astype(np.int64) // 64
    noise = (rng.integers(codes.min(), codes.max() + 1, popular.size) * 64).astype(np.int16)
    samples = np.column_stack([popular, noise])
    codec = NeuralCodec(frame_samples=999)
    packed = codec.encode(samples)
    channels = _read_header(packed)[6]
    assert [row_table.context for _, _, row_table in channels] == [True, False]
    assert np.array_equal(codec.decode(packed), samples)


def test_salvage_of_a_context_mode_file_keeps_every_other_frame():
    from conftest import shared_data

    from neurolace.codec import decode_wav, encode_wav, salvage
    from neurolace.codec.neural import frame_offsets

    original = shared_data(
        "neuralink-compression", "wav", "0ab237b7-fb12-4687-afed-8d1e2070d621.wav"
    ).read_bytes()
    packed = bytearray(encode_wav(original, frame_samples=16384))
    offsets = frame_offsets(bytes(packed))
    packed[offsets[2] + 30] ^= 0x01
    with pytest.raises(CodecError, match="corrupt frame 2"):
        decode_wav(bytes(packed))
    result = salvage(bytes(packed))
    truth = np.frombuffer(original[44:], dtype="<i2")
    assert result.lost_frames == [2]
    assert np.array_equal(result.samples[result.valid, 0], truth[result.valid])
