"""The lossless neural codec: real N1 clips byte for byte, conformance, known answers, bad input."""

from __future__ import annotations

import struct
import wave

import numpy as np
import pytest
from conftest import shared_data

from neurolace.cli.main import main
from neurolace.codec import (
    CodecError,
    NeuralCodec,
    baseline_codecs,
    check_codec,
    decode_wav,
    encode_wav,
    salvage,
)
from neurolace.codec.budget import MEASURED_N1_RATIO
from neurolace.codec.histogram import ResidualModel
from neurolace.codec.lpc import fit_predictor, prediction_residual, prediction_synthesis
from neurolace.codec.neural import frame_offsets
from neurolace.codec.table import ValueTable

N1_FILES = (
    "0052503c-2849-4f41-ab51-db382103690c.wav",
    "0ab237b7-fb12-4687-afed-8d1e2070d621.wav",
)


def n1_wav(name: str) -> bytes:
    return shared_data("neuralink-compression", "wav", name).read_bytes()


def wav_bytes(samples: np.ndarray, fs_hz: int = 19531) -> bytes:
    samples = samples.reshape(samples.shape[0], -1)
    payload = samples.astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(payload),
        b"WAVE",
        b"fmt ",
        16,
        1,
        samples.shape[1],
        fs_hz,
        fs_hz * 2 * samples.shape[1],
        2 * samples.shape[1],
        16,
        b"data",
        len(payload),
    )
    return header + payload


@pytest.mark.parametrize("mode", ["context", "fast"])
@pytest.mark.parametrize("name", N1_FILES)
def test_real_n1_clip_round_trips_byte_for_byte(name, mode):
    original = n1_wav(name)
    packed = encode_wav(original, mode=mode)
    assert decode_wav(packed) == original
    # the public best entry reached 3.4575x over the whole set; every clip here compresses beyond 3x
    assert len(original) / len(packed) > 3.0


def test_every_n1_clip_round_trips_at_the_measured_ratio():
    # the codec issue's contract on all 496 public clips: every file byte for byte, and the ratio stored
    # for the link budget (and quoted in docs/codec.md) is what the default mode measures, above the 3.50 aim
    paths = sorted(shared_data("neuralink-compression", "wav").glob("*.wav"))
    assert len(paths) == 496
    wav_total = packed_total = 0
    for path in paths:
        original = path.read_bytes()
        packed = encode_wav(original)
        assert decode_wav(packed) == original, path.name
        wav_total += len(original)
        packed_total += len(packed)
    assert round(wav_total / packed_total, 4) == MEASURED_N1_RATIO
    assert MEASURED_N1_RATIO >= 3.50


def test_context_mode_beats_fast_mode_on_real_clips():
    originals = [n1_wav(name) for name in N1_FILES]
    context = sum(len(encode_wav(data, mode="context")) for data in originals)
    fast = sum(len(encode_wav(data, mode="fast")) for data in originals)
    assert context < 0.995 * fast


def test_wav_header_and_trailer_bytes_survive():
    samples = np.arange(-50, 51, dtype=np.int16) * 64
    plain = wav_bytes(samples)
    # a LIST chunk before data (non-canonical header) and a trailing chunk after it
    list_chunk = b"LIST" + struct.pack("<I", 4) + b"INFO"
    header = plain[:12] + plain[12:36] + list_chunk + plain[36:44]
    header = header[:4] + struct.pack("<I", len(header) - 8 + len(plain) - 44 + 10) + header[8:]
    odd = header + plain[44:] + b"junk\x02\x00\x00\x00ab"
    assert decode_wav(encode_wav(odd)) == odd
    three_channels = wav_bytes(np.arange(3 * 301, dtype=np.int16).reshape(301, 3) * 7 - 500, fs_hz=30000)
    assert decode_wav(encode_wav(three_channels)) == three_channels


@pytest.mark.parametrize(
    "codec",
    [
        NeuralCodec(),
        NeuralCodec(mode="fast"),
        NeuralCodec(frame_samples=7),
        NeuralCodec(max_order=0, mode="fast"),
        *baseline_codecs(),
    ],
    ids=lambda codec: (
        f"{codec.name}{'-' + str(codec.frame_samples) if isinstance(codec, NeuralCodec) else ''}"
    ),
)
def test_every_codec_passes_the_conformance_suite(codec):
    sizes = check_codec(codec)
    assert sizes["empty"] < 64


