"""Fuzz the decoders: on any damaged or foreign input only CodecError may come out, never wrong data."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurolace.codec import CodecError, NeuralCodec, decode_wav, encode_wav, salvage
from neurolace.codec.stream import StreamDecoder, StreamEncoder

_RNG = np.random.default_rng(7)
_SAMPLES = np.rint(np.cumsum(_RNG.normal(0, 3, size=(700, 2)), axis=0)).astype(np.int16) * 64
_CODECS = {mode: NeuralCodec(frame_samples=128, mode=mode) for mode in ("context", "fast")}
_PACKED = {mode: codec.encode(_SAMPLES) for mode, codec in _CODECS.items()}
_WAV = (
    b"RIFF"
    + (36 + 200).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + bytes.fromhex("01000100")
    + (1000).to_bytes(4, "little")
    + (2000).to_bytes(4, "little")
    + bytes.fromhex("02001000")
    + b"data"
    + (200).to_bytes(4, "little")
    + (np.arange(100, dtype="<i2") * 3).tobytes()
)
_PACKED_WAV = encode_wav(_WAV, frame_samples=32)
_STREAM = StreamEncoder(np.unique(_SAMPLES), n_channels=2, fs_hz=1000.0, frame_ms=50.0, resync_ms=150.0)
_STREAM_HEADER = _STREAM.header()
_STREAM_FRAMES = list(_STREAM.encode(_SAMPLES))

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_only_to_the_truth_or_codec_error(decode, data, truth) -> None:
    try:
        result = decode(data)
    except CodecError:
        return
    assert np.array_equal(result, truth) if isinstance(truth, np.ndarray) else result == truth, (
        "silently wrong output"
    )


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    for decode in (_CODECS["fast"].decode, decode_wav, salvage):
        try:
            decode(data)
        except CodecError:
            pass


@FUZZ
@given(st.sampled_from(["context", "fast"]), st.data())
def test_bit_flips_truncation_and_foreign_magic(mode, data):
    packed = bytearray(_PACKED[mode])
    kind = data.draw(st.sampled_from(["flip", "truncate", "magic", "insert"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(packed) - 1))
            packed[position] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        packed = packed[: data.draw(st.integers(0, len(packed) - 1))]
    elif kind == "magic":
        packed[:4] = data.draw(st.binary(min_size=4, max_size=4).filter(lambda magic: magic != b"NLXC"))
    else:
        position = data.draw(st.integers(0, len(packed)))
        packed[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    _decodes_only_to_the_truth_or_codec_error(_CODECS[mode].decode, bytes(packed), _SAMPLES)
    try:
        salvage(bytes(packed))
    except CodecError:
        pass


@FUZZ
@given(st.integers(0, len(_PACKED_WAV) - 1), st.integers(0, 7))
def test_wav_file_bit_flips(position, bit):
    packed = bytearray(_PACKED_WAV)
    packed[position] ^= 1 << bit
    _decodes_only_to_the_truth_or_codec_error(decode_wav, bytes(packed), _WAV)


@FUZZ
@given(st.integers(0, len(_STREAM_FRAMES) - 1), st.data())
def test_stream_frame_damage(index, data):
    frames = list(_STREAM_FRAMES)
    frame = bytearray(frames[index])
    position = data.draw(st.integers(0, len(frame) - 1))
    frame[position] ^= 1 << data.draw(st.integers(0, 7))
    frames[index] = bytes(frame)
    decoder = StreamDecoder(_STREAM_HEADER)
    decoded, lost = decoder.decode_frames(frames, strict=False)
    assert lost and lost[0] == index
    assert np.array_equal(decoded[: index * 50], _SAMPLES[: index * 50])


ATHERIS_TARGET = textwrap.dedent(
    """
    import sys
    import atheris

    # the modules holding numba kernels cannot be instrumented (numba rejects the probes)
    numba_modules = ["neurolace.codec.histogram", "neurolace.codec.lpc", "neurolace.codec.rans", "neurolace.codec.table"]
    with atheris.instrument_imports(include=["neurolace.codec"], exclude=numba_modules):
        from neurolace.codec import CodecError, decode_wav, encode_wav, salvage

    def target(data):
        for decode in (decode_wav, salvage):
            try:
                decode(data)
            except CodecError:
                pass

    corpus, artifacts = sys.argv[1], sys.argv[2]
    atheris.Setup(
        [sys.argv[0], "-runs=3000", "-seed=1", "-max_len=4096", f"-artifact_prefix={artifacts}/", corpus], target
    )
    atheris.Fuzz()
    """
)


def test_atheris_coverage_guided_fuzzing(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "valid.nlx").write_bytes(_PACKED_WAV)
    (corpus / "fast.nlx").write_bytes(_PACKED["fast"])
    script = tmp_path / "fuzz_target.py"
    script.write_text(ATHERIS_TARGET)
    completed = subprocess.run(
        [sys.executable, str(script), str(corpus), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Done 3000 runs" in completed.stderr
