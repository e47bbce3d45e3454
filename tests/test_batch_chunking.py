"""Time chunks without a cluster: ranges read from disk, the plan, and chunked == whole bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from neurolace.batch import BatchError, ChainSettings, RecordingSource, expand_inputs, plan_chunks
from neurolace.batch.runner import output_paths
from neurolace.batch.tasks import chain_range_task, file_sha256, first_noise_task, merge_parts, write_events_csv
from neurolace.core.recording import Recording
from neurolace.dsp.chain import run_signal_chain
from neurolace.io import read_recording, write_raw, write_wav
from neurolace.sim.implant import simulate_implant

FS_HZ = 19531  # a whole number of Hz, as WAV stores it


@pytest.fixture(scope="module")
def long_recording() -> Recording:
    """14 s of 16 simulated channels: five 3 s chunks (the last one shorter)."""
    return simulate_implant(duration_s=14.0, n_electrodes=16, seed=7, fs_hz=FS_HZ).recording


def _whole_outputs(recording: Recording, directory, settings: ChainSettings):
    result = run_signal_chain(recording, **settings.chain_options())
    write_events_csv(directory / "whole.spikes.csv", result.events.sample_index, result.events.channel_index)
    np.save(directory / "whole.features.npy", result.features.data)
    return result


def _chunked(source, settings, kind, directory, *, chunk_s=3.0, margin_before=None):
    plan = plan_chunks(source.n_samples, source.fs_hz, settings, chunk_s=chunk_s, features=kind == "features")
    noise = first_noise_task(source, settings)
    parts, results = [], []
    for index, (start, stop) in enumerate(plan.cores):
        read_start, read_stop = plan.read_range(index, margin_before)
        part = directory / f"{kind}.{index:05d}"
        results.append(chain_range_task(
            source, settings, kind=kind, start=start, stop=stop, read_start=read_start, read_stop=read_stop,
            noise_uv=None if read_start == 0 else noise, output_path=str(part), whole=False,
        ))
        parts.append(str(part))
    suffix = ".spikes.csv" if kind == "detect" else ".features.npy"
    merge_parts(kind, parts, str(directory / f"merged{suffix}"))
    return plan, noise, results, directory / f"merged{suffix}"


def test_read_segment_equals_the_readers_slice(tmp_path, long_recording):
    write_wav(tmp_path / "a.wav", long_recording)
    write_raw(tmp_path / "a.raw", long_recording, dtype=">i4")
    wav = RecordingSource.open(tmp_path / "a.wav")
    raw = RecordingSource.open(tmp_path / "a.raw", fs_hz=FS_HZ, n_channels=16, dtype=">i4")
    assert (wav.n_samples, wav.n_channels, wav.fs_hz) == (long_recording.n_samples, 16, FS_HZ)
    assert raw.n_samples == long_recording.n_samples and raw.splittable
    for source, path, options in ((wav, "a.wav", {}), (raw, "a.raw", {"fs_hz": FS_HZ, "n_channels": 16, "dtype": ">i4"})):
        whole = read_recording(tmp_path / path, **options)
        segment = source.read_segment(12345, 54321)
        assert np.array_equal(segment.samples, whole.samples[12345:54321])
        assert segment.gain_uv == whole.gain_uv
    with pytest.raises(Exception, match="segment must satisfy"):
        wav.read_segment(10, wav.n_samples + 1)


def test_open_names_a_bad_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(Exception, match="bad.wav"):
        RecordingSource.open(tmp_path / "bad.wav")
    (tmp_path / "odd.raw").write_bytes(b"\x00" * 33)
    with pytest.raises(Exception, match="whole number of frames"):
        RecordingSource.open(tmp_path / "odd.raw", fs_hz=1000.0, n_channels=4)


def test_plan_covers_the_recording_on_the_block_grid(long_recording):
    settings = ChainSettings()
    plan = plan_chunks(long_recording.n_samples, FS_HZ, settings, chunk_s=3.0, features=True)
    assert plan.cores[0][0] == 0 and plan.cores[-1][1] == long_recording.n_samples
    assert all(a[1] == b[0] for a, b in zip(plan.cores, plan.cores[1:]))
    assert plan.n_chunks == 5
    block = plan.block_samples
    assert block == 391  # the chain's 20 ms blocks and bins at 19,531 Hz
    assert all(start % block == 0 for start, _ in plan.cores)
    assert plan.margin_before_samples % block == 0 and plan.margin_before_samples >= FS_HZ  # SBP settle 1 s
    detect = plan_chunks(long_recording.n_samples, FS_HZ, settings, chunk_s=3.0, features=False)
    # running sums: L = 29, 11 low-pass taps, support 67; dead time 20 samples: one block is enough
    assert detect.margin_before_samples == block and detect.margin_after_samples == block
    iir = plan_chunks(long_recording.n_samples, FS_HZ, ChainSettings(filter_design="butterworth"), chunk_s=3.0,
                      features=False)
    assert iir.cores == [(0, long_recording.n_samples)]
    with pytest.raises(BatchError, match="chunk_s must be at least"):
        plan_chunks(long_recording.n_samples, FS_HZ, settings, chunk_s=0.5, features=True)


@pytest.mark.parametrize("filter_design", ["moving_average", "fir"])
def test_chunked_equals_whole_bit_for_bit(tmp_path, long_recording, filter_design):
    write_wav(tmp_path / "a.wav", long_recording)
    settings = ChainSettings(filter_design=filter_design)
    recording = read_recording(tmp_path / "a.wav")
    result = _whole_outputs(recording, tmp_path, settings)
    source = RecordingSource.open(tmp_path / "a.wav")
    for kind, whole in (("detect", "whole.spikes.csv"), ("features", "whole.features.npy")):
        plan, noise, results, merged = _chunked(source, settings, kind, tmp_path)
        assert plan.n_chunks == 5
        assert np.array_equal(noise, result.noise_uv)
        assert file_sha256(merged) == file_sha256(tmp_path / whole), kind
        for before, after in zip(results, results[1:]):
            assert np.array_equal(before["seam"]["tail_events"], after["seam"]["head_events"])
    assert result.events.n_spikes > 1000


def test_a_short_margin_shows_at_the_seam(tmp_path, long_recording):
    """One block before each features chunk is too short for the SBP filter to lock: the seam says so."""
    write_wav(tmp_path / "a.wav", long_recording)
    source = RecordingSource.open(tmp_path / "a.wav")
    _, _, results, _ = _chunked(source, ChainSettings(), "features", tmp_path, margin_before=391)
    mismatched = [not np.array_equal(a["seam"]["tail_state"], b["seam"]["head_state"])
                  for a, b in zip(results, results[1:])]
    assert any(mismatched)


def test_expand_inputs_and_output_names(tmp_path):
    for name in ("b.wav", "a.wav", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wav").write_bytes(b"")
    assert expand_inputs([tmp_path], extensions=(".wav",)) == [tmp_path / "a.wav", tmp_path / "b.wav"]
    assert expand_inputs([str(tmp_path / "*.wav"), tmp_path / "a.wav"], extensions=(".wav",)) == [
        tmp_path / "a.wav", tmp_path / "b.wav"]
    assert expand_inputs([str(tmp_path / "**" / "a.wav")], extensions=(".wav",))[-1] == tmp_path / "sub" / "a.wav"
    with pytest.raises(BatchError, match="does not exist"):
        expand_inputs([tmp_path / "missing.wav"], extensions=(".wav",))
    with pytest.raises(BatchError, match="matches no"):
        expand_inputs([str(tmp_path / "*.nwb")], extensions=(".nwb",))
    assert output_paths("detect", [tmp_path / "a.wav"], tmp_path / "out") == [tmp_path / "out" / "a.spikes.csv"]
    with pytest.raises(BatchError, match="would both write"):
        output_paths("compress", [tmp_path / "a.wav", tmp_path / "sub" / "a.wav"], tmp_path / "out")
