"""Common-average referencing: subtract what all electrodes (of a group) share.

Noise common to many electrodes (movement, muscle, amplifier reference,
wireless interference) appears on every channel at once. Subtracting, at each
sample, the mean or median across channels removes it
(Ludwig et al., "Using a common average reference to improve cortical neuron
recordings from microelectrode arrays", J Neurophysiol 101:1679-1689, 2009).
On a thread-based implant the electrodes of one thread share a cable and a
region of cortex, so referencing per thread is offered too.

The operation is per sample and has no state across samples, so chunked and
whole processing agree trivially; :class:`CommonAverageReference` still has
``process``/``reset`` so it slots into the chain like every other stage.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from neurolace.core.checks import check_array, check_in, check_int
from neurolace.core.errors import InvalidInputError
from neurolace.core.geometry import ElectrodeGeometry
from neurolace.core.recording import Recording
from neurolace.dsp.filters import check_chunk

__all__ = ["CommonAverageReference", "common_average_reference"]


# Profile on 1024 channels x 10 s in 20 ms blocks, CPU time on one core (measured under the
# benchmarks' first AVX2 emulation, which still let numba use AVX-512), both references of the
# chain (spike band and SBP band): numpy's mean over axis 1 and a broadcast subtraction spent
# about 0.15 s; numpy's row sums (the very sums np.mean takes) then a numba pass that divides and
# subtracts spend 0.09 s. Per-thread groups of 16 channels are summed in the kernel in numpy's own
# order for a block of at most 128 values (eight running sums): 0.39 ms a 20 ms block against
# numpy's 1.0-2.1 ms. Division is in float64 as ``np.mean`` does for float32, so every result is
# bit-identical to ``np.mean``, which the tests check. Indexing a view from 0, not
# ``row[start + i]``, is what lets numba vectorise these loops (5x here): with a signed offset it
# keeps a negative-index check on every access.
_PAIRWISE_BLOCK = 128


@numba.njit(nogil=True, cache=True)
def _leaf_sum(values, start, n):
    """Sum of ``values[start : start + n]``, n <= 128, in numpy's order (eight running sums)."""
    block = values[start : start + n]  # a view indexed from 0 (numba then drops its negative-index checks)
    if n < 8:
        total = np.float32(0.0)
        for index in range(n):
            total += block[index]
        return total
    r0 = block[0]
    r1 = block[1]
    r2 = block[2]
    r3 = block[3]
    r4 = block[4]
    r5 = block[5]
    r6 = block[6]
    r7 = block[7]
    whole = n - n % 8
    for index in range(8, whole, 8):
        r0 += block[index]
        r1 += block[index + 1]
        r2 += block[index + 2]
        r3 += block[index + 3]
        r4 += block[index + 4]
        r5 += block[index + 5]
        r6 += block[index + 6]
        r7 += block[index + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for index in range(whole, n):
        total += block[index]
    return total


@numba.njit(nogil=True, cache=True)
def _subtract_group_means(out, starts, sizes, totals):
    """Subtract ``totals[:, g] / sizes[g]`` (float64 division, as ``np.mean``) from group ``g``'s run."""
    for index in range(out.shape[0]):
        for group in range(starts.shape[0]):
            start = starts[group]
            size = sizes[group]
            mean = np.float32(np.float64(totals[index, group]) / size)
            run = out[index, start : start + size]  # indexing a view from 0 lets the loop vectorise
            for channel in range(size):
                run[channel] -= mean


@numba.njit(nogil=True, cache=True)
def _group_sums(out, starts, sizes, totals):
    """Sum of each group's run (at most 128 channels) per sample into ``totals`` (n_samples x n_groups)."""
    for index in range(out.shape[0]):
        row = out[index]
        for group in range(starts.shape[0]):
            totals[index, group] = _leaf_sum(row, starts[group], sizes[group])


class CommonAverageReference:
    """Subtract the per-sample mean or median across channels.

    Parameters
    ----------
    n_channels : int
        Number of channels of every chunk.
    operator : {"mean", "median"}, default "mean"
        ``"mean"`` is cheap (about 1 % of the chain's time at 1024 channels); ``"median"`` is
        robust to a few channels carrying a large spike or artefact at once but costs about
        30 times more (a partial sort per sample).
    groups : ElectrodeGeometry or array-like of int, shape (n_channels,), optional
        Reference each group separately: an :class:`ElectrodeGeometry` groups by ``thread_id``;
        an array gives a group label per channel. Default: one group of all channels.

    Notes
    -----
    A group of one channel is left as it is: its own mean is itself, so subtracting it would
    zero the signal, and there is nothing common to remove. A single-channel recording (such as
    the N1 clips) therefore passes through unchanged.
    """

    def __init__(self, n_channels: int, *, operator: str = "mean", groups: Any = None) -> None:
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self.operator = check_in(operator, "operator", ("mean", "median"))
        if groups is None:
            labels = np.zeros(self.n_channels, dtype=np.int64)
        elif isinstance(groups, ElectrodeGeometry):
            labels = groups.thread_id.astype(np.int64)
        else:
            labels = check_array(groups, "groups", ndim=1, dtype="integer").astype(np.int64)
        if labels.shape != (self.n_channels,):
            raise InvalidInputError(
                f"groups must give one label per channel, shape ({self.n_channels},), got {labels.shape}"
            )
        self.group_labels = labels
        self._groups: list[slice | np.ndarray] = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            if members.size < 2:
                continue
            contiguous = members[-1] - members[0] + 1 == members.size
            self._groups.append(slice(int(members[0]), int(members[-1]) + 1) if contiguous else members)
        # runs of consecutive channels (a whole array, or per thread) go to the mean kernel; numpy
        # sums a gathered, interleaved group in another order (its fancy indexing yields a
        # column-major block), so those keep numpy's own mean
        self._kernel_groups = all(isinstance(g, slice) for g in self._groups)
        runs = [g for g in self._groups if isinstance(g, slice)] if self._kernel_groups else []
        self._starts = np.array([g.start for g in runs], dtype=np.int64)
        self._sizes = np.array([g.stop - g.start for g in runs], dtype=np.int64)

    def reset(self) -> None:
        """No state is kept between chunks; present for the stage interface."""

    def process(self, chunk: Any, *, in_place: bool = False) -> np.ndarray:
        """Reference the next block of samples.

        Parameters
        ----------
        chunk : array-like, shape (n_samples, n_channels)
            Samples, usually band-passed µV.
        in_place : bool, default False
            Overwrite ``chunk`` (which must then be a float32 C-contiguous array) instead of copying.

        Returns
        -------
        referenced : ndarray of float32, shape (n_samples, n_channels)
        """
        samples = check_chunk(chunk, self.n_channels)
        if in_place:
            if samples is not chunk or samples.dtype != np.float32:
                raise InvalidInputError(
                    "in_place=True needs a C-contiguous float32 array of shape (n_samples, n_channels)"
                )
            out = samples
        else:
            out = samples.astype(np.float32, copy=True)
        return self._process(out)

    def _process(self, out: np.ndarray) -> np.ndarray:
        """Reference a checked float32 C-contiguous block in place and return it."""
        if out.shape[0] == 0 or not self._groups:
            return out
        if self.operator == "mean" and self._kernel_groups:
            if self._starts.size > 1 and self._sizes.max() <= _PAIRWISE_BLOCK:
                # many narrow groups (per thread): one kernel pass, numpy's order for such a block
                totals = np.empty((out.shape[0], self._starts.size), dtype=np.float32)
                _group_sums(out, self._starts, self._sizes, totals)
            else:
                # one group (the default) or wide ones: numpy's own vectorised pairwise sum, twice
                # as fast as a numba one, and the very sum np.mean takes
                totals = np.stack(
                    [np.add.reduce(out[:, start : start + size], axis=1) for start, size in zip(self._starts, self._sizes)],
                    axis=1,
                )
            _subtract_group_means(out, self._starts, self._sizes, totals)
            return out
        reduce = np.mean if self.operator == "mean" else np.median
        for members in self._groups:
            block = out[:, members]
            common = reduce(block, axis=1, keepdims=True).astype(np.float32, copy=False)
            if isinstance(members, slice):
                out[:, members] -= common
            else:
                out[:, members] = block - common
        return out

    def __repr__(self) -> str:
        return (
            f"CommonAverageReference(operator={self.operator!r}, n_channels={self.n_channels}, "
            f"n_groups={len(self._groups)})"
        )


def common_average_reference(
    recording: Recording, *, operator: str = "mean", by_thread: bool = False
) -> np.ndarray:
    """Common-average reference a whole recording (µV, not filtered).

    Parameters
    ----------
    recording : Recording
        Source of ADC codes, ``gain_uv`` and geometry.
    operator : {"mean", "median"}
        As in :class:`CommonAverageReference`.
    by_thread : bool, default False
        Reference each thread of ``recording.geometry`` on its own.

    Returns
    -------
    referenced_uv : ndarray of float32, shape (n_samples, n_channels)
    """
    if not isinstance(recording, Recording):
        raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
    stage = CommonAverageReference(
        recording.n_channels, operator=operator, groups=recording.geometry if by_thread else None
    )
    return stage.process(recording.get_traces_uv(), in_place=True)
