"""The implant's on-board signal chain: streaming filters, referencing, noise, detection, features.

Every stage is a class with ``process(chunk)`` and ``reset()`` that carries its state across
chunks, with a verb over a whole :class:`~neurolace.core.Recording` beside it:

==========================  ===============================  ==============================
stage                       class                            verb
==========================  ===============================  ==============================
band-pass (causal IIR)      :class:`BandpassFilter`          :func:`bandpass_filter`
band-pass (running sums)    :class:`MovingAverageBandpass`   ``SignalChain()`` (the default)
band-pass (linear-phase)    :class:`LinearPhaseBandpass`     ``SignalChain(filter_design="fir")``
common-average reference    :class:`CommonAverageReference`  :func:`common_average_reference`
noise (MAD / 0.6745)        :class:`NoiseEstimator`          :func:`estimate_noise`
threshold crossings         :class:`ThresholdDetector`       :func:`detect_spikes`
spike-band power per bin    :class:`SpikeBandPower`          :func:`spike_band_power`
crossing counts per bin     :class:`CrossingCounter`         :func:`bin_crossings`
the whole chain             :class:`SignalChain`             :func:`run_signal_chain`
==========================  ===============================  ==============================
"""

from __future__ import annotations

import importlib

# Each public name and the module that defines it. The modules import scipy and
# numba, so they load on first use (PEP 562 module __getattr__): importing
# neurolace.dsp.defaults, as the CLI does for its --help, stays light.
_HOMES = {
    "ChainOutput": "chain",
    "ChainResult": "chain",
    "SignalChain": "chain",
    "detect_spikes": "chain",
    "run_signal_chain": "chain",
    "ThresholdDetector": "detection",
    "CrossingCounter": "features",
    "SpikeBandPower": "features",
    "bin_crossings": "features",
    "bin_samples_for": "features",
    "spike_band_power": "features",
    "BandpassFilter": "filters",
    "LinearPhaseBandpass": "filters",
    "MovingAverageBandpass": "filters",
    "bandpass_filter": "filters",
    "design_bandpass": "filters",
    "design_fir_bandpass": "filters",
    "design_moving_average_highpass": "filters",
    "moving_average_highpass_gain": "filters",
    "NoiseEstimator": "noise",
    "estimate_noise": "noise",
    "mad_noise": "noise",
    "CommonAverageReference": "reference",
    "common_average_reference": "reference",
}

__all__ = [
    "BandpassFilter",
    "ChainOutput",
    "ChainResult",
    "CommonAverageReference",
    "CrossingCounter",
    "LinearPhaseBandpass",
    "MovingAverageBandpass",
    "NoiseEstimator",
    "SignalChain",
    "SpikeBandPower",
    "ThresholdDetector",
    "bandpass_filter",
    "bin_crossings",
    "bin_samples_for",
    "common_average_reference",
    "design_bandpass",
    "design_fir_bandpass",
    "design_moving_average_highpass",
    "detect_spikes",
    "estimate_noise",
    "mad_noise",
    "moving_average_highpass_gain",
    "run_signal_chain",
    "spike_band_power",
]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'neurolace.dsp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"neurolace.dsp.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
