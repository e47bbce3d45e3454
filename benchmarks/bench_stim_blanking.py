"""Stimulation blanking: false threshold crossings per stimulated second, with and without blanking.

A simulated recording (:func:`neurolace.sim.simulate_implant`) gets the artifacts
of ICMS trains (:mod:`neurolace.stim.artifacts`: 1 s at each rate, 100 µA,
200/100/400 µs, on one electrode, after the chain's first noise window), and
the on-implant chain (:func:`neurolace.dsp.run_signal_chain`) runs on it with
and without :class:`neurolace.dsp.blanking.Blanker`:

- *false crossings*: on a recording with **no neurons** (noise, LFP, drift), every
  crossing in a stimulated second beyond those of the same recording without
  stimulation is false; reported per stimulated second (all channels);
- *recall outside the windows*: on a recording **with neurons**, the fraction
  of the unstimulated recording's crossings (the reference) that fall outside
  the blanking's detection windows and are found again (same channel, within
  2 samples) with stimulation and blanking;
- *dead time*: the fraction of the stimulated second in which detection waits.

Run: ``python -m benchmarks stim_blanking [--quick]``.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks._common import console, table
from neurolace.dsp.blanking import Blanker
from neurolace.dsp.chain import SignalChain, run_signal_chain
from neurolace.sim import simulate_implant
from neurolace.sim.implant import ImplantParameters
from neurolace.stim.artifacts import add_stim_artifacts
from neurolace.stim.pulses import PulseTrain

STIM_AT_S = 1.5


def _train(frequency_hz: float) -> PulseTrain:
    return PulseTrain(channels=(3,), amplitude_ua=100.0, cathodic_width_us=200.0, interphase_us=100.0,
                      anodic_width_us=400.0, anodic_amplitude_ua=50.0, frequency_hz=frequency_hz, train_s=1.0)


def _in_second(events, fs_hz: float) -> np.ndarray:
    first, stop = int(STIM_AT_S * fs_hz), int((STIM_AT_S + 1.0) * fs_hz)
    return (events.sample_index >= first) & (events.sample_index < stop)


def _blanker(recording, onsets) -> Blanker:
    blanker = Blanker(recording.fs_hz, recording.n_channels)
    blanker.schedule(onsets)
    return blanker


def run(quick: bool = False) -> dict:
    n_electrodes = 64 if quick else 256
    rates = (50.0, 100.0) if quick else (20.0, 50.0, 100.0, 200.0, 300.0)
    started = time.perf_counter()
    quiet = simulate_implant(duration_s=3.0, n_electrodes=n_electrodes, seed=1,
                             parameters=ImplantParameters(active_density_per_mm3=0.0)).recording
    spiking = simulate_implant(duration_s=3.0, n_electrodes=n_electrodes, seed=2).recording
    fs_hz = quiet.fs_hz
    delay = SignalChain.for_recording(quiet).delay_samples
    baseline = int(_in_second(run_signal_chain(quiet).events, fs_hz).sum())
    reference = run_signal_chain(spiking).events
    rows, results = [], []
    for rate in rates:
        stimulated, onsets = add_stim_artifacts(quiet, [(_train(rate), STIM_AT_S)], seed=0)
        raw = int(_in_second(run_signal_chain(stimulated).events, fs_hz).sum())
        blanked = int(_in_second(run_signal_chain(stimulated, blanking=_blanker(quiet, onsets)).events, fs_hz).sum())
        with_spikes, onsets = add_stim_artifacts(spiking, [(_train(rate), STIM_AT_S)], seed=0)
        found = run_signal_chain(with_spikes, blanking=_blanker(spiking, onsets)).events
        waiting = _blanker(spiking, onsets).detection_mask(0, spiking.n_samples + delay, delay)
        outside = ~waiting[reference.sample_index + delay] & _in_second(reference, fs_hz)
        key_found = {}
        for sample, channel in zip(found.sample_index, found.channel_index):
            key_found.setdefault(int(channel), []).append(int(sample))
        arrays = {channel: np.asarray(samples) for channel, samples in key_found.items()}
        kept = sum(bool(np.any(np.abs(arrays.get(int(c), np.zeros(0, np.int64)) - s) <= 2))
                   for s, c in zip(reference.sample_index[outside], reference.channel_index[outside]))
        first, stop = int(STIM_AT_S * fs_hz), int((STIM_AT_S + 1.0) * fs_hz)
        dead = float(waiting[first + delay:stop + delay].mean())
        result = {"frequency_hz": rate, "false_per_stim_s_without": max(raw - baseline, 0),
                  "false_per_stim_s_with": max(blanked - baseline, 0), "baseline_crossings": baseline,
                  "recall_outside_windows": kept / max(int(outside.sum()), 1),
                  "reference_crossings_outside": int(outside.sum()), "dead_fraction": dead}
        results.append(result)
        rows.append([f"{rate:g} Hz", result["false_per_stim_s_without"], result["false_per_stim_s_with"],
                     result["recall_outside_windows"], dead])
    table(f"Blanking, {n_electrodes} electrodes, 100 µA on one, 1 s trains (false crossings over all channels)",
          ["train", "false / stim s, no blanking", "false / stim s, blanking", "recall outside windows",
           "detection dead fraction"], rows)
    return {"quick": quick, "n_electrodes": n_electrodes, "results": results,
            "wall_s": time.perf_counter() - started}


if __name__ == "__main__":
    import argparse

    from benchmarks._common import write_result

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_stim_blanking")
    parser.add_argument("--quick", action="store_true", help="64 electrodes, two rates")
    console.print(f"wrote {write_result('stim_blanking', run(quick=parser.parse_args().quick))}")
