"""SzCORE BIDS adapter: events.tsv parsing and writing, layout, and the referential → bipolar montage."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from hbac.config import DataConfig
from hbac.datasets import get_adapter
from hbac.datasets.bids import bids_path, find_recordings, parse_events_tsv, parse_name
from hbac.datasets.edf import read_edf
from hbac.errors import DataError
from hbac.tasks.events import events_frame, write_events_tsv

HEAD = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"


def _tsv(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    p = tmp_path / "sub-01_ses-01_task-szMonitoring_run-00_events.tsv"
    p.write_text(head + body)
    return p


def test_parse_events_types_and_duration(tmp_path: Path) -> None:
    body = ("10.00\t20.50\tsz_foc_ia\t1.00\tn/a\t2020-01-01 09:00:00\t3600.00\n"
            "100.00\t5.00\tbckg\tn/a\tn/a\t2020-01-01 09:00:00\t3600.00\n"
            "2.00\t3.00\tsz\tn/a\tFp1,F7\t2020-01-01 09:00:00\t3600.00\n")
    seizures, dur = parse_events_tsv(_tsv(tmp_path, body))
    assert seizures == [(2.0, 5.0), (10.0, 30.5)] and dur == 3600.0
    assert parse_events_tsv(_tsv(tmp_path, "0.00\t60.00\tbckg\tn/a\tn/a\t2020-01-01 09:00:00\t60.00\n")) == ([], 60.0)


def test_parse_events_errors_name_file_and_row(tmp_path: Path) -> None:
    p = _tsv(tmp_path, "1.0\t2.0\tsz\n", head="onset\tduration\tlabel\n")
    with pytest.raises(DataError, match="eventType") as e:
        parse_events_tsv(p)
    assert str(p) in str(e.value)
    p = _tsv(tmp_path, "1.0\tabc\tsz\tn/a\tn/a\t2020-01-01 09:00:00\t10\n")
    with pytest.raises(DataError, match="row 1, column 'duration'"):
        parse_events_tsv(p)


def test_events_tsv_round_trip(tmp_path: Path) -> None:
    events = [(130.25, 171.0, 0.91), (12.5, 40.0, 0.66)]
    p = tmp_path / "events.tsv"
    write_events_tsv(p, events, 3600.0, datetime(2021, 5, 6, 7, 8, 9))
    lines = p.read_text().splitlines()
    assert lines[0].split("\t") == HEAD.strip().split("\t")
    assert lines[1].split("\t") == ["12.50", "27.50", "sz", "0.66", "n/a", "2021-05-06 07:08:09", "3600.00"]
    assert parse_events_tsv(p) == ([(12.5, 40.0), (130.25, 171.0)], 3600.0)
    write_events_tsv(p, [], 60.0)  # nothing detected: one bckg row spanning the recording
    assert parse_events_tsv(p) == ([], 60.0) and events_frame([], 60.0).eventType.tolist() == ["bckg"]


def test_names_and_paths(tmp_path: Path) -> None:
    assert parse_name("sub-01_ses-02_task-szMonitoring_run-03") == ("sub-01", "ses-02")
    assert parse_name("sub-A1_task-x") == ("sub-A1", "")
    assert bids_path("/d", "sub-01_ses-02_task-t_run-00") == Path("/d/sub-01/ses-02/eeg/sub-01_ses-02_task-t_run-00_eeg.edf")
    assert bids_path("/d", "sub-01_task-t") == Path("/d/sub-01/eeg/sub-01_task-t_eeg.edf")
    with pytest.raises(DataError, match="not a BIDS recording name"):
        parse_name("chb01_03")
    with pytest.raises(FileNotFoundError):
        find_recordings(tmp_path / "absent")


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hbac.datasets.synthetic import write_bids

    root = tmp_path_factory.mktemp("bids")
    write_bids(root, n_subjects=2, n_runs=2, file_s=60.0, seed=3)
    return root


def test_adapter_table_and_bipolar_from_average_reference(bids_root: Path) -> None:
    cfg = DataConfig(name="t", dataset="bids", data_dir=str(bids_root))
    cfg.eeg.montage = "chbmit_banana"
    a = get_adapter("bids")
    table = a.table(cfg)
    assert table.recording_id.nunique() == 4 and set(table.group) == {"sub-01", "sub-02"}
    for rid, g in table.groupby("recording_id"):
        seizures, _ = parse_events_tsv(bids_path(bids_root, rid).with_name(f"{rid}_events.tsv"))
        assert (g.seizure_overlap.sum() > 0) == bool(seizures)
    # runs of a subject follow each other: rec_start_s of run-01 = run-00's length
    sub1 = table[table.group == "sub-01"].groupby("recording_id").rec_start_s.first().tolist()
    assert sub1 == [0.0, 60.0]
    rid = table.recording_id.iloc[0]
    x, fs = a.read(cfg, rid)
    rec = read_edf(bids_path(bids_root, rid))
    assert fs == 256.0 and x.shape == (18, 60 * 256) and a.missing_reason(cfg, rid) is None
    # FP1-F7 = (Fp1-Avg) − (F7-Avg); T7-P7 from the old names T3-Avg − T5-Avg
    u = rec.read(["Fp1-Avg", "F7-Avg", "T3-Avg", "T5-Avg"])
    np.testing.assert_allclose(x[0], u[0] - u[1], atol=1e-4)
    np.testing.assert_allclose(x[a.channels(cfg).index("T7-P7")], u[2] - u[3], atol=1e-4)
    with pytest.raises(DataError, match="sub-09"):
        find_recordings(bids_root, ["09"])
