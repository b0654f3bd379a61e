"""Losses on soft targets and the Kaggle KL metric / OOF scoring."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from hbac.config import TrainConfig
from hbac.engine.losses import bce_loss, build_loss, focal_loss, kl_loss
from hbac.tasks.kl import kl_score, score_oof

CLASSES = ["seizure", "lpd", "gpd", "lrda", "grda", "other"]


def soft_targets(n: int, k: int, seed: int = 0, zeros: bool = True) -> torch.Tensor:
    """(n, k) vote-like soft targets (several exact zeros per row)."""
    g = torch.Generator().manual_seed(seed)
    votes = torch.randint(0, 4, (n, k), generator=g).float()
    if zeros:
        votes[:, 0] = 0.0
    votes[votes.sum(1) == 0, 1] = 1.0
    return votes / votes.sum(1, keepdim=True)


# --------------------------------------------------------------------------- KL loss


def test_kl_loss_matches_torch_kldiv_batchmean() -> None:
    logits = torch.randn(7, 6, generator=torch.Generator().manual_seed(1)) * 2
    t = soft_targets(7, 6)
    ref = torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(logits, 1), t)
    torch.testing.assert_close(kl_loss(logits, t), ref)


def test_kl_loss_equals_kl_score() -> None:
    logits = torch.randn(9, 6, generator=torch.Generator().manual_seed(2))
    t = soft_targets(9, 6, seed=3)
    p = torch.softmax(logits.double(), 1).numpy()
    assert p.min() > 1e-6  # far from the metric's clip
    assert float(kl_loss(logits.double(), t.double())) == pytest.approx(kl_score(t.numpy(), p), rel=1e-6)


def test_kl_loss_hand_computed() -> None:
    # t = one-hot, p = softmax([log .5, log .25, log .25]) = [.5, .25, .25] → KL = log 2
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    t = torch.tensor([[1.0, 0.0, 0.0]])
    assert float(kl_loss(logits, t)) == pytest.approx(math.log(2), rel=1e-6)
    # t = [.5, .5, 0], p = [.25, .25, .5] → .5 log 2 + .5 log 2 = log 2 (0·log 0 term is 0, not NaN)
    logits2 = torch.log(torch.tensor([[0.25, 0.25, 0.5]]))
    t2 = torch.tensor([[0.5, 0.5, 0.0]])
    assert float(kl_loss(logits2, t2)) == pytest.approx(math.log(2), rel=1e-6)


def test_kl_loss_weighted_mean() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]))
    t = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # per-row KL: log 2, log 4
    w = torch.tensor([3.0, 1.0])
    expected = (3 * math.log(2) + 1 * math.log(4)) / 4
    assert float(kl_loss(logits, t, weight=w)) == pytest.approx(expected, rel=1e-6)
    assert float(kl_loss(logits, t)) == pytest.approx((math.log(2) + math.log(4)) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="weight"):
        kl_loss(logits, t, weight=torch.ones(3))


def test_kl_loss_gradient_is_p_minus_t() -> None:
    logits = torch.randn(4, 6, requires_grad=True)
    t = soft_targets(4, 6, seed=5)
    kl_loss(logits, t).backward()
    torch.testing.assert_close(logits.grad, (torch.softmax(logits.detach(), 1) - t) / 4)


# --------------------------------------------------------------------------- BCE / focal


def test_bce_two_classes_is_binary_cross_entropy_on_logit_difference() -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(8, 2, generator=g) * 3
    ts = torch.rand(8, generator=g)
    t = torch.stack([1 - ts, ts], 1)
    ref = F.binary_cross_entropy_with_logits(logits[:, 1] - logits[:, 0], ts)
    torch.testing.assert_close(bce_loss(logits, t), ref)
    # class weights [w_neg, w_pos] = BCE's per-term weights
    ref_w = -(4.0 * ts * F.logsigmoid(logits[:, 1] - logits[:, 0]) + 1.0 * (1 - ts) * F.logsigmoid(logits[:, 0] - logits[:, 1])).mean()
    torch.testing.assert_close(bce_loss(logits, t, class_weights=[1.0, 4.0]), ref_w)


def test_focal_gamma0_is_cross_entropy() -> None:
    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(6))
    t = soft_targets(6, 6, seed=7)
    torch.testing.assert_close(focal_loss(logits, t, gamma=0.0), F.cross_entropy(logits, t))
    cw = [1.0, 2.0, 1.0, 0.5, 1.0, 3.0]
    torch.testing.assert_close(
        focal_loss(logits, t, gamma=0.0, class_weights=cw), F.cross_entropy(logits, t, weight=torch.tensor(cw))
    )


def test_focal_downweights_easy_examples() -> None:
    logits = torch.tensor([[0.0, 4.0], [0.0, -1.0]])  # row 0 easy (p≈.98), row 1 hard
    t = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    p = torch.sigmoid(torch.tensor([4.0, -1.0]))
    expected = (-((1 - p) ** 2) * torch.log(p)).mean()
    torch.testing.assert_close(focal_loss(logits, t, gamma=2.0), expected)
    assert float(focal_loss(logits, t, gamma=2.0)) < float(bce_loss(logits, t))


def test_build_loss() -> None:
    logits = torch.randn(5, 2)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [1.0, 0.0], [0.5, 0.5]])
    w = torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5])
    torch.testing.assert_close(build_loss(TrainConfig(loss="kl"))(logits, t, w), kl_loss(logits, t, w))
    torch.testing.assert_close(build_loss(TrainConfig(loss="bce", class_weights=[1.0, 5.0]))(logits, t), bce_loss(logits, t, class_weights=[1.0, 5.0]))
    torch.testing.assert_close(
        build_loss(TrainConfig(loss="focal", focal_gamma=1.5))(logits, t, w), focal_loss(logits, t, 1.5, None, w)
    )
    with pytest.raises(ValueError, match="train.class_weights"):
        build_loss(TrainConfig(loss="kl", class_weights=[1.0, 1.0, 1.0]))(logits, t)


# --------------------------------------------------------------------------- metric


def test_kl_score_matches_kaggle_docstring_examples() -> None:
    # the examples in the docstring of Kaggle's kullback-leibler-divergence metric
    t = np.array([[0, 1], [1, 0], [1, 0], [0, 1]], dtype=float)
    p = np.array([[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]])
    assert kl_score(t, p) == pytest.approx(0.216161, abs=1e-6)
    t = np.array([[0, 0.1, 0.9], [0.5, 0.5, 0], [0.5, 0.5, 0]])
    assert kl_score(t, t) == 0.0
    p = np.array([[0.2, 0.1, 0.7], [0.3, 0.5, 0.2], [0.5, 0.5, 0]])
    assert kl_score(t, p) == pytest.approx(0.160531, abs=1e-6)


def test_kl_score_hand_computed_clip() -> None:
    t = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    p = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    # row 0: log(1/.5) = log 2; row 1: p=0 clipped to 1e-15 → log(1/1e-15) = 15 log 10; not renormalised
    expected = (math.log(2) + 15 * math.log(10)) / 2
    assert kl_score(t, p) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="must both be"):
        kl_score(t, p[:, :5])


def make_oof(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    votes = rng.integers(0, 5, size=(n, 6)).astype(float)
    votes[votes.sum(1) == 0, 5] = 1
    n_votes = votes.sum(1)
    t = votes / n_votes[:, None]
    p = rng.dirichlet(np.ones(6), size=n)
    df = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "fold": np.arange(n) % 3, "n_votes": n_votes})
    for k, c in enumerate(CLASSES):
        df[f"{c}_vote"] = t[:, k]
    for k, c in enumerate(CLASSES):
        df[f"{c}_pred"] = p[:, k]
    return df


def _row_kl(df: pd.DataFrame) -> np.ndarray:
    """Per-row KL written out independently of hbac.metrics."""
    out = np.zeros(len(df))
    for i in range(len(df)):
        for c in CLASSES:
            t, p = df[f"{c}_vote"].iloc[i], min(max(df[f"{c}_pred"].iloc[i], 1e-15), 1 - 1e-15)
            out[i] += t * math.log(t / p) if t > 0 else 0.0
    return out


def test_score_oof_subsets_and_folds() -> None:
    df = make_oof()
    res = score_oof(df, min_votes=10)
    kl = _row_kl(df)
    hi = df["n_votes"].to_numpy() >= 10
    assert 0 < hi.sum() < len(df)
    assert res["kl"] == pytest.approx(kl.mean())
    assert res["kl_min_votes"] == pytest.approx(kl[hi].mean())
    assert res["n_rows"] == 40 and res["n_rows_min_votes"] == int(hi.sum())
    for k in range(3):
        m = df["fold"].to_numpy() == k
        assert res[f"fold{k}_kl"] == pytest.approx(kl[m].mean())
        assert res[f"fold{k}_kl_min_votes"] == pytest.approx(kl[m & hi].mean())
    assert "fold3_kl" not in res
    res = score_oof(df, min_votes=1000)
    assert math.isnan(res["kl_min_votes"]) and res["n_rows_min_votes"] == 0
    assert "fold0_kl" not in score_oof(df.drop(columns="fold"))


def test_score_oof_errors() -> None:
    df = make_oof()
    with pytest.raises(KeyError, match="gpd_pred"):
        score_oof(df.drop(columns="gpd_pred"))
    with pytest.raises(KeyError, match="lpd_vote"):
        score_oof(df.drop(columns="lpd_vote"))
    with pytest.raises(KeyError, match="n_votes"):
        score_oof(df.drop(columns="n_votes"))
    bad = df.copy()
    bad.loc[7, "other_pred"] += 0.01
    with pytest.raises(ValueError, match="s7"):
        score_oof(bad)
    ok = df.copy()
    ok.loc[7, "other_pred"] += 0.0005  # within the 1e-3 tolerance
    score_oof(ok)
    nan = df.copy()
    nan.loc[3, "seizure_pred"] = np.nan
    with pytest.raises(ValueError, match="s3"):
        score_oof(nan)
