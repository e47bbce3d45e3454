"""Bounded coverage-guided fuzzing with atheris, run in a subprocess so its instrumentation stays there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FUZZ_TIMEOUT_S = 240


def run_atheris(
    target_source: str, seeds: dict[str, bytes], directory: Path, *, runs: int, max_len: int
) -> None:
    """Fuzz ``target(data)`` of ``target_source`` for ``runs`` inputs from ``seeds``; fail on a crash.

    ``target_source`` is a script that imports atheris (a missing atheris is an
    error, never a skip), defines ``target`` and ends with
    ``atheris.Setup(sys.argv, target)`` and ``atheris.Fuzz()``; the libFuzzer
    options come in its argv (seed 1, the bounds, crash artifacts written into
    ``directory``, then the corpus of ``seeds``).
    """
    corpus = directory / "corpus"
    corpus.mkdir()
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)
    script = directory / "fuzz_target.py"
    script.write_text(target_source)
    options = [f"-runs={runs}", "-seed=1", f"-max_len={max_len}", f"-artifact_prefix={directory}/"]
    options.append(str(corpus))
    completed = subprocess.run(
        [sys.executable, str(script), *options],
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_S,
        check=False,
        cwd=directory,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"Done {runs} runs" in completed.stderr, completed.stderr[-3000:]
