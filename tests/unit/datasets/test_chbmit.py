"""CHB-MIT adapter: real summaries and annotations, synthetic files in the real layout."""
from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_folder

from hbac.config import DataConfig, EEGParams
from hbac.datasets import chbmit, edf_montage
from hbac.datasets.edf import read_edf, write_edf
from hbac.datasets.edf_montage import WindowedOptions, WindowParams
from hbac.datasets.synthetic.chbmit import CHB01_CHANNELS, write_chbmit
from hbac.errors import DataError
from hbac.signals.montage import CHBMIT_BANANA

REPO = REPO_ROOT
SHARED = REPO.parent / "shared" / "data" / "chbmit"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared CHB-MIT data not present")

# seizures per case as published with the database (PhysioNet chbmit 1.0.0)
SEIZURES_PER_CASE = {
    "chb01": 7, "chb02": 3, "chb03": 7, "chb04": 4, "chb05": 5, "chb06": 10, "chb07": 3, "chb08": 5,
    "chb09": 4, "chb10": 7, "chb11": 3, "chb12": 40, "chb13": 12, "chb14": 8, "chb15": 20, "chb16": 10,
    "chb17": 3, "chb18": 6, "chb19": 3, "chb20": 8, "chb21": 4, "chb22": 3, "chb23": 7, "chb24": 16,
}
FILE_S = 240.0


def _hms(h: int, m: int, s: int) -> float:
    return h * 3600.0 + m * 60.0 + s


# --------------------------------------------------------------------------- real summaries


@needs_shared
def test_all_real_summaries_total_198_seizures() -> None:
    counts = {}
    for p in sorted((SHARED / "summaries").glob("chb*-summary.txt")):
        files = chbmit.parse_summary(p)
        assert all(len(f.seizures) == f.n_seizures for f in files)
        assert all(0 <= s < e for f in files for s, e in f.seizures)
        counts[p.name[:5]] = sum(len(f.seizures) for f in files)
    assert counts == SEIZURES_PER_CASE
    assert sum(counts.values()) == 198


@needs_shared
def test_real_summary_variants() -> None:
    s01 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb01-summary.txt")}
    assert len(s01) == 42
    f = s01["chb01_03"]
    assert f.seizures == [(2996.0, 3036.0)] and f.start_time == _hms(13, 43, 4) and f.duration_s == 3600.0
    assert len(f.channels) == 23 and f.channels[0] == "FP1-F7" and f.channels[-1] == "T8-P8"
    # "24:44:29" end time, then a start after midnight rolls over to the next day
    assert s01["chb01_13"].end_clock == "24:44:29" and s01["chb01_13"].duration_s == 3600.0
    assert s01["chb01_14"].start_time == 86400.0 + _hms(0, 44, 37)
    # 4-hour files ending at "26:02:15"
    s04 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb04-summary.txt")}
    assert s04["chb04_02"].duration_s == _hms(4, 0, 0)
    assert s04["chb04_03"].start_time == 86400.0 + _hms(2, 2, 23)
    # numbered seizures with double spaces; a mis-numbered end time ("Seizure 1 End" twice)
    s12 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb12-summary.txt")}
    assert s12["chb12_09"].seizures == [(3082.0, 3114.0), (3503.0, 3535.0)]
    assert len(s12["chb12_08"].seizures) == 4
    s09 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb09-summary.txt")}
    assert s09["chb09_08"].seizures == [(2951.0, 3030.0), (9196.0, 9267.0)]
    # chb24: no file times at all
    s24 = chbmit.parse_summary(SHARED / "summaries" / "chb24-summary.txt")
    assert len(s24) == 12 and all(f.start_time is None and f.end_time is None for f in s24)
    assert s24[0].seizures == [(480.0, 505.0), (2451.0, 2476.0)]
    # files without seizures
    assert s01["chb01_01"].n_seizures == 0 and s01["chb01_01"].seizures == []


