"""HMS adapter: `train.csv`/`test.csv` → the common sample table; parquet readers."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from hbac.datasets import register
from hbac.datasets.base import DatasetAdapter, ExtraInput
from hbac.datasets.kaggle_spec import (
    SPEC_FREQS,
    SPEC_STEP_S,
    SPEC_WINDOW_S,
    kaggle_spec_regions,
)
from hbac.errors import DataError
from hbac.fields import bounded
from hbac.signals.montage import (
    HMS_EEG_CHANNELS,
    SPEC_REGIONS,
    flip_permutation,
    montage_indices,
    montage_names,
)

if TYPE_CHECKING:
    from hbac.config import DataConfig

HMS_CLASSES = ["seizure", "lpd", "gpd", "lrda", "grda", "other"]
HMS_VOTE_COLS = [f"{c}_vote" for c in HMS_CLASSES]
HMS_CONSENSUS = ["Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"]  # expert_consensus values
HMS_FS = 200.0  # Hz
HMS_TRAIN_DTYPES = {
    "eeg_id": "int64",
    "eeg_sub_id": "int64",
    "eeg_label_offset_seconds": "float64",
    "spectrogram_id": "int64",
    "spectrogram_sub_id": "int64",
    "spectrogram_label_offset_seconds": "float64",
    "label_id": "int64",
    "patient_id": "int64",
    "expert_consensus": "str",
    **{c: "int64" for c in HMS_VOTE_COLS},
}
HMS_TEST_DTYPES = {"spectrogram_id": "int64", "eeg_id": "int64", "patient_id": "int64"}
HMS_EEG_WINDOW_S = 50.0

SPEC_COLUMNS = [f"{r}_{f}" for r in SPEC_REGIONS for f in SPEC_FREQS]  # real names: LL_0.59 … LL_4.1 … RP_19.92



def _check_columns(df: pd.DataFrame, dtypes: dict[str, str], path: Path) -> pd.DataFrame:
    missing = [c for c in dtypes if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}")
    if df.empty:  # else the dtype checks below blame a column of a table that has no rows
        raise DataError(f"{path}: no data rows (only a header)")
    for col, dt in dtypes.items():
        s = df[col]
        if dt == "str":
            if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
                raise DataError(f"{path}: column '{col}' should be text, got {s.dtype}")
            continue
        if dt == "int64":
            if not pd.api.types.is_integer_dtype(s):
                bad = s[pd.to_numeric(s, errors="coerce").isna() | (pd.to_numeric(s, errors="coerce") % 1 != 0)]
                row = bad.index[0] if len(bad) else None
                raise DataError(f"{path}: column '{col}' should be integer, got {s.dtype} (first bad row {row}: {s.loc[row] if row is not None else ''!r})")
        elif dt == "float64":
            if not pd.api.types.is_numeric_dtype(s):
                raise DataError(f"{path}: column '{col}' should be numeric, got {s.dtype}")
            if s.isna().any():
                raise DataError(f"{path}: column '{col}' has missing values (first at row {int(s.isna().idxmax())})")
    return df.astype({c: ("int64" if d == "int64" else "float64") for c, d in dtypes.items() if d != "str"})


def _read_csv(path: Path) -> pd.DataFrame:
    """pd.read_csv with errors that name the file (an empty or unparsable table is a DataError)."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (0 bytes or no header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV table ({str(e).strip().splitlines()[0]})") from None


