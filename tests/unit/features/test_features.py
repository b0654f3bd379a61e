"""Classic-feature baseline: hand-checkable features, mirror symmetry, soft-label fitting,
a real fold on tiny synthetic HMS data (below the class prior, deterministic, resumable) and
inference through `predict_experiment`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO_ROOT
from scipy.signal import welch

from hbac.config import load_config
from hbac.features import baseline as FB
from hbac.features import extract as FX
from hbac.signals.montage import BANANA_CHAINS, flip_permutation
from hbac.tasks.kl import kl_score

REPO = REPO_ROOT
BANANA = [f"{a}-{b}" for chain in BANANA_CHAINS.values() for a, b in chain]  # the 16 cached channels
FS = 200.0


def col(names: list[str], name: str) -> int:
    return names.index(name)


# --------------------------------------------------------------------------- features


def test_shapes_and_names():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, (3, len(BANANA), 2000)).astype(np.float32)
    names = FX.feature_names(BANANA, FS)
    feats = FX.window_features(x, FS, BANANA)
    assert feats.shape == (3, len(names)) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and len(set(names)) == len(names)
    assert "logpow_alpha@Fp1-F7" in names and "asym_delta@Fp1-F7|Fp2-F8" in names and "fine_hemimax_9.5-10.5hz" in names
    agg = FX.window_features(x, FS, BANANA, per_channel=False)
    agg_names = FX.feature_names(BANANA, FS, per_channel=False)
    assert agg.shape == (3, len(agg_names)) and not any("@" in n and "|" not in n for n in agg_names)
    np.testing.assert_allclose(agg, feats[:, [names.index(n) for n in agg_names]], rtol=1e-6)
    # a 50 s window gets a central 10 s block; a 10 s window does not
    assert len(FX.extract_names(BANANA, FS, 50.0)) == len(names) + len(agg_names)
    assert FX.extract_names(BANANA, FS, 10.0) == names
    # gamma stops below Nyquist; at 64 Hz it is 30–31 Hz, at 50 Hz it is gone
    assert FX.bands(64.0)[-1] == ("gamma", 30.0, 31.0) and [b for b, _, _ in FX.bands(50.0)][-1] == "beta"
    with pytest.raises(ValueError, match="channels"):
        FX.window_features(x, FS, BANANA[:3])


def test_welch_matches_scipy():
    x = np.random.default_rng(1).normal(size=(2, 3, 1234)).astype(np.float32)
    for n in (400, 401):
        f1, p1 = welch(x, FS, nperseg=n, detrend=False)
        f2, p2 = FX.welch_psd(x, FS, n)
        np.testing.assert_allclose(f2, f1)
        np.testing.assert_allclose(p2, p1, rtol=1e-4, atol=1e-6 * p1.max())


def test_hand_checkable_values():
    t = np.arange(int(20 * FS)) / FS
    f0, amp = 10.0, 30.0
    sine = amp * np.sin(2 * np.pi * f0 * t)
    ramp = 0.5 * np.arange(len(t))  # 0.5 µV per sample
    x = np.stack([np.tile(sine, (2, 1)), np.tile(ramp, (2, 1))]).astype(np.float32)  # (2, 2, T)
    ch = ["C3", "C4"]
    names = FX.feature_names(ch, FS)
    v = FX.window_features(x, FS, ch)
    rel = {b: v[0, col(names, f"relpow_{b}@C3")] for b, _, _ in FX.bands(FS)}
    assert rel["alpha"] > 0.99 and max(r for b, r in rel.items() if b != "alpha") < 0.01
    assert v[0, col(names, "peak_hz@C3")] == pytest.approx(f0)
    # absolute alpha power = variance of the sine = amp² / 2
    assert np.exp(v[0, col(names, "logpow_alpha@C3")]) == pytest.approx(amp**2 / 2, rel=0.02)
    assert v[0, col(names, "std@C3")] == pytest.approx(amp / np.sqrt(2), rel=1e-3)
    # discrete Hjorth mobility of a sine: sqrt(var(Δx) / var(x)) = 2 sin(π f / fs); complexity 1
    assert v[0, col(names, "mobility@C3")] == pytest.approx(2 * np.sin(np.pi * f0 / FS), rel=1e-3)
    assert v[0, col(names, "complexity@C3")] == pytest.approx(1.0, abs=1e-2)
    assert v[0, col(names, "kurtosis@C3")] == pytest.approx(1.5, rel=1e-3)  # E[sin⁴] / E[sin²]² = 3/2
    assert v[0, col(names, "line_length@C3")] == pytest.approx(amp * 4 * f0 / FS, rel=1e-3)  # 4 amp per period
    assert v[1, col(names, "line_length@C3")] == pytest.approx(0.5, rel=1e-6)
    # identical channels: perfectly correlated; mirrored pair C3|C4 is symmetric
    assert v[0, col(names, "corr_mirror_mean")] == pytest.approx(1.0, abs=1e-4)
    assert v[0, col(names, "asym_alpha@C3|C4")] == pytest.approx(0.0, abs=1e-5)


def test_asymmetry_sign_flips_and_flip_features():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 10, (4, len(BANANA), 3000)).astype(np.float32)
    x[:, :4] *= 3.0  # louder left temporal chain
    names = FX.feature_names(BANANA, FS)
    perm = flip_permutation(BANANA)
    a = FX.window_features(x, FS, BANANA)
    b = FX.window_features(x[:, perm], FS, BANANA)
    asym = [i for i, n in enumerate(names) if n.startswith("asym_")]
    assert (a[:, col(names, "asym_delta@Fp1-F7|Fp2-F8")] > 1.5).all()  # log(9) ≈ 2.2
    np.testing.assert_allclose(b[:, asym], -a[:, asym], rtol=1e-4, atol=1e-4)
    # mirroring the feature matrix equals computing features of the mirrored signal
    np.testing.assert_allclose(FX.flip_features(a, names, BANANA), b, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- soft-label fitting


def test_expand_soft_and_absent_class():
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    T = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    Xe, ye, we = FB.expand_soft(X, T, np.array([1.0, 2.0, 1.0]), class_weights=[1.0, 1.0, 2.0])
    assert list(ye) == [0, 0, 1, 1, 2] and we.sum() == pytest.approx(3.0)
    raw = np.array([1.0, 1.0, 1.0, 0.25, 1.5])  # target × row weight × class weight
    np.testing.assert_allclose(we, raw * 3 / raw.sum())
    np.testing.assert_array_equal(Xe[2], X[1])
    with pytest.raises(ValueError, match="class_weights"):
        FB.expand_soft(X, T, np.ones(3), class_weights=[1.0, 2.0])
    # class 2 never has training weight: its column is filled with a small probability, rows sum to 1
    rng = np.random.default_rng(0)
    Xr = rng.normal(size=(40, 3)).astype(np.float32)
    Tr = np.zeros((40, 3))
    Tr[np.arange(40), (Xr[:, 0] > 0).astype(int)] = 1.0
    est = FB.fit_soft("logreg", Xr, Tr, np.ones(40), seed=0)
    p = FB.predict_proba(est, Xr, 3)
    assert p.shape == (40, 3) and np.allclose(p.sum(axis=1), 1.0)
    assert (p[:, 2] < 1e-3).all() and np.corrcoef(p[:, 1], Xr[:, 0])[0, 1] > 0.9  # class 1 ⇔ x0 > 0


def test_hgb_is_deterministic_and_learns():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    logits = np.stack([X[:, 0], -X[:, 0], X[:, 1]], axis=1) * 2
    T = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # soft targets
    a = FB.fit_soft("hgb", X[:80], T[:80], np.ones(80), seed=5)
    b = FB.fit_soft("hgb", X[:80], T[:80], np.ones(80), seed=5)
    pa, pb = FB.predict_proba(a, X[80:], 3), FB.predict_proba(b, X[80:], 3)
    np.testing.assert_array_equal(pa, pb)
    prior = np.tile(T[:80].mean(axis=0), (40, 1))
    assert kl_score(T[80:], pa) < 0.6 * kl_score(T[80:], prior)
    assert FB.count_fitted(a) > 0


# --------------------------------------------------------------------------- a real experiment on tiny synthetic data


def tiny_cfg(data_dir: Path, root: Path, name: str):
    return load_config(
        REPO / "configs" / "tiny" / "hms_features.yaml",
        {"name": name, "data": {"data_dir": str(data_dir), "cache_root": str(root / "cache")}, "output_root": str(root / "outputs")},
    )


def prior_kl(oof: pd.DataFrame) -> float:
    """KL of predicting the validation rows' mean target for every row: the no-skill baseline."""
    t = oof.filter(regex="_vote$").to_numpy()
    return kl_score(t, np.tile(t.mean(axis=0), (len(t), 1)))


