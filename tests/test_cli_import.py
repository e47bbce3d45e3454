"""The CLI stays light to import: ``neurolace --help`` must not pay for scipy or numba.

In the style of MNE-Python's ``test_import_nesting``: a fresh interpreter builds
the whole parser and the heavy modules must still be absent from ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY_MODULES = ("scipy", "numba", "torch", "pynwb", "fastapi", "zarr", "numcodecs", "spikeinterface", "dask",
                 "skimage", "wordfreq")

CHECK = f"""
import sys
from neurolace.cli.main import build_parser
build_parser()
print(",".join(name for name in {HEAVY_MODULES!r} if name in sys.modules))
"""


def test_cli_parser_imports_no_heavy_module():
    output = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.strip()
    loaded = [name for name in output.split(",") if name]
    assert not loaded, (
        f"building the neurolace CLI parser imported {loaded}; nest the import in the "
        "command function that needs it (e.g. inside run(args)), not at module level"
    )


def test_detect_defaults_match_the_chain():
    from neurolace.cli import detect
    from neurolace.dsp import chain, detection

    assert detect.DEFAULT_CHUNK_MS == chain.DEFAULT_CHUNK_MS
    assert detect.DEFAULT_DEAD_TIME_MS == detection.DEFAULT_DEAD_TIME_MS
    assert detect.DEFAULT_THRESHOLD == detection.DEFAULT_THRESHOLD
