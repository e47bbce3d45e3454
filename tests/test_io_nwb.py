"""NWB: exact round trips, the on-disk layout other NWB tools see, nwbinspector, and bad input."""

from __future__ import annotations

import datetime as dt

import h5py
import numpy as np
import pytest
from nwbinspector import Importance, inspect_nwbfile
from pynwb import NWBHDF5IO, NWBFile
from pynwb.ecephys import ElectricalSeries
from pynwb.file import Subject

from neurolace.core import (
    NO_UNIT,
    BinnedFeatures,
    ElectrodeGeometry,
    FormatError,
    InvalidInputError,
    Recording,
    SpikeEvents,
)
from neurolace.io.nwb import read_nwb, write_nwb

FS_HZ = 19531.0
START = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
SUBJECT = {"species": "Macaca mulatta", "sex": "M", "age": "P6Y", "description": "monkey with an implant"}
FILE_FIELDS = {
    "experimenter": ["Doe, Jane"],
    "institution": "neurolace test bench",
    "lab": "closed-loop lab",
    "keywords": ["BCI", "motor cortex"],
    "experiment_description": "center-out reaching with a simulated implant",
}


@pytest.fixture
def session(rng):
    """A small session: 3 threads x 4 electrodes, detections, two feature kinds, 3 ground-truth units."""
    geometry = ElectrodeGeometry.threads(3, 4, pitch_um=50.0, first_depth_um=400.0, thread_spacing_um=300.0)
    n_channels = geometry.n_channels
    recording = Recording(
        rng.integers(-512, 512, size=(2001, n_channels)).astype(np.int16) * 64,
        fs_hz=FS_HZ,
        gain_uv=1.95 / 64,
        offset_uv=-3.5,
        channel_ids=np.array([f"T{t}E{e}" for t in range(3) for e in range(4)]),
        geometry=geometry,
        metadata={"simulated": True, "seed": 7, "start_sample": 100},
    )
    events = SpikeEvents(
        rng.integers(0, 2001, 40),
        rng.integers(0, n_channels, 40),
        fs_hz=FS_HZ,
        n_channels=n_channels,
        amplitude_uv=rng.normal(-60, 10, 40),
    )
    counts = BinnedFeatures(
        rng.poisson(1.5, size=(30, n_channels)),
        bin_width_s=0.02,
        feature_names=[f"count/ch{c:04d}" for c in range(n_channels)],
        start_sample=100,
        fs_hz=FS_HZ,
        kind="threshold_crossings",
    )
    power = BinnedFeatures(
        rng.gamma(2.0, 3.0, size=(30, n_channels)).astype(np.float32),
        bin_width_s=0.02,
        start_sample=100,
        fs_hz=FS_HZ,
        kind="spike_band_power",
    )
    peak = np.array([2, 5, 11])
    unit_of_spike = np.repeat([0, 1, 2], [10, 7, 12])
    units = SpikeEvents(
        np.sort(rng.integers(0, 2001, unit_of_spike.size)),
        peak[unit_of_spike],
        fs_hz=FS_HZ,
        n_channels=n_channels,
        unit_id=unit_of_spike,
    )
    unit_table = {
        "position_um": rng.normal(0, 100, size=(3, 3)),
        "preferred_direction_rad": np.array([0.1, 2.0, -1.5]),
        "peak_amplitude_uv": np.array([-80.0, -55.5, -120.25]),
        "snr": np.array([4.0, 2.5, 7.0]),
    }
    return recording, events, [counts, power], units, unit_table


def write_full(path, session, **kwargs):
    recording, events, features, units, unit_table = session
    return write_nwb(
        path,
        recording,
        events=events,
        features=features,
        units=units,
        unit_table=unit_table,
        identifier="neurolace-test-0001",
        session_start_time=START,
        subject_id="monkey-1",
        extra_metadata={**FILE_FIELDS, "subject": SUBJECT},
        **kwargs,
    )


