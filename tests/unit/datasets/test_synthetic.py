"""The synthetic HMS generator: real layout, readers accept it, determinism, labels, learnability."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SYNTH_HMS_EEGS, SYNTH_HMS_SEED, SYNTH_HMS_TEST

from hbac.datasets import synthetic
from hbac.datasets.hms import (
    HMS_CLASSES,
    HMS_CONSENSUS,
    HMS_TRAIN_DTYPES,
    HMS_VOTE_COLS,
    SPEC_COLUMNS,
    eeg_path,
    read_eeg,
    read_spectrogram,
    read_test_csv,
    read_train_csv,
    spec_path,
)
from hbac.datasets.synthetic import hms as synthetic_hms
from hbac.signals.montage import BANANA_CHAINS, HMS_EEG_CHANNELS

FS = 200


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _arrow_schema(path: Path) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


# --------------------------------------------------------------------------- layout


def test_layout_passes_the_readers(synth_hms: Path) -> None:
    df = read_train_csv(synth_hms / "train.csv")
    assert list(df.columns) == list(HMS_TRAIN_DTYPES)
    assert df.eeg_id.nunique() == SYNTH_HMS_EEGS
    assert df.label_id.is_unique
    for eeg_id, g in df.groupby("eeg_id"):
        assert g.spectrogram_id.nunique() == 1
        assert g.eeg_sub_id.tolist() == list(range(len(g)))
        assert (g.spectrogram_sub_id.to_numpy() == g.eeg_sub_id.to_numpy()).all()
        x = read_eeg(eeg_path(synth_hms, eeg_id))
        assert x.dtype == np.float32 and x.shape[0] == 20 and x.shape[1] % FS == 0
        assert 50 * FS <= x.shape[1] <= 200 * FS
        times, vals = read_spectrogram(spec_path(synth_hms, g.spectrogram_id.iloc[0]))
        assert vals.shape == (len(times), 400) and vals.dtype == np.float32
        np.testing.assert_array_equal(times, 2 * np.arange(len(times)) + 1)
        assert len(times) >= 300
    test = read_test_csv(synth_hms / "test.csv")
    assert list(test.columns) == ["spectrogram_id", "eeg_id", "patient_id"] and len(test) == SYNTH_HMS_TEST
    assert not set(test.eeg_id) & set(df.eeg_id) and not set(test.patient_id) & set(df.patient_id)
    for r in test.itertuples():
        assert read_eeg(eeg_path(synth_hms, r.eeg_id, "test")).shape == (20, 10_000)
        times, vals = read_spectrogram(spec_path(synth_hms, r.spectrogram_id, "test"))
        assert vals.shape == (300, 400) and times[0] == 1 and times[-1] == 599
    sub = pd.read_csv(synth_hms / "sample_submission.csv")
    assert list(sub.columns) == ["eeg_id"] + HMS_VOTE_COLS
    assert sub.eeg_id.tolist() == test.eeg_id.tolist()
    np.testing.assert_allclose(sub[HMS_VOTE_COLS].to_numpy(), 1 / 6)


def test_parquet_layout_without_real_data(synth_hms: Path) -> None:
    """Column order and arrow types as in the real files (checked against them in the next test)."""
    df = pd.read_csv(synth_hms / "train.csv")
    eeg = _arrow_schema(eeg_path(synth_hms, df.eeg_id.iloc[0]))
    assert eeg == [(c, "float") for c in HMS_EEG_CHANNELS]
    spec = _arrow_schema(spec_path(synth_hms, df.spectrogram_id.iloc[0]))
    assert spec == [("time", "int64")] + [(c, "float") for c in SPEC_COLUMNS]
    test = pd.read_csv(synth_hms / "test.csv")
    assert _arrow_schema(spec_path(synth_hms, test.spectrogram_id.iloc[0], "test"))[0] == ("time", "int16")
    md = pq.read_metadata(eeg_path(synth_hms, df.eeg_id.iloc[0]))
    assert md.num_row_groups == 1 and b"pandas" in md.metadata


def test_columns_and_types_equal_the_real_files(synth_hms: Path, real_hms: Path) -> None:
    real_train, syn_train = pd.read_csv(real_hms / "train.csv"), pd.read_csv(synth_hms / "train.csv")
    assert list(syn_train.columns) == list(real_train.columns)
    assert syn_train.dtypes.astype(str).tolist() == real_train.dtypes.astype(str).tolist()
    for name in ("test.csv", "sample_submission.csv"):
        real, syn = pd.read_csv(real_hms / name), pd.read_csv(synth_hms / name)
        assert list(syn.columns) == list(real.columns), name
        assert syn.dtypes.astype(str).tolist() == real.dtypes.astype(str).tolist(), name
    real_test, syn_test = pd.read_csv(real_hms / "test.csv"), pd.read_csv(synth_hms / "test.csv")
    pairs = [
        (real_hms / "train_eegs" / "1628180742.parquet", eeg_path(synth_hms, syn_train.eeg_id.iloc[0])),
        (real_hms / "train_spectrograms" / "353733.parquet", spec_path(synth_hms, syn_train.spectrogram_id.iloc[0])),
        (eeg_path(real_hms, real_test.eeg_id.iloc[0], "test"), eeg_path(synth_hms, syn_test.eeg_id.iloc[0], "test")),
        (spec_path(real_hms, real_test.spectrogram_id.iloc[0], "test"), spec_path(synth_hms, syn_test.spectrogram_id.iloc[0], "test")),
    ]
    for real, syn in pairs:
        assert _arrow_schema(syn) == _arrow_schema(real), real.name
        assert pq.read_metadata(syn).num_row_groups == pq.read_metadata(real).num_row_groups
        assert (b"pandas" in pq.read_metadata(syn).metadata) == (b"pandas" in pq.read_metadata(real).metadata)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    synthetic.write_hms(tmp_path / "a", n_eegs=3, seed=7, n_test=1)
    synthetic.write_hms(tmp_path / "b", n_eegs=3, seed=7, n_test=1, workers=2)  # processes do not change bytes
    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert a == b
    assert len(a) == 3 * 2 + 2 + 3
    other = synthetic.hms_truth(3, seed=8, n_test=1)  # another seed: other ids, other labels
    same = synthetic.hms_truth(3, seed=7, n_test=1)
    assert same.label_id.tolist() == pd.read_csv(tmp_path / "a" / "train.csv").label_id.tolist()
    assert not set(other.eeg_id) & set(same.eeg_id)


def test_low_vote_bias_changes_only_the_votes(tmp_path: Path) -> None:
    """A biased set is the unbiased set's recordings with `hms_train_table`'s train.csv (the tests build it so)."""
    synthetic.write_hms(tmp_path / "a", n_eegs=3, seed=7, n_test=1, workers=1)
    synthetic.write_hms(tmp_path / "b", n_eegs=3, seed=7, n_test=1, workers=1, low_vote_other=1.0)
    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert {k: v for k, v in a.items() if k != "train.csv"} == {k: v for k, v in b.items() if k != "train.csv"}
    assert a["train.csv"] != b["train.csv"]  # the bias changed some votes
    for d, bias in (("a", 0.0), ("b", 1.0)):
        pd.testing.assert_frame_equal(synthetic.hms_train_table(3, seed=7, n_test=1, low_vote_other=bias),
                                      pd.read_csv(tmp_path / d / "train.csv"), check_dtype=False)


def test_cli_writes_the_dataset(tmp_path: Path) -> None:
    from hbac.cli import main

    assert main(["synth", "hms", "--out", str(tmp_path), "--n-eegs", "2", "--n-test", "1", "--seed", "3"]) == 0
    assert read_train_csv(tmp_path / "train.csv").eeg_id.nunique() == 2
    assert len(list((tmp_path / "test_eegs").glob("*.parquet"))) == 1


def test_write_chbmit_hook_delegates(tmp_path: Path) -> None:
    synthetic.write_chbmit(tmp_path, n_patients=1, seed=0, n_files=2, file_s=120.0)  # 4 min of EEG, not the default 30
    assert (tmp_path / "chb01" / "chb01-summary.txt").is_file()
    assert list((tmp_path / "chb01").glob("chb01_*.edf"))


def test_bipolar_matrix_is_the_double_banana() -> None:
    from hbac.signals.montage import montage_matrix

    m = montage_matrix("double_banana", HMS_EEG_CHANNELS)
    np.testing.assert_array_equal(synthetic_hms._BIPOLAR, m[:, :19])
    assert not m[:, 19].any()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_eegs"):
        synthetic.write_hms(Path("unused"), n_eegs=0)


# --------------------------------------------------------------------------- labels


def test_votes_cover_the_real_range(synth_hms: Path) -> None:
    df = pd.read_csv(synth_hms / "train.csv")
    votes = df[HMS_VOTE_COLS].to_numpy()
    n = votes.sum(axis=1)
    assert (votes >= 0).all() and n.min() >= 1
    assert n.min() <= 3 and n.max() >= 20
    assert 0.3 < (n <= 6).mean() < 0.85 and (n >= 10).mean() > 0.15  # low- and high-vote rows both common
    assert set(df.expert_consensus) == set(HMS_CONSENSUS)
    np.testing.assert_array_equal(df.expert_consensus.to_numpy(), np.array(HMS_CONSENSUS)[votes.argmax(axis=1)])
    assert df.groupby("patient_id").eeg_id.nunique().max() >= 2  # several EEGs per patient
    assert df.groupby("eeg_id").size().max() >= 3  # several windows per EEG


def test_low_vote_rows_are_noisier() -> None:
    truth = synthetic.hms_truth(40, seed=1)
    d = synthetic_hms._design(40, 1, 4)
    assert (truth.label_id.to_numpy() == d.train.label_id.to_numpy()).all()
    assert set(truth.true_class) == set(HMS_CLASSES)
    cons = d.train[HMS_VOTE_COLS].to_numpy().argmax(axis=1)
    ok = cons == truth.true_class.map(HMS_CLASSES.index).to_numpy()
    hi = truth.high_votes.to_numpy()
    assert (d.train[HMS_VOTE_COLS].sum(axis=1).to_numpy()[hi] >= 10).all()
    assert ok[hi].mean() > 0.9
    assert ok[~hi].mean() < ok[hi].mean() - 0.15
    assert ok[~hi].mean() > 0.4  # noisy, not random


def test_truth_matches_written_csv(synth_hms: Path) -> None:
    truth = synthetic.hms_truth(SYNTH_HMS_EEGS, SYNTH_HMS_SEED, SYNTH_HMS_TEST)
    df = pd.read_csv(synth_hms / "train.csv")
    assert truth.label_id.tolist() == df.label_id.tolist()
    assert truth.patient_id.tolist() == df.patient_id.tolist()


# --------------------------------------------------------------------------- signals


def test_windows_lie_inside_their_recordings(synth_hms: Path) -> None:
    df = pd.read_csv(synth_hms / "train.csv")
    assert (df.eeg_label_offset_seconds % 2 == 0).all()
    assert (df.spectrogram_label_offset_seconds >= df.eeg_label_offset_seconds).all()
    for eeg_id, g in df.groupby("eeg_id"):
        length_s = pq.read_metadata(eeg_path(synth_hms, eeg_id)).num_rows / FS
        assert (g.eeg_label_offset_seconds >= 0).all() and (g.eeg_label_offset_seconds + 50 <= length_s).all()
        # one fixed placement of the EEG inside its spectrogram recording
        assert (g.spectrogram_label_offset_seconds - g.eeg_label_offset_seconds).nunique() == 1
        spec_len_s = pq.read_metadata(spec_path(synth_hms, g.spectrogram_id.iloc[0])).num_rows * 2
        assert (g.spectrogram_label_offset_seconds + 600 <= spec_len_s).all()


def test_spectrogram_is_computed_from_the_same_eeg(synth_hms: Path) -> None:
    """Kaggle recipe on the EEG file reproduces the spectrogram rows that fall inside it."""
    df = pd.read_csv(synth_hms / "train.csv")
    idx = {c: i for i, c in enumerate(HMS_EEG_CHANNELS)}
    checked = 0
    for eeg_id, g in df.groupby("eeg_id"):
        x = read_eeg(eeg_path(synth_hms, eeg_id)).astype(np.float64)
        if np.isnan(x).any():
            continue
        times, spec = read_spectrogram(spec_path(synth_hms, g.spectrogram_id.iloc[0]))
        # the 50 s EEG window is centred in its 600 s spectrogram window
        start = g.spectrogram_label_offset_seconds.iloc[0] + 275 - g.eeg_label_offset_seconds.iloc[0]
        rows = np.nonzero((times - 2 >= start) & (times + 2 <= start + x.shape[1] / FS))[0]
        win = np.hanning(800)
        regions = []
        for chain in BANANA_CHAINS.values():
            power = 0.0
            for a, b in chain:
                d = x[idx[a]] - x[idx[b]]
                seg = np.stack([d[int((times[r] - 2 - start) * FS) :][:800] for r in rows]) * win
                power = power + np.abs(np.fft.rfft(seg, n=1024, axis=1)[:, 3:103]) ** 2
            regions.append(power / 4)
        mine = np.concatenate(regions, axis=1) * synthetic_hms.SPEC_SCALE
        theirs = spec[rows]
        big = theirs > 1.0  # values are stored with 2 decimals
        assert big.sum() > 100
        np.testing.assert_allclose(mine[big], theirs[big], rtol=0.02)
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_spectrogram_value_scale_is_plausible(synth_hms: Path) -> None:
    df = pd.read_csv(synth_hms / "train.csv")
    vals = np.concatenate([read_spectrogram(spec_path(synth_hms, s))[1] for s in df.spectrogram_id.unique()])
    finite = vals[np.isfinite(vals)]
    assert np.isfinite(vals).mean() > 0.95
    assert finite.min() >= 0
    med, p99 = np.percentile(finite, [50, 99])
    assert 0.05 < med < 3.0  # real files: 0.12 … 2.8
    assert 10 < p99 < 500  # real files: 17 … 305
    np.testing.assert_allclose(finite, np.round(finite, 2), atol=1e-4)  # 2 decimals like the real values


def test_eeg_amplitudes_and_nan_stretches(synth_hms: Path) -> None:
    df = pd.read_csv(synth_hms / "train.csv")
    n_nan = 0
    for eeg_id in df.eeg_id.unique():
        x = read_eeg(eeg_path(synth_hms, eeg_id))
        nan_rows = np.isnan(x).any(axis=0)
        n_nan += bool(nan_rows.any())
        assert (np.isnan(x).all(axis=0) == nan_rows).all()  # stretches cover all channels
        assert nan_rows.mean() < 0.5
        sd = np.nanstd(x[:19], axis=1)
        assert (5 < sd).all() and (sd < 300).all()  # tens of µV
        # EKG: a heartbeat, i.e. an autocorrelation peak of the differenced signal at 0.5–1.2 s (50–120 bpm)
        e = np.diff(np.nan_to_num(x[19] - np.nanmedian(x[19])))
        ac = np.fft.irfft(np.abs(np.fft.rfft(e, 2 * len(e))) ** 2)[: 2 * FS]
        assert ac[FS // 2 : int(1.2 * FS)].max() > 0.25 * ac[0]
    assert n_nan >= 1


def _window_features(data: Path, df: pd.DataFrame) -> np.ndarray:
    """(n_rows, 44) log band powers per region, relative powers, asymmetry, rhythmicity, spikiness (central 10 s)."""
    from scipy.signal import welch

    from hbac.signals.filters import fill_nan
    from hbac.signals.montage import apply_montage

    bands = [(0.5, 2), (2, 4), (4, 8), (8, 13), (13, 20)]
    cache: dict[int, np.ndarray] = {}
    out = []
    for r in df.itertuples():
        if r.eeg_id not in cache:
            cache[r.eeg_id] = fill_nan(apply_montage(read_eeg(eeg_path(data, r.eeg_id)), HMS_EEG_CHANNELS, "double_banana"))
        o = int(r.eeg_label_offset_seconds * FS)
        w = cache[r.eeg_id][:, o + 20 * FS : o + 30 * FS]
        f, p = welch(w, fs=FS, nperseg=2 * FS)
        bp = np.stack([p[:, (f >= a) & (f < b)].mean(axis=1) for a, b in bands], axis=1)
        reg = np.log(bp.reshape(4, 4, len(bands)).mean(axis=1) + 1e-6)
        rel = reg - np.log(np.exp(reg).sum(axis=1, keepdims=True))
        asym = np.abs(reg[0] - reg[1]) + np.abs(reg[2] - reg[3])
        low = p[:, (f > 0.5) & (f < 5)]
        rhythm = (low.max(axis=1) / low.mean(axis=1)).reshape(4, 4).mean(axis=1)
        wc = w - w.mean(axis=1, keepdims=True)
        kurt = (wc**4).mean(axis=1) / (wc.var(axis=1) ** 2 + 1e-9)
        out.append(np.concatenate([reg.ravel(), rel.ravel(), asym, rhythm, np.log(kurt.reshape(4, 4).mean(axis=1))]))
    return np.array(out)


def test_learnable_on_held_out_patients(synth_hms: Path) -> None:
    """Band powers + logistic regression trained on the consensus beat chance on unseen patients; amplitude alone does not."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = read_train_csv(synth_hms / "train.csv")
    truth = synthetic.hms_truth(SYNTH_HMS_EEGS, SYNTH_HMS_SEED, SYNTH_HMS_TEST)
    y_true = truth.true_class.map(HMS_CLASSES.index).to_numpy()
    y_cons = df[HMS_VOTE_COLS].to_numpy().argmax(axis=1)
    x = _window_features(synth_hms, df)
    power = np.log(np.exp(x[:, :20]).sum(axis=1, keepdims=True))  # total band power only
    acc, acc_power = [], []
    for tr, te in GroupKFold(4).split(x, y_cons, df.patient_id):
        for feats, res in ((x, acc), (power, acc_power)):
            m = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000)).fit(feats[tr], y_cons[tr])
            res.append((m.predict(feats[te]) == y_true[te]).mean())
    chance = np.bincount(y_true).max() / len(y_true)
    assert chance < 0.3
    assert np.mean(acc) > chance + 0.15, (acc, chance)
    assert np.mean(acc_power) < np.mean(acc) - 0.15, (acc_power, acc)
