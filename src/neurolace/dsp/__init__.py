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

from neurolace.dsp.chain import ChainOutput, ChainResult, SignalChain, detect_spikes, run_signal_chain
from neurolace.dsp.detection import ThresholdDetector
from neurolace.dsp.features import (
    CrossingCounter,
    SpikeBandPower,
    bin_crossings,
    bin_samples_for,
    spike_band_power,
)
from neurolace.dsp.filters import (
    BandpassFilter,
    LinearPhaseBandpass,
    MovingAverageBandpass,
    bandpass_filter,
    design_bandpass,
    design_fir_bandpass,
    design_moving_average_highpass,
    moving_average_highpass_gain,
)
from neurolace.dsp.noise import NoiseEstimator, estimate_noise, mad_noise
from neurolace.dsp.reference import CommonAverageReference, common_average_reference

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
