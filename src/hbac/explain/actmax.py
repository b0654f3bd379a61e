"""Activation maximisation: an input optimised from noise to make the model say one class.

Every input the model reads (`eeg`, and `kaggle_spec` for models that use it) starts as noise and
is updated by Adam to raise the target class's log-probability (its logit against the others),
with the usual regularisers: a random circular time shift each step (jitter), a penalty on
EEG power above `fmax_hz` (the band the data were filtered to), and total variation on
spectrogram inputs. The EEG is kept at the start noise's standard deviation (the models
normalise amplitude anyway) so the optimiser cannot win by scaling alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from hbac.explain.common import grad_mode, input_keys

log = logging.getLogger(__name__)


@dataclass
class ActMax:
    """Result for one class: the optimised inputs (numpy, batch of 1 removed), probabilities before and after."""

    target: int
    inputs: dict[str, np.ndarray]
    p_start: np.ndarray  # (K,) softmax of the start noise
    p_end: np.ndarray  # (K,) softmax of the optimised input
    trace: list[float] = field(default_factory=list)  # target probability every 10 steps


def start_noise(shapes: dict[str, tuple[int, ...]], eeg_std: float, gen: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """White noise per input: EEG at `eeg_std` µV, spectrogram images at 0.1 around 0 (their scale is about [-1, 1])."""
    out = {}
    for k, s in shapes.items():
        scale = eeg_std if k == "eeg" else 0.1
        out[k] = (torch.randn((1, *s), generator=gen) * scale).to(device)
    return out


def highfreq_fraction(x: torch.Tensor, fs: float, fmax_hz: float) -> torch.Tensor:
    """Share of power above `fmax_hz` in x (1, C, T) → scalar in [0, 1]."""
    p = torch.fft.rfft(x, dim=-1).abs() ** 2
    f = torch.fft.rfftfreq(x.shape[-1], d=1.0 / fs).to(x.device)
    return p[..., f > fmax_hz].sum() / (p.sum() + 1e-12)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours along the last two axes."""
    return (x.diff(dim=-1).abs().mean() + x.diff(dim=-2).abs().mean()) / 2


@torch.no_grad()
def _probs(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> np.ndarray:
    return torch.softmax(model(batch).float(), dim=1)[0].cpu().numpy().astype(np.float64)


def maximise(
    model: torch.nn.Module,
    shapes: dict[str, tuple[int, ...]],
    target: int,
    fs: float,
    steps: int = 200,
    lr: float = 0.05,
    jitter_s: float = 1.0,
    fmax_hz: float = 20.0,
    freq_penalty: float = 5.0,
    tv_penalty: float = 0.1,
    eeg_std: float = 20.0,
    seed: int = 0,
    progress: bool = False,
) -> ActMax:
    """Optimise inputs of `shapes` ({key: shape without batch}) from noise to maximise class `target`'s log-probability."""
    device = next(model.parameters()).device
    keys = input_keys(model)
    missing = [k for k in keys if k not in shapes]
    if missing:
        raise KeyError(f"activation maximisation: no shape for model input {missing[0]!r}")
    gen = torch.Generator().manual_seed(seed)
    # the EEG is optimised in units of eeg_std, so `lr` means the same for every input
    x = {k: v.requires_grad_(True) for k, v in start_noise({k: shapes[k] for k in keys}, 1.0, gen, device).items()}
    scale = {k: eeg_std if k == "eeg" else 1.0 for k in x}
    p_start = _probs(model, {k: v * scale[k] for k, v in x.items()})
    opt = torch.optim.Adam(list(x.values()), lr=lr)
    jitter = int(round(jitter_s * fs))
    trace: list[float] = []
    with grad_mode(model):
        for step in tqdm(range(steps), desc=f"activation maximisation class {target}", leave=False, disable=not progress):
            shift = int(torch.randint(-jitter, jitter + 1, (1,), generator=gen)) if jitter > 0 else 0
            # the same jitter in seconds on every input (Kaggle spectrogram columns are 2 s)
            batch = {k: torch.roll(v * scale[k], shift if k == "eeg" else shift // max(1, int(2 * fs)), dims=-1) for k, v in x.items()}
            logp = torch.log_softmax(model(batch).float(), dim=1)[0, target]
            loss = -logp
            if "eeg" in x:
                loss = loss + freq_penalty * highfreq_fraction(x["eeg"], fs, fmax_hz)
            for k, v in x.items():
                if k != "eeg":
                    loss = loss + tv_penalty * total_variation(v)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                if "eeg" in x:  # fixed amplitude: the optimiser shapes the signal, it cannot just scale it
                    x["eeg"].div_(x["eeg"].std() + 1e-6)
                for k, v in x.items():
                    if k != "eeg":
                        v.clamp_(-1.0, 1.0)
            if step % 10 == 0:
                trace.append(float(logp.detach().exp()))
    final = {k: v.detach() * scale[k] for k, v in x.items()}
    p_end = _probs(model, final)
    log.info("activation maximisation class %d: p %.3f → %.3f", target, p_start[target], p_end[target])
    return ActMax(target, {k: v[0].cpu().numpy() for k, v in final.items()}, p_start, p_end, trace)


def input_shapes(batch: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """{key: shape without the batch axis} of a template batch."""
    return {k: tuple(v.shape[1:]) for k, v in batch.items()}


def band_limit(cfg_bandpass: Optional[list[float]], fs: float) -> float:
    """The frequency above which EEG power is penalised: the data's band-pass top, else 0.45·fs."""
    if cfg_bandpass and len(cfg_bandpass) == 2 and cfg_bandpass[1]:
        return float(min(cfg_bandpass[1], fs / 2))
    return 0.45 * fs
