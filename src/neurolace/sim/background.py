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
  Butterworth band-pass ``H`` (``hash_band_hz``), with a per-channel RMS drawn
  log-normally around ``hash_noise_uv_rms``.

Thermal noise plus hash is one stationary Gaussian process with power spectrum
``t^2 + h^2 |H|^2`` (t, h: their RMS scales). It is drawn as *one* white stream
through one filter ``C / A`` with that spectrum: ``A`` is the hash filter's
denominator and ``C`` the minimum-phase spectral factor of
``t^2 A A* + h^2 B B*`` (B: the hash numerator). Same distribution as the sum
of the two streams, half the draws. The filter state starts in its stationary
distribution (the solution of the state-space Lyapunov equation), so the
noise is stationary from sample 0. The normals come from raw 32-bit words of
PCG64 through a 256-layer ziggurat (Marsaglia & Tsang 2000, J Stat Softw
5(8)) inside the numba kernel that also filters, adds spikes and LFP and
quantises (:mod:`neurolace.sim._noise_kernels`).
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
from scipy import signal, special

from neurolace.core.random import spawn_rngs

__all__ = ["LOW_RATE_DECIMATION", "BackgroundGenerator", "noise_filter", "ziggurat_tables"]

#: LFP and drift are generated at fs_hz / LOW_RATE_DECIMATION and interpolated.
LOW_RATE_DECIMATION = 16
#: Low-rate samples generated per block (fixed, so chunking never changes the draws).
LOW_RATE_BLOCK = 512
#: Right edge of the base layer of a 256-layer ziggurat for exp(-x^2 / 2) (Marsaglia & Tsang 2000).
ZIGGURAT_TAIL_START = 3.6541528853610088
#: Bits of a 32-bit word that give the magnitude (the low 8 pick the layer, the next one the sign).
ZIGGURAT_MAGNITUDE_BITS = 23


