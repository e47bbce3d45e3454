"""``neurolace batch`` from the command line: exit statuses, JSON report, messages, a killed worker retried."""

from __future__ import annotations

import json
import os

import pytest

from conftest import shared_data
from neurolace.batch import open_client
from neurolace.cli.main import main

CLIPS = ("0052503c-2849-4f41-ab51-db382103690c.wav", "006c6dd6-d91e-419c-9836-c3f320da4f25.wav")


@pytest.fixture(scope="module")
def client():
    with open_client("local", n_workers=2) as opened:
        yield opened


@pytest.fixture(scope="module")
def inputs():
    return {"clips": [shared_data("neuralink-compression", "wav", name) for name in CLIPS]}


class KillWorkerOnce:
    """Wraps a task: the first call anywhere (marker file absent) kills its own worker process mid-task."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, function):
        marker = self.marker

        def wrapped(*args, **kwargs):
            if not os.path.exists(marker):
                with open(marker, "w") as stream:
                    stream.write(str(os.getpid()))
                os._exit(1)  # the worker dies as if killed (no exception, no cleanup)
            return function(*args, **kwargs)

        return wrapped


def test_a_killed_worker_is_retried_and_the_run_completes(tmp_path, client, inputs):
    from neurolace.batch import run_batch

    marker = tmp_path / "killed"
    report = run_batch("compress", inputs["clips"], tmp_path / "out", client=client,
                       task_wrapper=KillWorkerOnce(str(marker)))
    assert marker.exists()  # a worker did die
    assert (report.n_ok, report.n_failed) == (2, 0), report.failed
    for clip in inputs["clips"]:
        single = tmp_path / f"{clip.stem}.single.nlx"
        assert main(["codec", "encode", str(clip), str(single)]) == 0
        assert (tmp_path / "out" / f"{clip.stem}.nlx").read_bytes() == single.read_bytes()


def test_cli_on_an_existing_scheduler(tmp_path, client, inputs, capsys):
    address = client.scheduler.address
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    status = main(["batch", "detect", *map(str, inputs["clips"][:2]), str(bad), "--out", str(tmp_path / "out"),
                   "--scheduler", address, "--json", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 3
    report = json.loads(captured.out)
    assert (report["n_ok"], report["n_failed"]) == (2, 1)
    assert "bad.wav" in captured.err
    assert main(["batch", "detect", str(tmp_path / "nothing*.wav"), "--out", str(tmp_path / "o"),
                 "--scheduler", address]) == 2
    assert "matches no" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["batch", "detect", "x.wav", "--out", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["batch", "detect", "x.wav", "--out", str(tmp_path), "--scheduler", "10.0.0.1:8786"]) == 2
    assert "does not exist" in capsys.readouterr().err  # inputs are checked before any cluster starts
