"""Lossless compression of int16 neural samples (capability layer).

- :class:`NeuralCodec` / :func:`encode_wav` / :func:`decode_wav`: the
  neurolace codec (value table, linear prediction, code-popularity context,
  constriction range coding) and its checksummed, resynchronising file format;
  :func:`salvage` recovers the intact frames of a damaged file.
- :class:`StreamEncoder` / :class:`StreamDecoder`: the implant-side streaming
  mode (small frames, state carried across frames, periodic resync points).
- :mod:`.baselines`: zlib, bz2, lzma, zstd, pcodec and FLAC behind the same interface.
- :func:`check_codec`: the conformance suite every codec passes.
- :func:`bandwidth_budget`: raw vs compressed vs spikes vs features against a BLE-class link.
"""

from neurolace.codec.baselines import (
    Bz2Codec,
    FlacCodec,
    LzmaCodec,
    PcodecCodec,
    ZlibCodec,
    ZstdCodec,
    baseline_codecs,
)
from neurolace.codec.conformance import check_codec, conformance_cases
from neurolace.codec.errors import CodecError
from neurolace.codec.neural import (
    DEFAULT_FRAME_SAMPLES,
    MODES,
    NeuralCodec,
    SalvageResult,
    decode_wav,
    encode_wav,
    salvage,
)

__all__ = [
    "DEFAULT_FRAME_SAMPLES",
    "MODES",
    "Bz2Codec",
    "CodecError",
    "FlacCodec",
    "LzmaCodec",
    "NeuralCodec",
    "PcodecCodec",
    "SalvageResult",
    "ZlibCodec",
    "ZstdCodec",
    "baseline_codecs",
    "check_codec",
    "conformance_cases",
    "decode_wav",
    "encode_wav",
    "salvage",
]
