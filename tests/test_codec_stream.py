"""Streaming mode: frame sizes, state across frames, resync after a lost or corrupt frame."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from neurolace.codec import CodecError
from neurolace.codec.stream import StreamDecoder, StreamEncoder, frame_samples_for
from neurolace.codec.table import ValueTable


def n1_samples(n_files: int = 3, n_samples: int = 30_000) -> np.ndarray:
    folder = shared_data("neuralink-compression", "wav")
    paths = sorted(folder.glob("*.wav"))[:n_files]
    return np.column_stack([np.frombuffer(p.read_bytes()[44:], dtype="<i2")[:n_samples] for p in paths])


def test_frame_size_is_at_most_the_duration():
    assert frame_samples_for(1.0, 19531.0) == 19  # 19.531 samples fit in 1 ms -> 19
    assert frame_samples_for(5.0, 19531.0) == 97
    assert frame_samples_for(1.0, 1000.0) == 1
    assert frame_samples_for(0.1, 1000.0) == 1  # never zero


@pytest.mark.parametrize("frame_ms", [1.0, 50.0, float("inf")])
def test_stream_round_trips_multichannel_n1_data(frame_ms):
    samples = n1_samples()
    table = ValueTable.from_samples(samples).values
    encoder = StreamEncoder(table, n_channels=3, fs_hz=19531, frame_ms=frame_ms, resync_ms=200.0)
    frames = list(encoder.encode(samples))
    decoded, lost = StreamDecoder(encoder.header()).decode_frames(frames)
    assert lost == [] and np.array_equal(decoded, samples)
    assert all(len(frame) > 15 for frame in frames)


def test_bigger_frames_compress_better():
    samples = n1_samples(n_files=2, n_samples=20_000)
    table = ValueTable.from_samples(samples).values
    sizes = {}
    for frame_ms in (1.0, 5.0, 50.0):
        encoder = StreamEncoder(table, n_channels=2, fs_hz=19531, frame_ms=frame_ms)
        sizes[frame_ms] = sum(map(len, encoder.encode(samples)))
    assert sizes[1.0] > sizes[5.0] > sizes[50.0]
    assert samples.nbytes / sizes[50.0] > 3.0


def test_lost_frame_costs_only_frames_until_the_next_resync():
    samples = n1_samples(n_files=2, n_samples=4000)
    table = ValueTable.from_samples(samples).values
    encoder = StreamEncoder(table, n_channels=2, fs_hz=19531, frame_ms=1.0, resync_ms=10.0)
    frames = list(encoder.encode(samples))
    assert encoder.resync_frames == 11  # 10 ms = 195 samples = 10.3 frames of 19 -> every 11th frame
    damaged = list(frames)
    damaged[7] = damaged[7][:-1] + bytes([damaged[7][-1] ^ 1])  # corrupt frame 7
    decoder = StreamDecoder(encoder.header())
    with pytest.raises(CodecError, match="corrupt frame 7: checksum mismatch"):
        StreamDecoder(encoder.header()).decode_frames(damaged)
    decoded, lost = decoder.decode_frames(damaged, strict=False)
    assert lost == [7, 8, 9, 10]  # frame 11 is the next resync point
    kept = np.concatenate([samples[i * 19 : (i + 1) * 19] for i in range(len(frames)) if i not in lost])
    assert np.array_equal(decoded, kept)
    # a dropped (missing) frame is detected by its index and handled the same way
    decoded, lost = StreamDecoder(encoder.header()).decode_frames(frames[:3] + frames[4:], strict=False)
    assert lost == [3, 4, 5, 6, 7, 8, 9]  # list positions of frames 4..10; frame 11 resyncs


def test_stream_rejects_bad_input():
    table = np.arange(-10, 10, dtype=np.int16)
    encoder = StreamEncoder(table, n_channels=2, fs_hz=1000.0, frame_ms=5.0)
    with pytest.raises(CodecError, match=r"shape \(1..5, 2\)"):
        encoder.encode_frame(np.zeros((6, 2), dtype=np.int16))
    with pytest.raises(CodecError, match="sample value 50 is not in the codec's value table"):
        encoder.encode_frame(np.full((2, 2), 50, dtype=np.int16))
    with pytest.raises(CodecError, match="strictly increasing"):
        StreamEncoder(np.array([3, 1], dtype=np.int16), n_channels=1, fs_hz=1000.0)
    with pytest.raises(CodecError, match="not a neurolace stream header"):
        StreamDecoder(b"RIFF....")
    decoder = StreamDecoder(encoder.header())
    with pytest.raises(CodecError, match="not a neurolace stream frame"):
        decoder.decode_frame(b"\x00\x01\x02")
