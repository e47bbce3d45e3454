"""De-identified NWB export: no identifier left in the bytes, dates shifted per participant, nwbinspector clean."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from neurolace.core.errors import FormatError, InvalidInputError
from neurolace.core.recording import Recording
from neurolace.io.atomic import OutputExistsError
from neurolace.io.nwb import read_nwb, write_nwb
from neurolace.privacy.deidentify import (
    DATE_OFFSET_RANGE_DAYS,
    DEID_FIELDS,
    IdentifierLeakError,
    deidentify_nwb,
    derive_date_offset_days,
    derive_pseudonym,
)
from neurolace.privacy.errors import PrivacyError

try:
    from nwbinspector import Importance, inspect_nwbfile
except ImportError as exc:  # a test dependency: an error with a clear message, never a skip
    raise ImportError("tests/test_privacy_deidentify.py needs nwbinspector: pip install -e '.[test]'") from exc

PID = "JDOE-1234"
SECRET = b"site secret for the tests, 32 b."
START = dt.datetime(2024, 3, 14, 9, 26, 53, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
#: every identifier the source holds; none may appear in the output's bytes
IDENTIFIERS = {
    "subject_id": PID,
    "experimenter": "Smithereen, Alice",
    "institution": "Springfield General Hospital",
    "lab": "Frinklab Neuro",
    "session_id": "SESS-0077-QZ",
    "notes": "patient Jane Quimby seen by Dr Hibbert",
    "subject description": "Jane Quimby, phone 555-0199",
    "genotype": "APOE-e4/e4-QZ",
    "source path": "/home/janequimby/recordings",
    "serial": "SN-UTAH-88213",
    "birth date": "1931-02-01",
    "session date": "2024-03-14",
}
#: what nwbinspector may say about the output; CRITICAL and BEST_PRACTICE_VIOLATION fail the test
#: (CRITICAL blocks a DANDI upload; violations are what the NWB best practices call mistakes)
FAILING_IMPORTANCE = (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)


def _source(path: Path, *, subject_id: str = PID, date_of_birth=dt.datetime(1931, 2, 1, tzinfo=dt.UTC),
            age: str | None = None, start: dt.datetime = START) -> Path:
    rng = np.random.default_rng(7)
    recording = Recording(
        rng.integers(-300, 300, size=(1500, 3)).astype(np.int16), fs_hz=1000.0, gain_uv=0.25,
        metadata={"source": IDENTIFIERS["source path"] + "/visit.nlrec", "subject_id": subject_id},
    )
    subject = {"species": "Homo sapiens", "sex": "F", "description": IDENTIFIERS["subject description"],
               "genotype": IDENTIFIERS["genotype"]}
    if date_of_birth is not None:
        subject["date_of_birth"] = date_of_birth
    if age is not None:
        subject["age"] = age
    write_nwb(path, recording, subject_id=subject_id, session_start_time=start, extra_metadata={
        "experimenter": [IDENTIFIERS["experimenter"]], "institution": IDENTIFIERS["institution"],
        "lab": IDENTIFIERS["lab"], "session_id": IDENTIFIERS["session_id"], "notes": IDENTIFIERS["notes"],
        "keywords": ["intracortical BCI"], "subject": subject,
    })
    _add_serial(path)
    return path


def _add_serial(path: Path) -> None:
    """Give the file's device a serial number (write_nwb has no option for one)."""
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), mode="a") as io:
        nwbfile = io.read()
        nwbfile.create_device(name="array", description=f"Utah array {IDENTIFIERS['serial']}",
                              serial_number=IDENTIFIERS["serial"], manufacturer="Blackrock")
        io.write(nwbfile)


def _export(source, out, *, pid=PID, **options):
    return deidentify_nwb(source, out, participant_id=pid, date_offset_days=derive_date_offset_days(SECRET, pid),
                          pseudonym=derive_pseudonym(SECRET, pid), **options)


def _start_time(path: Path) -> dt.datetime:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), mode="r") as io:
        return io.read().session_start_time


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _source(tmp_path_factory.mktemp("deid") / "identified.nwb")


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("deid_out") / "deidentified.nwb"
    return out, _export(source, out)


def test_the_source_holds_every_identifier(source):
    data = source.read_bytes()
    for value in IDENTIFIERS.values():
        assert value.encode() in data, value  # else the next test would prove nothing


def test_no_identifier_anywhere_in_the_output_bytes(exported):
    out, report = exported
    data = out.read_bytes()
    for what, value in IDENTIFIERS.items():
        assert value.encode() not in data, what
        assert value.lower().encode() not in data.lower(), what
    assert report.pseudonym.encode() in data


