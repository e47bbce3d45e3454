"""Everything on an electrode that is not a ground-truth spike: noise, multi-unit hash, LFP, drift, offset.

:class:`BackgroundGenerator` writes these signals, in µV, into consecutive
time chunks of a float32 buffer. It keeps its random streams and filter states
between calls, so the output does not depend on how the session is chunked.

Components (parameters in :class:`neurolace.sim.implant.ImplantParameters`):

- *Amplifier and electrode thermal noise*: white Gaussian,
  ``thermal_noise_uv_rms`` on every channel.
- *Background multi-unit "hash"*: the summed spikes of the many distant
  neurons no electrode can isolate (Buzsáki 2004, Nat Neurosci 7:446).
  Modelled as Gaussian noise band-limited to the spike band by a first-order
  Butterworth band-pass (``hash_band_hz``), with a per-channel RMS drawn
  log-normally around ``hash_noise_uv_rms``.
- *Local field potential*: 1/f-like noise (Buzsáki, Anastassiou & Koch 2012,
  Nat Rev Neurosci 13:407, for the power law; tens to ~100 µV in cortex).
  Two sources per thread, one near the top and one near the bottom of its
  electrodes, mixed by depth, so neighbouring electrodes see nearly the same
  LFP (the LFP is coherent over hundreds of µm: Kajikawa & Schroeder 2011,
  Neuron 72:847). Each source is a sum of first-order (Lorentzian) processes
  with log-spaced corner frequencies (``lfp_corner_hz``) and equal variance,
  whose sum has a ~1/f spectrum between the first and last corner. The LFP
  RMS of each thread is drawn log-normally around ``lfp_uv_rms``.
- *Slow drift*: a per-channel first-order process with a corner of
  ``drift_corner_hz`` (electrode-tissue interface and amplifier drift).
- *DC offset*: a per-channel constant, normal with mean ``dc_offset_uv_mean``
  and sd ``dc_offset_uv_sd``.

LFP and drift are generated at ``fs_hz / LOW_RATE_DECIMATION`` (~1.2 kHz for
the N1 rate) in fixed blocks and linearly interpolated to the sample rate.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

from neurolace.core.random import spawn_rngs

__all__ = ["LOW_RATE_DECIMATION", "BackgroundGenerator"]

#: LFP and drift are generated at fs_hz / LOW_RATE_DECIMATION and interpolated.
LOW_RATE_DECIMATION = 16
#: Low-rate samples generated per block (fixed, so chunking never changes the draws).
LOW_RATE_BLOCK = 512
#: Samples of hash filter warm-up before sample 0, so the hash starts in its steady state.
HASH_WARMUP_SAMPLES = 2048


class BackgroundGenerator:
    """Sequential generator of the background signal of every channel, in µV.

    Parameters
    ----------
    thread_id : ndarray of int, shape (n_channels,)
        Thread of each electrode.
    depth_um : ndarray of float, shape (n_channels,)
        Depth of each electrode.
    fs_hz : float
        Sampling rate.
    parameters : ImplantParameters
        Noise, LFP and drift levels.
    seed : int, Generator or SeedSequence
        Seed of every random stream here.

    Attributes
    ----------
    hash_uv_rms : ndarray, shape (n_channels,)
        RMS of the hash on each channel.
    noise_uv_rms : ndarray, shape (n_channels,)
        RMS of thermal noise plus hash on each channel (the noise spikes are judged against).
    dc_offset_uv : ndarray, shape (n_channels,)
    """

    def __init__(self, thread_id: np.ndarray, depth_um: np.ndarray, fs_hz: float, parameters, seed) -> None:
        self.fs_hz = float(fs_hz)
        self.parameters = parameters
        n_channels = int(thread_id.shape[0])
        self.n_channels = n_channels
        setup_rng, self._thermal_rng, self._hash_rng, self._low_rng = spawn_rngs(seed, 4)

        self.hash_uv_rms = parameters.hash_noise_uv_rms * np.exp(
            parameters.hash_spread * setup_rng.standard_normal(n_channels)
        )
        self.noise_uv_rms = np.sqrt(parameters.thermal_noise_uv_rms**2 + self.hash_uv_rms**2)
        self.dc_offset_uv = (
            parameters.dc_offset_uv_mean + parameters.dc_offset_uv_sd * setup_rng.standard_normal(n_channels)
        )

        # Hash: white noise through a band-pass scaled to unit output RMS, then per-channel RMS.
        low_hz, high_hz = parameters.hash_band_hz
        high_hz = min(high_hz, 0.45 * self.fs_hz)
        self._hash_sos = signal.butter(1, [low_hz, high_hz], btype="bandpass", fs=self.fs_hz, output="sos")
        impulse = np.zeros(max(int(0.2 * self.fs_hz), 64))
        impulse[0] = 1.0
        unit_gain = np.sqrt(np.sum(signal.sosfilt(self._hash_sos, impulse) ** 2))
        self._hash_scale = (self.hash_uv_rms / unit_gain).astype(np.float32)
        warmup = self._hash_rng.standard_normal((HASH_WARMUP_SAMPLES, n_channels), dtype=np.float32)
        self._hash_coefficients = np.ascontiguousarray(self._hash_sos, dtype=np.float64)
        _, state = signal.sosfilt(
            self._hash_sos,
            warmup * self._hash_scale,
            axis=0,
            zi=np.zeros((self._hash_sos.shape[0], 2, n_channels)),
        )
        self._hash_state = np.ascontiguousarray(state, dtype=np.float64)

        # Low-rate LFP and drift.
        self._low_fs_hz = self.fs_hz / LOW_RATE_DECIMATION
        threads, thread_index = np.unique(thread_id, return_inverse=True)
        self._thread_index = thread_index
        depth = np.asarray(depth_um, dtype=np.float64)
        top = np.array([depth[thread_index == t].min() for t in range(threads.size)])
        bottom = np.array([depth[thread_index == t].max() for t in range(threads.size)])
        span = np.where(bottom > top, bottom - top, 1.0)
        relative = np.clip((depth - top[thread_index]) / span[thread_index], 0.0, 1.0)
        norm = np.sqrt((1.0 - relative) ** 2 + relative**2)
        lfp_uv_rms = parameters.lfp_uv_rms * np.exp(
            parameters.lfp_spread * setup_rng.standard_normal(threads.size)
        )
        self._weight_top = (1.0 - relative) / norm * lfp_uv_rms[thread_index]
        self._weight_bottom = relative / norm * lfp_uv_rms[thread_index]
        corners = np.asarray(parameters.lfp_corner_hz, dtype=np.float64)
        self._lfp_rho = np.exp(-2.0 * np.pi * corners / self._low_fs_hz)
        self._drift_rho = float(np.exp(-2.0 * np.pi * parameters.drift_corner_hz / self._low_fs_hz))
        # AR(1) states start in their stationary distribution (unit variance).
        self._lfp_state = self._low_rng.standard_normal((corners.size, 2 * threads.size))
        self._drift_state = self._low_rng.standard_normal(n_channels)
        self._low_values = np.zeros((0, n_channels), dtype=np.float32)
        self._low_first = 0  # low-rate index of self._low_values[0]
        self._low_generated = 0
        self._next_sample = 0

    # -- low-rate part ---------------------------------------------------------------------------
    def _generate_low_block(self) -> np.ndarray:
        """The next LOW_RATE_BLOCK low-rate samples of LFP + drift + offset, shape (LOW_RATE_BLOCK, n_channels)."""
        n = LOW_RATE_BLOCK
        n_sources = self._lfp_state.shape[1]
        sources = np.zeros((n, n_sources))
        for k, rho in enumerate(self._lfp_rho):
            innovations = self._low_rng.standard_normal((n, n_sources)) * np.sqrt(1.0 - rho**2)
            values, _ = signal.lfilter(
                [1.0], [1.0, -rho], innovations, axis=0, zi=(rho * self._lfp_state[k])[None]
            )
            self._lfp_state[k] = values[-1]
            sources += values
        sources /= np.sqrt(self._lfp_rho.size)
        n_threads = n_sources // 2
        lfp = (
            sources[:, self._thread_index] * self._weight_top
            + sources[:, n_threads + self._thread_index] * self._weight_bottom
        )
        rho = self._drift_rho
        innovations = self._low_rng.standard_normal((n, self.n_channels)) * np.sqrt(1.0 - rho**2)
        drift, _ = signal.lfilter([1.0], [1.0, -rho], innovations, axis=0, zi=(rho * self._drift_state)[None])
        self._drift_state = drift[-1]
        return (lfp + self.parameters.drift_uv_rms * drift + self.dc_offset_uv).astype(np.float32)

    def _low_rate(self, first: int, last: int) -> np.ndarray:
        """Low-rate samples ``first .. last`` (inclusive), generating blocks as needed."""
        while self._low_first + self._low_values.shape[0] <= last:
            self._low_values = np.concatenate([self._low_values, self._generate_low_block()])
        drop = first - self._low_first
        if drop > 0:
            self._low_values = self._low_values[drop:]
            self._low_first = first
        return self._low_values[: last - first + 1]

    # -- public ----------------------------------------------------------------------------------
    def fill(self, out: np.ndarray) -> None:
        """Write the next ``out.shape[0]`` samples of background (µV) into ``out``.

        Parameters
        ----------
        out : ndarray of float32, shape (n, n_channels)
            Overwritten. Consecutive calls continue where the last one stopped.
        """
        n = out.shape[0]
        start = self._next_sample
        self._next_sample += n
        if n == 0:
            return
        # Thermal noise is drawn straight into ``out``; the hash's white input separately.
        self._thermal_rng.standard_normal(out.shape, dtype=np.float32, out=out)
        white = self._hash_rng.standard_normal(out.shape, dtype=np.float32)
        first_low = start // LOW_RATE_DECIMATION
        last_low = (start + n - 1) // LOW_RATE_DECIMATION + 1
        low = self._low_rate(first_low, last_low)
        self._combine(out, white, low, start - first_low * LOW_RATE_DECIMATION)

    def _combine(self, out: np.ndarray, white: np.ndarray, low: np.ndarray, offset: int) -> None:
        """``out = thermal * out + hash_filter(hash_scale * white) + interpolated low-rate``, in place."""
        _combine_kernel()(
            out,
            np.float32(self.parameters.thermal_noise_uv_rms),
            white,
            self._hash_scale,
            self._hash_coefficients,
            self._hash_state,
            low,
            offset,
            LOW_RATE_DECIMATION,
        )


def combine_numpy(
    out, thermal_uv_rms, white, hash_scale, coefficients, state, low, offset, decimation
) -> None:
    """Reference implementation of the fused background kernel (scipy ``sosfilt`` + numpy interpolation).

    Parameters
    ----------
    out : ndarray of float32, shape (n, n_channels)
        Unit-variance thermal noise on entry; the background in µV on exit.
    thermal_uv_rms : float
    white : ndarray of float32, shape (n, n_channels)
        Unit-variance input of the hash filter.
    hash_scale : ndarray of float32, shape (n_channels,)
    coefficients : ndarray of float64, shape (n_sections, 6)
        Second-order sections ``b0 b1 b2 1 a1 a2``.
    state : ndarray of float64, shape (n_sections, 2, n_channels)
        Filter state (``sosfilt``'s ``zi``), updated in place.
    low : ndarray of float32, shape (m, n_channels)
        Low-rate samples; ``out[i]`` lies between ``low[(offset + i) // decimation]`` and the next.
    offset : int
    decimation : int
    """
    n = out.shape[0]
    hashed, final = signal.sosfilt(coefficients, white * hash_scale, axis=0, zi=state)
    state[...] = final
    position = offset + np.arange(n)
    index = position // decimation
    fraction = ((position % decimation) / decimation).astype(np.float32)[:, np.newaxis]
    left, right = low[index], low[index + 1]
    out *= thermal_uv_rms
    out += hashed.astype(np.float32)
    out += left + fraction * (right - left)


def _combine_loops(out, thermal_uv_rms, white, hash_scale, coefficients, state, low, offset, decimation):
    n, n_channels = out.shape
    n_sections = coefficients.shape[0]
    for i in range(n):
        position = offset + i
        index = position // decimation
        fraction = np.float32((position % decimation) / decimation)
        for c in range(n_channels):
            # Second-order sections in transposed direct form II, as scipy.signal.sosfilt computes them.
            x = np.float64(white[i, c] * hash_scale[c])
            for k in range(n_sections):
                y = coefficients[k, 0] * x + state[k, 0, c]
                state[k, 0, c] = coefficients[k, 1] * x - coefficients[k, 4] * y + state[k, 1, c]
                state[k, 1, c] = coefficients[k, 2] * x - coefficients[k, 5] * y
                x = y
            left = low[index, c]
            out[i, c] = (
                out[i, c] * thermal_uv_rms + np.float32(x) + (left + fraction * (low[index + 1, c] - left))
            )


@functools.cache
def _combine_kernel():
    """The fused background kernel, compiled with numba on first use.

    Measured on 4096 samples x 1024 channels, one (shared) core: scipy
    ``sosfilt`` plus numpy interpolation (:func:`combine_numpy`) took ~0.6 s
    per chunk, the fused numba loop ~0.025 s, with identical output
    (``python -m benchmarks sim`` repeats it).
    """
    import numba

    return numba.njit(cache=True, nogil=True)(_combine_loops)
