"""Losses on soft targets: KL (HMS), cross-entropy/BCE and focal (binary, imbalanced CHB-MIT).

All take logits (B, K) and soft targets (B, K) summing to 1, return a scalar, and accept
per-sample weights (B,) (e.g. vote counts): the reduction is then sum(w·l) / sum(w), else the
batch mean. Class weights (K,) multiply each class term. Computed in fp32 even under autocast.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from hbac.config import TrainConfig

LossFn = Callable[..., torch.Tensor]


def _reduce(per_sample: torch.Tensor, weight: Optional[torch.Tensor]) -> torch.Tensor:
    """(B,) losses → scalar: mean, or weighted mean sum(w·l)/sum(w) (0 when all weights are 0)."""
    if weight is None:
        return per_sample.mean()
    w = weight.to(per_sample.device, torch.float32).reshape(-1)
    if w.shape[0] != per_sample.shape[0]:
        raise ValueError(f"loss weight has {w.shape[0]} values for a batch of {per_sample.shape[0]}")
    return (w * per_sample).sum() / w.sum().clamp_min(1e-12)


def _class_weights(class_weights: Optional[Sequence[float] | torch.Tensor], logits: torch.Tensor) -> Optional[torch.Tensor]:
    """(K,) float32 tensor on the logits' device, checked against K."""
    if class_weights is None:
        return None
    cw = torch.as_tensor(class_weights, dtype=torch.float32, device=logits.device).reshape(-1)
    if cw.shape[0] != logits.shape[1]:
        raise ValueError(f"train.class_weights: {cw.shape[0]} values for {logits.shape[1]} classes")
    return cw


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape != target.shape:
        raise ValueError(f"loss: logits {tuple(logits.shape)} and target {tuple(target.shape)} must both be (B, K)")


def kl_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    class_weights: Optional[Sequence[float] | torch.Tensor] = None,
) -> torch.Tensor:
    """KL(target ‖ softmax(logits)) = Σ_k t (log t − log p), 0·log 0 = 0; batch mean (= KLDivLoss 'batchmean')."""
    _check(logits, target)
    logp = F.log_softmax(logits.float(), dim=1)
    t = target.float()
    terms = torch.xlogy(t, t) - t * logp  # (B, K)
    cw = _class_weights(class_weights, logits)
    if cw is not None:
        terms = terms * cw
    return _reduce(terms.sum(dim=1), weight)


def bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    class_weights: Optional[Sequence[float] | torch.Tensor] = None,
) -> torch.Tensor:
    """Soft-target cross-entropy −Σ_k w_k t_k log softmax(logits)_k.

    For K = 2 this is exactly binary cross-entropy with logits on the logit difference
    z_seizure − z_background against t_seizure (softmax of 2 classes = sigmoid of the
    difference), with class_weights = [w_negative, w_positive]. For K > 2 it is the usual
    multi-class soft cross-entropy (KL plus the constant target entropy).
    """
    _check(logits, target)
    terms = -target.float() * F.log_softmax(logits.float(), dim=1)
    cw = _class_weights(class_weights, logits)
    if cw is not None:
        terms = terms * cw
    return _reduce(terms.sum(dim=1), weight)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    class_weights: Optional[Sequence[float] | torch.Tensor] = None,
    weight: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Soft-target focal loss −Σ_k w_k t_k (1 − p_k)^γ log p_k; γ = 0 gives `bce_loss`."""
    _check(logits, target)
    if gamma < 0:
        raise ValueError(f"train.focal_gamma: must be >= 0, got {gamma}")
    logp = F.log_softmax(logits.float(), dim=1)
    focus = (1.0 - logp.exp()).clamp_min(0.0).pow(gamma)
    terms = -target.float() * focus * logp
    cw = _class_weights(class_weights, logits)
    if cw is not None:
        terms = terms * cw
    return _reduce(terms.sum(dim=1), weight)


def build_loss(train_cfg: TrainConfig) -> LossFn:
    """Loss for `train.loss` ("kl" | "bce" | "focal") with `train.class_weights`: fn(logits, target, weight=None) → scalar."""
    cw = train_cfg.class_weights
    if cw is not None and any(w < 0 for w in cw):
        raise ValueError(f"train.class_weights: must be non-negative, got {cw}")
    kind = train_cfg.loss
    if kind == "kl":

        def loss_fn(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
            return kl_loss(logits, target, weight, cw)

    elif kind == "bce":

        def loss_fn(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
            return bce_loss(logits, target, weight, cw)

    elif kind == "focal":
        gamma = train_cfg.focal_gamma

        def loss_fn(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
            return focal_loss(logits, target, gamma, cw, weight)

    else:
        raise ValueError(f"train.loss: unknown {kind!r} (kl, bce, focal)")
    return loss_fn