def test_value_table_derives_the_uneven_grid():
    values = np.array(
        [-32768, -32703, -32639, -32575, -32447, 0, 64], dtype=np.int16
    )  # gaps 65, 64, 64, 128, ...
    table = ValueTable(values)
    assert table.step == 64
    assert table.grid_codes[:5].tolist() == [0, 1, 2, 3, 5]  # the 128 gap spans two codes
    samples = values[[0, 4, 6, 3]]
    assert np.array_equal(table.to_samples(table.to_codes(samples)), samples)
    with pytest.raises(CodecError, match="sample value 1 is not in the codec's value table"):
        table.to_codes(np.array([1], dtype=np.int16))
    with pytest.raises(CodecError, match="falls in a gap of the value table"):
        table.to_samples(np.array([0, 4, 5]))  # code 4 sits inside the 128 gap: it names no value
    with pytest.raises(CodecError, match="lies outside the value table"):
        table.to_samples(np.array([4, table.n_codes]))  # outside is reported before a gap


def test_predictor_recovers_an_ar1_process(rng):
    # x[t] = 0.9 x[t-1] + e: the order-selected predictor's first coefficient is ~0.9
    noise = rng.normal(0, 20, 50_000)
    x = np.zeros_like(noise)
    for t in range(1, x.size):
        x[t] = 0.9 * x[t - 1] + noise[t]
    codes = np.rint(x).astype(np.int64) + 1000
    predictor = fit_predictor(codes, max_order=8)
    assert predictor.coefficients[0] / 2**predictor.shift == pytest.approx(0.9, abs=0.02)
    residual = prediction_residual(codes, predictor, 2000, 4096)
    assert residual.std() == pytest.approx(20, rel=0.05)
    assert np.array_equal(prediction_synthesis(residual, predictor, 2000, 4096), codes)


def test_residual_histogram_quantisation_is_quarter_octaves():
    residual = np.repeat(np.arange(-2, 3), [1, 4, 16, 4, 0 + 2])
    model = ResidualModel.fit(residual)
    # levels 1 + round(4 log2 count): counts 1, 4, 16, 4, 2 -> 1, 9, 17, 9, 5
    assert model.low == -2 and model.levels.tolist() == [1, 9, 17, 9, 5]


