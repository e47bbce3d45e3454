"""Saved decoders: exact round trip of every decoder, and pickles or foreign classes refused unrun."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest

from neurolace.core.errors import InvalidInputError
from neurolace.decode import load_decoder, save_decoder
from neurolace.decode.registry import DECODERS
from neurolace.runtime.nodes.processing import fit_velocity_and_click


def _data(seed=0, n_bins=600, n_channels=12):
    rng = np.random.default_rng(seed)
    velocity = rng.normal(size=(n_bins, 2))
    rates = 1.0 + np.abs(velocity @ rng.normal(size=(2, n_channels)))
    counts = rng.poisson(rates).astype(np.float64)
    click = (rng.random(n_bins) > 0.85).astype(float)
    return counts, np.c_[velocity, click]


@pytest.mark.parametrize("name", [d for d in DECODERS if d != "gru"])
def test_every_decoder_round_trips_exactly(name, tmp_path):
    counts, labels = _data()
    fitted = fit_velocity_and_click(name, counts, labels, 0.02)
    path = save_decoder(fitted, tmp_path / f"{name}.npz")
    loaded = load_decoder(path)
    assert type(loaded) is type(fitted)
    for part in ("velocity_decoder", "click_decoder"):
        original, restored = getattr(fitted, part).reset(), getattr(loaded, part).reset()
        for row in counts[:50]:
            np.testing.assert_array_equal(np.asarray(restored.step(row)), np.asarray(original.step(row)))
        if part == "click_decoder":
            assert restored.click_probability == original.click_probability


def test_a_pickle_is_refused_and_never_run(tmp_path):
    """Issue 17: a session pointing at a crafted pickle ran its payload."""
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("owned",))

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InvalidInputError, match="pickled models are refused"):
        load_decoder(path)
    assert not marker.exists()


def test_a_file_naming_a_foreign_class_is_refused(tmp_path):
    counts, labels = _data()
    path = save_decoder(fit_velocity_and_click("kalman", counts, labels, 0.02), tmp_path / "ok.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    tree = json.loads(np.load(path)["__tree__"].tobytes().decode())
    tree["root"] = {"__object__": "subprocess:Popen", "state": {"__dict__": []}}
    text = json.dumps(tree).encode()
    bad = tmp_path / "bad.npz"
    arrays = {name[:-4]: np.load(path)[name[:-4]] for name in members if name != "__tree__.npy"}
    np.savez(bad, __tree__=np.frombuffer(text, dtype=np.uint8), **arrays)
    with pytest.raises(InvalidInputError, match="may not rebuild"):
        load_decoder(bad)


def test_saving_something_a_decoder_file_cannot_hold_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="not a type a decoder file may hold"):
        save_decoder({"callback": print}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_a_gru_round_trips_exactly(tmp_path):
    from neurolace.decode import GRUDecoder

    counts, labels = _data(n_channels=8)
    fitted = GRUDecoder(hidden_size=8, max_epochs=2).fit(counts, labels[:, :2])
    loaded = load_decoder(save_decoder(fitted, tmp_path / "gru.npz"))
    fitted.reset()
    loaded.reset()
    for row in counts[:30]:
        np.testing.assert_array_equal(loaded.step(row), fitted.step(row))
