"""Time-warp augmentation of the GRU decoder: known answers for the warp, seeding, and off == un-warped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurolace.core.errors import InvalidInputError
from neurolace.decode import GRUDecoder, check_decoder, make_decoding_data
from neurolace.decode.checks import DECODER_CHECKS
from neurolace.decode.gru import time_warp_windows
from neurolace.decode.persist import load_decoder, save_decoder

TINY_GRU = {
    "hidden_size": 8,
    "max_epochs": 2,
    "patience": 2,
    "window_bins": 32,
    "burn_in_bins": 4,
    "batch_size": 4,
    "dropout": 0.0,
}


def test_warp_of_a_linear_ramp_is_the_expected_ramp():
    """Features 2 t + 1 read at t = s + r k are 2 (s + r k) + 1; a constant velocity v becomes zero + r (v - zero)."""
    n_bins = 40
    time_bins = np.arange(n_bins, dtype=np.float64)
    features = np.stack([2 * time_bins + 1, -time_bins], axis=1)
    velocity = np.full((n_bins, 1), 3.0)
    starts = np.array([0, 5, 10, 2])
    rates = np.array([1.0, 1.5, 0.8, 3.0])
    last = np.array([39, 39, 39, 20])
    warped_x, warped_y, valid = time_warp_windows(features, velocity, starts, rates, last, 9, velocity_zero=1.0)
    read_at = starts[:, None] + rates[:, None] * np.arange(9)
    assert warped_x.shape == (4, 9, 2) and warped_y.shape == (4, 9, 1) and valid.shape == (4, 9)
    # the last window reads 2, 5, ..., 20 and would read 23, 26 past its segment's last bin 20
    assert valid[:3].all() and valid[3].tolist() == [True] * 7 + [False] * 2
    inside = np.where(valid, read_at, 20)
    assert np.allclose(warped_x[..., 0], 2 * inside + 1)
    assert np.allclose(warped_x[..., 1], -inside)
    assert np.allclose(warped_y[..., 0], 1.0 + rates[:, None] * (3.0 - 1.0))  # scaled about zero velocity


def test_warp_at_rate_one_is_plain_indexing(rng):
    features = rng.normal(size=(50, 3)).astype(np.float32)
    velocity = rng.normal(size=(50, 2)).astype(np.float32)
    starts = np.array([0, 7, 18])
    warped_x, warped_y, valid = time_warp_windows(features, velocity, starts, np.ones(3), np.full(3, 49), 32)
    index = starts[:, None] + np.arange(32)
    assert valid.all()
    assert np.array_equal(warped_x, features[index]) and np.array_equal(warped_y, velocity[index])
    assert warped_x.dtype == np.float32


def test_time_warp_is_seeded_changes_training_and_off_is_the_default():
    X, y = make_decoding_data(200, 4, seed=9)
    starts = np.array([0, 70, 140])
    plain = GRUDecoder(**TINY_GRU).fit(X, y, segment_starts=starts).predict(X)
    off = GRUDecoder(**TINY_GRU, time_warp_max=0.0).fit(X, y, segment_starts=starts).predict(X)
    warped = GRUDecoder(**TINY_GRU, time_warp_max=0.3).fit(X, y, segment_starts=starts).predict(X)
    again = GRUDecoder(**TINY_GRU, time_warp_max=0.3).fit(X, y, segment_starts=starts).predict(X)
    assert np.array_equal(plain, off)
    assert not np.allclose(plain, warped)
    assert np.array_equal(warped, again)
    with pytest.raises(InvalidInputError, match="time_warp_max must be a"):
        GRUDecoder(**TINY_GRU, time_warp_max=-0.1).fit(X, y)


def test_time_warp_leaves_the_global_torch_rng_and_conforms():
    X, y = make_decoding_data(200, 4, seed=2)
    before = torch.random.get_rng_state().clone()
    GRUDecoder(**TINY_GRU, time_warp_max=0.2).fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), before)
    learns = {**TINY_GRU, "hidden_size": 16, "max_epochs": 25, "patience": 10}  # check_decoder needs it to learn
    assert len(check_decoder(GRUDecoder(**learns, time_warp_max=0.2))) == len(DECODER_CHECKS)


def test_time_warped_gru_round_trips_through_a_decoder_file(tmp_path):
    X, y = make_decoding_data(200, 4, seed=4)
    decoder = GRUDecoder(**TINY_GRU, time_warp_max=0.2).fit(X, y)
    loaded = load_decoder(save_decoder(decoder, tmp_path / "gru.npz"))
    assert loaded.time_warp_max == 0.2
    assert np.array_equal(loaded.predict(X), decoder.predict(X))
