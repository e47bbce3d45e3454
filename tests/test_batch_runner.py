"""run_batch on a 2-worker LocalCluster: outputs byte for byte as the single-file commands, resume, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_data
from neurolace.batch import EXIT_SOME_FAILED, MANIFEST_NAME, ChainSettings, open_client, run_batch
from neurolace.batch.tasks import file_sha256
from neurolace.cli.main import main
from neurolace.dsp.chain import run_signal_chain
from neurolace.io import read_recording, write_raw, write_wav
from neurolace.sim.implant import simulate_implant

CLIPS = (
    "0052503c-2849-4f41-ab51-db382103690c.wav",
    "006c6dd6-d91e-419c-9836-c3f320da4f25.wav",
    "00dc461c-a60a-4d74-bf87-de4208f224ee.wav",
)


@pytest.fixture(scope="module")
def client():
    with open_client("local", n_workers=2) as opened:
        yield opened


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three real N1 clips (5 s, 1 channel) and a 14 s 16-channel simulated WAV and raw file (chunked at 3 s)."""
    folder = tmp_path_factory.mktemp("inputs")
    clips = [shared_data("neuralink-compression", "wav", name) for name in CLIPS]
    recording = simulate_implant(duration_s=14.0, n_electrodes=16, seed=11, fs_hz=19531).recording
    write_wav(folder / "long.wav", recording)
    write_raw(folder / "long.raw", recording)
    return {"clips": clips, "long_wav": folder / "long.wav", "long_raw": folder / "long.raw"}


def _manifest(out):
    return json.loads((out / MANIFEST_NAME).read_text())


def test_compress_and_decompress_match_the_codec_commands(tmp_path, client, inputs):
    clips = inputs["clips"][:2]
    report = run_batch("compress", clips, tmp_path / "nlx", client=client)
    assert (report.n_ok, report.n_failed, report.exit_status) == (2, 0, 0)
    back = run_batch("decompress", [tmp_path / "nlx"], tmp_path / "wav", client=client)
    assert back.n_ok == 2
    for clip in clips:
        single = tmp_path / f"{clip.stem}.single.nlx"
        assert main(["codec", "encode", str(clip), str(single)]) == 0
        ours = tmp_path / "nlx" / f"{clip.stem}.nlx"
        assert ours.read_bytes() == single.read_bytes()
        assert (tmp_path / "wav" / clip.name).read_bytes() == clip.read_bytes()
    entry = _manifest(tmp_path / "nlx")["files"][str(inputs["clips"][0])]
    assert entry["status"] == "ok" and entry["outputs"][0]["sha256"] == file_sha256(
        tmp_path / "nlx" / f"{inputs['clips'][0].stem}.nlx")
    assert entry["summary"]["ratio"] > 2 and entry["workers"] and entry["task_seconds"] > 0


def test_detect_and_features_match_the_single_file_results(tmp_path, client, inputs):
    """Clips are one task each; the long files five 3 s chunks merged: all equal one pass, byte for byte."""
    files = [*inputs["clips"], inputs["long_wav"]]
    for kind, suffix in (("detect", ".spikes.csv"), ("features", ".features.npy")):
        report = run_batch(kind, files, tmp_path / kind, client=client, chunk_s=3.0)
        assert (report.n_ok, report.n_failed) == (4, 0), report.failed
        for path in files:
            ours = tmp_path / kind / f"{path.stem}{suffix}"
            if kind == "detect":
                single = tmp_path / f"{path.stem}.single.csv"
                assert main(["detect", str(path), "--out", str(single), "--json", "--no-progress"]) == 0
                assert ours.read_bytes() == single.read_bytes(), path
            else:
                features = run_signal_chain(read_recording(path)).features.data
                assert np.array_equal(np.load(ours), features)
                single = tmp_path / f"{path.stem}.single.npy"
                np.save(single, features)
                assert ours.read_bytes() == single.read_bytes(), path
        entry = _manifest(tmp_path / kind)["files"][str(inputs["long_wav"])]
        assert entry["n_chunks"] == 5 and entry["n_tasks"] == 7  # noise + 5 chunks + merge
    assert not any((tmp_path / "detect" / ".parts").iterdir())