def read_train_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate `train.csv` (the 15 real columns); errors name the column or row."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"train.csv not found: {path}")
    df = _read_csv(path)
    df = _check_columns(df, HMS_TRAIN_DTYPES, path)
    votes = df[HMS_VOTE_COLS].to_numpy()
    neg = np.nonzero((votes < 0).any(axis=1))[0]
    if len(neg):
        r = int(neg[0])
        col = HMS_VOTE_COLS[int(np.argmax(votes[r] < 0))]
        raise DataError(f"{path}: negative vote in column '{col}' at row {r} (label_id {df.label_id.iloc[r]})")
    zero = np.nonzero(votes.sum(axis=1) == 0)[0]
    if len(zero):
        r = int(zero[0])
        raise DataError(f"{path}: all votes are zero at row {r} (label_id {df.label_id.iloc[r]}); {len(zero)} such rows")
    if (df.eeg_label_offset_seconds < 0).any():
        r = int(np.argmax(df.eeg_label_offset_seconds < 0))
        raise DataError(f"{path}: negative eeg_label_offset_seconds at row {r}")
    if df.label_id.duplicated().any():
        r = int(np.argmax(df.label_id.duplicated()))
        raise DataError(f"{path}: duplicate label_id {df.label_id.iloc[r]} at row {r}")
    return df


def read_test_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate `test.csv` (spectrogram_id, eeg_id, patient_id)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"test.csv not found: {path}")
    return _check_columns(_read_csv(path), HMS_TEST_DTYPES, path)