def test_round_trip_is_exact(tmp_path, session):
    recording, events, features, units, unit_table = session
    contents = read_nwb(write_full(tmp_path / "s.nwb", session))

    back = contents.recording
    assert back.samples.dtype == np.int16
    np.testing.assert_array_equal(back.samples, recording.samples)
    assert (back.fs_hz, back.gain_uv, back.offset_uv) == (
        recording.fs_hz,
        recording.gain_uv,
        recording.offset_uv,
    )
    np.testing.assert_array_equal(back.channel_ids, recording.channel_ids)
    np.testing.assert_array_equal(back.geometry.thread_id, recording.geometry.thread_id)
    np.testing.assert_array_equal(back.geometry.depth_um, recording.geometry.depth_um)
    np.testing.assert_array_equal(back.geometry.surface_xy_um, recording.geometry.surface_xy_um)
    assert (
        back.metadata["simulated"] is True
        and back.metadata["seed"] == 7
        and back.metadata["start_sample"] == 100
    )
    assert back.metadata["identifier"] == "neurolace-test-0001"
    assert (
        back.metadata["subject_id"] == "monkey-1" and back.metadata["subject"]["species"] == "Macaca mulatta"
    )
    assert back.metadata["session_start_time"] == START

    for name in ("sample_index", "channel_index", "unit_id", "amplitude_uv"):
        np.testing.assert_array_equal(getattr(contents.events, name), getattr(events, name))
    assert (contents.events.fs_hz, contents.events.n_channels) == (events.fs_hz, events.n_channels)

    assert len(contents.features) == 2
    for got, expected in zip(contents.features, features, strict=True):
        np.testing.assert_array_equal(got.data, expected.data)
        assert got.data.dtype == expected.data.dtype
        assert got.feature_names == expected.feature_names
        assert (got.kind, got.bin_width_s, got.start_sample, got.fs_hz) == (
            expected.kind,
            expected.bin_width_s,
            expected.start_sample,
            expected.fs_hz,
        )

    for name in ("sample_index", "channel_index", "unit_id"):
        np.testing.assert_array_equal(getattr(contents.units, name), getattr(units, name))
    assert contents.units.amplitude_uv is None
    np.testing.assert_array_equal(contents.unit_table["unit_id"], [0, 1, 2])
    assert set(contents.unit_table) == {"unit_id", *unit_table}
    for name, values in unit_table.items():
        np.testing.assert_array_equal(contents.unit_table[name], values)


def test_layout_seen_by_other_nwb_tools(tmp_path, session):
    recording, events, _features, units, _unit_table = session
    path = write_full(tmp_path / "s.nwb", session)
    with NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        series = nwbfile.acquisition["ElectricalSeries"]
        assert series.data.dtype == np.int16
        assert series.rate == FS_HZ and series.starting_time == pytest.approx(100 / FS_HZ)
        assert series.conversion == pytest.approx(recording.gain_uv * 1e-6)
        assert series.offset == pytest.approx(recording.offset_uv * 1e-6)
        volts = series.data[:50] * series.conversion + series.offset
        np.testing.assert_allclose(volts, recording.get_traces_uv(0, 50, np.float64) * 1e-6, rtol=1e-12)
        assert list(nwbfile.devices) == ["neurolace implant"]
        assert sorted(nwbfile.electrode_groups) == ["thread000", "thread001", "thread002"]
        electrodes = nwbfile.electrodes.to_dataframe()
        np.testing.assert_array_equal(electrodes["rel_x"], recording.geometry.surface_xy_um[:, 0])
        np.testing.assert_array_equal(electrodes["depth_um"], recording.geometry.depth_um)
        assert list(electrodes["group_name"][:5]) == ["thread000"] * 4 + ["thread001"]
        crossings = nwbfile.processing["ecephys"]["ThresholdCrossings"]
        np.testing.assert_allclose(crossings["spike_time"].data[:], events.sample_index / FS_HZ)
        np.testing.assert_array_equal(crossings["electrodes"].data[:], events.channel_index)
        assert sorted(nwbfile.processing["features"].data_interfaces) == [
            "spike_band_power",
            "threshold_crossings",
        ]
        assert nwbfile.processing["features"]["threshold_crossings"].rate == pytest.approx(50.0)
        # each unit points at the electrode of its peak channel (all its spikes are there)
        peak_rows = nwbfile.units["electrodes"].target.data[:]
        np.testing.assert_array_equal(peak_rows, [2, 5, 11])
        np.testing.assert_allclose(nwbfile.units.get_unit_spike_times(1), units.times_s[units.unit_id == 1])
        assert nwbfile.subject.species == "Macaca mulatta"
    with h5py.File(path, "r") as handle:
        dataset = handle["acquisition/ElectricalSeries/data"]
        assert dataset.compression == "gzip" and dataset.chunks is not None


def test_nwbinspector_finds_no_violation(tmp_path, session):
    path = write_full(tmp_path / "s.nwb", session)
    messages = list(inspect_nwbfile(nwbfile_path=path))
    serious = [m for m in messages if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value]
    assert serious == [], [(m.importance.name, m.check_function_name, m.message) for m in serious]
    # what remains are suggestions; the "features" module name is our documented choice
    assert {m.check_function_name for m in messages} <= {"check_processing_module_name"}