def test_raw_input_is_chunked_like_the_wav(tmp_path, client, inputs):
    from neurolace.batch import RawLayout

    raw = RawLayout(fs_hz=19531.0, n_channels=16, gain_uv=read_recording(inputs["long_wav"]).gain_uv)
    report = run_batch("detect", [inputs["long_raw"]], tmp_path / "raw", client=client, chunk_s=3.0, raw=raw)
    wav = run_batch("detect", [inputs["long_wav"]], tmp_path / "wav", client=client, chunk_s=3.0)
    assert report.n_ok == wav.n_ok == 1
    assert (tmp_path / "raw" / "long.spikes.csv").read_bytes() == (tmp_path / "wav" / "long.spikes.csv").read_bytes()


def test_a_seam_that_disagrees_is_run_again(tmp_path, client, inputs, monkeypatch):
    """Without the spike-band power's settle margin the seams disagree; the runner re-runs them and still merges exactly."""
    from neurolace.batch import chunking

    monkeypatch.setattr(chunking, "SBP_SETTLE_S", 0.0)
    report = run_batch("features", [inputs["long_wav"]], tmp_path, client=client, chunk_s=3.0)
    assert report.n_ok == 1
    entry = _manifest(tmp_path)["files"][str(inputs["long_wav"])]
    assert entry["redone_chunks"] >= 1
    features = run_signal_chain(read_recording(inputs["long_wav"])).features.data
    assert np.array_equal(np.load(tmp_path / "long.features.npy"), features)


def test_resume_skips_verified_outputs_and_redoes_a_damaged_one(tmp_path, client, inputs):
    first = run_batch("compress", inputs["clips"], tmp_path, client=client)
    assert first.n_ok == 3
    again = run_batch("compress", inputs["clips"], tmp_path, client=client)
    assert (again.n_ok, again.n_skipped) == (0, 3)
    damaged = tmp_path / f"{inputs['clips'][1].stem}.nlx"
    good = damaged.read_bytes()
    damaged.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, one bit flipped
    (tmp_path / f"{inputs['clips'][2].stem}.nlx").unlink()
    third = run_batch("compress", inputs["clips"], tmp_path, client=client)
    assert (third.n_ok, third.n_skipped) == (2, 1)
    assert damaged.read_bytes() == good
    changed = run_batch("compress", inputs["clips"], tmp_path, client=client, codec_mode="fast")
    assert changed.n_ok == 3  # other options: nothing recorded counts as done


def test_a_bad_file_is_reported_and_the_others_finish(tmp_path, client, inputs):
    bad = tmp_path / "in" / "truncated.wav"
    bad.parent.mkdir()
    bad.write_bytes(inputs["clips"][0].read_bytes()[:30])
    garbage = tmp_path / "in" / "garbage.wav"
    garbage.write_bytes(b"not a wav at all" * 10)
    files = [inputs["clips"][0], bad, garbage, inputs["clips"][1]]
    for kind in ("compress", "detect"):
        report = run_batch(kind, files, tmp_path / kind, client=client)
        assert (report.n_ok, report.n_failed, report.exit_status) == (2, 2, EXIT_SOME_FAILED)
        manifest = _manifest(tmp_path / kind)
        assert manifest["totals"]["n_failed"] == 2
        assert manifest["files"][str(bad)]["status"] == "failed"
        assert "truncated" in manifest["files"][str(bad)]["error"]["message"]
        assert manifest["files"][str(garbage)]["error"]["message"]
        assert not list((tmp_path / kind).glob("truncated*")) and not list((tmp_path / kind).glob("*.part"))
    bad.write_bytes(inputs["clips"][2].read_bytes())  # fixed: a re-run does only the two missing files
    rerun = run_batch("compress", files, tmp_path / "compress", client=client)
    assert (rerun.n_ok, rerun.n_failed, rerun.n_skipped) == (1, 1, 2)


def test_full_output_disk_is_a_per_file_failure(tmp_path, client, inputs, monkeypatch):
    """A write that fails (ENOSPC, simulated on the workers) is recorded; nothing half-written remains."""
    import errno

    def full_disk(function):
        def wrapped(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        return wrapped

    report = run_batch("compress", inputs["clips"][:2], tmp_path, client=client, retries=0, task_wrapper=full_disk)
    assert (report.n_ok, report.n_failed) == (0, 2)
    entry = _manifest(tmp_path)["files"][str(inputs["clips"][0])]
    assert "No space left" in entry["error"]["message"] and entry["error"]["type"] == "OSError"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME]
