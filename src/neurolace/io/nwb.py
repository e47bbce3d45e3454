"""NWB files: a recording with its detections, features and ground-truth units, and back.

:func:`write_nwb` stores one session in Neurodata Without Borders 2.x through
pynwb; :func:`read_nwb` reads it back into neurolace objects (exactly: int16
codes, geometry, events, features and units survive a round trip bit for bit).

Layout (see docs/io.md for the full table)

- ``acquisition/ElectricalSeries``: the int16 ADC codes, shape (n_samples,
  n_channels), gzip-compressed in chunks, with ``conversion = gain_uv * 1e-6``
  and ``offset = offset_uv * 1e-6`` so NWB tools see volts, ``rate = fs_hz``.
- ``general/extracellular_ephys``: one device "neurolace implant", one
  electrode group per thread ("thread000", ...), and the electrodes table with
  ``rel_x``/``rel_y`` (insertion point on the cortical surface, µm) and the
  extra columns ``thread_id``, ``depth_um`` and ``channel_id``.
- ``processing/ecephys/ThresholdCrossings``: a DynamicTable of detections, one
  row per event: ``spike_time`` (s), ``sample_index``, ``electrodes`` (a
  region of the electrodes table), ``unit_id`` and, if known, ``amplitude_uv``.
- ``processing/features/<kind>``: one TimeSeries per BinnedFeatures
  (``rate = 1 / bin_width_s``); kind, bin width, start sample, clock rate and
  feature names are kept as JSON in its ``comments``.
- ``units``: ground-truth units with ``spike_times``, the peak-channel
  ``electrodes`` reference and one column per entry of ``unit_table``.

neurolace-specific facts that NWB has no field for (exact gain, start sample,
free-form metadata) are kept as JSON in the ``comments`` of the series that
owns them, under the key ``"neurolace"``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurolace.core.checks import check_array
from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.events import NO_UNIT, SpikeEvents
from neurolace.core.features import BinnedFeatures
from neurolace.core.geometry import ElectrodeGeometry
from neurolace.core.recording import Recording
from neurolace.io.atomic import atomic_output
from neurolace.io.paths import check_input_file

__all__ = ["NWBContents", "read_nwb", "write_nwb"]

DEVICE_NAME = "neurolace implant"
SERIES_NAME = "ElectricalSeries"
EVENTS_MODULE = "ecephys"
EVENTS_TABLE = "ThresholdCrossings"
FEATURES_MODULE = "features"

#: target size of one HDF5 chunk of raw samples (1 MiB of int16)
_CHUNK_ELEMENTS = 1 << 19

#: NWBFile keyword fields accepted in ``extra_metadata`` (besides "subject")
_NWBFILE_FIELDS = (
    "experimenter",
    "experiment_description",
    "session_id",
    "institution",
    "lab",
    "keywords",
    "related_publications",
    "notes",
    "protocol",
    "surgery",
    "data_collection",
    "stimulus_notes",
    "pharmacology",
    "virus",
)
_SUBJECT_FIELDS = (
    "species",
    "sex",
    "age",
    "description",
    "genotype",
    "strain",
    "weight",
    "date_of_birth",
)
#: per-spike ragged columns of the units table written by neurolace
_SPIKE_CHANNEL_COLUMN = "spike_channel_index"
_SPIKE_AMPLITUDE_COLUMN = "spike_amplitude_uv"
_RESERVED_UNIT_COLUMNS = {
    "spike_times",
    "electrodes",
    "electrode_group",
    "obs_intervals",
    "waveform_mean",
    "waveform_sd",
    "waveforms",
    "id",
    _SPIKE_CHANNEL_COLUMN,
    _SPIKE_AMPLITUDE_COLUMN,
}
_UNIT_SUFFIXES = {
    "_um": "µm",
    "_uv": "µV",
    "_rad": "radians",
    "_deg": "degrees",
    "_hz": "Hz",
    "_s": "seconds",
    "_ms": "milliseconds",
    "_index": "0-based index",
}


@dataclass
class NWBContents:
    """What :func:`read_nwb` found in a file.

    Attributes
    ----------
    recording : Recording
        The raw int16 codes with rate, gain, channel ids and geometry.
    events : SpikeEvents or None
        Detections from ``processing/ecephys/ThresholdCrossings``.
    features : list of BinnedFeatures
        Every TimeSeries of ``processing/features``, in the order given to
        :func:`write_nwb` (by name for files written elsewhere).
    units : SpikeEvents or None
        Ground-truth spikes of the units table (``unit_id`` = the unit's id).
    unit_table : dict of str to ndarray
        Per-unit columns of the units table, each of length n_units, plus
        ``"unit_id"`` (the table's ids, in row order).
    """

    recording: Recording
    events: SpikeEvents | None = None
    features: list[BinnedFeatures] = field(default_factory=list)
    units: SpikeEvents | None = None
    unit_table: dict[str, np.ndarray] = field(default_factory=dict)


# -- writing -------------------------------------------------------------------------------------


def _compressed(array: np.ndarray, chunks: Any = True) -> Any:
    """Wrap a non-empty array for gzip + shuffle in HDF5 (empty arrays cannot be chunked)."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    if array.size == 0:
        return array
    return H5DataIO(data=array, compression="gzip", compression_opts=4, shuffle=True, chunks=chunks)


def _jsonable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``metadata`` that survive JSON (others are dropped, by design)."""
    kept = {}
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[str(key)] = value
    return kept


def _check_same_clock(events: SpikeEvents, recording: Recording, name: str) -> None:
    if not isinstance(events, SpikeEvents):
        raise InvalidInputError(f"{name} must be a SpikeEvents, got {type(events).__name__}")
    if events.fs_hz != recording.fs_hz or events.n_channels != recording.n_channels:
        raise InvalidInputError(
            f"{name} must share the recording's clock and channels (fs_hz={recording.fs_hz:g}, "
            f"n_channels={recording.n_channels}), got fs_hz={events.fs_hz:g}, n_channels={events.n_channels}"
        )


def _session_start(value: Any, recording: Recording) -> dt.datetime:
    if value is None:
        value = recording.metadata.get("session_start_time")
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(
                f"session_start_time must be a datetime or ISO 8601 string, got {value!r}"
            ) from None
    if not isinstance(value, dt.datetime):
        raise InvalidInputError(f"session_start_time must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _split_extra_metadata(extra_metadata: Mapping[str, Any] | None) -> tuple[dict, dict]:
    if extra_metadata is None:
        return {}, {}
    if not isinstance(extra_metadata, Mapping):
        raise InvalidInputError(f"extra_metadata must be a dict, got {type(extra_metadata).__name__}")
    file_fields = {}
    subject_fields: dict[str, Any] = {}
    for key, value in extra_metadata.items():
        if key == "subject":
            if not isinstance(value, Mapping):
                raise InvalidInputError(
                    f"extra_metadata['subject'] must be a dict, got {type(value).__name__}"
                )
            unknown = sorted(set(value) - set(_SUBJECT_FIELDS))
            if unknown:
                raise InvalidInputError(
                    f"extra_metadata['subject'] has unknown keys {unknown}; "
                    f"allowed: {', '.join(_SUBJECT_FIELDS)}"
                )
            subject_fields = dict(value)
        elif key in _NWBFILE_FIELDS:
            file_fields[key] = value
        else:
            raise InvalidInputError(
                f"extra_metadata has an unknown key {key!r}; allowed: {', '.join(_NWBFILE_FIELDS)}, subject"
            )
    return file_fields, subject_fields


def _add_electrodes(nwbfile: Any, recording: Recording) -> Any:
    """Device, one electrode group per thread, and the electrodes table; return the all-channels region."""
    geometry = recording.geometry
    location = str(recording.metadata.get("location", "unknown"))
    device = nwbfile.create_device(
        name=DEVICE_NAME,
        description=(
            f"neurolace implant: {geometry.n_threads} thread(s), {recording.n_channels} electrode(s), "
            f"{recording.fs_hz:g} Hz, {recording.gain_uv:g} µV per ADC code"
        ),
        manufacturer="neurolace",
    )
    groups = {}
    for thread in np.unique(geometry.thread_id):
        on_thread = geometry.thread_id == thread
        groups[int(thread)] = nwbfile.create_electrode_group(
            name=f"thread{int(thread):03d}",
            description=f"thread {int(thread)}: {int(on_thread.sum())} electrode(s) along one thread",
            location=location,
            device=device,
        )
    nwbfile.add_electrode_column("thread_id", "index of the thread (shank) that carries the electrode")
    nwbfile.add_electrode_column(
        "depth_um", "depth of the electrode along its thread below the cortical surface, µm"
    )
    channel_ids = recording.channel_ids
    numeric_ids = channel_ids.dtype.kind in "iu"
    nwbfile.add_electrode_column(
        "channel_id", f"channel label in the recording ({'integer' if numeric_ids else 'text'})"
    )
    for index in range(recording.n_channels):
        thread = int(geometry.thread_id[index])
        nwbfile.add_electrode(
            group=groups[thread],
            location=location,
            rel_x=float(geometry.surface_xy_um[index, 0]),
            rel_y=float(geometry.surface_xy_um[index, 1]),
            thread_id=thread,
            depth_um=float(geometry.depth_um[index]),
            channel_id=int(channel_ids[index]) if numeric_ids else str(channel_ids[index]),
            id=index,
        )
    return nwbfile.create_electrode_table_region(
        region=list(range(recording.n_channels)),
        description="all electrodes of the recording, in channel order",
    )


def _add_raw_series(nwbfile: Any, recording: Recording, region: Any, counts: dict[str, int]) -> None:
    from pynwb.ecephys import ElectricalSeries

    samples = recording.samples
    if samples.size:
        channels_per_chunk = min(recording.n_channels, 64)
        samples_per_chunk = max(1, min(recording.n_samples, _CHUNK_ELEMENTS // channels_per_chunk))
        data = _compressed(samples, chunks=(samples_per_chunk, channels_per_chunk))
    else:
        data = samples
    start_sample = int(recording.metadata.get("start_sample", 0))
    info = {
        "gain_uv": recording.gain_uv,
        "offset_uv": recording.offset_uv,
        "start_sample": start_sample,
        "metadata": _jsonable(recording.metadata),
        **counts,
    }
    nwbfile.add_acquisition(
        ElectricalSeries(
            name=SERIES_NAME,
            data=data,
            electrodes=region,
            rate=float(recording.fs_hz),
            starting_time=start_sample / recording.fs_hz,
            conversion=recording.gain_uv * 1e-6,
            offset=recording.offset_uv * 1e-6,
            resolution=recording.gain_uv * 1e-6,
            filtering=str(recording.metadata.get("filtering", "none (raw ADC codes)")),
            description=(
                f"raw ADC codes (int16) of {recording.n_channels} channel(s); "
                "volts = offset + conversion * code"
            ),
            comments=json.dumps({"neurolace": info}),
        )
    )


def _add_events(nwbfile: Any, events: SpikeEvents) -> None:
    from hdmf.common import DynamicTable, DynamicTableRegion, VectorData

    columns = [
        VectorData(
            name="spike_time",
            description="time of the event in seconds on the recording clock (sample_index / rate)",
            data=_compressed(events.times_s.astype(np.float64)),
        ),
        VectorData(
            name="sample_index",
            description="sample of the event on the recording clock (exact)",
            data=_compressed(events.sample_index.astype(np.int64)),
        ),
        DynamicTableRegion(
            name="electrodes",
            description="electrode (channel) on which the event was detected",
            data=_compressed(events.channel_index.astype(np.int64)),
            table=nwbfile.electrodes,
        ),
        VectorData(
            name="unit_id",
            description=f"unit label of the event; {NO_UNIT} where not assigned to a unit",
            data=_compressed(events.unit_id.astype(np.int32)),
        ),
    ]
    if events.amplitude_uv is not None:
        columns.append(
            VectorData(
                name="amplitude_uv",
                description="signed peak amplitude of the event, µV",
                data=_compressed(events.amplitude_uv.astype(np.float32)),
            )
        )
    table = DynamicTable(
        name=EVENTS_TABLE,
        description=(
            "spike events detected on the recording (threshold crossings), "
            "one row per event, sorted by sample"
        ),
        columns=columns,
    )
    module = nwbfile.create_processing_module(
        name=EVENTS_MODULE, description="spike detections computed from the raw ElectricalSeries"
    )
    module.add(table)


def _feature_series_name(kind: str, taken: set[str]) -> str:
    base = "".join("_" if character in "/:" else character for character in kind) or "features"
    name, number = base, 1
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    taken.add(name)
    return name


def _add_features(nwbfile: Any, features: Sequence[BinnedFeatures]) -> None:
    from pynwb import TimeSeries

    module = nwbfile.create_processing_module(
        name=FEATURES_MODULE,
        description="binned features (what a decoder sees), one TimeSeries per feature kind",
    )
    taken: set[str] = set()
    for position, item in enumerate(features):
        info = {
            "position": position,
            "kind": item.kind,
            "bin_width_s": item.bin_width_s,
            "start_sample": item.start_sample,
            "fs_hz": item.fs_hz,
            "feature_names": item.feature_names,
        }
        module.add(
            TimeSeries(
                name=_feature_series_name(item.kind, taken),
                data=_compressed(np.asarray(item.data)),
                unit="a.u.",
                rate=1.0 / item.bin_width_s,
                starting_time=0.0 if item.fs_hz is None else item.start_sample / item.fs_hz,
                description=(
                    f"{item.kind}: {item.n_features} feature(s) in bins of {item.bin_width_s:g} s; "
                    "feature names in comments (JSON)"
                ),
                comments=json.dumps({"neurolace": info}),
            )
        )


def _unit_description(name: str) -> str:
    for suffix, unit in _UNIT_SUFFIXES.items():
        if name.endswith(suffix):
            return f"per-unit property {name} ({unit})"
    return f"per-unit property {name}"


def _add_units(nwbfile: Any, units: SpikeEvents, unit_table: Mapping[str, Any] | None) -> int:
    """Fill the units table; return the number of units (0: no table written)."""
    from pynwb.misc import Units

    if np.any(units.unit_id == NO_UNIT):
        raise InvalidInputError(
            f"units must assign every spike to a unit, but {int(np.sum(units.unit_id == NO_UNIT))} spike(s) "
            f"have unit_id {NO_UNIT}"
        )
    columns: dict[str, np.ndarray] = {}
    if unit_table is not None:
        if not isinstance(unit_table, Mapping):
            raise InvalidInputError(
                f"unit_table must be a dict of name -> array, got {type(unit_table).__name__}"
            )
        lengths = set()
        for name, values in unit_table.items():
            if not isinstance(name, str) or name in _RESERVED_UNIT_COLUMNS:
                raise InvalidInputError(
                    f"unit_table key {name!r} is not allowed: it must be a string and not one of "
                    f"{', '.join(sorted(_RESERVED_UNIT_COLUMNS))}"
                )
            array = np.asarray(values)
            if array.ndim == 0:
                raise InvalidInputError(
                    f"unit_table[{name!r}] must be an array of length n_units, got a scalar"
                )
            columns[name] = array
            lengths.add(array.shape[0])
        if len(lengths) > 1:
            raise InvalidInputError(
                "unit_table arrays must all have length n_units, got lengths "
                + ", ".join(f"{name}={array.shape[0]}" for name, array in columns.items())
            )
    if "unit_id" in columns:
        unit_ids = check_array(columns.pop("unit_id"), "unit_table['unit_id']", ndim=1, dtype="integer")
        if np.unique(unit_ids).size != unit_ids.size:
            raise InvalidInputError("unit_table['unit_id'] must not repeat a unit id")
    elif columns:
        unit_ids = np.arange(next(iter(columns.values())).shape[0])
    else:
        unit_ids = np.unique(units.unit_id)
    unknown = np.setdiff1d(np.unique(units.unit_id), unit_ids)
    if unknown.size:
        raise InvalidInputError(
            f"units holds spikes of unit id(s) {unknown[:10].tolist()} that have no row in unit_table "
            f"(its unit ids are {unit_ids[:10].tolist()}{'...' if unit_ids.size > 10 else ''})"
        )
    peak_channels = columns.get("peak_channel_index")
    if peak_channels is not None:
        peak_channels = check_array(
            peak_channels, "unit_table['peak_channel_index']", ndim=1, dtype="integer"
        )
        if peak_channels.size and (peak_channels.min() < 0 or peak_channels.max() >= units.n_channels):
            raise InvalidInputError(
                f"unit_table['peak_channel_index'] must lie in [0, {units.n_channels - 1}], got "
                f"[{peak_channels.min()}, {peak_channels.max()}]"
            )
    if unit_ids.size == 0:
        return 0
    order = np.argsort(units.unit_id, kind="stable")
    boundaries = np.searchsorted(units.unit_id[order], unit_ids, side="left")
    ends = np.searchsorted(units.unit_id[order], unit_ids, side="right")
    per_unit = [order[start:end] for start, end in zip(boundaries, ends, strict=True)]
    peaks = []
    for row, spikes in enumerate(per_unit):
        if peak_channels is not None:
            peaks.append([int(peak_channels[row])])
        elif spikes.size:
            peaks.append([int(np.bincount(units.channel_index[spikes]).argmax())])
        else:
            peaks.append([])
    spike_channels = [units.channel_index[spikes] for spikes in per_unit]
    channels_vary = any(
        channels.size and (not peak or np.any(channels != peak[0]))
        for channels, peak in zip(spike_channels, peaks, strict=True)
    )
    nwbfile.units = Units(
        name="units",
        description="ground-truth units: spike times in seconds on the recording clock (sample_index / rate)",
        resolution=1.0 / units.fs_hz,
        electrode_table=nwbfile.electrodes,
    )
    for unit_id, spikes, peak in zip(unit_ids, per_unit, peaks, strict=True):
        nwbfile.add_unit(
            spike_times=units.times_s[spikes].astype(np.float64), electrodes=peak, id=int(unit_id)
        )
    for name, array in columns.items():
        nwbfile.add_unit_column(name=name, description=_unit_description(name), data=array)
    if channels_vary:
        nwbfile.add_unit_column(
            name=_SPIKE_CHANNEL_COLUMN,
            description="channel of each spike (ragged, aligned with spike_times)",
            data=[channels.astype(np.int32) for channels in spike_channels],
            index=True,
        )
    if units.amplitude_uv is not None:
        nwbfile.add_unit_column(
            name=_SPIKE_AMPLITUDE_COLUMN,
            description="signed peak amplitude of each spike, µV (ragged, aligned with spike_times)",
            data=[units.amplitude_uv[spikes] for spikes in per_unit],
            index=True,
        )
    return int(unit_ids.size)


def write_nwb(
    path: str | os.PathLike,
    recording: Recording,
    *,
    events: SpikeEvents | None = None,
    features: Sequence[BinnedFeatures] | BinnedFeatures = (),
    units: SpikeEvents | None = None,
    unit_table: Mapping[str, Any] | None = None,
    session_description: str = "neurolace recording",
    identifier: str | None = None,
    session_start_time: dt.datetime | str | None = None,
    subject_id: str | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a recording (and optionally detections, features and ground-truth units) as NWB.

    The file appears only once complete (written beside ``path``, then
    renamed). The int16 samples are written as they are, in compressed 1 MiB
    chunks, with no floating-point copy: a 1024-channel recording costs its
    own size in memory, not four times it.

    Parameters
    ----------
    path : str or path-like
        Output ``.nwb`` file.
    recording : Recording
        Samples of shape (n_samples, n_channels) with rate, gain and geometry.
    events : SpikeEvents, optional
        Detections on the recording's clock (same ``fs_hz`` and
        ``n_channels``), stored in ``processing/ecephys/ThresholdCrossings``.
    features : sequence of BinnedFeatures, optional
        Stored as TimeSeries in ``processing/features``.
    units : SpikeEvents, optional
        Ground-truth spikes with ``unit_id`` >= 0 on every spike, stored in
        the NWB units table.
    unit_table : dict of str to array, optional
        Per-unit columns, each of length n_units (first axis), e.g.
        ``position_um`` (n_units, 3), ``preferred_direction_rad``,
        ``peak_amplitude_uv``, ``snr``. Row ``i`` describes unit id ``i``
        unless a ``"unit_id"`` entry gives the ids. ``"peak_channel_index"``
        (if given) sets each unit's ``electrodes`` reference; otherwise the
        channel where the unit's spikes occur most often is used.
    session_description : str
        Free text.
    identifier : str, optional
        Unique file identifier; a random UUID by default.
    session_start_time : datetime or ISO 8601 str, optional
        Defaults to ``recording.metadata["session_start_time"]``, else now.
        A naive datetime is taken as UTC.
    subject_id : str, optional
        Creates a Subject with this id (add species, sex, age through
        ``extra_metadata["subject"]``).
    extra_metadata : dict, optional
        NWBFile fields (``experimenter``, ``institution``, ``lab``,
        ``keywords``, ``experiment_description``, ``session_id``, ...) and a
        ``"subject"`` dict of Subject fields.
    overwrite : bool, default True
        If false, an existing ``path`` is refused
        (:class:`~neurolace.io.atomic.OutputExistsError`) and left as it is.

    Returns
    -------
    Path
        The written file.
    """
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    if not isinstance(recording, Recording):
        raise InvalidInputError(f"recording must be a Recording, got {type(recording).__name__}")
    if events is not None:
        _check_same_clock(events, recording, "events")
    if units is not None:
        _check_same_clock(units, recording, "units")
    elif unit_table is not None:
        raise InvalidInputError(
            "unit_table was given without units: pass the units' spikes as units=SpikeEvents"
        )
    if isinstance(features, BinnedFeatures):
        features = [features]
    features = list(features)
    for position, item in enumerate(features):
        if not isinstance(item, BinnedFeatures):
            raise InvalidInputError(
                f"features[{position}] must be a BinnedFeatures, got {type(item).__name__}"
            )
    file_fields, subject_fields = _split_extra_metadata(extra_metadata)
    if not subject_fields and isinstance(recording.metadata.get("subject"), Mapping):
        subject_fields = _split_extra_metadata({"subject": recording.metadata["subject"]})[1]
    if subject_id is None:
        subject_id = recording.metadata.get("subject_id")
    start_time = _session_start(session_start_time, recording)

    nwbfile = NWBFile(
        session_description=str(session_description),
        identifier=str(identifier) if identifier is not None else str(uuid.uuid4()),
        session_start_time=start_time,
        **file_fields,
    )
    if subject_id is not None or subject_fields:
        nwbfile.subject = Subject(
            subject_id=None if subject_id is None else str(subject_id), **subject_fields
        )
    region = _add_electrodes(nwbfile, recording)
    # An empty table is a best-practice violation in NWB, so empty events or units are not written
    # as tables; their counts in the series' JSON let read_nwb return them as empty, not as absent.
    counts = {}
    if events is not None:
        counts["n_events"] = events.n_spikes
        if events.n_spikes:
            _add_events(nwbfile, events)
    if features:
        _add_features(nwbfile, features)
    if units is not None:
        counts["n_units"] = _add_units(nwbfile, units, unit_table)
    _add_raw_series(nwbfile, recording, region, counts)

    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as temporary, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'", category=UserWarning)
        with NWBHDF5IO(str(temporary), mode="w") as io:
            io.write(nwbfile)
    return path


# -- reading -------------------------------------------------------------------------------------


def _neurolace_info(comments: Any) -> dict[str, Any]:
    """The ``"neurolace"`` JSON a series' comments carry, or {} for files written elsewhere."""
    if not isinstance(comments, str):
        return {}
    try:
        parsed = json.loads(comments)
    except ValueError:
        return {}
    info = parsed.get("neurolace") if isinstance(parsed, dict) else None
    return info if isinstance(info, dict) else {}


def _column(table: Any, name: str) -> np.ndarray | None:
    return np.asarray(table[name].data[:]) if name in table.colnames else None


def _read_geometry(electrodes: Any, rows: np.ndarray) -> tuple[ElectrodeGeometry, np.ndarray]:
    n_rows = len(electrodes)
    thread_id = _column(electrodes, "thread_id")
    if thread_id is None:
        group_names = _column(electrodes, "group_name")
        if group_names is None:
            thread_id = np.zeros(n_rows, dtype=np.int32)
        else:
            thread_id = np.unique(group_names.astype(str), return_inverse=True)[1].astype(np.int32)
    depth_um = _column(electrodes, "depth_um")
    if depth_um is None:
        rel_z = _column(electrodes, "rel_z")
        depth_um = (
            -rel_z.astype(np.float64) if rel_z is not None else 50.0 * np.arange(n_rows, dtype=np.float64)
        )
    surface = np.zeros((n_rows, 2))
    for axis, name in enumerate(("rel_x", "rel_y")):
        values = _column(electrodes, name)
        if values is not None:
            surface[:, axis] = values
    surface = np.nan_to_num(surface)
    channel_ids = _column(electrodes, "channel_id")
    if channel_ids is None:
        channel_ids = np.asarray(electrodes.id.data[:])
    elif channel_ids.dtype.kind in "OSU":
        channel_ids = channel_ids.astype(str)
    geometry = ElectrodeGeometry(
        thread_id=thread_id[rows], depth_um=depth_um[rows], surface_xy_um=surface[rows]
    )
    return geometry, channel_ids[rows]


def _read_recording(nwbfile: Any, path: Path) -> tuple[Recording, dict[str, Any]]:
    from pynwb.ecephys import ElectricalSeries

    series = nwbfile.acquisition.get(SERIES_NAME)
    if not isinstance(series, ElectricalSeries):
        candidates = [item for item in nwbfile.acquisition.values() if isinstance(item, ElectricalSeries)]
        if not candidates:
            raise FormatError(
                f"{path}: no ElectricalSeries in acquisition, so there is no raw recording to read"
            )
        series = candidates[0]
    dataset = series.data
    if np.dtype(dataset.dtype).kind not in "iu":
        raise FormatError(
            f"{path}: {series.name} holds {dataset.dtype} samples; neurolace reads integer ADC codes only"
        )
    samples = np.asarray(dataset[:])
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    try:
        samples = check_array(samples, f"{series.name}.data", dtype=np.int16)
    except InvalidInputError as exc:
        raise FormatError(f"{path}: {exc}") from None
    if series.rate is None:
        raise FormatError(
            f"{path}: {series.name} has timestamps instead of a rate; neurolace needs a fixed rate"
        )
    info = _neurolace_info(series.comments)
    gain_uv = info.get("gain_uv", series.conversion * 1e6)
    offset_uv = info.get("offset_uv", (series.offset or 0.0) * 1e6)
    rows = np.asarray(series.electrodes.data[:], dtype=np.int64)
    geometry, channel_ids = _read_geometry(series.electrodes.table, rows)
    metadata = dict(info.get("metadata", {}))
    metadata.update(
        {
            "source": str(path),
            "format": "nwb",
            "identifier": nwbfile.identifier,
            "session_description": nwbfile.session_description,
            "session_start_time": nwbfile.session_start_time,
        }
    )
    if "start_sample" in info:
        metadata["start_sample"] = int(info["start_sample"])
    elif series.starting_time:
        metadata["start_sample"] = round(series.starting_time * series.rate)
    subject = nwbfile.subject
    if subject is not None:
        if subject.subject_id is not None:
            metadata["subject_id"] = subject.subject_id
        fields = {name: getattr(subject, name, None) for name in _SUBJECT_FIELDS}
        metadata["subject"] = {name: value for name, value in fields.items() if value is not None}
    recording = Recording(
        samples,
        fs_hz=float(series.rate),
        gain_uv=float(gain_uv),
        offset_uv=float(offset_uv),
        channel_ids=channel_ids,
        geometry=geometry,
        metadata=metadata,
    )
    return recording, info


def _times_to_samples(times_s: np.ndarray, fs_hz: float) -> np.ndarray:
    return np.rint(np.asarray(times_s, dtype=np.float64) * fs_hz).astype(np.int64)


def _read_events(nwbfile: Any, recording: Recording, info: dict[str, Any]) -> SpikeEvents | None:
    module = nwbfile.processing.get(EVENTS_MODULE)
    if module is None or EVENTS_TABLE not in module.data_interfaces:
        if info.get("n_events") == 0:
            return SpikeEvents.empty(fs_hz=recording.fs_hz, n_channels=recording.n_channels)
        return None
    table = module[EVENTS_TABLE]
    sample_index = _column(table, "sample_index")
    if sample_index is None:
        sample_index = _times_to_samples(_column(table, "spike_time"), recording.fs_hz)
    return SpikeEvents(
        sample_index.astype(np.int64),
        _column(table, "electrodes").astype(np.int64),
        fs_hz=recording.fs_hz,
        n_channels=recording.n_channels,
        unit_id=_column(table, "unit_id"),
        amplitude_uv=_column(table, "amplitude_uv"),
    )


def _read_features(nwbfile: Any, recording: Recording) -> list[BinnedFeatures]:
    from pynwb import TimeSeries

    module = nwbfile.processing.get(FEATURES_MODULE)
    if module is None:
        return []
    found = []
    for file_position, (name, series) in enumerate(module.data_interfaces.items()):
        if not isinstance(series, TimeSeries) or series.rate is None:
            continue
        info = _neurolace_info(series.comments)
        data = np.asarray(series.data[:])
        if data.ndim == 1:
            data = data[:, np.newaxis]
        fs_hz = info.get("fs_hz", recording.fs_hz)
        start_sample = info.get("start_sample")
        if start_sample is None:
            start_sample = round((series.starting_time or 0.0) * fs_hz)
        position = info.get("position", file_position)
        found.append(
            (
                position,
                BinnedFeatures(
                    data,
                    bin_width_s=info.get("bin_width_s", 1.0 / series.rate),
                    feature_names=info.get("feature_names"),
                    start_sample=int(start_sample),
                    fs_hz=fs_hz,
                    kind=info.get("kind", name),
                ),
            )
        )
    # HDF5 lists a module's series by name; the stored position restores the order they were given in
    return [item for _position, item in sorted(found, key=lambda pair: pair[0])]


def _ragged(table: Any, name: str) -> list[np.ndarray] | None:
    """Rows of a ragged column of ``table`` as arrays (one read of the flat data), or None if absent."""
    from hdmf.common import VectorIndex

    if name not in table.colnames:
        return None
    index = table[name]
    if not isinstance(index, VectorIndex):
        raise FormatError(f"units column {name!r} is expected to be ragged (indexed) but is not")
    ends = np.asarray(index.data[:], dtype=np.int64)
    flat = np.asarray(index.target.data[:])
    return np.split(flat, ends[:-1]) if ends.size else []


def _read_units(
    nwbfile: Any, recording: Recording, info: dict[str, Any]
) -> tuple[SpikeEvents | None, dict[str, np.ndarray]]:
    from hdmf.common import DynamicTableRegion, VectorIndex

    table = nwbfile.units
    if table is None:
        if info.get("n_units") == 0:
            empty = SpikeEvents.empty(fs_hz=recording.fs_hz, n_channels=recording.n_channels)
            return empty, {"unit_id": np.zeros(0, dtype=np.int64)}
        return None, {}
    unit_ids = np.asarray(table.id.data[:], dtype=np.int64)
    n_units = unit_ids.size
    spike_times = _ragged(table, "spike_times") or [np.zeros(0)] * n_units
    spike_counts = np.array([times.size for times in spike_times], dtype=np.int64)
    channels = _ragged(table, _SPIKE_CHANNEL_COLUMN)
    if channels is None:
        peaks = _ragged(table, "electrodes") or [np.zeros(0, np.int64)] * n_units
        channels = []
        for row, (count, peak) in enumerate(zip(spike_counts, peaks, strict=True)):
            if count and peak.size == 0:
                raise FormatError(
                    f"units row {row} (id {unit_ids[row]}) has spikes but no electrode, "
                    "so their channel is unknown"
                )
            channels.append(np.full(count, peak[0] if peak.size else 0, dtype=np.int64))
    amplitudes = _ragged(table, _SPIKE_AMPLITUDE_COLUMN)
    units = SpikeEvents(
        _times_to_samples(np.concatenate([np.zeros(0), *spike_times]), recording.fs_hz),
        np.concatenate([np.zeros(0, np.int64), *channels]).astype(np.int64),
        fs_hz=recording.fs_hz,
        n_channels=recording.n_channels,
        unit_id=np.repeat(unit_ids, spike_counts),
        amplitude_uv=None if amplitudes is None else np.concatenate([np.zeros(0, np.float32), *amplitudes]),
    )
    unit_table = {"unit_id": unit_ids}
    for name in table.colnames:
        column = table[name]
        if name in _RESERVED_UNIT_COLUMNS or isinstance(column, (VectorIndex, DynamicTableRegion)):
            continue
        values = np.asarray(column.data[:])
        unit_table[name] = values.astype(str) if values.dtype.kind in "OS" else values
    return units, unit_table


def read_nwb(path: str | os.PathLike) -> NWBContents:
    """Read a neurolace NWB file (or any NWB file with an int16 ElectricalSeries).

    Parameters
    ----------
    path : str or path-like
        The ``.nwb`` file.

    Returns
    -------
    NWBContents
        The recording (``acquisition/ElectricalSeries``, or the first
        ElectricalSeries found), detections, features, ground-truth units and
        per-unit columns. Everything is loaded into memory; the file is closed.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    FormatError
        The file is not NWB/HDF5, has no ElectricalSeries, or holds
        non-integer samples.
    """
    from pynwb import NWBHDF5IO

    path = check_input_file(path, "NWB file")
    try:
        io = NWBHDF5IO(str(path), mode="r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable NWB (HDF5) file: {exc}") from None
    with io:
        nwbfile = io.read()
        recording, info = _read_recording(nwbfile, path)
        events = _read_events(nwbfile, recording, info)
        features = _read_features(nwbfile, recording)
        units, unit_table = _read_units(nwbfile, recording, info)
    return NWBContents(
        recording=recording, events=events, features=features, units=units, unit_table=unit_table
    )