def test_without_subject_the_inspector_asks_for_one(tmp_path, session):
    recording = session[0]
    path = write_nwb(tmp_path / "bare.nwb", recording, session_start_time=START)
    serious = {
        m.check_function_name
        for m in inspect_nwbfile(nwbfile_path=path)
        if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value
    }
    assert serious == {"check_subject_exists"}


def test_empty_and_absent_events_and_units(tmp_path):
    recording = Recording(np.array([[3, -3]], dtype=np.int16), fs_hz=1000.0, gain_uv=0.5)
    write_nwb(tmp_path / "none.nwb", recording, session_start_time=START)
    contents = read_nwb(tmp_path / "none.nwb")
    assert contents.events is None and contents.units is None and contents.features == []
    np.testing.assert_array_equal(contents.recording.samples, [[3, -3]])
    assert contents.recording.channel_ids.dtype.kind == "i"
    np.testing.assert_array_equal(contents.recording.channel_ids, [0, 1])

    empty = SpikeEvents.empty(fs_hz=1000.0, n_channels=2)
    path = write_nwb(tmp_path / "empty.nwb", recording, events=empty, units=empty, session_start_time=START)
    contents = read_nwb(path)
    assert contents.events is not None and contents.events.n_spikes == 0
    assert contents.units is not None and contents.units.n_spikes == 0
    assert contents.unit_table["unit_id"].size == 0


def test_units_with_spikes_on_several_channels_and_amplitudes(tmp_path):
    recording = Recording(np.zeros((100, 4), dtype=np.int16), fs_hz=30000.0, gain_uv=0.195)
    units = SpikeEvents(
        [5, 9, 20, 20, 41, 99],
        [1, 2, 1, 3, 1, 0],
        unit_id=[7, 7, 7, 9, 7, 12],
        amplitude_uv=[-50.0, -20.0, -55.0, -80.0, -48.5, -30.0],
        fs_hz=30000.0,
        n_channels=4,
    )
    path = write_nwb(tmp_path / "u.nwb", recording, units=units, session_start_time=START)
    contents = read_nwb(path)
    for name in ("sample_index", "channel_index", "unit_id", "amplitude_uv"):
        np.testing.assert_array_equal(getattr(contents.units, name), getattr(units, name))
    np.testing.assert_array_equal(contents.unit_table["unit_id"], [7, 9, 12])
    with NWBHDF5IO(str(path), "r") as io:
        # unit 7 fires three times on channel 1 and once on channel 2: its peak channel is 1
        np.testing.assert_array_equal(io.read().units["electrodes"].target.data[:], [1, 3, 0])