@functools.cache
def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables of the 256-layer ziggurat for the standard normal, for 32-bit words.

    A word's low 8 bits pick layer ``i``, bit 8 the sign and the top 23 bits a
    magnitude ``m``; the value is ``m * scale[i]``, accepted at once when
    ``m < accept[i]`` (inside the layer's rectangle under the curve, ~99 % of
    words), else resolved by the tail or wedge test.

    Returns
    -------
    accept : ndarray of int64, shape (256,)
    scale : ndarray of float64, shape (256,)
        Layer widths ``x_i / 2**23``.
    height : ndarray of float64, shape (257,)
        ``exp(-x_i^2 / 2)`` at the layer edges ``x_0 > x_1 = r > ... > x_256 = 0``.
    """
    tail_start = ZIGGURAT_TAIL_START
    area = tail_start * np.exp(-0.5 * tail_start**2) + np.sqrt(np.pi / 2) * special.erfc(tail_start / np.sqrt(2))
    edges = np.zeros(257)
    edges[0] = area / np.exp(-0.5 * tail_start**2)  # the base layer's width, its tail folded in
    edges[1] = tail_start
    for i in range(1, 255):
        edges[i + 1] = np.sqrt(-2.0 * np.log(area / edges[i] + np.exp(-0.5 * edges[i] ** 2)))
    # The top layer closes at the peak: area / x_255 + f(x_255) = f(0) = 1 (checked in the tests).
    unit = float(1 << ZIGGURAT_MAGNITUDE_BITS)
    accept = np.ceil(unit * edges[1:] / edges[:-1]).astype(np.int64)
    return accept, edges[:-1] / unit, np.exp(-0.5 * edges**2)


def noise_filter(
    thermal_uv_rms: float, hash_gain: np.ndarray, hash_sos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One filter per channel whose output, from unit white noise, is thermal noise plus hash.

    Parameters
    ----------
    thermal_uv_rms : float
        RMS ``t`` of the white thermal noise.
    hash_gain : ndarray, shape (n_channels,)
        Gain ``h`` applied to the unit white input of the hash filter.
    hash_sos : ndarray, shape (1, 6)
        The hash filter ``B / A`` as one second-order section.

    Returns
    -------
    numerators : ndarray of float64, shape (3, n_channels)
        ``C``, minimum phase, with ``C C* = t^2 A A* + h^2 B B*`` on the unit circle.
    denominator : ndarray of float64, shape (3,)
        ``A`` (``A[0] = 1``).
    state_cholesky : ndarray of float64, shape (n_channels, 2, 2)
        Lower Cholesky factor of each channel's stationary filter-state covariance
        (transposed direct form II state, as ``scipy.signal.lfilter``'s ``zi``).
    """
    if hash_sos.shape != (1, 6):
        raise ValueError(f"hash_sos must be one second-order section, shape (1, 6), got {hash_sos.shape}")
    b, a = hash_sos[0, :3], hash_sos[0, 3:]
    gain = np.asarray(hash_gain, dtype=np.float64)

    def autocorrelation(p: np.ndarray) -> np.ndarray:  # lags 0, 1, 2 of a 3-tap sequence
        return np.array([p @ p, p[0] * p[1] + p[1] * p[2], p[0] * p[2]])

    if thermal_uv_rms == 0:  # hash only: C = h B (its zeros lie on the unit circle)
        numerators = gain * b[:, np.newaxis]
    else:
        lags = thermal_uv_rms**2 * autocorrelation(a)[:, np.newaxis] + gain**2 * autocorrelation(b)[:, np.newaxis]
        numerators = _spectral_factor(lags)
    # Stationary state: s' = F s + g x, x unit white: P = F P F^T + g g^T.
    transition = np.array([[-a[1], 1.0], [-a[2], 0.0]])
    drive = np.stack([numerators[1] - a[1] * numerators[0], numerators[2] - a[2] * numerators[0]], axis=1)
    solve = np.linalg.inv(np.eye(4) - np.kron(transition, transition))
    covariance = (np.einsum("ci,cj->cij", drive, drive).reshape(-1, 4) @ solve.T).reshape(-1, 2, 2)
    cholesky = np.zeros_like(covariance)
    cholesky[:, 0, 0] = np.sqrt(np.maximum(covariance[:, 0, 0], 0.0))
    positive = cholesky[:, 0, 0] > 0
    cholesky[:, 1, 0] = np.where(positive, covariance[:, 1, 0] / np.where(positive, cholesky[:, 0, 0], 1.0), 0.0)
    cholesky[:, 1, 1] = np.sqrt(np.maximum(covariance[:, 1, 1] - cholesky[:, 1, 0] ** 2, 0.0))
    return np.ascontiguousarray(numerators), np.ascontiguousarray(a, dtype=np.float64), cholesky


