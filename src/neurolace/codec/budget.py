"""Bandwidth budget of an N1-class implant: what each data product costs on a BLE-class radio.

Rates are kbit/s for the whole array. The defaults describe the N1 as the
project models it (1024 electrodes, 19,531 Hz, 10-bit ADC); the event and
feature rows rest on stated assumptions that the caller can change:

- raw: ``n_channels * fs_hz * adc_bits`` (10-bit codes packed);
- raw as int16: what the public WAV clips store (16 bits per sample);
- lossless: raw int16 divided by the measured compression ratio (total WAV
  bytes / total compressed bytes, as in the compression challenge);
- spike events: ``event_rate_hz`` threshold crossings per channel, each sent as
  a channel index (ceil(log2 n_channels) bits) plus a time stamp within a
  ``bin_ms`` bin (ceil(log2 samples per bin) bits);
- binned features: per channel and bin, a spike count (``count_bits``) and a
  spike-band power (``power_bits``), ``1000 / bin_ms`` bins per second.

Link capacity: Bluetooth LE 1M PHY carries 1 Msym/s on air and the 2M PHY
(Bluetooth Core Specification 5.0) 2 Msym/s; after packet overhead and
connection-event gaps, application throughput is commonly quoted near
0.7 and 1.4 Mbit/s respectively. These are the defaults ``link_kbps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from neurolace.core.checks import check_int, check_positive

__all__ = ["BLE_1M_KBPS", "BLE_2M_KBPS", "MEASURED_N1_RATIO", "BudgetRow", "bandwidth_budget"]

#: lossless ratio of the codec's default mode (context, format mode 2) on the 496 public N1 clips of
#: ``../shared/data/neuralink-compression/wav``: total WAV bytes / total compressed bytes, every file
#: byte-exact. Measured by ``python -m benchmarks codec`` (and pinned by
#: ``tests/test_codec.py::test_every_n1_clip_round_trips_at_the_measured_ratio``); the default
#: ratio of ``neurolace link budget``.
MEASURED_N1_RATIO = 3.5374

#: practical application throughput of Bluetooth LE, kbit/s (see module docstring)
BLE_1M_KBPS = 700.0
BLE_2M_KBPS = 1400.0


@dataclass(frozen=True)
class BudgetRow:
    """One data product: its rate and how it fits the link."""

    product: str
    rate_kbps: float
    fraction_of_link: float
    fits: bool
    assumption: str

    def as_dict(self) -> dict:
        return {
            "product": self.product,
            "rate_kbps": self.rate_kbps,
            "fraction_of_link": self.fraction_of_link,
            "fits": self.fits,
            "assumption": self.assumption,
        }


def bandwidth_budget(
    *,
    compression_ratio: float,
    n_channels: int = 1024,
    fs_hz: float = 19531.0,
    adc_bits: int = 10,
    event_rate_hz: float = 20.0,
    bin_ms: float = 20.0,
    count_bits: int = 4,
    power_bits: int = 8,
    link_kbps: float = BLE_2M_KBPS,
) -> list[BudgetRow]:
    """Rate of each data product against a link of ``link_kbps``.

    Parameters
    ----------
    compression_ratio : float
        Measured lossless ratio against int16 samples (WAV bytes / compressed bytes).
    n_channels : int
    fs_hz : float
    adc_bits : int
    event_rate_hz : float
        Threshold crossings per channel per second (assumed; multi-unit activity in motor cortex).
    bin_ms : float
        Feature bin width.
    count_bits, power_bits : int
        Bits per channel and bin for the spike count and the spike-band power.
    link_kbps : float
        Usable link throughput.

    Returns
    -------
    list of BudgetRow
        raw, raw int16, lossless, spike events, binned features.
    """
    ratio = check_positive(compression_ratio, "compression_ratio")
    n_channels = check_int(n_channels, "n_channels", minimum=1)
    fs_hz = check_positive(fs_hz, "fs_hz")
    adc_bits = check_int(adc_bits, "adc_bits", minimum=1, maximum=32)
    event_rate_hz = check_positive(event_rate_hz, "event_rate_hz")
    bin_ms = check_positive(bin_ms, "bin_ms")
    count_bits = check_int(count_bits, "count_bits", minimum=1)
    power_bits = check_int(power_bits, "power_bits", minimum=0)
    link_kbps = check_positive(link_kbps, "link_kbps")
    raw_kbps = n_channels * fs_hz * adc_bits / 1e3
    int16_kbps = n_channels * fs_hz * 16 / 1e3
    samples_per_bin = max(1, round(fs_hz * bin_ms / 1e3))
    event_bits = math.ceil(math.log2(max(n_channels, 2))) + math.ceil(math.log2(max(samples_per_bin, 2)))
    events_kbps = n_channels * event_rate_hz * event_bits / 1e3
    features_kbps = n_channels * (count_bits + power_bits) * (1000.0 / bin_ms) / 1e3
    products = [
        ("raw (packed ADC codes)", raw_kbps, f"{n_channels} ch x {fs_hz:g} Hz x {adc_bits} bit"),
        ("raw as int16", int16_kbps, f"{n_channels} ch x {fs_hz:g} Hz x 16 bit"),
        ("lossless compressed raw", int16_kbps / ratio, f"int16 rate / measured ratio {ratio:.4f}"),
        (
            "spike events",
            events_kbps,
            f"{event_rate_hz:g} events/s/ch x {event_bits} bit (channel + time in {bin_ms:g} ms bin)",
        ),
        (
            "binned features",
            features_kbps,
            f"{count_bits}-bit count + {power_bits}-bit power per ch per {bin_ms:g} ms",
        ),
    ]
    return [
        BudgetRow(name, rate, rate / link_kbps, rate <= link_kbps, assumption)
        for name, rate, assumption in products
    ]
