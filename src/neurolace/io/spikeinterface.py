"""SpikeInterface interop: a :class:`Recording` to and from a SpikeInterface recording, events as a sorting.

- :func:`to_spikeinterface`: a ``spikeinterface`` ``NumpyRecording`` over the same int16 codes, with
  ``gain_to_uV``/``offset_to_uV`` from ``gain_uv``/``offset_uv``, the channel ids, and the electrode
  geometry as a probeinterface :class:`~probeinterface.Probe` in µm (one shank per thread).
- :func:`from_spikeinterface`: any SpikeInterface recording (so every format it reads: Blackrock,
  Intan, Open Ephys, SpikeGLX, NWB, binary, zarr...) as a :class:`Recording` for neurolace's chain.
- :func:`events_to_sorting`: :class:`SpikeEvents` (ground truth or detections) as a ``NumpySorting``,
  for ``spikeinterface.comparison``.

Geometry. A neurolace electrode sits at ``(x, y)`` on the cortical surface and ``depth_um`` below it
(``positions_um`` = ``(x, y, -depth)``). A 3-D probe (``probe_ndim=3``) holds those positions
exactly. The 2-D probe (default; what SpikeInterface's sorters and plots use) keeps the vertical
axis, ``y_2d = -depth_um``, and lays the threads side by side: ``x_2d`` is the surface x when every
electrode has the same surface y (one thread, a row of threads), else each thread is a shank at
``rank * spacing`` with ``spacing`` the smallest distance between two threads' insertion points
(400 µm on the N1), so distances along a thread are exact and threads never overlap. Either way the
exact geometry also travels as the channel properties ``thread_id``, ``depth_um`` and
``surface_xy_um``, which :func:`from_spikeinterface` reads first. A foreign probe maps back the way
:mod:`neurolace.io.nwb` reads ``rel_x/rel_y/rel_z``: 3-D ``(x, y, z)`` -> surface ``(x, y)``, depth
``-z``; 2-D ``(x, y)`` -> surface ``(x, 0)``, depth ``-y``; the thread is SpikeInterface's ``group``.

Values. neurolace keeps one ``gain_uv`` and ``offset_uv`` per recording: channels whose gains or
offsets differ are refused (select channels of one gain first). uint16 codes (Intan) are shifted
by 32768 into int16 with the offset moved by ``32768 * gain``, so µV values are unchanged; other
integer codes must fit int16. Floating-point traces (SpikeInterface's generators, filtered
recordings) are quantised to int16 with a ``gain_uv`` the caller chooses.

spikeinterface and probeinterface (extra ``batch``) are imported inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurolace.core.checks import check_in, check_int, check_positive
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.events import NO_UNIT, SpikeEvents
from neurolace.core.geometry import ElectrodeGeometry
from neurolace.core.recording import Recording

__all__ = ["GEOMETRY_PROPERTIES", "events_to_sorting", "from_spikeinterface", "to_spikeinterface"]

#: channel properties that carry the exact electrode geometry through SpikeInterface
GEOMETRY_PROPERTIES = ("thread_id", "depth_um", "surface_xy_um")
#: uint16 codes are centred on this code when they become int16 (Intan's unsigned ADC)
_UINT16_MID_CODE = 32768


def _planar_positions_um(geometry: ElectrodeGeometry) -> np.ndarray:
    """2-D contact positions (x, -depth) with threads side by side, shape (n_channels, 2), µm."""
    surface = geometry.surface_xy_um
    vertical = -geometry.depth_um
    if np.all(surface[:, 1] == surface[0, 1]):
        return np.column_stack([surface[:, 0], vertical])
    threads, first, rank = np.unique(geometry.thread_id, return_index=True, return_inverse=True)
    insertion = surface[first]
    gaps = np.linalg.norm(insertion[:, None, :] - insertion[None, :, :], axis=-1)
    spacing = gaps[gaps > 0].min() if np.any(gaps > 0) else 0.0
    lateral = surface[:, 0] - insertion[rank, 0]  # offsets of an electrode from its thread's insertion point
    return np.column_stack([rank * spacing + lateral, vertical])


def _probe(geometry: ElectrodeGeometry, channel_ids: np.ndarray, probe_ndim: int):
    from probeinterface import Probe

    probe = Probe(ndim=probe_ndim, si_units="um")
    if probe_ndim == 3:
        # contacts face sideways from a vertical thread: their plane holds x and the depth axis z
        plane_axes = np.broadcast_to(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), (geometry.n_channels, 2, 3))
        probe.set_contacts(geometry.positions_um, plane_axes=plane_axes)
    else:
        probe.set_contacts(_planar_positions_um(geometry))
    probe.set_contact_ids([str(channel_id) for channel_id in channel_ids])
    probe.set_shank_ids([str(thread) for thread in geometry.thread_id])
    probe.set_device_channel_indices(np.arange(geometry.n_channels))
    return probe


def to_spikeinterface(recording: Recording, *, probe_ndim: int = 2):
    """A SpikeInterface recording over the same int16 codes, scaled to µV and with its probe.

    Parameters
    ----------
    recording : Recording
        ``samples`` of shape (n_samples, n_channels), int16; not copied.
    probe_ndim : {2, 3}, default 2
        2: a planar probe, one shank per thread (see the module docstring); 3: the exact
        ``geometry.positions_um``.

    Returns
    -------
    spikeinterface.core.NumpyRecording
        One segment; ``get_traces(return_in_uV=True)`` equals ``recording.get_traces_uv()``;
        channel ids are ``recording.channel_ids``; properties ``gain_to_uV``, ``offset_to_uV``,
        ``thread_id``, ``depth_um``, ``surface_xy_um`` and ``group`` (the thread).
    """
    from spikeinterface.core import NumpyRecording

    if not isinstance(recording, Recording):
        raise InvalidInputError(f"recording must be a neurolace Recording, got {type(recording).__name__}")
    check_in(probe_ndim, "probe_ndim", (2, 3))
    channel_ids = np.asarray(recording.channel_ids)
    if np.unique(channel_ids).size != channel_ids.size:
        raise InvalidInputError("recording.channel_ids must be unique to become SpikeInterface channel ids")
    si_recording = NumpyRecording(
        [recording.samples], sampling_frequency=recording.fs_hz, channel_ids=channel_ids
    )
    si_recording.set_channel_gains(recording.gain_uv)
    si_recording.set_channel_offsets(recording.offset_uv)
    si_recording.set_probe(_probe(recording.geometry, channel_ids, probe_ndim), group_mode="by_shank")
    geometry = recording.geometry
    si_recording.set_property("thread_id", geometry.thread_id.astype(np.int64))
    si_recording.set_property("depth_um", np.array(geometry.depth_um))
    si_recording.set_property("surface_xy_um", np.array(geometry.surface_xy_um))
    si_recording.annotate(neurolace_source=str(recording.metadata.get("source", "")))
    return si_recording


def _one_value(values: np.ndarray | None, name: str, *, default: float | None) -> float | None:
    """The single value of a per-channel property (gain or offset), refusing channels that differ."""
    if values is None:
        return default
    values = np.asarray(values, dtype=np.float64)
    if values.size and not np.all(np.isclose(values, values[0], rtol=1e-9, atol=0.0)):
        raise FormatError(
            f"the channels' {name} differ ({values.min():g} .. {values.max():g} µV): a neurolace Recording has "
            f"one {name} per recording; convert channels of one {name} at a time "
            "(si_recording.select_channels(...))"
        )
    return float(values[0]) if values.size else default


def _geometry_of(si_recording) -> tuple[ElectrodeGeometry | None, bool]:
    """(geometry, exact): from the neurolace properties, else from the probe, else None."""
    properties = {key: si_recording.get_property(key) for key in GEOMETRY_PROPERTIES}
    if all(value is not None for value in properties.values()):
        return (
            ElectrodeGeometry(
                thread_id=np.asarray(properties["thread_id"]),
                depth_um=np.asarray(properties["depth_um"], dtype=np.float64),
                surface_xy_um=np.asarray(properties["surface_xy_um"], dtype=np.float64),
            ),
            True,
        )
    if not si_recording.has_probe():
        return None, False
    if si_recording.has_3d_probe():
        locations = np.asarray(si_recording.get_channel_locations(axes="xyz"), dtype=np.float64)
        surface, depth = locations[:, :2], 0.0 - locations[:, 2]  # 0.0 - : no negative zeros
    else:
        locations = np.asarray(si_recording.get_channel_locations(axes="xy"), dtype=np.float64)
        surface = np.column_stack([locations[:, 0], np.zeros(len(locations))])
        depth = 0.0 - locations[:, 1]
    group = si_recording.get_property("group")
    thread_id = (
        np.zeros(len(locations), dtype=np.int32)
        if group is None
        else np.unique(np.asarray(group).astype(str), return_inverse=True)[1]
    )
    return ElectrodeGeometry(thread_id=thread_id, depth_um=depth, surface_xy_um=surface), False


def from_spikeinterface(si_recording, *, segment_index: int | None = None, gain_uv: float | None = None) -> Recording:
    """A neurolace :class:`Recording` of one segment of any SpikeInterface recording.

    Parameters
    ----------
    si_recording : spikeinterface.core.BaseRecording
        Integer codes with ``gain_to_uV``/``offset_to_uV`` (what SpikeInterface's readers give),
        or floating-point traces (then ``gain_uv`` is required).
    segment_index : int, optional
        Segment to convert; required when the recording has more than one.
    gain_uv : float, optional
        µV per code: the quantisation step for floating-point traces (``code = round((trace -
        offset) / gain_uv)`` with the recording's own offset, 0 if none), or the gain of integer
        codes that carry none. Refused for integer codes that carry their own gain.

    Returns
    -------
    Recording
        int16 ``samples`` of shape (n_samples, n_channels), ``fs_hz``, ``gain_uv``, ``offset_uv``,
        ``channel_ids`` and ``geometry`` of the SpikeInterface recording; ``metadata`` records the
        source class, the segment, its start time and whether the geometry or the codes were
        derived (``geometry_assumed``, ``quantized_from_float``).

    Raises
    ------
    FormatError
        Channel gains or offsets that differ, codes that do not fit int16, float traces beyond
        int16 at ``gain_uv``.
    InvalidInputError
        Missing or out-of-range ``segment_index``, a missing or contradicting ``gain_uv``.
    """
    from spikeinterface.core import BaseRecording

    if not isinstance(si_recording, BaseRecording):
        raise InvalidInputError(
            f"si_recording must be a spikeinterface BaseRecording, got {type(si_recording).__name__}"
        )
    n_segments = si_recording.get_num_segments()
    if segment_index is None:
        if n_segments != 1:
            raise InvalidInputError(
                f"the SpikeInterface recording has {n_segments} segments; pass segment_index (0..{n_segments - 1})"
            )
        segment_index = 0
    segment_index = check_int(segment_index, "segment_index", minimum=0, maximum=n_segments - 1)
    traces = si_recording.get_traces(segment_index=segment_index, return_in_uV=False)
    stored_gain = _one_value(si_recording.get_property("gain_to_uV"), "gain_to_uV", default=None)
    offset_uv = _one_value(si_recording.get_property("offset_to_uV"), "offset_to_uV", default=0.0)
    metadata: dict[str, Any] = {
        "source": f"spikeinterface.{type(si_recording).__name__}",
        "segment_index": segment_index,
        "t_start_s": float(si_recording.get_start_time(segment_index=segment_index)),
    }
    kind = traces.dtype.kind
    if kind == "f":
        if gain_uv is None:
            raise InvalidInputError(
                f"the SpikeInterface recording holds {traces.dtype} traces, not integer codes: pass gain_uv, the "
                "µV step to quantise them to int16 with (e.g. 0.195 for Intan, 2.34 for Neuropixels 1.0)"
            )
        gain = check_positive(gain_uv, "gain_uv")
        scale = 1.0 if stored_gain is None else stored_gain  # µV = offset_uv + scale * trace
        codes = np.rint(traces.astype(np.float64) * (scale / gain))
        if codes.size and (codes.min() < -32768 or codes.max() > 32767):
            raise FormatError(
                f"the traces span {codes.min() * gain:.6g} .. {codes.max() * gain:.6g} µV, beyond int16 at "
                f"gain_uv={gain:g}: choose a larger gain_uv"
            )
        samples = codes.astype(np.int16)
        metadata["quantized_from_float"] = True
    elif kind in "iu":
        if stored_gain is not None and gain_uv is not None:
            raise InvalidInputError(
                f"gain_uv={gain_uv:g} was given but the SpikeInterface recording carries its own gain_to_uV "
                f"({stored_gain:g} µV per code); leave gain_uv out"
            )
        if stored_gain is None and gain_uv is None:
            raise InvalidInputError(
                "the SpikeInterface recording has no gain_to_uV: pass gain_uv, the µV value of one code"
            )
        gain = check_positive(stored_gain if stored_gain is not None else gain_uv, "gain_uv")
        if traces.dtype == np.uint16:
            samples = (traces.astype(np.int32) - _UINT16_MID_CODE).astype(np.int16)
            offset_uv += _UINT16_MID_CODE * gain
        elif traces.size and (traces.min() < -32768 or traces.max() > 32767):
            raise FormatError(
                f"the SpikeInterface recording's {traces.dtype} codes span {traces.min()} .. {traces.max()}, "
                "beyond int16"
            )
        else:
            samples = traces.astype(np.int16, copy=False)
    else:
        raise FormatError(f"cannot convert SpikeInterface traces of dtype {traces.dtype} to int16 codes")
    geometry, exact = _geometry_of(si_recording)
    metadata["geometry_assumed"] = geometry is None
    metadata["geometry_exact"] = exact
    return Recording(
        samples,
        fs_hz=float(si_recording.get_sampling_frequency()),
        gain_uv=gain,
        offset_uv=offset_uv,
        channel_ids=np.asarray(si_recording.get_channel_ids()),
        geometry=geometry,
        metadata=metadata,
    )


def events_to_sorting(events: SpikeEvents, *, by: str = "unit", unit_ids: Any = None):
    """Spike events as a SpikeInterface sorting.

    Parameters
    ----------
    events : SpikeEvents
        Ground-truth spikes (``unit_id`` set) or threshold detections.
    by : {"unit", "channel"}, default "unit"
        Label of each spike: its ``unit_id`` (events with ``NO_UNIT`` are refused), or its
        ``channel_index`` (each channel's crossings as one multi-unit, the usual way to score
        threshold detection against ground truth).
    unit_ids : array-like of int, optional
        Every unit of the sorting, including silent ones (default: the labels that occur; with
        ``by="channel"``, every channel 0 .. n_channels - 1).

    Returns
    -------
    spikeinterface.core.NumpySorting
        One segment at ``events.fs_hz``; spike frames are ``events.sample_index``.
    """
    from spikeinterface.core import NumpySorting

    if not isinstance(events, SpikeEvents):
        raise InvalidInputError(f"events must be SpikeEvents, got {type(events).__name__}")
    check_in(by, "by", ("unit", "channel"))
    if by == "unit":
        if np.any(events.unit_id == NO_UNIT):
            raise InvalidInputError(
                "events carry no unit for some spikes (unit_id == -1, e.g. threshold detections): use by='channel'"
            )
        labels = events.unit_id.astype(np.int64)
        default_ids = np.unique(labels)
    else:
        labels = events.channel_index.astype(np.int64)
        default_ids = np.arange(events.n_channels)
    ids = default_ids if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
    missing = np.setdiff1d(np.unique(labels), ids)
    if missing.size:
        raise InvalidInputError(f"unit_ids must hold every label of the events; missing {missing[:10].tolist()}")
    return NumpySorting.from_samples_and_labels(
        [events.sample_index.astype(np.int64)], [labels], events.fs_hz, unit_ids=ids
    )
