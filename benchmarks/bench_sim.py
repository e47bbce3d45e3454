"""Simulated implant: generation speed and memory, numba kernels vs their numpy references,
and how the simulated ADC codes compare with the public N1 recordings.

Baselines measured in the same run: the numpy reference implementations of the two numba
kernels, and the real N1 clips of ../shared/data/neuralink-compression for the code statistics.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
import wave

import numpy as np
from scipy import signal

from benchmarks._common import repeat_timing, shared_data, table
from neurolace.sim._noise_kernels import render_rows
from neurolace.sim.background import ZIGGURAT_TAIL_START, BackgroundGenerator, render_numpy, ziggurat_tables
from neurolace.sim.implant import (
    ImplantParameters,
    add_spikes,
    add_spikes_numpy,
    implant_geometry,
    simulate_implant,
)

FS_HZ = 19531.25
#: Active-neuron density that reproduces the threshold-crossing rates of the public N1 clips.
QUIET_DENSITY_PER_MM3 = 300.0


def _code_statistics(codes: np.ndarray, fs_hz: float) -> dict[str, float]:
    """Per-channel statistics of 10-bit codes, shape (n_samples,)."""
    codes = codes.astype(np.float64)
    band = signal.butter(3, [300.0, 5000.0], btype="bandpass", fs=fs_hz, output="sos")
    filtered = signal.sosfiltfilt(band, codes)
    noise = np.median(np.abs(filtered)) / 0.6745
    below = filtered < -4.5 * noise
    crossings = np.count_nonzero(below[1:] & ~below[:-1]) / (codes.size / fs_hz)
    return {
        "highpass_noise_codes": noise,
        "raw_std_codes": codes.std(),
        "diff_std_codes": np.diff(codes).std(),
        "median_minus_mid_codes": np.median(codes) - 512.0,
        "crossings_hz": crossings,
    }


def _real_n1_statistics(n_files: int) -> list[dict[str, float]]:
    files = sorted(shared_data("neuralink-compression", "wav").glob("*.wav"))[:n_files]
    values = []
    for path in files:
        with wave.open(str(path)) as handle:
            values.append(np.frombuffer(handle.readframes(handle.getnframes()), "<i2"))
    table_values = np.unique(np.concatenate(values))  # the 10-bit code table of these clips
    return [_code_statistics(np.searchsorted(table_values, clip), 19531.0) for clip in values]


def _summarise(rows: list[dict[str, float]]) -> dict[str, tuple[float, float, float]]:
    keys = rows[0].keys()
    return {
        key: tuple(float(v) for v in np.percentile([row[key] for row in rows], [10, 50, 90])) for key in keys
    }


def _kernel_timings(n_channels: int, repeats: int) -> dict:
    simulated = simulate_implant(duration_s=1.0, n_electrodes=n_channels, seed=0)
    truth = simulated.ground_truth
    waveforms = truth.shapes.sample(FS_HZ, n_phases=8)
    matrix = truth.amplitude_uv
    samples = truth.units.sample_index
    units = truth.units.unit_id.astype(np.int64)
    phases = np.zeros(samples.size, np.int64)
    footprint = (
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.int64),
        matrix.data.astype(np.float32),
    )

    def scatter(function):
        def run():
            for start in range(0, simulated.recording.n_samples, 4096):
                out = np.zeros((min(4096, simulated.recording.n_samples - start), n_channels), np.float32)
                first, last = samples.searchsorted(start - 30), samples.searchsorted(start + 4096 + 13)
                function(
                    out,
                    start,
                    samples[first:last],
                    units[first:last],
                    phases[first:last],
                    *footprint,
                    waveforms,
                    truth.waveform_taps_before,
                )

        return run

    geometry = implant_geometry(n_channels)
    generator = BackgroundGenerator(geometry.thread_id, geometry.depth_um, FS_HZ, ImplantParameters(), 0)
    rng = np.random.default_rng(0)
    words = rng.bit_generator.random_raw(4096 * ((n_channels + 1) // 2)).view(np.uint32).reshape(4096, -1)
    spikes_uv = rng.normal(0.0, 5.0, (4096, n_channels)).astype(np.float32)
    low = rng.standard_normal((260, n_channels)).astype(np.float32)
    codes = np.empty((4096, n_channels), np.int16)

    def background(function):
        def run():
            function(
                codes,
                spikes_uv,
                words,
                *ziggurat_tables(),
                ZIGGURAT_TAIL_START,
                np.random.default_rng(1),
                generator._numerators,
                generator._denominator,
                generator._state.copy(),
                low,
                3,
                16,
                np.float32(0.5),
                np.float32(512),
                np.float32(1023),
                True,
            )

        return run

    scatter(add_spikes)()  # compile outside the timing
    background(render_rows)()
    results = {
        "spikes_in_1s": int(samples.size),
        "scatter_numpy": repeat_timing(scatter(add_spikes_numpy), repeats=repeats),
        "scatter_numba": repeat_timing(scatter(add_spikes), repeats=repeats),
        "background_numpy": repeat_timing(background(render_numpy), repeats=repeats),
        "background_numba": repeat_timing(background(render_rows), repeats=repeats),
    }
    return results


def _streaming_and_floor(n_channels: int, repeats: int) -> dict[str, float]:
    """CPU seconds per simulated second: the Gaussian draws, the raw words, and the 1 ms-block stream.

    Until this release the background drew two numpy float32 standard normals (thermal noise and the
    hash's input) per sample and channel, a floor of its own; it now draws one 32-bit word per sample
    and channel (half a PCG64 ``random_raw`` output), turned into a normal inside the numba kernel.
    """
    from neurolace.sim.implant import ImplantStream

    block = np.empty((4096, n_channels), np.float32)
    rng = np.random.default_rng(0)
    floor = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(5):
            rng.standard_normal(block.shape, dtype=np.float32, out=block)
            rng.standard_normal(block.shape, dtype=np.float32, out=block)
        floor.append((time.process_time() - started) / (5 * 4096 / FS_HZ))
    raw = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(5):
            rng.bit_generator.random_raw(4096 * ((n_channels + 1) // 2))
        raw.append((time.process_time() - started) / (5 * 4096 / FS_HZ))
    streaming = []
    for repeat in range(repeats):
        stream = ImplantStream(n_electrodes=n_channels, seed=repeat)
        step = np.zeros((1, 2))
        started = time.process_time()
        for _ in range(500):  # 0.5 s in 1 ms pushes and reads, as a live source would run it
            stream.push_intention(step)
            stream.read()
        streaming.append((time.process_time() - started) / 0.5)
    return {
        "numpy standard_normal float32, 2 draws per sample (the old floor)": statistics.median(floor),
        "PCG64 random_raw, one 32-bit word per sample (drawn now)": statistics.median(raw),
        "ImplantStream, 1 ms push + read": statistics.median(streaming),
    }


def run(quick: bool) -> dict:
    seconds, n_channels, repeats = (2.0, 256, 3) if quick else (10.0, 1024, 3)
    simulate_implant(duration_s=0.01, n_electrodes=16, seed=0)  # load/compile the numba kernels

    wall, cpu = [], []
    for repeat in range(repeats):
        started_wall, started_cpu = time.perf_counter(), time.process_time()
        simulated = simulate_implant(duration_s=seconds, n_electrodes=n_channels, seed=repeat)
        wall.append(time.perf_counter() - started_wall)
        cpu.append(time.process_time() - started_cpu)
    output_mb = simulated.recording.samples.nbytes / 1e6
    del simulated
    tracemalloc.start()
    simulated = simulate_implant(duration_s=seconds, n_electrodes=n_channels, seed=0)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    truth = simulated.ground_truth
    table(
        f"simulate_implant: {seconds:g} s x {n_channels} channels ({output_mb:.0f} MB of int16 output)",
        ["measure", "value"],
        [
            ["wall time, median of 3 (s)", statistics.median(wall)],
            ["CPU time, median of 3 (s)", statistics.median(cpu)],
            ["real time factor (simulated s / wall s)", seconds / statistics.median(wall)],
            ["real time factor (simulated s / CPU s)", seconds / statistics.median(cpu)],
            ["peak traced memory (MB)", peak_bytes / 1e6],
            ["peak memory / output size", peak_bytes / 1e6 / output_mb],
            ["units", truth.n_units],
            ["spikes", truth.units.n_spikes],
            ["units per electrode above 5x noise (mean)", float(truth.units_per_channel(min_snr=5.0).mean())],
            [
                "electrodes with >= 1 unit above 5x noise (%)",
                100 * float((truth.units_per_channel() > 0).mean()),
            ],
            ["median unit SNR", float(np.median(truth.snr))],
        ],
    )

    table(
        f"baselines and streaming, {n_channels} channels (CPU s per simulated s, median of repeats)",
        ["measure", "CPU s per s", "real time factor"],
        [[name, value, 1.0 / value] for name, value in _streaming_and_floor(n_channels, repeats).items()],
    )

    kernels = _kernel_timings(256 if quick else 1024, repeats=3 if quick else 5)
    table(
        f"numba kernels vs numpy references ({256 if quick else 1024} channels: scatter 1 s, background one "
        "4096-sample chunk; median of repeats)",
        ["kernel", "numpy (s)", "numba (s)", "speed-up"],
        [
            [
                name,
                kernels[f"{name}_numpy"]["median_s"],
                kernels[f"{name}_numba"]["median_s"],
                kernels[f"{name}_numpy"]["median_s"] / kernels[f"{name}_numba"]["median_s"],
            ]
            for name in ("scatter", "background")
        ],
    )

    n_files = 40 if quick else 200
    real = _summarise(_real_n1_statistics(n_files))
    codes = simulated.recording.samples
    simulated_rows = [_code_statistics(codes[:, channel], FS_HZ) for channel in range(0, codes.shape[1], 4)]
    fake = _summarise(simulated_rows)
    quiet = simulate_implant(
        duration_s=min(seconds, 5.0),
        n_electrodes=n_channels,
        seed=0,
        parameters=ImplantParameters(active_density_per_mm3=QUIET_DENSITY_PER_MM3),
    ).recording.samples
    quiet_rows = [_code_statistics(quiet[:, channel], FS_HZ) for channel in range(0, quiet.shape[1], 4)]
    del quiet
    fake_quiet = _summarise(quiet_rows)
    table(
        f"ADC code statistics: {n_files} public N1 clips vs {len(simulated_rows)} simulated channels "
        "(10th / 50th / 90th percentile across channels)",
        ["statistic", "N1 p10", "N1 median", "N1 p90", "sim p10", "sim median", "sim p90"],
        [[key, *real[key], *fake[key]] for key in real]
        + [
            [
                f"crossings_hz at {QUIET_DENSITY_PER_MM3:g}/mm^3",
                *real["crossings_hz"],
                *fake_quiet["crossings_hz"],
            ]
        ],
    )
    return {
        "seconds": seconds,
        "n_channels": n_channels,
        "wall_s": wall,
        "cpu_s": cpu,
        "median_wall_s": statistics.median(wall),
        "peak_traced_mb": peak_bytes / 1e6,
        "output_mb": output_mb,
        "units": truth.n_units,
        "spikes": truth.units.n_spikes,
        "kernels": kernels,
        "n1_code_statistics": real,
        "simulated_code_statistics": fake,
        "quiet_simulated_code_statistics": fake_quiet,
    }