def test_the_report_names_fields_never_values(exported):
    _out, report = exported
    text = repr(report) + str(report.to_dict())
    for value in IDENTIFIERS.values():
        assert value not in text
    paths = {change.path: change.action for change in report.changes}
    assert paths["/general/subject/subject_id"] == "pseudonymised"
    assert paths["/general/subject/date_of_birth"] == "removed"
    assert paths["/general/devices/array/serial_number"] == "removed"
    assert paths["/session_start_time"] == "shifted"
    assert "date_offset" not in str(report.to_dict())


def test_content_survives_and_identifying_fields_are_replaced(exported, source):
    from pynwb import NWBHDF5IO

    out, report = exported
    before, after = read_nwb(source), read_nwb(out)
    np.testing.assert_array_equal(after.recording.samples, before.recording.samples)
    assert after.recording.gain_uv == before.recording.gain_uv
    with NWBHDF5IO(str(out), mode="r") as io:
        nwbfile = io.read()
        assert nwbfile.subject.subject_id == report.pseudonym
        assert nwbfile.subject.date_of_birth is None and nwbfile.subject.genotype is None
        assert nwbfile.subject.age == "P90Y/"  # 93 at the session: HIPAA aggregates ages over 89
        assert (nwbfile.subject.species, nwbfile.subject.sex) == ("Homo sapiens", "F")  # DANDI needs both
        assert nwbfile.experimenter is None and nwbfile.institution is None and nwbfile.lab is None
        assert nwbfile.session_id is None and nwbfile.notes is None
        assert nwbfile.devices["array"].serial_number is None
        assert nwbfile.devices["array"].manufacturer == "Blackrock"
        assert list(nwbfile.keywords[:]) == ["intracortical BCI"]
        assert nwbfile.session_start_time.utcoffset() == dt.timedelta(0)


def test_dates_shift_alike_for_one_participant_and_differently_for_another(source, tmp_path):
    first, second = tmp_path / "first.nwb", tmp_path / "second.nwb"
    _export(source, first)
    _export(source, second)
    shift = _start_time(first) - START
    assert _start_time(second) - START == shift
    assert shift == dt.timedelta(days=derive_date_offset_days(SECRET, PID))
    assert shift.days < 0 and shift.seconds == 0  # whole days into the past: time of day and weekday math hold
    other = _source(tmp_path / "other.nwb", subject_id="MROE-5678")
    _export(other, tmp_path / "other_out.nwb", pid="MROE-5678")
    assert _start_time(tmp_path / "other_out.nwb") - START != shift


def test_derived_offsets_and_pseudonyms():
    offsets = [derive_date_offset_days(SECRET, f"P{index:03d}") for index in range(200)]
    low, high = DATE_OFFSET_RANGE_DAYS
    assert all(low <= offset <= high for offset in offsets)
    assert len(set(offsets)) > 150  # spread over ~3300 days, not a constant
    assert derive_date_offset_days(SECRET, "P001") == derive_date_offset_days(SECRET, "P001")
    assert derive_date_offset_days(b"another site secret, 32 bytes..", "P001") != offsets[1]
    pseudonym = derive_pseudonym(SECRET, "P001")
    assert pseudonym.startswith("P-") and len(pseudonym) == 18 and "P001" not in pseudonym
    assert derive_pseudonym(SECRET, "P002") != pseudonym
    with pytest.raises(InvalidInputError, match="secret must be at least 16 bytes"):
        derive_pseudonym(b"short", "P001")


def test_output_passes_nwbinspector(exported, source):
    out, _report = exported
    failing = [message for message in inspect_nwbfile(nwbfile_path=str(out))
               if message.importance in FAILING_IMPORTANCE]
    assert failing == [], [(m.check_function_name, m.message) for m in failing]


def test_dob_becomes_an_age_in_years_and_ages_are_generalised(tmp_path):
    young = _source(tmp_path / "young.nwb", date_of_birth=dt.datetime(1990, 6, 1, tzinfo=dt.UTC))
    _export(young, tmp_path / "young_out.nwb")
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(tmp_path / "young_out.nwb"), mode="r") as io:
        assert io.read().subject.age == "P33Y"
    for age, expected in (("P91Y", "P90Y/"), ("P89Y11M", "P89Y11M"), ("P80Y/P95Y", "P80Y/"), ("P33000D", "P90Y/")):
        path = _source(tmp_path / f"age_{age.replace('/', '_')}.nwb", date_of_birth=None, age=age)
        out = tmp_path / f"age_{age.replace('/', '_')}_out.nwb"
        _export(path, out)
        with NWBHDF5IO(str(out), mode="r") as io:
            assert io.read().subject.age == expected, age


def test_bytes_input_from_the_vault(source, tmp_path):
    out = tmp_path / "from_bytes.nwb"
    report = _export(source.read_bytes(), out)
    assert out.exists() and report.out_path == out
    assert IDENTIFIERS["subject_id"].encode() not in out.read_bytes()


