"""Hostile and careless inputs to every command of cli/{simulate,detect,codec,link,bench,report}.

Issue 17 found 10 of 275 CLI probes ending in a traceback. Every probe here gives a command one
bad thing - a number that is NaN, infinite, negative, huge or not a number; a directory, FIFO,
binary, empty or missing file where a file is read; an output under a file, on a directory or
already there - and asserts exit status 2, one ``error:`` line and no traceback. The numeric
probes are generated from the parser, so an option added later with a :class:`Number` type is
probed too. ``PROBES`` is importable, so the same list can be run in subprocesses.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from cli_helpers import error_line, run_cli

from neurolace.cli.args import Number
from neurolace.cli.main import build_parser
from neurolace.core import Recording
from neurolace.io import write_wav

#: A valid command line per command: a probe changes one thing in it. ``{dir}`` is the test's
#: folder holding the files made by :func:`make_files`.
BASE = {
    ("simulate",): ["simulate", "--seconds", "0.01", "--electrodes", "1", "--out", "{dir}/new.nwb"],
    ("detect",): ["detect", "{dir}/clip.wav"],
    ("codec", "encode"): ["codec", "encode", "{dir}/clip.wav", "{dir}/new.nlx"],
    ("codec", "decode"): ["codec", "decode", "{dir}/clip.nlx", "{dir}/new.wav"],
    ("codec", "bench"): ["codec", "bench", "{dir}/good"],
    ("link", "budget"): ["link", "budget"],
    ("bench",): ["bench", "latency"],
    ("report",): ["report", "{dir}/session.nwb", "--out", "{dir}/new.html"],
}

BAD_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e300", "-1e300", "", "abc", "0x10", "2.5", "-0")


def _subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _numeric_probes() -> list[tuple[str, list[str]]]:
    parser, probes = build_parser(), []
    for path, base in BASE.items():
        for action in _subparser(parser, path)._actions:
            if not isinstance(action.type, Number):
                continue
            option = action.option_strings[0]
            for value in BAD_NUMBERS:
                try:
                    action.type(value)
                except argparse.ArgumentTypeError:
                    probes.append((f"{' '.join(path)} {option} {value!r}", [*base, option, value]))
    return probes


#: Bad files: the name each kind gets in ``{dir}`` is made by :func:`make_files`.
BAD_FILES = ("missing", "directory", "fifo", "binary", "empty", "text", "loop")


def _file_probes() -> list[tuple[str, list[str]]]:
    probes = []
    for kind in BAD_FILES:
        for suffix in (".wav", ".nwb", ".raw"):
            extra = ["--fs-hz", "1000", "--channels", "1"] if suffix == ".raw" else []
            probes.append((f"detect INPUT {kind}{suffix}", ["detect", f"{{dir}}/{kind}{suffix}", *extra]))
        probes.append((f"codec encode IN {kind}", ["codec", "encode", f"{{dir}}/{kind}.wav", "{dir}/new.nlx"]))
        probes.append((f"codec decode IN {kind}", ["codec", "decode", f"{{dir}}/{kind}.nlx", "{dir}/new.wav"]))
        probes.append((f"codec bench DIR holding {kind}", ["codec", "bench", f"{{dir}}/bench_{kind}"]))
        probes.append((f"report SESSION {kind}", ["report", f"{{dir}}/{kind}.nwb", "--out", "{dir}/new.html"]))
        probes.append((
            f"report --session-json {kind}",
            ["report", "{dir}/session.nwb", "--session-json", f"{{dir}}/{kind}.json", "--out", "{dir}/new.html"],
        ))
    probes += [
        ("codec bench DIR is a file", ["codec", "bench", "{dir}/clip.wav"]),
        ("codec bench DIR is empty", ["codec", "bench", "{dir}/bench_none"]),
        ("codec bench DIR missing", ["codec", "bench", "{dir}/absent"]),
        ("detect unknown extension", ["detect", "{dir}/text.txt"]),
        ("detect raw without rate", ["detect", "{dir}/binary.raw", "--channels", "1"]),
        ("detect raw float dtype", ["detect", "{dir}/binary.raw", "--fs-hz", "1000", "--channels", "1",
                                    "--dtype", "float32"]),
        ("detect raw odd dtype", ["detect", "{dir}/binary.raw", "--fs-hz", "1000", "--channels", "1",
                                  "--dtype", "not-a-type"]),
        ("detect rate contradicts the WAV", ["detect", "{dir}/clip.wav", "--fs-hz", "1000"]),
        ("detect band above Nyquist", ["detect", "{dir}/clip.wav", "--high-hz", "15000"]),
        ("detect band low above high", ["detect", "{dir}/clip.wav", "--low-hz", "7000"]),
        ("simulate electrodes not 1-16 or 16k", ["simulate", "--seconds", "0.01", "--electrodes", "40",
                                                 "--out", "{dir}/new.nwb"]),
        ("simulate out is not .nwb", ["simulate", "--seconds", "0.01", "--electrodes", "1", "--out", "{dir}/x.h5"]),
        ("simulate huge, issue 17", ["simulate", "--seconds", "0.2", "--electrodes", "100000",
                                     "--out", "{dir}/new.nwb"]),
        ("simulate a day of 1024 channels", ["simulate", "--seconds", "86400", "--out", "{dir}/new.nwb"]),
        ("simulate a day even with --allow-large", ["simulate", "--seconds", "86400", "--allow-large",
                                                    "--out", "{dir}/new.nwb"]),
    ]
    return probes


#: (command, the output argument's position or option) for the output probes.
OUTPUTS = {
    "simulate --out": (BASE[("simulate",)], "--out", ".nwb"),
    "detect --out": ([*BASE[("detect",)], "--out", "{dir}/new.csv"], "--out", ".csv"),
    "codec encode OUT": (BASE[("codec", "encode")], 3, ".nlx"),
    "codec decode OUT": (BASE[("codec", "decode")], 3, ".wav"),
    "report --out": (BASE[("report",)], "--out", ".html"),
}


def _output_probes() -> list[tuple[str, list[str]]]:
    probes = []
    for name, (base, where, suffix) in OUTPUTS.items():
        index = base.index(where) + 1 if isinstance(where, str) else where
        for kind, target in (
            ("under a file", f"{{dir}}/text.txt/x{suffix}"),
            ("under a file, two levels", f"{{dir}}/text.txt/a/b/x{suffix}"),
            ("a directory", f"{{dir}}/directory{suffix}"),
            ("existing, no --force", f"{{dir}}/existing{suffix}"),
            ("empty", ""),
        ):
            argv = list(base)
            argv[index] = target
            probes.append((f"{name} {kind}", argv))
    return probes


PROBES = _numeric_probes() + _file_probes() + _output_probes()


def make_files(folder) -> None:
    """The inputs the probes name: one valid of each kind, and every bad kind of file."""
    from neurolace.codec.neural import encode_wav
    from neurolace.io import write_nwb

    codes = np.random.default_rng(5).normal(0, 15, size=(4000, 1))
    clip = write_wav(folder / "clip.wav", Recording(np.round(codes).astype(np.int16), fs_hz=19531.0, gain_uv=1.0))
    (folder / "clip.nlx").write_bytes(encode_wav(clip.read_bytes()))
    write_nwb(folder / "session.nwb", Recording(np.round(codes).astype(np.int16), fs_hz=19531.0, gain_uv=1.0))
    (folder / "good").mkdir()
    (folder / "good" / "a.wav").write_bytes(clip.read_bytes())
    (folder / "text.txt").write_text("not a recording\n")
    for suffix in (".wav", ".nwb", ".raw", ".nlx", ".json"):
        (folder / f"directory{suffix}").mkdir()
        os.mkfifo(folder / f"fifo{suffix}")
        (folder / f"binary{suffix}").write_bytes(np.random.default_rng(7).bytes(3001))
        (folder / f"empty{suffix}").write_bytes(b"")
        (folder / f"text{suffix}").write_text("hello\n" * 50)
        os.symlink(folder / f"loop{suffix}", folder / f"loop{suffix}")  # a link to itself: ELOOP
    for suffix in (".nwb", ".csv", ".nlx", ".wav", ".html"):
        (folder / f"existing{suffix}").write_bytes(b"keep")
        (folder / f"directory{suffix}").mkdir(exist_ok=True)
    (folder / "bench_none").mkdir()
    for kind in BAD_FILES:
        bench = folder / f"bench_{kind}"
        bench.mkdir()
        (bench / "a.wav").write_bytes(clip.read_bytes())
        source = folder / f"{kind}.wav"
        if kind == "directory":
            (bench / "b.wav").mkdir()
        elif kind == "fifo":
            os.mkfifo(bench / "b.wav")
        elif kind == "loop":
            os.symlink(bench / "b.wav", bench / "b.wav")
        elif kind != "missing":
            (bench / "b.wav").write_bytes(source.read_bytes())
        else:
            os.symlink(folder / "absent.wav", bench / "b.wav")  # a dangling link


@pytest.fixture(scope="module")
def probe_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes")
    make_files(folder)
    return folder


def test_there_are_enough_probes():
    assert len(PROBES) > 250 and len({name for name, _ in PROBES}) == len(PROBES)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv", [argv for _, argv in PROBES], ids=[name for name, _ in PROBES])
def test_probe_is_one_clean_error(probe_folder, capsys, argv):
    before = sorted(os.listdir(probe_folder))
    code, stdout, stderr = run_cli([part.replace("{dir}", str(probe_folder)) for part in argv], capsys)
    assert code == 2, stderr
    assert "Traceback" not in stderr and stdout == ""
    error_line(stderr, argv[0])
    assert sorted(os.listdir(probe_folder)) == before  # nothing written, no .part left behind
    assert (probe_folder / "existing.nwb").read_bytes() == b"keep"
