"""The neurolace codec as a numcodecs/zarr codec: config, exact zarr round trips, refusals, registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_data

try:
    import numcodecs
    import zarr
except ImportError as exc:  # a missing test dependency is an error, never a skip
    raise ImportError(f"tests/test_zarr_codec.py needs the 'batch' extra (zarr, numcodecs): {exc}") from exc

from neurolace.codec import CodecError, check_codec
from neurolace.codec.bitpack import ByteReader
from neurolace.codec.numcodecs import CODEC_ID, NeurolaceCodec
from neurolace.io import read_wav

N1_CLIP = "0052503c-2849-4f41-ab51-db382103690c.wav"
#: the exact line the lead adds to pyproject.toml under [project.entry-points."numcodecs.codecs"]
ENTRY_POINT = 'neurolace = "neurolace.codec.numcodecs:NeurolaceCodec"'


def n1_codes() -> np.ndarray:
    """The first N1 clip's int16 samples, shape (n_samples, 1)."""
    return read_wav(shared_data("neuralink-compression", "wav", N1_CLIP)).samples


def random_walk(rng, shape) -> np.ndarray:
    return np.cumsum(rng.normal(0, 20, size=shape), axis=0).clip(-32768, 32767).astype(np.int16)


def test_config_round_trips_through_json_and_the_registry():
    codec = NeurolaceCodec(mode="fast", max_order=8, frame_samples=1000)
    config = json.loads(json.dumps(codec.get_config()))
    assert config == {"id": "neurolace", "mode": "fast", "max_order": 8, "frame_samples": 1000}
    assert numcodecs.get_codec(config) == codec
    assert NeurolaceCodec.from_config(config) == codec
    assert NeurolaceCodec() != codec
    assert repr(codec) == "NeurolaceCodec(mode='fast', max_order=8, frame_samples=1000)"
    with pytest.raises(CodecError, match=r"unknown 'neurolace' codec option\(s\) \['level'\]"):
        NeurolaceCodec.from_config({"id": CODEC_ID, "level": 5})
    with pytest.raises(Exception, match="mode"):
        NeurolaceCodec(mode="best")


def test_the_wrapper_passes_the_codec_conformance_suite():
    check_codec(NeurolaceCodec(mode="fast"))


@pytest.mark.parametrize("mode", ["context", "fast"])
def test_zarr_directory_store_round_trip_is_exact_with_edge_chunks(tmp_path, rng, mode):
    samples = random_walk(rng, (10_007, 7))  # odd sizes: partial chunks on both axes
    path = tmp_path / "walk.zarr"
    written = zarr.open_array(
        str(path), mode="w", shape=samples.shape, chunks=(4096, 3), dtype="int16",
        compressor=NeurolaceCodec(mode=mode, frame_samples=1500),
    )
    written[:] = samples
    array = zarr.open_array(str(path), mode="r")
    assert array.compressor == NeurolaceCodec(mode=mode, frame_samples=1500)
    assert np.array_equal(array[:], samples)
    assert np.array_equal(array[123:9000, 2:6], samples[123:9000, 2:6])
    assert np.array_equal(array[:, 4], samples[:, 4])
    assert array.nbytes_stored < samples.nbytes  # a random walk compresses


@pytest.mark.parametrize("shape,chunks", [((5000,), (999,)), ((3000, 2, 3), (1000, 2, 2)), ((1, 1), (1, 1))])
def test_one_and_three_dimensional_chunks_round_trip(rng, shape, chunks):
    samples = random_walk(rng, shape)
    array = zarr.array(samples, chunks=chunks, compressor=NeurolaceCodec())
    assert np.array_equal(array[:], samples)


