"""Binned features: what the decoder sees.

:class:`BinnedFeatures` holds one row per time bin, shape
``(n_bins, n_features)``, for example threshold-crossing counts or spike-band
power per channel, with the bin width and the sample clock of the first bin so
every row can be traced to the samples it came from.

A *missing bin* is a bin the decoder never received (a frame the radio link
lost): it is written once here as a row of NaN of the bin's shape
(:func:`missing_bin`, tested by :func:`is_missing_bin`), never as zeros, which
are a real (silent) bin. A ``features`` message on the bus whose payload is all
NaN is a missing bin; a bin with only some NaN is malformed input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_array, check_int, check_positive
from neurolace.core.errors import InvalidInputError

__all__ = ["BinnedFeatures", "is_missing_bin", "missing_bin"]


class BinnedFeatures:
    """Features in fixed-width time bins.

    Parameters
    ----------
    data : ndarray, shape (n_bins, n_features)
        One row per bin.
    bin_width_s : float
        Width of each bin in seconds.
    feature_names : sequence of str, shape (n_features,), optional
        Name of each column, e.g. ``"count/ch0003"``, ``"sbp/ch0003"``.
    start_sample : int, default 0
        Sample index (on the source clock) where bin 0 starts.
    fs_hz : float, optional
        Sampling rate of the source clock.
    kind : str, default "features"
        What the columns are, e.g. ``"threshold_crossings"``, ``"spike_band_power"``.
    """

    def __init__(
        self,
        data: Any,
        *,
        bin_width_s: float,
        feature_names: Any = None,
        start_sample: int = 0,
        fs_hz: float | None = None,
        kind: str = "features",
    ) -> None:
        array = check_array(data, "data", ndim=2, dtype="numeric")
        self.data = array
        self.bin_width_s = check_positive(bin_width_s, "bin_width_s")
        self.start_sample = check_int(start_sample, "start_sample", minimum=0)
        self.fs_hz = None if fs_hz is None else check_positive(fs_hz, "fs_hz")
        if feature_names is None:
            feature_names = [f"f{i:04d}" for i in range(array.shape[1])]
        names = [str(name) for name in feature_names]
        if len(names) != array.shape[1]:
            raise InvalidInputError(f"feature_names must have {array.shape[1]} entries, got {len(names)}")
        self.feature_names = names
        self.kind = str(kind)

    @classmethod
    def _from_checked(
        cls,
        data: np.ndarray,
        *,
        bin_width_s: float,
        feature_names: list[str],
        start_sample: int,
        fs_hz: float | None,
        kind: str,
    ) -> "BinnedFeatures":
        """Wrap rows a producer in this package built, with names it checked once, without re-checking.

        For the signal chain's hot path: converting and checking 2 x 1024 names on every
        call cost about a quarter of a 1 ms block. ``feature_names`` is shared, not copied, so
        the caller must not change it afterwards.
        """
        features = cls.__new__(cls)
        features.data = data
        features.bin_width_s = bin_width_s
        features.start_sample = start_sample
        features.fs_hz = fs_hz
        features.feature_names = feature_names
        features.kind = kind
        return features

    @property
    def n_bins(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.data.shape[1])

    @property
    def bin_start_s(self) -> np.ndarray:
        """Start time of each bin in seconds from the source clock's zero, shape (n_bins,)."""
        offset = 0.0 if self.fs_hz is None else self.start_sample / self.fs_hz
        return offset + self.bin_width_s * np.arange(self.n_bins)

    def __repr__(self) -> str:
        return (
            f"BinnedFeatures(kind={self.kind!r}, n_bins={self.n_bins}, n_features={self.n_features}, "
            f"bin_width_s={self.bin_width_s:g})"
        )


def missing_bin(n_features: int) -> np.ndarray:
    """The missing bin of ``n_features`` features: all NaN, shape (n_features,), float64."""
    return np.full(check_int(n_features, "n_features", minimum=1), np.nan)


def is_missing_bin(features: Any) -> bool:
    """Whether ``features`` is a missing bin: ``None``, or a non-empty float array that is NaN everywhere.

    Parameters
    ----------
    features : None or array-like, shape (n_features,)

    Returns
    -------
    bool
        False for any bin with at least one number in it (a partly NaN bin is
        not missing; the decoders refuse it as non-finite input).
    """
    if features is None:
        return True
    array = np.asarray(features)
    if not array.size or array.dtype.kind != "f" or not np.isnan(array.flat[0]):
        return False  # the real-time path: a present bin costs one look at its first value
    return bool(np.isnan(array).all())
