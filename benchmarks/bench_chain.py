"""Throughput and memory of the on-implant signal chain at N1 scale, on one core.

1024 channels at 19,531 Hz (the N1's channel count and rate) of synthetic int16 codes (noise
plus spikes on every channel), 10 s (``--quick``: 2 s). Reported:

Times are CPU seconds of this process (``time.process_time``), the work one core did; the wall
clock is printed too but on a shared machine it includes time spent waiting for a core.

- the whole chain with its defaults (linear-phase running-sum band-pass 300-6000 Hz, mean CAR,
  MAD noise over the first 1 s, threshold crossings, 300-1000 Hz SBP, 20 ms bins), fed in 20 ms
  blocks, as a multiple of real time: median over repeats, including the one-off noise-window
  estimate;
- the same chain with the causal 4th-order Butterworth band-pass (``filter_design="butterworth"``,
  the default until the detection benchmark showed its cost) and with the 101-tap windowed-sinc
  FIR (``filter_design="fir"``);
- each stage alone on the same data, to show where the time goes;
- the baselines, in the same process: ``scipy.signal.sosfiltfilt`` per channel (the usual
  offline zero-phase filter; timed on 64 channels and scaled to 1024 -- the cost is linear in
  channels, as each channel is filtered on its own) and ``scipy.signal.sosfilt`` on the
  whole (n_samples, 1024) block with ``axis=0`` (the causal filter alone);
- peak traced memory of the chain streaming over two recording lengths, outputs discarded as a
  live consumer would: it depends on the block size and the noise window, not the length.
  (tracemalloc sees numpy's allocations; numba's own, the few kB of events found per block, are
  not traced.)

Threads are limited to one (numpy/BLAS through threadpoolctl; the numba kernels are serial).

The aim (>= 10x real time) is judged on the full 10 s run. ``--quick`` (2 s) spreads the one-off
MAD over the first 1 s window (~0.08 s) over a fifth of the data, so its factors are lower
(7.7x for the defaults and 10.8x for the Butterworth in one run, against 13.4x and 16.3x full).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import scipy.signal
from threadpoolctl import threadpool_limits

from benchmarks._common import console, table
from neurolace.core import Recording
from neurolace.dsp import (
    BandpassFilter,
    CommonAverageReference,
    MovingAverageBandpass,
    SignalChain,
    SpikeBandPower,
    ThresholdDetector,
    mad_noise,
    run_signal_chain,
)

FS_HZ = 19531.0
N_CHANNELS = 1024
GAIN_UV = 1.95
CHUNK_MS = 20.0
BASELINE_CHANNELS = 64


def synthetic_recording(duration_s: float, n_channels: int = N_CHANNELS, *, seed: int = 0) -> Recording:
    """Noise of ~5 codes RMS with a 40-code spike on each channel every ~50 ms, as int16 codes."""
    rng = np.random.default_rng(seed)
    n_samples = round(duration_s * FS_HZ)
    codes = np.empty((n_samples, n_channels), dtype=np.int16)
    block = 8192
    spike = np.array([-10, -30, -40, -25, -5, 8, 10, 6, 2], dtype=np.float32)
    for start in range(0, n_samples, block):
        stop = min(n_samples, start + block)
        values = rng.standard_normal((stop - start, n_channels), dtype=np.float32) * 5
        hits = rng.random((stop - start, n_channels)) < (20.0 / FS_HZ)
        rows, columns = np.nonzero(hits[: max(0, stop - start - spike.size)])
        for offset, value in enumerate(spike):
            values[rows + offset, columns] += value
        codes[start:stop] = np.round(values)
    return Recording(codes, fs_hz=FS_HZ, gain_uv=GAIN_UV)


def cpu_timing(function: Callable[[], object], *, repeats: int) -> dict:
    """Run ``function`` ``repeats`` times; median CPU and wall seconds (CPU time is what one core spent)."""
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        function()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return {
        "median_cpu_s": statistics.median(cpu),
        "median_wall_s": statistics.median(wall),
        "cpu_s": cpu,
        "wall_s": wall,
    }


def _stage_times(recording: Recording, chunk_samples: int) -> dict[str, float]:
    """CPU seconds each stage spends over the recording, fed in blocks as the chain does."""
    n = recording.n_channels
    spike_band = MovingAverageBandpass(FS_HZ, n, scale=GAIN_UV)
    butterworth = BandpassFilter(FS_HZ, n, scale=GAIN_UV)
    sbp_band = BandpassFilter(FS_HZ, n, low_hz=300, high_hz=1000, order=2, scale=GAIN_UV)
    reference = CommonAverageReference(n)
    detector = ThresholdDetector(FS_HZ, n)
    sbp = SpikeBandPower(FS_HZ, n)
    window = int(FS_HZ)
    clock = time.process_time
    start = clock()
    noise = mad_noise(spike_band._process(recording.samples[:window]))
    seconds = {"noise MAD over the 1 s window (once)": clock() - start}
    spike_band.reset()
    thresholds = detector.thresholds_uv(noise)
    names = [
        "band-pass 300-6000 Hz, running sums (default)",
        "band-pass 300-6000 Hz, Butterworth (not in the default chain)",
        "common-average reference (mean)",
        "threshold crossings",
        "band-pass 300-1000 Hz (SBP)",
        "SBP per 20 ms bin",
    ]
    totals = dict.fromkeys(names, 0.0)
    for chunk in recording.iter_chunks(chunk_samples):
        t_start = clock()
        filtered = spike_band._process(chunk)
        t0 = clock()
        butterworth._process(chunk)
        t1 = clock()
        reference._process(filtered)
        t2 = clock()
        detector._process(filtered, thresholds)
        t3 = clock()
        band = sbp_band._process(chunk)
        t4 = clock()
        sbp._process(band)
        t5 = clock()
        for name, elapsed in zip(names, (t0 - t_start, t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[name] += elapsed
    seconds.update(totals)
    return seconds


def _time_whole_block_sosfilt(recording: Recording, sos: np.ndarray, repeats: int) -> dict:
    """CPU time of scipy's causal sosfilt over the whole (n_samples, n_channels) float32 block."""
    whole_block = recording.samples.astype(np.float32) * np.float32(GAIN_UV)
    sos32 = sos.astype(np.float32)
    return cpu_timing(lambda: scipy.signal.sosfilt(sos32, whole_block, axis=0), repeats=repeats)