def test_salvage_recovers_every_frame_but_the_corrupt_one():
    original = n1_wav(N1_FILES[0])
    packed = bytearray(encode_wav(original, frame_samples=8192, mode="fast"))
    strict_samples = np.frombuffer(original[44:], dtype="<i2")
    frames = frame_offsets(bytes(packed))
    assert len(frames) == -(-strict_samples.size // 8192)
    target = frames[3] + 40  # inside frame 3's payload
    packed[target] ^= 0x10
    with pytest.raises(CodecError, match="corrupt frame 3"):
        decode_wav(bytes(packed))
    result = salvage(bytes(packed))
    assert result.lost_frames == [3]
    assert np.array_equal(result.samples[result.valid, 0], strict_samples[result.valid])
    assert (~result.valid).sum() == 8192


def test_decoder_names_the_problem():
    packed = encode_wav(n1_wav(N1_FILES[1]), mode="fast")
    with pytest.raises(CodecError, match=r"not a neurolace codec file: it starts with b'RIFF'"):
        decode_wav(n1_wav(N1_FILES[1]))
    with pytest.raises(CodecError, match="unsupported codec format version 9"):
        decode_wav(packed[:4] + b"\x09" + packed[5:])
    with pytest.raises(CodecError, match="truncated|missing|corrupt frame"):
        decode_wav(packed[: len(packed) - 100])
    with pytest.raises(CodecError, match="corrupt codec file header"):
        decode_wav(packed[:20] + bytes([packed[20] ^ 0xFF]) + packed[21:])


def test_encoder_rejects_wavs_it_cannot_hold_losslessly():
    samples = np.zeros(10, dtype=np.int16)
    good = wav_bytes(samples)
    float_wav = good[:20] + struct.pack("<H", 3) + good[22:34] + struct.pack("<H", 32) + good[36:]
    with pytest.raises(CodecError, match="IEEE float .* not supported"):
        encode_wav(float_wav)
    adpcm = good[:20] + struct.pack("<H", 2) + good[22:]
    with pytest.raises(CodecError, match="Microsoft ADPCM .* not supported"):
        encode_wav(adpcm)
    pcm24 = good[:34] + struct.pack("<H", 24) + good[36:]
    with pytest.raises(CodecError, match="24-bit PCM is not supported"):
        encode_wav(pcm24)
    with pytest.raises(CodecError, match="truncated WAV"):
        encode_wav(good[:30])
    with pytest.raises(CodecError, match="dtype int16"):
        NeuralCodec().encode(np.zeros(5, dtype=np.int32))


def test_cli_round_trip_and_errors(tmp_path, capsys):
    source = tmp_path / "clip.wav"
    source.write_bytes(n1_wav(N1_FILES[0]))
    packed, restored = tmp_path / "clip.nlx", tmp_path / "back.wav"
    assert main(["codec", "encode", str(source), str(packed)]) == 0
    assert main(["codec", "decode", str(packed), str(restored)]) == 0
    assert restored.read_bytes() == source.read_bytes()
    # a corrupt input: one-line error, exit 2, and no output file left behind
    broken = tmp_path / "broken.nlx"
    broken.write_bytes(packed.read_bytes()[:-7])
    target = tmp_path / "never.wav"
    assert main(["codec", "decode", str(broken), str(target)]) == 2
    assert "neurolace codec: error:" in capsys.readouterr().err
    assert not target.exists() and not list(tmp_path.glob(".never*"))
    with wave.open(str(tmp_path / "stereo8.wav"), "wb") as handle:  # 8-bit WAV: not representable as int16
        handle.setnchannels(1)
        handle.setsampwidth(1)
        handle.setframerate(8000)
        handle.writeframes(bytes(range(50)))
    assert main(["codec", "encode", str(tmp_path / "stereo8.wav"), str(tmp_path / "x.nlx")]) == 2
    assert "8-bit PCM is not supported" in capsys.readouterr().err
    assert not (tmp_path / "x.nlx").exists()


def test_cli_bench_json_is_one_object(tmp_path, capsys):
    import json

    for index, name in enumerate(N1_FILES[:1]):
        (tmp_path / f"{index}.wav").write_bytes(n1_wav(name))
    assert main(["codec", "bench", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in report["codecs"]}
    assert {"neurolace", "neurolace-fast", "zlib-9", "bz2-9", "lzma-9e", "zstd-19", "pcodec", "flac"} <= names
    assert all(row["lossless"] for row in report["codecs"])
    by_name = {row["name"]: row["ratio"] for row in report["codecs"]}
    assert by_name["neurolace"] > max(
        ratio for name, ratio in by_name.items() if not name.startswith("neurolace")
    )


def test_evaluate_names_the_file_it_cannot_code(tmp_path):
    """A bad WAV among good ones stops the evaluation with an error naming that file."""
    from neurolace.codec.errors import CodecError
    from neurolace.codec.evaluate import evaluate_codecs
    good = tmp_path / "good.wav"
    with wave.open(str(good), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(19531)
        handle.writeframes(np.arange(-2000, 2000, dtype="<i2").tobytes())
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    with pytest.raises(CodecError, match=r"bad\.wav: "):
        evaluate_codecs([good, bad])
    with pytest.raises(CodecError, match=r"cannot read .*missing\.wav"):
        evaluate_codecs([good, tmp_path / "missing.wav"])


def test_more_channels_than_the_format_holds_are_refused_at_encode_not_at_decode():
    import numpy as np

    from neurolace.codec.errors import CodecError
    from neurolace.codec.neural import MAX_CHANNELS, NeuralCodec

    with pytest.raises(CodecError, match=f"70000 channels; the format holds at most {MAX_CHANNELS}"):
        NeuralCodec().encode(np.zeros((1, 70000), np.int16))
