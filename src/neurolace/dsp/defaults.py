"""The signal chain's default settings, in a module that imports nothing heavy.

The chain's stages and the CLI both read these; keeping them here lets
``neurolace --help`` show them without importing scipy and numba.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_BIN_MS",
    "DEFAULT_CHUNK_MS",
    "DEFAULT_DEAD_TIME_MS",
    "DEFAULT_NOISE_WINDOW_S",
    "DEFAULT_THRESHOLD",
]

#: Detection threshold as a multiple of the noise RMS; negative crosses downward.
DEFAULT_THRESHOLD = -4.5
#: Per-channel dead time after a detection, ms.
DEFAULT_DEAD_TIME_MS = 1.0
#: Block length the verbs and the CLI feed the chain with (one 20 ms feature bin).
DEFAULT_CHUNK_MS = 20.0
#: Feature bin width, ms (at 19,531 Hz rounded to 391 samples, 20.02 ms).
DEFAULT_BIN_MS = 20.0
#: Length of the first noise window, s; detection starts once it is complete.
DEFAULT_NOISE_WINDOW_S = 1.0
