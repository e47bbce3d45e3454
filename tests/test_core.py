"""The core data model: containers keep their metadata and refuse bad input clearly."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.core import (
    BinnedFeatures,
    ElectrodeGeometry,
    InvalidInputError,
    Recording,
    SpikeEvents,
    check_array,
    check_int,
    check_positive,
    check_rng,
    spawn_rngs,
)
from neurolace.io.atomic import atomic_output


def make_recording(n_samples=100, n_channels=4, **kwargs):
    samples = np.arange(n_samples * n_channels, dtype=np.int16).reshape(n_samples, n_channels)
    return Recording(samples, fs_hz=kwargs.pop("fs_hz", 1000.0), gain_uv=kwargs.pop("gain_uv", 0.5), **kwargs)


class TestRecording:
    def test_metadata_and_repr(self):
        recording = make_recording(fs_hz=19531.25)
        assert recording.n_samples == 100 and recording.n_channels == 4
        assert recording.duration_s == pytest.approx(100 / 19531.25)
        text = repr(recording)
        assert "n_channels=4" in text and "fs_hz=19531.2" in text and "gain_uv=0.5" in text

    def test_one_dimensional_is_one_channel(self):
        recording = Recording(np.array([1, 2, 3], dtype=np.int16), fs_hz=10, gain_uv=1)
        assert recording.samples.shape == (3, 1)

    def test_traces_in_microvolts(self):
        recording = make_recording(gain_uv=0.25, offset_uv=-10.0)
        expected = recording.samples[5:7].astype(np.float64) * 0.25 - 10.0
        np.testing.assert_allclose(recording.get_traces_uv(5, 7), expected, rtol=1e-6)

    def test_integer_input_that_fits_is_accepted(self):
        recording = Recording(np.array([[0, 32767], [-32768, 5]], dtype=np.int64), fs_hz=1, gain_uv=1)
        assert recording.samples.dtype == np.int16

    @pytest.mark.parametrize(
        "samples,match",
        [
            (np.zeros((4, 2), dtype=np.float32), "samples must hold integers"),
            (np.array([[40000]]), r"samples must fit in int16"),
            (np.zeros((2, 2, 2), dtype=np.int16), "samples must have 1 or 2 dimension"),
            (np.zeros((5, 0), dtype=np.int16), "at least one channel"),
        ],
    )
    def test_bad_samples(self, samples, match):
        with pytest.raises(InvalidInputError, match=match):
            Recording(samples, fs_hz=1000, gain_uv=1)

    @pytest.mark.parametrize("fs_hz", [0, -1, float("nan"), float("inf"), "fast"])
    def test_bad_rate(self, fs_hz):
        with pytest.raises(InvalidInputError, match="fs_hz must be a positive"):
            make_recording(fs_hz=fs_hz)

    def test_geometry_must_match(self):
        with pytest.raises(InvalidInputError, match="geometry describes 3 electrodes but samples have 4"):
            make_recording(geometry=ElectrodeGeometry.linear(3))

    def test_slice_and_select_keep_metadata(self):
        recording = make_recording(geometry=ElectrodeGeometry.threads(2, 2))
        part = recording.slice_samples(10, 20).select_channels([3, 1])
        assert part.samples.shape == (10, 2)
        np.testing.assert_array_equal(part.samples, recording.samples[10:20][:, [3, 1]])
        np.testing.assert_array_equal(part.geometry.thread_id, [1, 0])
        assert part.metadata["start_sample"] == 10 and part.fs_hz == recording.fs_hz

    def test_select_out_of_range(self):
        with pytest.raises(InvalidInputError, match=r"channel_index must lie in \[0, 3\]"):
            make_recording().select_channels([4])

    def test_chunks_cover_everything(self):
        recording = make_recording(n_samples=101)
        chunks = list(recording.iter_chunks(7))
        assert [len(c) for c in chunks][-1] == 101 % 7
        np.testing.assert_array_equal(np.concatenate(chunks), recording.samples)


class TestGeometry:
    def test_n1_layout(self):
        geometry = ElectrodeGeometry.threads()
        assert geometry.n_channels == 1024 and geometry.n_threads == 64
        # electrodes on one thread share the insertion point and step down by the pitch
        on_thread = geometry.thread_id == 5
        assert np.unique(geometry.surface_xy_um[on_thread], axis=0).shape == (1, 2)
        np.testing.assert_allclose(np.diff(geometry.depth_um[on_thread]), 50.0)
        assert geometry.positions_um.shape == (1024, 3)

    def test_inconsistent_lengths(self):
        with pytest.raises(InvalidInputError, match="same electrodes"):
            ElectrodeGeometry(thread_id=[0, 0], depth_um=[0.0], surface_xy_um=np.zeros((2, 2)))

    def test_read_only(self):
        geometry = ElectrodeGeometry.linear(3)
        with pytest.raises(ValueError):
            geometry.depth_um[0] = 1.0


class TestSpikeEvents:
    def test_sorted_and_counted(self):
        events = SpikeEvents([30, 10, 20, 10], [1, 2, 0, 0], fs_hz=1000, n_channels=3, unit_id=[7, 8, 9, 5])
        np.testing.assert_array_equal(events.sample_index, [10, 10, 20, 30])
        np.testing.assert_array_equal(events.channel_index, [0, 2, 0, 1])
        np.testing.assert_array_equal(events.unit_id, [5, 8, 9, 7])
        np.testing.assert_array_equal(events.count_per_channel(), [2, 1, 1])
        np.testing.assert_allclose(events.rates_hz(2.0), [1.0, 0.5, 0.5])
        np.testing.assert_allclose(events.times_s, [0.01, 0.01, 0.02, 0.03])
        assert "n_units=4" in repr(events)

    def test_concatenate(self):
        a = SpikeEvents([5], [0], fs_hz=100, n_channels=2)
        b = SpikeEvents([1], [1], fs_hz=100, n_channels=2)
        joined = SpikeEvents.concatenate([a, b])
        np.testing.assert_array_equal(joined.sample_index, [1, 5])

    def test_empty(self):
        events = SpikeEvents.empty(fs_hz=10, n_channels=4)
        assert events.n_spikes == 0 and events.count_per_channel().tolist() == [0, 0, 0, 0]

    def test_channel_out_of_range(self):
        with pytest.raises(InvalidInputError, match=r"channel_index must lie in \[0, 1\]"):
            SpikeEvents([1], [2], fs_hz=10, n_channels=2)

    def test_length_mismatch(self):
        with pytest.raises(InvalidInputError, match="same length"):
            SpikeEvents([1, 2], [0], fs_hz=10, n_channels=2)


class TestBinnedFeatures:
    def test_times(self):
        features = BinnedFeatures(np.zeros((3, 2)), bin_width_s=0.02, start_sample=100, fs_hz=1000)
        np.testing.assert_allclose(features.bin_start_s, [0.1, 0.12, 0.14])
        assert features.feature_names == ["f0000", "f0001"]

    def test_nan_refused(self):
        with pytest.raises(InvalidInputError, match=r"data must be finite.*index \[1, 0\]"):
            BinnedFeatures([[0.0], [np.nan]], bin_width_s=0.02)

    def test_names_must_match(self):
        with pytest.raises(InvalidInputError, match="feature_names must have 2 entries, got 1"):
            BinnedFeatures(np.zeros((1, 2)), bin_width_s=1, feature_names=["a"])


class TestChecks:
    def test_check_int(self):
        assert check_int(3, "n") == 3
        with pytest.raises(InvalidInputError, match="n must be an integer, got 2.5"):
            check_int(2.5, "n")
        with pytest.raises(InvalidInputError, match="n must be >= 1, got 0"):
            check_int(0, "n", minimum=1)
        with pytest.raises(InvalidInputError, match="must be an integer"):
            check_int(True, "n")

    def test_check_positive(self):
        assert check_positive(2, "x") == 2.0
        with pytest.raises(InvalidInputError, match="x must be a positive number, got 'a'"):
            check_positive("a", "x")

    def test_check_array_shape(self):
        with pytest.raises(InvalidInputError, match=r"X must have shape \(any, 3\), got \(2, 4\)"):
            check_array(np.zeros((2, 4)), "X", shape=(None, 3))

    def test_check_array_ragged(self):
        with pytest.raises(InvalidInputError, match="X must be"):
            check_array([[1, 2], [3]], "X")


class TestRandom:
    def test_same_seed_same_numbers(self):
        assert check_rng(3).integers(1000) == check_rng(3).integers(1000)

    def test_generator_passes_through(self):
        generator = np.random.default_rng(1)
        assert check_rng(generator) is generator

    def test_spawned_streams_differ_and_repeat(self):
        first = [g.random() for g in spawn_rngs(5, 3)]
        assert len(set(first)) == 3
        assert first == [g.random() for g in spawn_rngs(5, 3)]

    def test_bad_seed(self):
        with pytest.raises(InvalidInputError, match="seed must be a non-negative integer, got -1"):
            check_rng(-1)


class TestAtomicOutput:
    def test_success_renames(self, tmp_path):
        target = tmp_path / "out.bin"
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"abc")
            assert not target.exists()
        assert target.read_bytes() == b"abc"
        assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]

    def test_failure_leaves_nothing(self, tmp_path):
        target = tmp_path / "out.bin"
        with pytest.raises(RuntimeError):
            with atomic_output(target) as temporary:
                temporary.write_bytes(b"half")
                raise RuntimeError("boom")
        assert list(tmp_path.iterdir()) == []

    def test_failure_keeps_previous_file(self, tmp_path):
        target = tmp_path / "out.bin"
        target.write_bytes(b"old")
        with pytest.raises(RuntimeError):
            with atomic_output(target) as temporary:
                temporary.write_bytes(b"new")
                raise RuntimeError("boom")
        assert target.read_bytes() == b"old"


def test_atomic_output_has_ordinary_permissions(tmp_path):
    import os

    target = tmp_path / "out.bin"
    with atomic_output(target) as temporary:
        temporary.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
