"""The benchmarks' AVX2 emulation really keeps AVX-512 out of numba's code and numpy's dispatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks._common import AVX2_EMULATION_ENV

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import json, numba, numpy as np
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
from benchmarks._common import machine_line

@numba.njit
def scale(values, factor):
    for index in range(values.shape[0]):
        values[index] *= factor

scale(np.ones(4096, np.float32), np.float32(2.0))
asm = next(iter(scale.inspect_asm().values()))
print(json.dumps({
    "zmm": "zmm" in asm,
    "ymm": "ymm" in asm,
    "numpy_avx512_dispatch": sorted(t for t in __cpu_dispatch__ if __cpu_features__.get(t) and ("AVX512" in t or t == "X86_V4")),
    "line": machine_line(),
}))
"""


def test_avx2_emulation_compiles_numba_for_ymm_and_leaves_numpy_no_avx512_target():
    env = {**os.environ, **AVX2_EMULATION_ENV}
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert not probe["zmm"], "numba still emitted AVX-512 (zmm) code under the AVX2 emulation"
    assert probe["ymm"], "numba should vectorise the probe loop with AVX2 (ymm) registers"
    assert probe["numpy_avx512_dispatch"] == [], f"numpy still dispatches {probe['numpy_avx512_dispatch']}"
    assert "AVX2 code paths" in probe["line"]