def test_real_n1_clip_round_trips_through_zarr_smaller_than_zarr_defaults():
    samples = n1_codes()
    neurolace = zarr.array(samples, chunks=(32768, 1), compressor=NeurolaceCodec())
    assert np.array_equal(neurolace[:], samples)
    default_blosc = zarr.array(samples, chunks=(32768, 1))  # zarr 2's default: Blosc lz4, shuffle
    zstd = zarr.array(samples, chunks=(32768, 1), compressor=numcodecs.Zstd(level=19))
    assert samples.nbytes / neurolace.nbytes_stored > 3.0
    assert neurolace.nbytes_stored < 0.75 * min(default_blosc.nbytes_stored, zstd.nbytes_stored)


def test_decode_fills_the_output_buffer_and_checks_its_size(rng):
    codec = NeurolaceCodec()
    samples = random_walk(rng, (300, 4))
    data = codec.encode(samples)
    out = np.zeros(1200, dtype=np.int16)
    assert codec.decode(data, out=out) is out
    assert np.array_equal(out.reshape(300, 4), samples)
    with pytest.raises(CodecError, match="decoded chunk has 2400 bytes but the output buffer has 2398"):
        codec.decode(data, out=np.zeros(1199, dtype=np.int16))
    with pytest.raises(CodecError, match="not a neurolace zarr chunk: it starts with"):
        codec.decode(b"\x00" * 32)


@pytest.mark.parametrize("n_constant,trimmed", [(63, 0), (64, 64), (500, 500)])
def test_a_run_of_identical_final_rows_is_stored_once(rng, n_constant, trimmed):
    samples = random_walk(rng, (1000, 1))
    samples[-n_constant:] = samples[-n_constant - 1] + 5  # a run of exactly n_constant rows
    data = NeurolaceCodec().encode(samples)
    header = ByteReader(data, "test")
    assert header.take(5) == b"NLZC\x01" and header.varint() == 1  # magic, version, one column
    assert header.varint() == trimmed
    assert np.array_equal(NeurolaceCodec().decode(data), samples)
    constant = np.full((5000, 3), -7, dtype=np.int16)  # a chunk of nothing but fill
    assert np.array_equal(NeurolaceCodec().decode(NeurolaceCodec().encode(constant)), constant)


def test_zarr_padding_of_the_last_chunk_costs_almost_nothing():
    samples = n1_codes()  # ~98,600 samples: one 131072-sample chunk is a quarter zeros (zarr's padding)
    padded = zarr.array(samples, chunks=(131072, 1), compressor=NeurolaceCodec())
    exact = zarr.array(samples, chunks=(samples.shape[0], 1), compressor=NeurolaceCodec())
    assert np.array_equal(padded[:], samples)
    assert padded.nbytes_stored < 1.01 * exact.nbytes_stored


def test_a_corrupt_chunk_header_is_refused():
    data = bytearray(NeurolaceCodec().encode(np.zeros((200, 2), dtype=np.int16)))
    corrupt = bytes(data[:6]) + bytes([data[6] ^ 1]) + bytes(data[7:])
    with pytest.raises(CodecError, match="chunk header: checksum mismatch"):
        NeurolaceCodec().decode(corrupt)
    with pytest.raises(CodecError, match="unsupported neurolace zarr chunk version 9"):
        NeurolaceCodec().decode(b"NLZC\x09" + bytes(data[5:]))
    with pytest.raises(CodecError):
        NeurolaceCodec().decode(bytes(data[:9]))


@pytest.mark.parametrize("dtype", ["float32", "int32", "uint16", ">i2", "uint8"])
def test_other_dtypes_are_refused_with_the_dtype_named(dtype):
    with pytest.raises(CodecError, match=rf"native-order int16 only .* got dtype '\{np.dtype(dtype).str}'"):
        NeurolaceCodec().encode(np.zeros((10, 2), dtype=dtype))
    with pytest.raises(CodecError, match="native-order int16"):  # zarr refuses the array at its first write
        zarr.array(np.zeros((10, 2), dtype=dtype), compressor=NeurolaceCodec())