def _one_ms_block_cpu_us(recording: Recording, *, repeats: int) -> float:
    """Median CPU µs of one ``SignalChain.process`` call on a 1 ms block (20 samples), as the live runtime feeds it.

    Timed after the first noise window, so it is the steady per-block cost (call overhead included).
    """
    block_samples = round(FS_HZ / 1000)
    chain = SignalChain.for_recording(recording)
    window = int(FS_HZ)
    chain.process(recording.samples[:window])
    per_block = []
    stop = recording.n_samples - block_samples
    for _ in range(repeats):
        cpu_start = time.process_time()
        n_blocks = 0
        for start in range(window, stop, block_samples):
            chain.process(recording.samples[start : start + block_samples])
            n_blocks += 1
        per_block.append((time.process_time() - cpu_start) / max(1, n_blocks) * 1e6)
    return statistics.median(per_block)


def _peak_memory_mb(duration_s: float, chunk_samples: int) -> float:
    recording = synthetic_recording(duration_s, seed=1)
    chain = SignalChain.for_recording(recording)
    tracemalloc.start()
    tracemalloc.reset_peak()
    for chunk in recording.iter_chunks(chunk_samples):
        chain.process(chunk)
    chain.finish()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def run(quick: bool = False) -> dict:
    duration_s = 2.0 if quick else 10.0
    repeats = 2 if quick else 3
    with threadpool_limits(limits=1):
        console.print(f"generating {duration_s:g} s x {N_CHANNELS} channels of synthetic codes ...")
        recording = synthetic_recording(duration_s)
        chunk_samples = round(CHUNK_MS * FS_HZ / 1000)
        run_signal_chain(recording.slice_samples(0, 2000), chunk_ms=CHUNK_MS)  # compile the kernels
        for design in ("butterworth", "fir"):
            run_signal_chain(recording.slice_samples(0, 2000), chunk_ms=CHUNK_MS, filter_design=design)
        results = {}
        chain_timing = cpu_timing(
            lambda: results.__setitem__("last", run_signal_chain(recording, chunk_ms=CHUNK_MS)),
            repeats=repeats,
        )
        chain_result = results["last"]
        chain_factor = duration_s / chain_timing["median_cpu_s"]
        butterworth_timing = cpu_timing(
            lambda: run_signal_chain(recording, chunk_ms=CHUNK_MS, filter_design="butterworth"),
            repeats=repeats,
        )
        butterworth_factor = duration_s / butterworth_timing["median_cpu_s"]
        fir_timing = cpu_timing(
            lambda: run_signal_chain(recording, chunk_ms=CHUNK_MS, filter_design="fir"), repeats=repeats
        )
        fir_factor = duration_s / fir_timing["median_cpu_s"]
        chain_wall_factor = duration_s / chain_timing["median_wall_s"]

        subset = recording.samples[:, :BASELINE_CHANNELS].astype(np.float64) * GAIN_UV
        sos = scipy.signal.butter(4, [300, 6000], btype="bandpass", fs=FS_HZ, output="sos")

        def filtfilt_per_channel() -> None:
            for channel in range(BASELINE_CHANNELS):
                scipy.signal.sosfiltfilt(sos, subset[:, channel])

        filtfilt_timing = cpu_timing(filtfilt_per_channel, repeats=repeats)
        filtfilt_seconds = filtfilt_timing["median_cpu_s"] * N_CHANNELS / BASELINE_CHANNELS
        filtfilt_factor = duration_s / filtfilt_seconds

        sosfilt_timing = _time_whole_block_sosfilt(recording, sos, repeats)
        sosfilt_factor = duration_s / sosfilt_timing["median_cpu_s"]

        stage_seconds = _stage_times(recording, chunk_samples)
        one_ms_block_us = _one_ms_block_cpu_us(recording, repeats=repeats)
        memory_lengths_s = (2.0, 4.0) if quick else (3.0, 9.0)
        peak_mb = {f"{length:g} s": _peak_memory_mb(length, chunk_samples) for length in memory_lengths_s}

    table(
        f"signal chain, {N_CHANNELS} ch x {FS_HZ:g} Hz x {duration_s:g} s, one core, CPU seconds (median of {repeats})",
        ["pipeline", "CPU seconds", "x real time", "vs sosfiltfilt"],
        [
            [
                "neurolace SignalChain, defaults (running-sum band-pass, 20 ms blocks)",
                chain_timing["median_cpu_s"],
                chain_factor,
                chain_factor / filtfilt_factor,
            ],
            [
                "SignalChain with the causal Butterworth (previous default)",
                butterworth_timing["median_cpu_s"],
                butterworth_factor,
                butterworth_factor / filtfilt_factor,
            ],
            [
                "SignalChain with the windowed-sinc FIR (101 taps)",
                fir_timing["median_cpu_s"],
                fir_factor,
                fir_factor / filtfilt_factor,
            ],
            [
                f"scipy sosfiltfilt per channel (filter only; {BASELINE_CHANNELS} ch scaled x{N_CHANNELS // BASELINE_CHANNELS})",
                filtfilt_seconds,
                filtfilt_factor,
                1.0,
            ],
            [
                "scipy sosfilt axis=0 on the whole block (causal filter only)",
                sosfilt_timing["median_cpu_s"],
                sosfilt_factor,
                sosfilt_factor / filtfilt_factor,
            ],
        ],
    )
    console.print(
        f"wall clock of the chain: median {chain_timing['median_wall_s']:.3g} s ({chain_wall_factor:.3g}x real time); "
        "CPU time is quoted above because the machine is shared and wall time includes waiting for a core"
    )
    console.print(
        f"one 1 ms block (20 samples x {N_CHANNELS} ch) through SignalChain.process: median "
        f"{one_ms_block_us:.0f} CPU µs (1000 µs of data; {1000 / one_ms_block_us:.3g}x real time)"
    )
    table(
        "where the time goes (CPU seconds per stage, 20 ms blocks)",
        ["stage", "CPU seconds", "x real time"],
        [[name, seconds, duration_s / seconds] for name, seconds in stage_seconds.items()],
    )
    table(
        "peak traced memory of the streaming chain (outputs discarded)",
        ["recording length", "peak MB"],
        [[length, megabytes] for length, megabytes in peak_mb.items()],
    )
    return {
        "quick": quick,
        "n_channels": N_CHANNELS,
        "fs_hz": FS_HZ,
        "duration_s": duration_s,
        "chunk_ms": CHUNK_MS,
        "repeats": repeats,
        "chain_seconds": chain_timing,
        "chain_realtime_factor": chain_factor,
        "chain_realtime_factor_wall": chain_wall_factor,
        "chain_n_spikes": chain_result.events.n_spikes,
        "butterworth_chain_seconds": butterworth_timing,
        "butterworth_chain_realtime_factor": butterworth_factor,
        "fir_chain_seconds": fir_timing,
        "fir_chain_realtime_factor": fir_factor,
        "sosfiltfilt_per_channel_seconds_scaled": filtfilt_seconds,
        "sosfiltfilt_baseline_channels": BASELINE_CHANNELS,
        "sosfiltfilt_realtime_factor": filtfilt_factor,
        "sosfilt_axis0_seconds": sosfilt_timing,
        "sosfilt_axis0_realtime_factor": sosfilt_factor,
        "chain_speedup_vs_sosfiltfilt": chain_factor / filtfilt_factor,
        "stage_seconds": stage_seconds,
        "one_ms_block_cpu_us": one_ms_block_us,
        "peak_memory_mb": peak_mb,
        "aim_realtime_factor": 10.0,
    }
