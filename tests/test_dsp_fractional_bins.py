"""The chain's fractional feature bins: the fraction of a sample is carried, any chunking gives the same bins."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import InvalidInputError
from neurolace.dsp import SignalChain
from neurolace.dsp.features import SpikeBandPower, bin_ratio_for

FS_HZ = 19531.25  # the N1's 5 MHz / 256: a 20 ms bin is 390.625 samples


def _codes(n_samples: int, n_channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = rng.normal(512.0, 6.0, (n_samples, n_channels))
    spikes = rng.random((n_samples, n_channels)) < 0.002
    codes[spikes] -= 60.0  # one-sample dips that cross -4.5 RMS after the band-pass
    return np.round(codes).astype(np.int16)


def _features(codes: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, list[int]]:
    chain = SignalChain(FS_HZ, codes.shape[1], gain_uv=2.0, noise_window_s=0.1, fractional_bins=True)
    rows, starts, position = [], [], 0
    for size in [*sizes, codes.shape[0]]:
        output = chain.process(codes[position : position + size])
        position += size
        assert output.features.start_sample == chain.sbp.clock.bin_start(sum(r.shape[0] for r in rows))
        rows.append(output.features.data)
        starts.append(output.features.start_sample)
        if position >= codes.shape[0]:
            break
    return np.concatenate(rows), starts


def test_fractional_chain_bins_equal_for_any_chunking_and_start_on_the_exact_grid():
    codes = _codes(20_000, 3, seed=0)
    whole, _ = _features(codes, [])
    rng = np.random.default_rng(1)
    sizes = [int(s) for s in rng.integers(1, 900, 80)]
    chunked, starts = _features(codes, sizes)
    np.testing.assert_array_equal(chunked[:, :3], whole[:, :3])  # crossing counts: exact
    np.testing.assert_allclose(chunked[:, 3:], whole[:, 3:], rtol=1e-12)  # SBP: same sums in sample order
    assert whole.shape[0] == 51  # 20,000 samples hold 51.2 bins; bin 50 ends at floor(51 x 390.625) = 19,921
    assert whole[:, :3].sum() > 0
    chain = SignalChain(FS_HZ, 3, fractional_bins=True)
    assert chain.bin_width_s == pytest.approx(0.02, abs=1e-15)
    assert [chain.sbp.clock.bin_start(k) for k in range(9)] == [0, 390, 781, 1171, 1562, 1953, 2343, 2734, 3125]


def test_whole_sample_bins_are_unchanged_by_the_option():
    assert bin_ratio_for(19531.0, 20.0, fractional=False) == (391, 1)
    assert bin_ratio_for(19531.0, 20.0, fractional=True) == (19531, 50)
    stage = SpikeBandPower(1000.0, 1, bin_ms=2.0, fractional_bins=True)  # whole already: same bins
    samples = np.arange(10, dtype=np.float32)[:, np.newaxis]
    np.testing.assert_array_equal(stage.process(samples), SpikeBandPower(1000.0, 1, bin_ms=2.0).process(samples))


def test_fractional_bins_shorter_than_a_sample_are_refused():
    with pytest.raises(InvalidInputError, match="shorter than one sample"):
        SpikeBandPower(1000.0, 1, bin_ms=0.5, fractional_bins=True)