def test_fortran_order_and_too_many_columns_are_refused():
    with pytest.raises(CodecError, match="order='C'"):
        zarr.array(np.zeros((100, 4), dtype=np.int16), order="F", compressor=NeurolaceCodec())
    with pytest.raises(CodecError, match="at most 65536 columns .* got 70000"):
        NeurolaceCodec(mode="fast").encode(np.zeros((2, 70_000), dtype=np.int16))
    strided = np.arange(4000, dtype=np.int16).reshape(1000, 4)[::2, ::2]  # neither C nor F: copied
    assert np.array_equal(NeurolaceCodec().decode(NeurolaceCodec().encode(strided)), strided)


def _run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )


def test_a_new_process_opens_the_array_through_the_numcodecs_entry_point(tmp_path, rng):
    # the entry point the lead declares in pyproject.toml, installed here as a stand-alone dist-info
    site = tmp_path / "site"
    dist_info = site / "neurolace_zarr_entry_point-0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: neurolace-zarr-entry-point\nVersion: 0\n")
    (dist_info / "entry_points.txt").write_text(f"[numcodecs.codecs]\n{ENTRY_POINT.replace(chr(34), '')}\n")
    samples = random_walk(rng, (2000, 3))
    path = tmp_path / "walk.zarr"
    zarr.save_array(str(path), samples, chunks=(700, 3), compressor=NeurolaceCodec())
    np.save(tmp_path / "expected.npy", samples)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO_ROOT / "src")])}
    result = _run_python(
        f"""
        import sys
        import numpy as np, numcodecs, zarr
        assert "neurolace" not in numcodecs.registry.codec_registry
        array = zarr.open_array({str(path)!r}, mode="r")
        assert np.array_equal(array[:], np.load({str(tmp_path / 'expected.npy')!r}))
        assert "neurolace.codec.numcodecs" in sys.modules, "loaded through the entry point"
        print(type(array.compressor).__name__)
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "NeurolaceCodec"


def test_importing_the_module_registers_the_codec(tmp_path):
    result = _run_python(
        """
        import numcodecs
        import neurolace.codec.numcodecs
        print(type(numcodecs.get_codec({"id": "neurolace", "mode": "fast"})).__name__)
        """,
        {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "NeurolaceCodec"


def test_import_neurolace_does_not_load_numcodecs_or_zarr():
    result = _run_python(
        "import sys, neurolace, neurolace.codec, neurolace.io\n"
        "print(sorted(m for m in ('numcodecs', 'zarr', 'spikeinterface') if m in sys.modules))",
        {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_spikeinterface_zarr_recording_stores_its_traces_with_the_codec(tmp_path):
    import spikeinterface.core as si

    generated, _ = si.generate_ground_truth_recording(
        durations=[2.0], sampling_frequency=20_000.0, num_channels=8, num_units=5, seed=7
    )
    codes = np.round(generated.get_traces() / 0.195).astype(np.int16)  # SI generates float32 µV only
    recording = si.NumpyRecording([codes], sampling_frequency=20_000.0, channel_ids=generated.channel_ids)
    recording.set_channel_gains(0.195)
    recording.set_channel_offsets(0.0)
    saved = recording.save(
        format="zarr", folder=Path(tmp_path) / "recording.zarr", compressor=NeurolaceCodec(), n_jobs=1,
        chunk_duration="0.5s", progress_bar=False,
    )
    root = zarr.open(str(tmp_path / "recording.zarr"), mode="r")
    assert root["traces_seg0"].compressor == NeurolaceCodec()
    loaded = si.load(tmp_path / "recording.zarr")
    assert np.array_equal(loaded.get_traces(), recording.get_traces())
    assert np.array_equal(saved.get_traces(), recording.get_traces())
    assert np.allclose(loaded.get_channel_gains(), 0.195)


def test_the_package_declares_the_codec_entry_point():
    """A process that only opens a zarr array finds the codec through this entry point of pyproject.toml."""
    import tomllib

    from conftest import REPO_ROOT

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["numcodecs.codecs"] == {"neurolace": "neurolace.codec.numcodecs:NeurolaceCodec"}
