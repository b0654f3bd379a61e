"""Multimodal model: 2D spectrogram branch + 1D raw-EEG branch, features concatenated → MLP head."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from hbac.config import ModelConfig
from hbac.models.eeg1d import EEG1DModel
from hbac.models.inputs import InputStage
from hbac.models.spec2d import Spec2DModel


class MultimodalModel(nn.Module):
    """batch → [Spec2D features (B, F2), EEG1D features (B, F1)] → Linear-SiLU-Dropout-Linear → logits (B, K)."""

    def __init__(
        self,
        cfg: ModelConfig,
        n_classes: int,
        channels: Sequence[str],
        fs: float,
        n_times: Optional[int] = None,
        window_filter: Optional[dict] = None,
    ) -> None:
        super().__init__()
        self.channels = list(channels)
        self.n_classes = n_classes
        self.input_stage = InputStage(fs, window_filter, cfg.kaggle_spec_norm)  # once, for both branches
        self.spec2d = Spec2DModel(cfg, n_classes, channels, fs, n_times, head=False)
        self.eeg1d = EEG1DModel(cfg, n_classes, channels, fs, n_times, head=False)
        self.input_keys = tuple(sorted(set(self.spec2d.input_keys) | set(self.eeg1d.input_keys)))
        n_feat = self.spec2d.num_features + self.eeg1d.num_features
        hidden = cfg.oned.hidden
        self.num_features = n_feat
        self.head = nn.Sequential(
            nn.Dropout(cfg.drop_rate),
            nn.Linear(n_feat, hidden),
            nn.SiLU(inplace=True),
            nn.Dropout(cfg.drop_rate),
            nn.Linear(hidden, n_classes),
        )

    def cam_layers(self) -> dict[str, nn.Module]:
        """Grad-CAM targets (hbac.explain) of both branches: {"2d": …, "1d": …}."""
        return {**self.spec2d.cam_layers(), **self.eeg1d.cam_layers()}

    def set_spec_augment(self, time_mask: float = 0.0, freq_mask: float = 0.0, rng: Optional[np.random.Generator] = None) -> None:
        """Spectrogram masks of the 2D branch (training mode only; `Spec2DModel.set_spec_augment`)."""
        self.spec2d.set_spec_augment(time_mask, freq_mask, rng)

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch after `input_stage` → concatenated features (B, F2 + F1), fp32."""
        return torch.cat([self.spec2d.forward_features(batch).float(), self.eeg1d.forward_features(batch).float()], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch → logits (B, n_classes)."""
        return self.head(self.forward_features(self.input_stage(batch)))
