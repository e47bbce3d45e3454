"""Detection quality of the on-implant chain against the simulator's ground truth.

Protocol (documented in docs/signal-chain.md):

- Data: :func:`neurolace.sim.implant.simulate_implant`, N1-like, 256 electrodes (16 threads)
  for 20 s (``--quick``: 64 electrodes, 8 s), seeds 7 and 3 (``SEEDS``). Designs were compared on
  seed 3 while choosing the default filter; seed 7, untouched by that choice, is the one quoted. Every spike of every unit is known, with
  the sample of its trough, its unit, the unit's peak channel and the unit's amplitude on every
  channel.
- Unit SNR = the unit's trough depth on its peak channel / that channel's noise RMS (thermal
  noise plus hash, as the simulator reports it). Bins: < 3, 3-5, 5-8, >= 8.
- Detector: the :class:`~neurolace.dsp.SignalChain` with its defaults (linear-phase running-sum
  band-pass 300-6000 Hz with events shifted back by its 1.69 ms delay, mean CAR over all
  channels, MAD noise over the first 1 s, -4.5 x RMS, 1 ms dead time).
- Matching tolerance: +-0.5 ms between a detection's sample and a spike's trough sample.
- Recall of a unit: fraction of its spikes with a detection on its *peak channel* within the
  tolerance. Threshold crossings are per channel and cannot tell units apart, so one detection
  may serve near-coincident spikes of two units on the same channel.
- Precision: a detection on channel c is true when a spike of *any* unit visible on c lies within
  the tolerance; visible means the unit's amplitude on c is at least 3 x c's noise RMS (two
  thirds of the threshold: such a spike with a modest noise excursion crosses). Precision is
  reported per bin of channels, by the SNR of the largest unit whose peak channel is c (channels
  that are no unit's peak channel form the "no unit" row); F1 of a bin combines that precision
  with the bin's unit recall.
- Variants in the same run: the causal 4th-order Butterworth (the previous default), the same at
  2nd order, with a -4.0 threshold and both, and the 101-tap windowed-sinc FIR band-pass
  (``filter_design="fir"``, events shifted back by its 2.56 ms delay), and the default with its
  corner at 250 and 400 Hz; see ``VARIANTS``. A causal high-pass shifts the phase of a spike's
  components and shrinks its narrow trough (on the simulator's templates a causal 4th-order
  300 Hz Butterworth keeps about 60 % of the trough, a 2nd-order one about 80 %, zero-phase
  filtering about 96 %), so units of nominal SNR 5-8 often stay above a -4.5 x RMS threshold
  after causal filtering; the linear-phase designs keep the shape and pay a fixed delay.
- Baseline in the same run: the same crossing rule after an offline zero-phase filter
  (``scipy.signal.sosfiltfilt``, same band and order), the same CAR, and a noise estimate over
  the whole recording -- what one would do offline with the whole file at hand.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.signal

from benchmarks._common import console, table
from neurolace.core import SpikeEvents
from neurolace.dsp import CommonAverageReference, ThresholdDetector, mad_noise, run_signal_chain

SNR_EDGES = (3.0, 5.0, 8.0)
SNR_LABELS = ("< 3", "3-5", "5-8", ">= 8")
TOLERANCE_MS = 0.5
VISIBLE_SNR = 3.0
#: Simulator seeds; the first is quoted in docs/signal-chain.md, the second was used to compare
#: filter designs while choosing the default (so the first is a held-out check of that choice).
SEEDS = (7, 3)
#: Settings compared with the defaults: the causal Butterworth adds no latency but reshapes
#: spikes (a gentler 2nd order distorts less; a lower threshold trades precision for recall);
#: a long windowed-sinc FIR keeps the shape like the default, for more latency and CPU. The
#: default's corner moved to 250 and 400 Hz shows how much the choice of 300 Hz matters (a higher
#: corner removes more hash and raises recall; the default keeps the conventional 300 Hz).
VARIANTS = {
    "Butterworth 4 (old default)": {"filter_design": "butterworth"},
    "Butterworth 2": {"filter_design": "butterworth", "filter_order": 2},
    "Butterworth 4, -4.0": {"filter_design": "butterworth", "threshold": -4.0},
    "Butterworth 2, -4.0": {
        "filter_design": "butterworth",
        "filter_order": 2,
        "threshold": -4.0,
    },
    "FIR 101 taps (2.56 ms)": {"filter_design": "fir"},
    "running sums, low_hz 250": {"low_hz": 250.0},
    "running sums, low_hz 400": {"low_hz": 400.0},
}


def _nearest_distance(query_keys: np.ndarray, reference_keys: np.ndarray) -> np.ndarray:
    """Distance from each query key to the nearest reference key (keys sorted or not)."""
    if reference_keys.size == 0:
        return np.full(query_keys.shape, np.iinfo(np.int64).max)
    reference = np.sort(reference_keys)
    position = np.searchsorted(reference, query_keys)
    after = reference[np.minimum(position, reference.size - 1)]
    before = reference[np.maximum(position - 1, 0)]
    return np.minimum(np.abs(after - query_keys), np.abs(query_keys - before))


def score(events: SpikeEvents, truth, n_samples: int) -> dict:
    """Recall per unit-SNR bin, precision per channel bin, F1, timing offsets (see module docstring)."""
    fs_hz = events.fs_hz
    tolerance = round(TOLERANCE_MS * 1e-3 * fs_hz)
    stride = np.int64(n_samples + 10 * tolerance + 1)  # keys: channel * stride + sample never mix channels
    detection_keys = events.channel_index.astype(np.int64) * stride + events.sample_index
    units = truth.units
    peak_channel = truth.peak_channel[units.unit_id]
    spike_keys = peak_channel.astype(np.int64) * stride + units.sample_index
    recalled = _nearest_distance(spike_keys, detection_keys) <= tolerance

    amplitude = truth.amplitude_uv.tocoo()
    visible = amplitude.data >= VISIBLE_SNR * truth.noise_rms_uv[amplitude.col]
    visible_unit, visible_channel = amplitude.row[visible], amplitude.col[visible]
    spikes_by_unit = [units.sample_index[units.unit_id == unit] for unit in range(truth.n_units)]
    visible_keys = np.concatenate(
        [
            np.int64(channel) * stride + spikes_by_unit[unit]
            for unit, channel in zip(visible_unit, visible_channel)
        ]
        or [np.zeros(0, np.int64)]
    )
    true_detection = _nearest_distance(detection_keys, visible_keys) <= tolerance

    unit_bin = np.digitize(truth.snr, SNR_EDGES)
    channel_best_snr = np.full(events.n_channels, -1.0)
    np.maximum.at(channel_best_snr, truth.peak_channel, truth.snr)
    channel_bin = np.where(channel_best_snr < 0, -1, np.digitize(channel_best_snr, SNR_EDGES))
    detection_bin = channel_bin[events.channel_index]
    spike_bin = unit_bin[units.unit_id]
    rows = []
    for index, label in enumerate(SNR_LABELS):
        in_bin = spike_bin == index
        recall = float(recalled[in_bin].mean()) if in_bin.any() else float("nan")
        detections = detection_bin == index
        precision = float(true_detection[detections].mean()) if detections.any() else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
        rows.append(
            {
                "snr": label,
                "n_units": int((unit_bin == index).sum()),
                "n_spikes": int(in_bin.sum()),
                "recall": recall,
                "n_channels": int((channel_bin == index).sum()),
                "n_detections": int(detections.sum()),
                "precision": precision,
                "f1": f1,
            }
        )
    no_unit = detection_bin == -1
    duration_s = n_samples / fs_hz
    rows.append(
        {
            "snr": "no unit",
            "n_units": 0,
            "n_spikes": 0,
            "recall": float("nan"),
            "n_channels": int((channel_bin == -1).sum()),
            "n_detections": int(no_unit.sum()),
            "precision": float(true_detection[no_unit].mean()) if no_unit.any() else float("nan"),
            "f1": float("nan"),
        }
    )
    unmatched_rate_hz = float((~true_detection).sum() / duration_s / events.n_channels)
    first_bin_at_5 = SNR_EDGES.index(5.0) + 1  # bins "5-8" and ">= 8"
    at_least_5 = spike_bin >= first_bin_at_5
    at_least_5_channels = channel_bin >= first_bin_at_5
    recall_5 = float(recalled[at_least_5].mean())
    precision_5 = float(true_detection[at_least_5_channels[events.channel_index]].mean())
    return {
        "bins": rows,
        "snr_at_least_5": {
            "recall": recall_5,
            "precision": precision_5,
            "f1": 2 * recall_5 * precision_5 / (recall_5 + precision_5),
        },
        "unmatched_detections_hz_per_channel": unmatched_rate_hz,
        "n_detections": events.n_spikes,
    }


def offline_baseline(recording) -> SpikeEvents:
    """Zero-phase sosfiltfilt, mean CAR, whole-recording MAD noise, the same crossing rule."""
    sos = scipy.signal.butter(4, [300, 6000], btype="bandpass", fs=recording.fs_hz, output="sos")
    filtered = np.ascontiguousarray(
        scipy.signal.sosfiltfilt(sos, recording.get_traces_uv(dtype=np.float64), axis=0), dtype=np.float32
    )
    CommonAverageReference(recording.n_channels).process(filtered, in_place=True)
    detector = ThresholdDetector(recording.fs_hz, recording.n_channels)
    events = detector.process(filtered, mad_noise(filtered))
    return SpikeEvents.concatenate([events, detector.finish()])


def _evaluate(n_electrodes: int, duration_s: float, seed: int) -> dict:
    """Simulate one session and score the default chain, the variants and the offline baseline."""
    from neurolace.sim.implant import simulate_implant

    console.print(f"simulating {n_electrodes} electrodes x {duration_s:g} s, seed {seed} ...")
    start = time.perf_counter()
    simulated = simulate_implant(duration_s=duration_s, n_electrodes=n_electrodes, seed=seed)
    simulate_s = time.perf_counter() - start
    recording, truth = simulated.recording, simulated.ground_truth
    online = score(run_signal_chain(recording).events, truth, recording.n_samples)
    variants = {
        name: score(run_signal_chain(recording, **options).events, truth, recording.n_samples)
        for name, options in VARIANTS.items()
    }
    offline = score(offline_baseline(recording), truth, recording.n_samples)
    return {
        "seed": seed,
        "simulate_seconds": simulate_s,
        "n_units": truth.n_units,
        "n_true_spikes": truth.units.n_spikes,
        "default_chain": online,
        "variants": variants,
        "offline_baseline": offline,
    }


def _bin_table(title: str, result: dict) -> None:
    table(
        title,
        ["unit SNR", "units", "spikes", "recall", "channels", "detections", "precision", "F1"],
        [
            [
                r["snr"],
                r["n_units"],
                r["n_spikes"],
                r["recall"],
                r["n_channels"],
                r["n_detections"],
                r["precision"],
                r["f1"],
            ]
            for r in result["bins"]
        ],
    )


def run(quick: bool = False) -> dict:
    n_electrodes, duration_s = (64, 8.0) if quick else (256, 20.0)
    sessions = [_evaluate(n_electrodes, duration_s, seed) for seed in SEEDS]
    primary = sessions[0]
    where = f"{n_electrodes} el. x {duration_s:g} s, seed {primary['seed']}, +-{TOLERANCE_MS} ms"
    _bin_table(f"detection vs ground truth, default chain ({where})", primary["default_chain"])
    _bin_table(
        f"detection vs ground truth, causal Butterworth, previous default ({where})",
        primary["variants"]["Butterworth 4 (old default)"],
    )
    _bin_table(
        f"detection vs ground truth, offline sosfiltfilt + whole-file noise ({where})",
        primary["offline_baseline"],
    )
    names = [
        "default: running sums (1.69 ms)",
        *VARIANTS,
        "offline sosfiltfilt",
    ]
    rows = []
    for name in names:
        row = [name]
        for session in sessions:
            if name in session["variants"]:
                result = session["variants"][name]
            elif name.startswith("default"):
                result = session["default_chain"]
            else:
                result = session["offline_baseline"]
            at_5 = result["snr_at_least_5"]
            row += [at_5["recall"], at_5["precision"], at_5["f1"]]
        rows.append(row)
    columns = ["detector"]
    for session in sessions:
        columns += [f"R seed {session['seed']}", f"P seed {session['seed']}", f"F1 seed {session['seed']}"]
    table("SNR >= 5 (aim F1 >= 0.9)", columns, rows)
    return {
        "quick": quick,
        "n_electrodes": n_electrodes,
        "duration_s": duration_s,
        "seeds": list(SEEDS),
        "tolerance_ms": TOLERANCE_MS,
        "visible_snr": VISIBLE_SNR,
        "sessions": sessions,
        "default_f1_snr_at_least_5": {
            str(session["seed"]): session["default_chain"]["snr_at_least_5"]["f1"] for session in sessions
        },
        "aim_f1_snr_at_least_5": 0.9,
    }