@pytest.fixture(scope="module")
def trained(trained_hms_features):
    """The tiny feature experiment trained on all 3 folds once per test run (tests/conftest.py): (config, scores)."""
    return trained_hms_features, json.loads((trained_hms_features.output_dir() / "scores.json").read_text())


def test_fold_outputs_and_learning(trained):
    cfg, scores = trained
    out = cfg.output_dir()
    oof = pd.read_csv(out / "oof.csv")
    assert scores["missing_folds"] == [] and scores["model"] == "features" and len(oof) == scores["n_rows"]
    f0 = oof[oof.fold == 0]
    kl0 = kl_score(f0.filter(regex="_vote$").to_numpy(), f0.filter(regex="_pred$").to_numpy())
    assert kl0 < 0.8 * prior_kl(f0), f"fold 0 KL {kl0:.3f} not clearly below the prior's {prior_kl(f0):.3f}"
    assert scores["cv"] < prior_kl(oof)
    np.testing.assert_allclose(oof.filter(regex="_pred$").sum(axis=1), 1.0, atol=1e-6)
    fold = out / "fold0"
    for f in ("best.pt", "last.pt", "history.csv", "curve.png", "oof.csv", "fold.json"):
        assert (fold / f).exists(), f
    ck = torch.load(fold / "best.pt", weights_only=True)
    assert ck["kind"] == "features" and ck["fold"] == 0 and ck["epoch"] == 1 and ck["stage"] == "stage1"
    assert ck["config"]["name"] == cfg.name and ck["n_params"] > 0 and np.isfinite(ck["score"])
    assert len(ck["feature_names"]) == FB.load_estimator(ck).n_features_in_ and ck["classes"][0] == "seizure"
    assert torch.load(fold / "last.pt", weights_only=True)["complete"] is True
    hist = pd.read_csv(fold / "history.csv")
    assert list(hist.columns) == ["epoch", "stage", "epoch_in_stage", "lr", "train_loss", "val_kl", "val_kl_min_votes", "time_s"]
    assert hist.val_kl.iloc[0] == pytest.approx(ck["score"])
    fj = json.loads((fold / "fold.json").read_text())
    assert set(fj) == {"fold", "best_score", "best_epoch", "train_time_s", "n_params", "config_hash", "metric", "direction"}
    assert fj["metric"] == "kl" and fj["direction"] == "min"
    assert (out / "features.npz").exists()