@pytest.mark.parametrize(
    "body, msg",
    [
        ("Number of Seizures in File: 1\nSeizure Start Time: 10 seconds\n", "1 seizure start time"),
        ("Number of Seizures in File: 2\nSeizure Start Time: 10 seconds\nSeizure End Time: 20 seconds\n", "Number of Seizures"),
        ("Number of Seizures in File: 1\nSeizure Start Time: 30 seconds\nSeizure End Time: 20 seconds\n", "before it starts"),
        ("File Start Time: ten o'clock\n", "cannot parse"),
    ],
)
def test_malformed_summary_names_file_and_line(tmp_path: Path, body: str, msg: str) -> None:
    p = tmp_path / "chb09-summary.txt"
    p.write_text("Data Sampling Rate: 256 Hz\n\nFile Name: chb09_01.edf\nFile Start Time: 10:00:00\n"
                 "File End Time: 11:00:00\nNumber of Seizures in File: 0\n\nFile Name: chb09_02.edf\n" + body)
    with pytest.raises(DataError, match=msg) as e:
        chbmit.parse_summary(p)
    assert str(p) in str(e.value) and "chb09_02.edf" in str(e.value)


@needs_shared
def test_channels_changed_blocks() -> None:
    s12 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb12-summary.txt")}
    assert len(s12["chb12_06"].channels) == 28 and s12["chb12_06"].channels[4] == "-"
    assert s12["chb12_27"].channels[0] == "F7-CS2"  # common-reference montage
    assert s12["chb12_28"].channels[0] == "F7" and s12["chb12_28"].channels[8] == "01"  # unipolar, "01" typo
    assert s12["chb12_32"].channels[19] == "F8-T8"  # back to bipolar
    s11 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb11-summary.txt")}
    assert len(s11["chb11_01"].channels) == 23 and len(s11["chb11_02"].channels) == 28
    # every file of every case can be mapped onto the 18-pair banana by name
    pairs = [tuple(n.split("-")) for n in CHBMIT_BANANA]
    derived = []
    for p in sorted((SHARED / "summaries").glob("chb*-summary.txt")):
        for f in chbmit.parse_summary(p):
            used, w, missing = edf_montage.resolve_montage(f.channels, pairs)
            assert missing == [], (f.file_name, missing)
            if (np.abs(w).sum(axis=1) > 1).any():
                derived.append(f.recording_id)
    assert derived == ["chb12_27", "chb12_28", "chb12_29"]
    # chb12_27: FP1-F7 = (FP1-CS2) - (F7-CS2)
    ch = s12["chb12_27"].channels
    used, w, _ = edf_montage.resolve_montage(ch, pairs)
    row = dict(zip([ch[i] for i in used], w[0]))
    assert row["FP1-CS2"] == 1.0 and row["F7-CS2"] == -1.0 and sum(v != 0 for v in row.values()) == 2


@needs_shared
def test_chb01_annotations_match_summary() -> None:
    s01 = {f.recording_id: f for f in chbmit.parse_summary(SHARED / "summaries" / "chb01-summary.txt")}
    files = sorted((SHARED / "annotations").glob("chb01_*.edf.seizures"))
    assert [p.name[:8] for p in files] == ["chb01_03", "chb01_04", "chb01_15", "chb01_16", "chb01_18", "chb01_21", "chb01_26"]
    for p in files:
        assert chbmit.read_seizures_annotation(p) == s01[p.name[:8]].seizures, p.name
    assert chbmit.read_seizures_annotation(files[0]) == [(2996.0, 3036.0)]


@needs_shared
def test_real_clip_montage_pick() -> None:
    rec = read_edf(SHARED / "clips" / "chb01_03_Seizure.edf")
    x, fs = edf_montage.read_montage(rec, "chbmit_banana")
    assert x.shape == (18, 41 * 256) and fs == 256.0 and x.dtype == np.float32
    np.testing.assert_array_equal(x, rec.read(list(range(18))))  # the first 18 channels are the banana
    y, fs2, names = edf_montage.read_any_edf(SHARED / "clips" / "chb01_03_Seizure.edf")
    assert names == CHBMIT_BANANA and fs2 == 256.0
    np.testing.assert_array_equal(y, x)


