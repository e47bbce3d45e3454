"""Simulated implant: generation speed and memory, numba kernels vs their numpy references,
how the simulated ADC codes compare with the public N1 recordings, and the closed loop's
implant path (:class:`neurolace.sim.neural_source.ImplantFeatureSource`).

Baselines measured in the same run: the numpy reference implementations of the two numba
kernels, the real N1 clips of ../shared/data/neuralink-compression for the code statistics,
and, for the implant path, the counts path (``SimulatedParticipant.emit_counts``) on the same
participant, seeds and intentions: its speed, and its offline ridge R² with the protocol of
:func:`neurolace.decode.ridge.ridge_decodability`.

``NEUROLACE_BENCH_SIM_PARTS=implant_path python -m benchmarks sim --avx2`` runs only the
implant-path part; ``NEUROLACE_BENCH_SIM_PARTS=closed_loop`` runs the optional closed-loop
Webgrid sessions through the implant (minutes; never part of the default run).
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc
import wave

import numpy as np
from scipy import signal

from benchmarks._common import console, repeat_timing, shared_data, table
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


def _implant_path_speed(n_channels: int, seconds: float, repeats: int) -> dict[str, float]:
    """CPU s per simulated s of the implant path (1024 channels, 20 ms bins) and of its parts.

    The parts, timed separately on the same configuration: the implant stream alone (push 20 ms
    of intention, read the final samples), the chain alone on those samples (same blocks), and
    the counts path's ``emit_counts`` (the fast mode) as the same-run baseline.
    """
    from neurolace.sim.neural_source import ImplantFeatureSource
    from neurolace.sim.participant import Intention, SimulatedParticipant

    participant = SimulatedParticipant(n_channels=n_channels, seed=0)
    n_bins = round(seconds / participant.control.loop_s)
    rng = np.random.default_rng(0)
    velocity = rng.normal(0.0, 0.6, (n_bins, 2))
    intentions = [Intention(v, 0.0, np.full(2, 0.5)) for v in velocity]
    simulated_s = n_bins * participant.control.loop_s
    full, stream_only, chain_only, counts, start = [], [], [], [], []
    for repeat in range(repeats):
        source = ImplantFeatureSource(participant, features="both")
        started = time.perf_counter()
        source.start(seed=repeat)
        start.append(time.perf_counter() - started)
        started = time.process_time()
        for intention in intentions:
            source.emit(intention)
        full.append((time.process_time() - started) / simulated_s)

        source.start(seed=repeat)
        stream, chain = source.stream, source.chain
        blocks = []
        started = time.process_time()
        for intention in intentions:
            stream.push_intention(np.repeat(intention.velocity[np.newaxis], source.ms_per_bin, axis=0))
            blocks.append(stream.read())
        stream_only.append((time.process_time() - started) / simulated_s)
        started = time.process_time()
        for block in blocks:
            chain.process(block)
        chain_only.append((time.process_time() - started) / simulated_s)
        del blocks

        started = time.process_time()
        for intention in intentions:
            participant.emit_counts(intention)
        counts.append((time.process_time() - started) / simulated_s)
    return {
        "implant path: ImplantFeatureSource.emit, crossings + SBP": statistics.median(full),
        "  part: implant stream (2 units per channel), 20 ms push + read": statistics.median(stream_only),
        "  part: on-implant chain on those blocks": statistics.median(chain_only),
        "baseline: counts path, SimulatedParticipant.emit_counts": statistics.median(counts),
        "start() of a block incl. 1.2 s warm-up, wall s (not per s)": statistics.median(start),
    }


def _paths_agree(n_channels: int, duration_s: float, seeds: list[int], n_subset: int) -> dict:
    """Offline ridge R² of the counts path and of the implant path, same participant, seeds and intentions.

    Protocol of the counts path's calibration (``neurolace.runtime.reaching.offline_decodability``):
    an open-loop reaching session with a perfect decoder, 20 ms bins, 10 bins of history, sqrt of
    the features, first 70 % to fit, last 30 % to score
    (:func:`neurolace.decode.ridge.ridge_decodability`). The implant path gets the very intentions of
    the session; its crossings, spike-band power and both are scored like the counts. Also scored: a
    seed-drawn subset of ``n_subset`` channels (196, the real M1 recording's units) of each.
    """
    from neurolace.decode.ridge import ridge_decodability
    from neurolace.runtime.reaching import simulate_reaching
    from neurolace.sim.neural_source import ImplantFeatureSource
    from neurolace.sim.participant import SimulatedParticipant

    rows = []
    for seed in seeds:
        participant = SimulatedParticipant(n_channels=n_channels, seed=seed)
        record = simulate_reaching(participant, duration_s=duration_s, seed=seed)
        source = ImplantFeatureSource(participant, features="both", layout_seed=seed)
        source.start(seed=seed)
        both = source.emit_many(record.velocity, record.click)
        crossings, sbp = both[:, :n_channels], both[:, n_channels:]
        truth = source.stream.ground_truth()
        first, stop = source.bin_samples(0)[0], source.bin_samples(both.shape[0] - 1)[1]
        in_block = (truth.units.sample_index >= first) & (truth.units.sample_index < stop)
        subset = np.sort(np.random.default_rng([seed, n_subset]).choice(n_channels, n_subset, replace=False))
        row = {
            "seed": seed,
            "counts_hz": float(record.counts.mean() / record.loop_s),
            "spikes_hz": float(in_block.sum() / n_channels / (both.shape[0] * record.loop_s)),
            "crossings_hz": float(crossings.mean() / record.loop_s),
            "sbp_uv": float(sbp.mean()),
            "noise_uv": float(np.median(source.chain.noise_uv)),
            "n_targets": record.n_targets,
        }
        for name, features in (("counts", record.counts), ("crossings", crossings), ("sbp", sbp), ("both", both)):
            row[f"r2_{name}"] = ridge_decodability(features, record.velocity)["r2_mean"]
            columns = subset if name != "both" else np.concatenate([subset, n_channels + subset])
            row[f"r2_{name}_{n_subset}"] = ridge_decodability(features[:, columns], record.velocity)["r2_mean"]
        rows.append(row)
    return {"rows": rows, "n_channels": n_channels, "duration_s": duration_s, "n_subset": n_subset}


def _implant_path(quick: bool) -> dict:
    n_channels = 256 if quick else 1024
    speed = _implant_path_speed(1024, 2.0 if quick else 10.0, 1 if quick else 3)
    table(
        "closed loop through the implant, 1024 channels, 20 ms bins: CPU s per simulated s "
        f"(median of {1 if quick else 3})",
        ["path / part", "CPU s per s", "real time factor"],
        [[name, value, 1.0 / value] for name, value in speed.items()],
    )
    seeds = [0] if quick else [0, 1, 2]
    agree = _paths_agree(n_channels, 60.0 if quick else 120.0, seeds, 196)
    rows = agree["rows"]
    table(
        f"counts path vs implant path: rates, same participant, seeds and intentions ({n_channels} channels, "
        f"{agree['duration_s']:g} s of open-loop reaching)",
        ["seed", "counts path Hz", "implant spikes Hz", "crossings Hz", "crossings / spikes", "median noise µV",
         "mean SBP µV"],
        [[r["seed"], r["counts_hz"], r["spikes_hz"], r["crossings_hz"], r["crossings_hz"] / r["spikes_hz"],
          r["noise_uv"], r["sbp_uv"]] for r in rows],
    )
    labels = {"counts": "counts path", "crossings": "implant crossings", "sbp": "implant SBP",
              "both": "implant crossings + SBP"}
    table(
        f"offline ridge R² (10 lags, 20 ms, first 70 % fit / last 30 % scored), seeds {seeds}: "
        f"all {n_channels} channels and a 196-channel subset",
        ["features", *[f"seed {seed}" for seed in seeds], "mean", *[f"196 ch, seed {seed}" for seed in seeds], "196 ch mean"],
        [
            [label, *[r[f"r2_{name}"] for r in rows], float(np.mean([r[f"r2_{name}"] for r in rows])),
             *[r[f"r2_{name}_196"] for r in rows], float(np.mean([r[f"r2_{name}_196"] for r in rows]))]
            for name, label in labels.items()
        ],
    )
    return {"speed_cpu_s_per_s": speed, "agreement": agree}


def _closed_loop_bps(quick: bool) -> dict:
    """Closed-loop Webgrid BPS through the implant and through counts: Kalman, same participants and seeds.

    Each session is ``run_calibration_session`` at its defaults (open-loop, closed-loop and ReFIT
    calibration blocks, two 60 s Webgrid blocks on 30x30), once with the counts source and once
    with :class:`ImplantFeatureSource` (crossings; and crossings + SBP), each on a fresh
    participant of the same seed; the perfect decoder (``ideal_webgrid_bps``) is the ceiling.
    """
    from neurolace.runtime.closed_loop import ideal_webgrid_bps, run_calibration_session
    from neurolace.sim.neural_source import ImplantFeatureSource
    from neurolace.sim.participant import SimulatedParticipant

    n_channels = 256 if quick else 1024
    seeds = [0] if quick else [0, 1]
    kinds = ("crossings",) if quick else ("crossings", "both")
    rows = {seed: {"seed": seed} for seed in seeds}
    for seed in seeds:
        rows[seed]["ideal"] = ideal_webgrid_bps(seed=seed, n_channels=n_channels)
        rows[seed]["counts"] = run_calibration_session(seed=seed, n_channels=n_channels, decoder="kalman").bps
        console.print(f"seed {seed}: perfect decoder {rows[seed]['ideal']:.3f} BPS, counts path {rows[seed]['counts']:.3f}")
    for kind in kinds:  # each implant session takes minutes: report each as it ends
        for seed in seeds:
            participant = SimulatedParticipant(n_channels=n_channels, seed=seed)
            started = time.process_time()
            session = run_calibration_session(
                seed=seed, n_channels=n_channels, decoder="kalman", participant=participant,
                source=ImplantFeatureSource(participant, features=kind),
            )
            rows[seed][f"implant_{kind}"] = session.bps
            rows[seed][f"implant_{kind}_cpu_s"] = time.process_time() - started
            console.print(f"seed {seed}: implant {kind} {session.bps:.3f} BPS "
                          f"({rows[seed][f'implant_{kind}_cpu_s']:.0f} CPU s)")
    rows = list(rows.values())
    table(
        f"closed-loop Webgrid 30x30, Kalman, {n_channels} channels: BPS by feature path (same participant and seeds)",
        ["seed", "perfect decoder", "counts path", *[f"implant {kind}" for kind in kinds],
         *[f"implant {kind} session CPU s" for kind in kinds]],
        [[r["seed"], r["ideal"], r["counts"], *[r[f"implant_{k}"] for k in kinds],
          *[r[f"implant_{k}_cpu_s"] for k in kinds]] for r in rows],
    )
    return {"n_channels": n_channels, "rows": rows}


def run(quick: bool) -> dict:
    """Every part by default; ``NEUROLACE_BENCH_SIM_PARTS`` (comma-separated: simulator, implant_path,
    closed_loop) picks some. ``closed_loop`` (minutes of closed-loop sessions) runs only when named."""
    parts = os.environ.get("NEUROLACE_BENCH_SIM_PARTS", "simulator,implant_path").split(",")
    known = {"simulator", "implant_path", "closed_loop"}
    if not parts or set(parts) - known:
        raise SystemExit(f"NEUROLACE_BENCH_SIM_PARTS must name some of {sorted(known)}, got {parts}")
    result = _run_implant_simulator(quick) if "simulator" in parts else {}
    if "implant_path" in parts:
        result["implant_path"] = _implant_path(quick)
    if "closed_loop" in parts:
        result["closed_loop"] = _closed_loop_bps(quick)
    return result


def _run_implant_simulator(quick: bool) -> dict:
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