def _spectral_factor(lags: np.ndarray) -> np.ndarray:
    """Minimum-phase ``C`` (3, n) with autocorrelation ``lags`` (3, n), the spectrum being positive.

    ``n0 + n1 (z + 1/z) + n2 (z^2 + 1/z^2)`` has its zeros in pairs ``z, 1/z``; ``C``
    keeps the ones inside the unit circle. With ``s = z + 1/z`` the zeros solve
    ``n2 s^2 + n1 s + n0 - 2 n2 = 0`` and ``z^2 - s z + 1 = 0``.
    """
    n0, n1, n2 = lags
    shape = np.zeros_like(lags)
    shape[0] = 1.0
    quadratic = np.abs(n2) > 1e-12 * n0
    if quadratic.any():
        m0, m1, m2 = n0[quadratic], n1[quadratic], n2[quadratic]
        root = np.sqrt((m1**2 - 4 * m2 * (m0 - 2 * m2)).astype(complex))
        zeros = []
        for s_value in ((-m1 + root) / (2 * m2), (-m1 - root) / (2 * m2)):
            half = np.sqrt(s_value**2 / 4 - 1)
            zeros.append(np.where(np.abs(s_value / 2 - half) <= 1, s_value / 2 - half, s_value / 2 + half))
        shape[1, quadratic] = -(zeros[0] + zeros[1]).real
        shape[2, quadratic] = (zeros[0] * zeros[1]).real
    for c in np.flatnonzero(~quadratic):  # n2 = 0: at most one pair of zeros
        zeros = np.roots([n1[c], n0[c], n1[c]])
        factor = np.poly(zeros[np.argsort(np.abs(zeros))][: zeros.size // 2])
        shape[: factor.size, c] = factor
    return shape * np.sqrt(n0 / np.sum(shape**2, axis=0))


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
    noise_seed : int, Generator or SeedSequence, optional
        When given, the noise streams (thermal noise and hash, LFP, drift) come from it and
        only the per-channel levels and offsets from ``seed``: the same electrodes with a new
        noise realisation (one block after another of the same implant).

    Attributes
    ----------
    hash_uv_rms : ndarray, shape (n_channels,)
        RMS of the hash on each channel.
    noise_uv_rms : ndarray, shape (n_channels,)
        RMS of thermal noise plus hash on each channel (the noise spikes are judged against).
    dc_offset_uv : ndarray, shape (n_channels,)
    """

    def __init__(
        self, thread_id: np.ndarray, depth_um: np.ndarray, fs_hz: float, parameters, seed, noise_seed=None
    ) -> None:
        self.fs_hz = float(fs_hz)
        self.parameters = parameters
        n_channels = int(thread_id.shape[0])
        self.n_channels = n_channels
        setup_rng, self._word_rng, self._slow_rng, self._low_rng = spawn_rngs(seed, 4)
        if noise_seed is not None:
            self._word_rng, self._slow_rng, self._low_rng = spawn_rngs(noise_seed, 3)

        self.hash_uv_rms = parameters.hash_noise_uv_rms * np.exp(
            parameters.hash_spread * setup_rng.standard_normal(n_channels)
        )
        self.noise_uv_rms = np.sqrt(parameters.thermal_noise_uv_rms**2 + self.hash_uv_rms**2)
        self.dc_offset_uv = (
            parameters.dc_offset_uv_mean + parameters.dc_offset_uv_sd * setup_rng.standard_normal(n_channels)
        )

        # Thermal noise + hash: one white stream through one filter per channel (module docstring).
        low_hz, high_hz = parameters.hash_band_hz
        high_hz = min(high_hz, 0.45 * self.fs_hz)
        hash_sos = signal.butter(1, [low_hz, high_hz], btype="bandpass", fs=self.fs_hz, output="sos")
        impulse = np.zeros(max(int(0.2 * self.fs_hz), 64))
        impulse[0] = 1.0
        unit_gain = np.sqrt(np.sum(signal.sosfilt(hash_sos, impulse) ** 2))
        self._numerators, self._denominator, state_cholesky = noise_filter(
            float(parameters.thermal_noise_uv_rms), self.hash_uv_rms / unit_gain, hash_sos
        )
        start = np.einsum("cij,cj->ic", state_cholesky, self._slow_rng.standard_normal((n_channels, 2)))
        self._state = np.ascontiguousarray(start)
        self._words_per_row = (n_channels + 1) // 2  # 64-bit words; a row uses one 32-bit half per channel

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
        out[...] = 0.0
        self._render(out, out, 1.0, 0.0, 0.0, quantise=False)

    def render_codes(self, codes: np.ndarray, add_uv: np.ndarray, gain_uv: float, mid_code: int, max_code: int) -> None:
        """Write the next ``codes.shape[0]`` samples of background plus ``add_uv`` as ADC codes.

        ``code = clip(rint((background + add_uv) / gain_uv) + mid_code, 0, max_code)``
        in float32, in one pass (no float buffer of the background is made).

        Parameters
        ----------
        codes : ndarray of int16, shape (n, n_channels)
            Overwritten; C-contiguous rows.
        add_uv : ndarray of float32, shape (n, n_channels)
            Signal added before quantising (the spikes), in µV.
        """
        self._render(codes, add_uv, 1.0 / gain_uv, mid_code, max_code, quantise=True)

    def _render(self, out, add_uv, inverse_gain, mid, top, *, quantise: bool) -> None:
        n = out.shape[0]
        start = self._next_sample
        self._next_sample += n
        if n == 0:
            return
        words = self._word_rng.bit_generator.random_raw(n * self._words_per_row).view(np.uint32)
        first_low = start // LOW_RATE_DECIMATION
        last_low = (start + n - 1) // LOW_RATE_DECIMATION + 1
        low = self._low_rate(first_low, last_low)
        from neurolace.sim._noise_kernels import render_rows

        render_rows(
            out,
            add_uv,
            words.reshape(n, 2 * self._words_per_row),
            *ziggurat_tables(),
            ZIGGURAT_TAIL_START,
            self._slow_rng,
            self._numerators,
            self._denominator,
            self._state,
            low,
            start - first_low * LOW_RATE_DECIMATION,
            LOW_RATE_DECIMATION,
            np.float32(inverse_gain),
            np.float32(mid),
            np.float32(top),
            quantise,
        )


def normals_numpy(words: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Standard normals from 32-bit words by the ziggurat of :func:`ziggurat_tables` (reference, numpy).

    Parameters
    ----------
    words : ndarray of uint32, shape (n, n_channels)
    rng : numpy Generator
        Uniforms and fresh normals for the ~1 % of words that miss the fast test, in row-major order.

    Returns
    -------
    normals : ndarray of float64, shape (n, n_channels)
    """
    from neurolace.sim._noise_kernels import normal_slow_path

    accept, scale, height = ziggurat_tables()
    words = words.astype(np.int64)
    layer, magnitude = words & 0xFF, words >> 9
    values = magnitude * scale[layer]
    for index in np.flatnonzero(magnitude >= accept[layer]):
        values.flat[index] = normal_slow_path.py_func(
            layer.flat[index], magnitude.flat[index], scale, height, ZIGGURAT_TAIL_START, rng
        )
    return np.where(words & 0x100, -values, values)


def render_numpy(
    out, add, words, accept, scale, height, tail_start, rng, numerators, denominator, state, low, offset,
    decimation, inverse_gain, mid, top, quantise,
) -> None:
    """Reference implementation of the background kernel (numpy ziggurat, scipy ``lfilter``, numpy ADC).

    Parameters
    ----------
    out : ndarray, shape (n, n_channels)
        int16 codes (``quantise``) or float32 µV; overwritten.
    add : ndarray of float32, shape (n, n_channels)
        Added before quantising (may be ``out`` itself when not quantising).
    words : ndarray of uint32, shape (n, >= n_channels)
        Raw bits, one 32-bit word per sample and channel.
    accept, scale, height : ndarray
        :func:`ziggurat_tables` (the reference reads them from there).
    tail_start : float
    rng : numpy Generator
        The ziggurat's slow path.
    numerators : ndarray of float64, shape (3, n_channels)
    denominator : ndarray of float64, shape (3,)
        :func:`noise_filter`'s filter.
    state : ndarray of float64, shape (2, n_channels)
        Filter state (``lfilter``'s ``zi``), updated in place.
    low : ndarray of float32, shape (m, n_channels)
        Low-rate samples; ``out[i]`` lies between ``low[(offset + i) // decimation]`` and the next.
    offset, decimation : int
    inverse_gain, mid, top : float32
        ADC: ``clip(rint(v * inverse_gain + mid), 0, top)``.
    quantise : bool
    """
    n, n_channels = out.shape
    normals = normals_numpy(words[:, :n_channels], rng)
    filtered = np.empty((n, n_channels))
    for c in range(n_channels):
        filtered[:, c], state[:, c] = signal.lfilter(numerators[:, c], denominator, normals[:, c], zi=state[:, c])
    position = offset + np.arange(n)
    index = position // decimation
    fraction = ((position % decimation) / decimation).astype(np.float32)[:, np.newaxis]
    left, right = low[index], low[index + 1]
    value = filtered.astype(np.float32) + (left + fraction * (right - left)) + add
    if quantise:
        value = np.clip(np.rint(value * inverse_gain + mid), 0, top)
    out[...] = value