# --------------------------------------------------------------------------- synthetic layout


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 synthetic patients × 2 files, seed 1: written once per test run (`shared_folder`, also under pytest-xdist). Read only."""
    return shared_folder(tmp_path_factory, "chbmit_layout",
                         lambda out: write_chbmit(out / "chbmit", n_patients=3, seed=1, n_files=2, file_s=FILE_S)) / "chbmit"


def _cfg(data_dir: Path, label: str = "hard", patients: list[str] | None = None, montage: str = "chbmit_banana") -> DataConfig:
    opts = WindowedOptions(windows=WindowParams(window_s=10.0, stride_s=5.0, label=label), patients=patients)
    return DataConfig(name="t", dataset="chbmit", data_dir=str(data_dir), eeg=EEGParams(montage=montage), options=opts)


def test_synthetic_layout_and_summary(synth: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in synth.iterdir()) == ["chb01", "chb02", "chb03"]
    files = chbmit.parse_summary(synth / "chb02" / "chb02-summary.txt")
    assert [f.file_name for f in files] == ["chb02_01.edf", "chb02_02.edf"]
    text = (synth / "chb02" / "chb02-summary.txt").read_text()
    assert "Seizure 1 Start Time:" in text and "Data Sampling Rate: 256 Hz" in text
    assert "Channels changed:" in (synth / "chb03" / "chb03-summary.txt").read_text()
    rec = read_edf(synth / "chb01" / "chb01_01.edf")
    assert rec.labels == CHB01_CHANNELS and rec.duration_s == FILE_S
    np.testing.assert_array_equal(rec.fs, 256.0)
    assert np.all(rec.phys_max == 800.0) and np.all(rec.phys_min == -800.0)
    n_sz = sum(len(f.seizures) for p in ("chb01", "chb02", "chb03") for f in chbmit.parse_summary(synth / p / f"{p}-summary.txt"))
    assert n_sz >= 3  # every patient has at least one seizure
    # deterministic for a seed
    again = tmp_path / "again"
    write_chbmit(again, n_patients=1, seed=1, n_files=2, file_s=FILE_S)
    assert (again / "chb01" / "chb01_02.edf").read_bytes() == (synth / "chb01" / "chb01_02.edf").read_bytes()


def test_seizures_stand_out_in_theta_band(synth: Path) -> None:
    """Windows inside a seizure carry far more 2.5–8 Hz power than background windows."""
    cfg = _cfg(synth)
    for f in chbmit.parse_summary(synth / "chb01" / "chb01-summary.txt") + chbmit.parse_summary(synth / "chb02" / "chb02-summary.txt"):
        if not f.seizures:
            continue
        x, fs = chbmit.ADAPTER.read(cfg, f.recording_id)
        s, e = f.seizures[0]
        mid = int((s + e) / 2 * fs)
        sz = x[:, mid - 1280 : mid + 1280]
        bg = x[:, :2560] if s > 30 else x[:, -2560:]
        spec = lambda v: np.abs(np.fft.rfft(v, axis=1)) ** 2  # noqa: E731
        band = slice(int(2.5 * 10), int(8 * 10))  # 0.1 Hz bins for 10 s
        assert spec(sz)[:, band].sum() > 2 * spec(bg)[:, band].sum(), f.recording_id


def test_adapter_table_windows_and_labels(synth: Path) -> None:
    soft = chbmit.ADAPTER.table(_cfg(synth, "soft"))
    hard = chbmit.ADAPTER.table(_cfg(synth, "hard"))
    assert list(soft.columns) == ["sample_id", "recording_id", "group", "start_s", "duration_s", "background_vote",
                                  "seizure_vote", "n_votes", "seizure_overlap", "rec_start_s"]
    n_win = int((FILE_S - 10) // 5) + 1
    assert len(soft) == 6 * n_win and soft.sample_id.is_unique
    assert soft.sample_id.iloc[1] == "chb01_01_000005.0"
    assert set(soft.group) == {"chb01", "chb02", "chb03"} and (soft.n_votes == 1).all()
    np.testing.assert_allclose(soft.background_vote + soft.seizure_vote, 1.0)
    np.testing.assert_array_equal(soft.seizure_overlap, hard.seizure_overlap)
    checked = 0
    for p in ("chb01", "chb02", "chb03"):
        for f in chbmit.parse_summary(synth / p / f"{p}-summary.txt"):
            rs = soft[soft.recording_id == f.recording_id].set_index("start_s")
            rh = hard[hard.recording_id == f.recording_id].set_index("start_s")
            if not f.seizures:
                assert (rs.seizure_vote == 0).all()
            for s, e in f.seizures:
                inside = [w for w in rs.index if w >= s and w + 10 <= e]
                assert inside and (rs.loc[inside, "seizure_vote"] == 1.0).all() and (rh.loc[inside, "seizure_vote"] == 1.0).all()
                w0 = 5.0 * np.floor((s - 0.001) / 5.0)  # the last window starting before the onset
                if w0 + 10 > s and s % 5:
                    expect = (w0 + 10 - s) / 10.0
                    assert rs.loc[w0, "seizure_vote"] == pytest.approx(expect)
                    assert rh.loc[w0, "seizure_vote"] == (1.0 if expect >= 0.5 else 0.0)
                    checked += 1
                assert rs.loc[s - s % 5 - 10 if s % 5 else s - 10, "seizure_vote"] == 0.0
    assert checked >= 1


def test_rec_start_crosses_midnight_and_fallback(synth: Path, tmp_path: Path) -> None:
    table = chbmit.ADAPTER.table(_cfg(synth, patients=["chb02"]))
    assert set(table.group) == {"chb02"}
    starts = table.groupby("recording_id").rec_start_s.first().to_numpy()
    assert starts[0] == 0.0 and 3 <= starts[1] - FILE_S <= 10  # chb02 crosses midnight between its files
    text = (synth / "chb02" / "chb02-summary.txt").read_text()
    assert "File End Time: 24:" in text and "File Start Time: 00:" in text
    # summary at data_dir/chbNN-summary.txt, without any file times → previous file's end
    d = tmp_path / "flat"
    shutil.copytree(synth / "chb02", d / "chb02")
    (d / "chb02" / "chb02-summary.txt").unlink()
    lines = [ln for ln in text.splitlines() if not ln.startswith("File Start") and not ln.startswith("File End")]
    (d / "chb02-summary.txt").write_text("\n".join(lines) + "\n")
    t2 = chbmit.ADAPTER.table(_cfg(d, patients=["2"]))
    np.testing.assert_array_equal(t2.groupby("recording_id").rec_start_s.first().to_numpy(), [0.0, FILE_S])
    np.testing.assert_array_equal(t2.seizure_vote.to_numpy(), table.seizure_vote.to_numpy())
    # an EDF not listed in the summary is included as seizure-free
    shutil.copy(d / "chb02" / "chb02_01.edf", d / "chb02" / "chb02_03.edf")
    t3 = chbmit.ADAPTER.table(_cfg(d, patients=["chb02"]))
    assert (t3[t3.recording_id == "chb02_03"].seizure_vote == 0).all() and t3.recording_id.nunique() == 3
    with pytest.raises(DataError, match="chb07"):
        chbmit.ADAPTER.table(_cfg(d, patients=["chb07"]))


def test_adapter_read_picks_pairs_by_name(synth: Path) -> None:
    cfg = _cfg(synth)
    assert chbmit.ADAPTER.channels(cfg) == CHBMIT_BANANA
    for rid in ("chb01_01", "chb03_02"):  # chb03_02 uses the 28-channel layout with '-' dummies
        path = chbmit.ADAPTER.path(cfg, rid)
        assert path == synth / rid[:5] / f"{rid}.edf"
        rec = read_edf(path)
        x, fs = chbmit.ADAPTER.read(cfg, rid)
        assert x.shape == (18, int(FILE_S * 256)) and x.dtype == np.float32 and fs == 256.0
        for r, name in enumerate(CHBMIT_BANANA):
            i = [lab.upper() for lab in rec.labels].index(name)
            np.testing.assert_array_equal(x[r], rec.read([i])[0])
        assert chbmit.ADAPTER.missing_reason(cfg, rid) is None
    assert len(read_edf(chbmit.ADAPTER.path(cfg, "chb03_02")).labels) == 28
    # the HMS double banana (T3/T5 names) is found in CHB-MIT files too
    x16, _ = chbmit.ADAPTER.read(_cfg(synth, montage="double_banana"), "chb01_01")
    x18, _ = chbmit.ADAPTER.read(cfg, "chb01_01")
    np.testing.assert_array_equal(x16[1], x18[CHBMIT_BANANA.index("F7-T7")])
    with pytest.raises(ValueError, match="unipolar"):
        chbmit.ADAPTER.channels(_cfg(synth, montage="raw"))


def test_missing_channel_and_missing_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [("-" if c == "CZ-PZ" else c) for c in CHB01_CHANNELS]
    path = tmp_path / "chb05" / "chb05_01.edf"
    write_edf(path, rng.normal(0, 20, size=(23, 256 * 20)), 256, labels, datetime(2000, 1, 1, 10))
    (tmp_path / "chb05" / "chb05-summary.txt").write_text(
        "Data Sampling Rate: 256 Hz\n\nFile Name: chb05_01.edf\nFile Start Time: 10:00:00\nFile End Time: 10:00:20\n"
        "Number of Seizures in File: 0\n\nFile Name: chb05_02.edf\nFile Start Time: 10:00:30\n"
        "File End Time: 10:00:50\nNumber of Seizures in File: 0\n")
    cfg = _cfg(tmp_path)
    with pytest.raises(DataError, match="CZ-PZ") as e:
        chbmit.ADAPTER.read(cfg, "chb05_01")
    assert str(path) in str(e.value)
    reason = chbmit.ADAPTER.missing_reason(cfg, "chb05_01")
    assert reason is not None and "CZ-PZ" in reason
    # a listed file absent on disk keeps its summary length in the table; reading it fails clearly
    table = chbmit.ADAPTER.table(cfg)
    assert table.recording_id.value_counts().to_dict() == {"chb05_01": 3, "chb05_02": 3}
    assert "missing file" in chbmit.ADAPTER.missing_reason(cfg, "chb05_02")
    with pytest.raises(FileNotFoundError, match="chb05_02"):
        chbmit.ADAPTER.read(cfg, "chb05_02")
    # a truncated file stays in the table (summary length) and is reported as unusable
    (tmp_path / "chb05" / "chb05_02.edf").write_bytes(path.read_bytes()[:300])
    assert chbmit.ADAPTER.table(cfg).recording_id.value_counts().to_dict() == {"chb05_01": 3, "chb05_02": 3}
    assert "truncated EDF header" in chbmit.ADAPTER.missing_reason(cfg, "chb05_02")


def test_resolve_montage_reversed_and_duplicates() -> None:
    labels = ["P7-T7", "-", ".", "FP1-F7", "fp1-f7", "T8-P8", "T8-P8"]
    used, w, missing = edf_montage.resolve_montage(labels, [("FP1", "F7"), ("T7", "P7"), ("T8", "P8"), ("FZ", "CZ")])
    assert missing == ["FZ-CZ"]
    assert used == [0, 3, 5]  # first of the duplicates
    np.testing.assert_array_equal(w[:3], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("style", ["plain", "eeg_ref"])
def test_read_any_edf_unipolar(tmp_path: Path, style: str) -> None:
    names = ["FP1", "F7", "T3", "T5", "O1", "F3", "C3", "P3", "FP2", "F4", "C4", "P4", "F8", "T4", "T6", "O2",
             "FZ", "CZ", "PZ", "EKG"]
    rng = np.random.default_rng(2)
    x = rng.normal(0, 40, size=(len(names), 256 * 6))
    labels = names if style == "plain" else [f"EEG {n}-REF" for n in names]
    path = tmp_path / f"{style}.edf"
    write_edf(path, x, 256, labels, datetime(2000, 1, 1))
    y, fs, out_names = edf_montage.read_any_edf(path)
    assert out_names == CHBMIT_BANANA and fs == 256.0 and y.shape == (18, 256 * 6)
    old = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
    idx = {n: i for i, n in enumerate(names)}
    for r, pair in enumerate(CHBMIT_BANANA):
        a, b = (old.get(e, e) for e in pair.split("-"))
        np.testing.assert_allclose(y[r], x[idx[a]] - x[idx[b]], atol=0.03)  # two quantisation steps
    # another rate is resampled to fs_out
    path2 = tmp_path / f"{style}_512.edf"
    write_edf(path2, np.repeat(x, 2, axis=1), 512, labels, datetime(2000, 1, 1))
    y2, fs2, _ = edf_montage.read_any_edf(path2, fs_out=256)
    assert fs2 == 256.0 and y2.shape == (18, 256 * 6)
    z, fs3, _ = edf_montage.read_any_edf(path2, fs_out=None)
    assert fs3 == 512.0 and z.shape == (18, 512 * 6)