def test_an_identifier_left_in_kept_text_refuses_and_writes_nothing(tmp_path):
    from pynwb import NWBHDF5IO, TimeSeries

    path = _source(tmp_path / "leaky.nwb")
    with NWBHDF5IO(str(path), mode="a") as io:
        nwbfile = io.read()
        nwbfile.add_acquisition(TimeSeries(name="cursor", data=np.zeros(5), unit="m", rate=10.0,
                                           description=f"cursor of {PID} at home"))
        io.write(nwbfile)
    out = tmp_path / "leaky_out.nwb"
    with pytest.raises(IdentifierLeakError, match="subject_id still appears at /acquisition/cursor") as info:
        _export(path, out)
    assert PID not in str(info.value)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["leaky.nwb"]


def test_another_participants_file_is_refused(source, tmp_path):
    out = tmp_path / "wrong.nwb"
    with pytest.raises(PrivacyError, match="subject_id is not the participant this export was consented"):
        _export(source, out, pid="MROE-5678")
    assert not out.exists()


def test_images_are_refused(tmp_path):
    from pynwb import NWBHDF5IO
    from pynwb.image import ImageSeries

    path = _source(tmp_path / "video.nwb")
    with NWBHDF5IO(str(path), mode="a") as io:
        nwbfile = io.read()
        nwbfile.add_acquisition(ImageSeries(name="face_camera", data=np.zeros((2, 4, 4)), unit="n.a.", rate=30.0))
        io.write(nwbfile)
    with pytest.raises(PrivacyError, match=r"ImageSeries '/acquisition/face_camera' holds images.*\(Q\)"):
        _export(path, tmp_path / "video_out.nwb")
    assert not (tmp_path / "video_out.nwb").exists()


def test_bad_arguments(source, tmp_path):
    out = tmp_path / "x.nwb"
    with pytest.raises(InvalidInputError, match="pseudonym must differ"):
        deidentify_nwb(source, out, participant_id=PID, date_offset_days=-400, pseudonym=PID)
    with pytest.raises(InvalidInputError, match="date_offset_days"):
        deidentify_nwb(source, out, participant_id=PID, date_offset_days=5, pseudonym="P-X")
    with pytest.raises(InvalidInputError, match="participant id"):
        deidentify_nwb(source, out, participant_id="../etc", date_offset_days=-400, pseudonym="P-X")
    with pytest.raises(InvalidInputError, match=r"subject\['sex'\]"):
        _export(source, out, subject={"sex": "female"})
    with pytest.raises(FormatError, match="not a readable NWB"):
        _export(b"not an hdf5 file", out)
    with pytest.raises(InvalidInputError, match="is the source file"):
        _export(source, source, overwrite=True)
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        _export(source, out)
    assert out.read_bytes() == b"keep me"


def test_field_list_cites_a_source_for_every_field():
    assert len({field.path for field in DEID_FIELDS}) == len(DEID_FIELDS)
    for field in DEID_FIELDS:
        assert field.action in {"pseudonymised", "removed", "replaced", "shifted", "generalised", "scrubbed",
                                "refused", "kept"}
        assert "HIPAA" in field.source or "DANDI" in field.source or "not among" in field.source, field


def _failing_checks(path: Path) -> set[tuple[str, str]]:
    return {(message.check_function_name, message.location) for message in inspect_nwbfile(nwbfile_path=str(path))
            if message.importance in FAILING_IMPORTANCE}


def test_a_recorder_file_gains_no_inspector_failure_and_gets_a_subject(tmp_path):
    from neurolace.runtime.messages import Message
    from neurolace.runtime.recorder import RecordWriter, record_to_nwb

    writer = RecordWriter(tmp_path / "run.nlrec", header={"session": f"visit of {PID}"}, fsync=False)
    for index in range(6):
        writer.append(Message("implant.raw", np.full((20, 2), index, np.int16), sequence=index,
                              sample_index=20 * index, timestamp_ns=1_000 + 7 * index * index))
    writer.close()
    record_to_nwb(tmp_path / "run.nlrec", tmp_path / "run.nwb")
    assert PID.encode() in (tmp_path / "run.nwb").read_bytes()
    out = tmp_path / "run_deid.nwb"
    report = _export(tmp_path / "run.nwb", out, subject={"species": "Homo sapiens", "sex": "U", "age": "P40Y"})
    assert PID.encode() not in out.read_bytes() and report.pseudonym.encode() in out.read_bytes()
    # the recorder's own layout may already draw results (a short run's shape); the export adds none,
    # and the missing Subject (CRITICAL in the source) is gone
    assert _failing_checks(out) <= _failing_checks(tmp_path / "run.nwb")
    assert ("check_subject_exists", "/") in _failing_checks(tmp_path / "run.nwb")