def test_unit_table_with_explicit_ids_and_peak_channels(tmp_path):
    recording = Recording(np.zeros((50, 3), dtype=np.int16), fs_hz=1000.0, gain_uv=1.0)
    units = SpikeEvents([1, 2, 3], [0, 0, 0], unit_id=[20, 10, 20], fs_hz=1000.0, n_channels=3)
    table = {
        "unit_id": np.array([10, 20, 30]),
        "peak_channel_index": np.array([0, 0, 2]),
        "snr": [1.0, 2.0, 3.0],
    }
    path = write_nwb(tmp_path / "u.nwb", recording, units=units, unit_table=table, session_start_time=START)
    contents = read_nwb(path)
    np.testing.assert_array_equal(contents.unit_table["unit_id"], [10, 20, 30])
    np.testing.assert_array_equal(contents.unit_table["snr"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(contents.units.unit_id, units.unit_id)
    with NWBHDF5IO(str(path), "r") as io:
        np.testing.assert_array_equal(io.read().units["electrodes"].target.data[:], [0, 0, 2])


def test_reads_an_nwb_file_written_by_plain_pynwb(tmp_path):
    nwbfile = NWBFile(session_description="foreign", identifier="foreign-1", session_start_time=START)
    device = nwbfile.create_device(name="probe")
    groups = [
        nwbfile.create_electrode_group(name=f"shank{i}", description="s", location="M1", device=device)
        for i in range(2)
    ]
    for index in range(4):
        nwbfile.add_electrode(
            group=groups[index // 2], location="M1", rel_x=10.0 * index, rel_y=0.0, rel_z=-100.0
        )
    region = nwbfile.create_electrode_table_region(region=[0, 1, 2, 3], description="all")
    data = np.arange(40, dtype=np.int16).reshape(10, 4)
    nwbfile.add_acquisition(
        ElectricalSeries(name="raw", data=data, electrodes=region, rate=30000.0, conversion=2.5e-7)
    )
    nwbfile.subject = Subject(subject_id="m2", species="Mus musculus", sex="F", age="P90D")
    with NWBHDF5IO(str(tmp_path / "foreign.nwb"), "w") as io:
        io.write(nwbfile)
    recording = read_nwb(tmp_path / "foreign.nwb").recording
    np.testing.assert_array_equal(recording.samples, data)
    assert recording.gain_uv == pytest.approx(0.25) and recording.fs_hz == 30000.0
    np.testing.assert_array_equal(recording.geometry.thread_id, [0, 0, 1, 1])
    np.testing.assert_array_equal(recording.geometry.depth_um, [100.0] * 4)
    np.testing.assert_array_equal(recording.geometry.surface_xy_um[:, 0], [0.0, 10.0, 20.0, 30.0])


def test_float_samples_and_non_nwb_files_are_refused(tmp_path):
    nwbfile = NWBFile(session_description="floats", identifier="f", session_start_time=START)
    device = nwbfile.create_device(name="probe")
    group = nwbfile.create_electrode_group(name="g", description="g", location="M1", device=device)
    nwbfile.add_electrode(group=group, location="M1")
    region = nwbfile.create_electrode_table_region(region=[0], description="all")
    nwbfile.add_acquisition(
        ElectricalSeries(name="raw", data=np.zeros((5, 1)), electrodes=region, rate=1000.0)
    )
    with NWBHDF5IO(str(tmp_path / "f.nwb"), "w") as io:
        io.write(nwbfile)
    with pytest.raises(
        FormatError, match="raw holds float64 samples; neurolace reads integer ADC codes only"
    ):
        read_nwb(tmp_path / "f.nwb")
    (tmp_path / "text.nwb").write_text("hello")
    with pytest.raises(FormatError, match="text.nwb: not a readable NWB"):
        read_nwb(tmp_path / "text.nwb")
    with pytest.raises(FileNotFoundError, match="NWB file not found: .*absent.nwb"):
        read_nwb(tmp_path / "absent.nwb")


def test_bad_input_is_refused_before_anything_is_written(tmp_path, session):
    recording, _events, _features, units, unit_table = session
    path = tmp_path / "bad.nwb"
    other_clock = SpikeEvents([1], [0], fs_hz=30000.0, n_channels=recording.n_channels)
    cases = [
        ({"events": other_clock}, r"events must share the recording's clock and channels \(fs_hz=19531"),
        ({"units": SpikeEvents([1], [0], fs_hz=FS_HZ, n_channels=12)}, "every spike to a unit, but 1 spike"),
        ({"units": units, "unit_table": {"snr": [1.0, 2.0]}}, r"units holds spikes of unit id\(s\) \[2\]"),
        ({"units": units, "unit_table": {"snr": [1, 2, 3], "x_um": [1, 2]}}, "must all have length n_units"),
        (
            {"units": units, "unit_table": {"spike_times": [1, 2, 3]}},
            "unit_table key 'spike_times' is not allowed",
        ),
        ({"units": units, "unit_table": {"peak_channel_index": [0, 1, 12]}}, r"must lie in \[0, 11\]"),
        ({"unit_table": unit_table}, "unit_table was given without units"),
        ({"features": [np.zeros((3, 2))]}, r"features\[0\] must be a BinnedFeatures, got ndarray"),
        ({"extra_metadata": {"colour": "blue"}}, "extra_metadata has an unknown key 'colour'"),
        (
            {"extra_metadata": {"subject": {"height": 3}}},
            r"extra_metadata\['subject'\] has unknown keys \['height'\]",
        ),
        ({"session_start_time": "yesterday"}, "session_start_time must be a datetime or ISO 8601 string"),
    ]
    for kwargs, match in cases:
        with pytest.raises(InvalidInputError, match=match):
            write_nwb(path, recording, **kwargs)
    with pytest.raises(InvalidInputError, match="recording must be a Recording, got dict"):
        write_nwb(path, {"samples": []})
    assert list(tmp_path.iterdir()) == []
    assert NO_UNIT == -1


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, session, monkeypatch):
    target = write_full(tmp_path / "s.nwb", session)
    old_bytes = target.read_bytes()
    original_write = NWBHDF5IO.write

    def write_then_fail(self, *args, **kwargs):
        original_write(self, *args, **kwargs)  # the temporary file now holds a whole NWB file
        raise OSError("disk full")

    monkeypatch.setattr(NWBHDF5IO, "write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_full(tmp_path / "s.nwb", session)
    with pytest.raises(OSError, match="disk full"):
        write_full(tmp_path / "new.nwb", session)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.nwb"]
    assert target.read_bytes() == old_bytes