def test_same_result_twice_and_resume(trained, synth_hms, tmp_path):
    from hbac.data.split import experiment_table
    from hbac.features.baseline import train_features_fold

    cfg, _ = trained
    again = tiny_cfg(synth_hms, tmp_path, "feat_b")  # fresh output folder: features recomputed
    again.data.cache_root = cfg.data.cache_root  # the prepared cache (read only)
    oof_b = train_features_fold(again, 0, progress=False)
    oof_a = pd.read_csv(cfg.output_dir() / "fold0" / "oof.csv")
    np.testing.assert_allclose(oof_b.filter(regex="_pred$").to_numpy(), oof_a.filter(regex="_pred$").to_numpy(), rtol=1e-6, atol=1e-9)
    # resume of a complete fold returns its OOF without refitting
    best = again.output_dir() / "fold0" / "best.pt"
    mtime = best.stat().st_mtime_ns
    oof_c = train_features_fold(again, 0, resume=True, data=experiment_table(again), progress=False)
    assert best.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(oof_c, pd.read_csv(again.output_dir() / "fold0" / "oof.csv"))


def test_predict_experiment_on_test_split(trained, synth_hms, tmp_path):
    from hbac.inference.predict import predict_experiment

    cfg, _ = trained
    samples, probs = predict_experiment(cfg.output_dir(), synth_hms, "test", tmp_path / "cache", progress=False)
    n_test = len(pd.read_csv(synth_hms / "test.csv"))
    assert probs.shape == (n_test, 6) and len(samples) == n_test
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0)
    assert (probs.std(axis=0) > 0).any()  # not a constant prediction


def test_chbmit_seizure_detection(tmp_path):
    """Binary task, 10 s windows at 128 Hz (no central block): the same trainer separates seizure windows."""
    from sklearn.metrics import roc_auc_score

    from hbac.datasets.synthetic.chbmit import write_chbmit
    from hbac.engine.experiment import train_experiment

    write_chbmit(tmp_path / "chb", n_patients=4, seed=1, n_files=2, file_s=240)
    cfg = load_config(REPO / "configs" / "tiny" / "chbmit_1d.yaml", {
        "name": "chb_features",
        "data": {"data_dir": str(tmp_path / "chb"), "cache_root": str(tmp_path / "cache")},
        "output_root": str(tmp_path / "outputs"),
        "model": {"kind": "features", "features_model": "logreg"},
        "train": {"sampler": "none", "class_weights": [1.0, 3.0]},
    })
    train_experiment(cfg, folds=[0, 1], progress=False)
    oof = pd.read_csv(cfg.output_dir() / "oof.csv")
    ck = torch.load(cfg.output_dir() / "fold0" / "best.pt", weights_only=True)
    assert ck["classes"] == ["background", "seizure"] and not any(n.startswith("c10s_") for n in ck["feature_names"])
    np.testing.assert_allclose(oof[["background_pred", "seizure_pred"]].sum(axis=1), 1.0, atol=1e-6)
    y = oof["seizure_vote"].to_numpy() > 0.5
    assert 0 < y.sum() < len(y)
    assert roc_auc_score(y, oof["seizure_pred"]) > 0.9