def sample_table(df: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """train.csv / test.csv rows → the common sample table (one row per labelled window).

    Columns: sample_id, recording_id (= eeg_id), group (= patient_id), start_s, duration_s,
    eeg_id, label_id, spectrogram_id, spec_offset_s, `<class>_vote` soft targets summing to 1,
    n_votes. Test rows get uniform targets and n_votes 0.
    """
    n = len(df)
    out = pd.DataFrame(
        {
            "sample_id": df["label_id"].to_numpy() if "label_id" in df else df["eeg_id"].to_numpy(),
            "recording_id": df["eeg_id"].to_numpy(),
            "group": df["patient_id"].to_numpy(),
            "start_s": df["eeg_label_offset_seconds"].to_numpy() if "eeg_label_offset_seconds" in df else np.zeros(n),
            "duration_s": np.full(n, HMS_EEG_WINDOW_S),
            "eeg_id": df["eeg_id"].to_numpy(),
            "label_id": df["label_id"].to_numpy() if "label_id" in df else df["eeg_id"].to_numpy(),
            "spectrogram_id": df["spectrogram_id"].to_numpy(),
            "spec_offset_s": df["spectrogram_label_offset_seconds"].to_numpy()
            if "spectrogram_label_offset_seconds" in df
            else np.zeros(n),
        }
    )
    if split == "train" and all(c in df for c in HMS_VOTE_COLS):
        votes = df[HMS_VOTE_COLS].to_numpy(dtype=np.float64)
        tot = votes.sum(axis=1)
        for i, c in enumerate(HMS_VOTE_COLS):
            out[c] = votes[:, i] / tot
        out["n_votes"] = tot.astype(np.int64)
    else:
        for c in HMS_VOTE_COLS:
            out[c] = 1.0 / len(HMS_VOTE_COLS)
        out["n_votes"] = 0
    return out



# --------------------------------------------------------------------------- parquet readers


def _read_parquet(path: Path, what: str, columns: list[str]) -> pl.DataFrame:
    """Read `columns` of one parquet file with polars, every column cast to Float32 (nulls kept as null).

    polars reads the 401-column spectrogram files about 3x faster than pyarrow's
    `ParquetFile.read` with the same values (benchmarks/prepare.py). The whole file is read in
    one call and checked afterwards (a separate schema read and a 401-name column selection
    cost as much again as the read); a file with extra or reordered columns is then narrowed
    to `columns`. Errors name the file, the missing columns or the non-numeric ones.
    """
    try:
        with open(path, "rb") as fh:  # parsed from bytes: 15-30 % less CPU than polars' memory-mapped read
            raw = fh.read()
        df = pl.read_parquet(raw, use_statistics=False)  # every row is read: the row-group statistics are not needed
    except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as e:
        raise DataError(f"{path}: cannot read {what} parquet ({type(e).__name__}: {e})") from e
    if df.columns != columns:
        have = set(df.columns)
        missing = [c for c in columns if c not in have]
        if missing:
            raise DataError(f"{path}: {what} parquet is missing {len(missing)} column(s), e.g. {missing[:3]}")
        df = df.select(columns)
    dtypes = df.dtypes
    # a type test: 0.05 ms for 401 columns, against 0.34 ms for `dt == pl.Float32` and 0.6 ms for selecting
    # pl.exclude(pl.Float32) in polars
    other = [k for k, dt in enumerate(dtypes) if type(dt) is not pl.Float32]
    if other:
        names = df.columns
        bad = [f"{names[k]} ({dtypes[k]})" for k in other if not dtypes[k].is_numeric()]
        if bad:
            raise DataError(f"{path}: non-numeric column(s) {bad[:3]} in {what} parquet")
        for k in other:  # eager, in place: `with_columns` goes through polars' query engine, 0.4 ms a spectrogram
            df.replace_column(k, df.to_series(k).cast(pl.Float32))
    return df


def _to_matrix(df: pl.DataFrame) -> np.ndarray:
    """Float32 columns → (n_rows, n_cols) float32 column-major (one copy per column), nulls as NaN.

    For row-major, `np.ascontiguousarray` of this is 2x faster than polars' `to_numpy(order='c')`."""
    if df.height == 0:
        return np.empty((0, df.width), dtype=np.float32, order="F")
    return df.to_numpy(order="fortran").astype(np.float32, copy=False)


def read_eeg(path: str | Path) -> np.ndarray:
    """EEG parquet → (20, n_times) float32 µV in `HMS_EEG_CHANNELS` order (NaN kept)."""
    path = Path(path)
    return _to_matrix(_read_parquet(path, "EEG", HMS_EEG_CHANNELS)).T  # (T, 20) F-order → (20, T) C-order


def read_eeg_montage(path: str | Path, montage: str) -> np.ndarray:
    """EEG parquet → (n_times, C) float32 C-order, the montage applied: time-major, as the cache stores it.

    Equals `apply_montage(read_eeg(path), HMS_EEG_CHANNELS, montage).T` value for value (the
    same checks of the file, too), for less: each pair is one float32 subtraction of two
    columns (numpy views of polars' buffers; a null becomes NaN, which reaches only its own
    pairs) into a row of a (C, T) block, then one transposed copy. Writing each pair straight into
    its column of the (T, C) block costs 60 % more: strided writes touch every cache line C times.
    """
    path = Path(path)
    anode, cathode = montage_indices(montage, HMS_EEG_CHANNELS)
    df = _read_parquet(path, "EEG", HMS_EEG_CHANNELS)
    cols = [df.to_series(k).to_numpy() for k in range(df.width)]  # no copy for a column without nulls
    rows = np.empty((len(anode), df.height), dtype=np.float32)
    for k, (a, c) in enumerate(zip(anode, cathode)):
        if c >= 0:
            np.subtract(cols[a], cols[c], out=rows[k])
        else:
            rows[k] = cols[a]
    return np.ascontiguousarray(rows.T)


def read_spectrogram(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle spectrogram parquet → (times (n_steps,) s, values (n_steps, 400) float32)."""
    path = Path(path)
    df = _read_parquet(path, "spectrogram", ["time"] + SPEC_COLUMNS)
    m = _to_matrix(df)  # (n, 401): every column Float32, one copy each
    times = m[:, 0].astype(np.float64)
    return times, np.ascontiguousarray(m[:, 1:])  # row-major, like the file's rows (no `drop`: it rebuilds a 400-column frame)


def eeg_path(data_dir: str | Path, eeg_id: int, split: str = "train") -> Path:
    return Path(data_dir) / f"{split}_eegs" / f"{eeg_id}.parquet"


def spec_path(data_dir: str | Path, spectrogram_id: int, split: str = "train") -> Path:
    return Path(data_dir) / f"{split}_spectrograms" / f"{spectrogram_id}.parquet"


def load_table(data_dir: str | Path, split: str = "train") -> pd.DataFrame:
    """Read `<split>.csv` from a data folder and return the sample table."""
    data_dir = Path(data_dir)
    if split == "train":
        df = read_train_csv(data_dir / "train.csv")
    else:
        df = read_test_csv(data_dir / "test.csv")
    return sample_table(df, split)


def find_kaggle_dir(default: Optional[str] = None) -> Optional[Path]:
    """The Kaggle competition input folder, when running in a Kaggle notebook."""
    p = Path("/kaggle/input/hms-harmful-brain-activity-classification")
    if p.exists():
        return p
    return Path(default) if default else None


# --------------------------------------------------------------------------- adapter


@dataclass
class HMSOptions:
    """HMS data-config keys (`cfg.options`), written at the top level of a data config."""

    kaggle_spec: bool = True  # also cache the Kaggle spectrograms (the `kaggle_spec` extra input)
    eeg_window_s: float = bounded(50.0, gt=0)  # seconds of EEG per sample, centred on the labelled 50 s window
    # the old generic CHB-MIT keys, at the values every HMS config had (NoOptions.legacy)
    legacy: ClassVar[dict[str, Any]] = {
        "windows": {"window_s": 10.0, "stride_s": 5.0, "label": "hard", "hard_min_overlap": 0.5}, "patients": None,
    }


KAGGLE_SPEC = ExtraInput(
    name="kaggle_spec",
    stem="spec",  # spec.npy, specs.csv, samples.spec_row
    width=len(SPEC_COLUMNS),
    window_rows=int(round(SPEC_WINDOW_S / SPEC_STEP_S)),
    id_column="spectrogram_id",
    offset_column="spec_offset_s",
    path=lambda cfg, sid: spec_path(cfg.data_dir, int(sid), cfg.split),
    read=read_spectrogram,
    enabled=lambda cfg: bool(cfg.options.kaggle_spec),
    switch="kaggle_spec",
    to_input=kaggle_spec_regions,  # raw power, layout only: models normalise it on their device (hbac.models.inputs)
    flip=tuple(int(i) for i in flip_permutation(SPEC_REGIONS)),
    label="spectrogram",
    masks=True,
)


class HMSAdapter(DatasetAdapter):
    """HMS: `train.csv`/`test.csv` + one parquet per EEG; the Kaggle spectrogram as an extra input."""

    name = "hms"
    synthetic = "hbac.datasets.synthetic.hms:synth"
    task = "hms"
    classes = HMS_CLASSES
    fs = HMS_FS
    extra_inputs = (KAGGLE_SPEC,)
    options = HMSOptions
    reads_release_gil = True  # polars parses the parquet files without the GIL: prepare uses threads

    def table(self, cfg: DataConfig) -> pd.DataFrame:
        """All windows of the split as the common sample table.

        `cfg.options.eeg_window_s` seconds per window, centred on the labelled 50 s window (whose middle
        10 s the experts annotated), so a shorter window keeps the annotated part.
        """
        table = load_table(cfg.data_dir, cfg.split)
        w = float(cfg.options.eeg_window_s)
        if abs(w - HMS_EEG_WINDOW_S) > 1e-9:
            table["start_s"] = table["start_s"] + (HMS_EEG_WINDOW_S - w) / 2
            table["duration_s"] = w
        return table

    def sample_s(self, cfg: DataConfig) -> Optional[tuple[str, float]]:
        """Every sample is `eeg_window_s` long."""
        return "eeg_window_s", float(cfg.options.eeg_window_s)

    def channels(self, cfg: DataConfig) -> list[str]:
        """Channel names of the cached signal (montage names)."""
        return montage_names(cfg.eeg.montage)

    def path(self, cfg: DataConfig, recording_id: Any) -> Path:
        """`data_dir/<split>_eegs/<eeg_id>.parquet`."""
        return eeg_path(cfg.data_dir, int(recording_id), cfg.split)

    def read(self, cfg: DataConfig, recording_id: Any) -> tuple[np.ndarray, float]:
        """Read one recording, montage applied, NOT yet filtered: ((C, T) float32 µV, fs)."""
        x = read_eeg_montage(self.path(cfg, recording_id), cfg.eeg.montage)
        return x.T, HMS_FS  # a (C, T) view of the time-major block: the cache writes x back without a copy


ADAPTER = register(HMSAdapter())
