"""Training and inference throughput (samples/s) of the shipped experiment configs.

Runs each model — every `model.kind` (2d, 1d, wavenet, effnet1d, multimodal) and 2D input (Kaggle
spectrogram, mel/STFT, CWT, raw-EEG image) the shipped configs use — on random batches of the real
input shapes (HMS: 16 × 10,000 montage samples, or the `model.window_s` crop,
4 × 100 × 300 Kaggle spectrogram; CHB-MIT: 18 × window samples) on the CPU, and on the GPU with the config's AMP setting
when one is available. Beside the model's step rate it prints the data loader's rate in samples
per core-second: `WindowDataset` items (memory-mapped slices plus the config's CPU-side
augmentations) read from a cache of synthetic HMS / CHB-MIT data in the real layout, in the main
process with one torch thread (as a DataLoader worker runs: torch gives each worker one thread), timed by CPU
time, best of `--loader-repeats`. A Kaggle notebook's 4 CPUs feed about 4 x that (goal: >= 1,500 samples/s).
Torch's threads for the model steps: `HBAC_THREADS` / `OMP_NUM_THREADS` (`engine.runtime.configure_threads`).

    python benchmarks/train.py [--configs configs/*.yaml] [--batch 16] [--steps 3] [--device cpu|cuda|all]
"""
from __future__ import annotations

import dataclasses

import argparse
import glob
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hbac.cache import Cache, prepare
from hbac.config import DataConfig, ExperimentConfig, from_dict, load_config, to_dict
from hbac.data.dataset import experiment_dataset, model_n_times
from hbac.datasets import adapter_for
from hbac.datasets.synthetic import write_chbmit, write_hms
from hbac.engine.losses import build_loss
from hbac.engine.runtime import amp_dtype, configure_threads, grad_scaler, place_model
from hbac.models import build_model, count_parameters
from hbac.signals.montage import montage_names

REPO = Path(__file__).resolve().parents[1]


def shapes(cfg: ExperimentConfig) -> tuple[int, float, int]:
    """(n_classes, fs, n_times) of an experiment's model input (`model.window_s` crops the cached window)."""
    adapter = adapter_for(cfg.data)
    fs = cfg.data.eeg.fs or adapter.fs
    return len(adapter.classes), fs, model_n_times(cfg, adapter.sample_s(cfg.data)[1], fs)


def batch_for(cfg: ExperimentConfig, b: int, device: torch.device) -> dict[str, torch.Tensor]:
    n_ch = len(montage_names(cfg.data.eeg.montage))
    k, _, n_t = shapes(cfg)
    out = {"eeg": torch.randn(b, n_ch, n_t, device=device) * 30, "target": torch.softmax(torch.randn(b, k, device=device), 1)}
    if cfg.model.kind in ("2d", "multimodal") and "kaggle_spec" in cfg.model.inputs:
        out["kaggle_spec"] = torch.randn(b, 4, 100, 300, device=device)
    return out


def bench(cfg: ExperimentConfig, device: torch.device, b: int, steps: int) -> tuple[float, float, int]:
    """(train samples/s, inference samples/s, parameters) for one config on one device."""
    n_ch = len(montage_names(cfg.data.eeg.montage))
    k, fs, n_t = shapes(cfg)
    model = place_model(build_model(dataclasses.replace(cfg.model, pretrained=False), k, montage_names(cfg.data.eeg.montage), fs, n_t, window_filter=cfg.data.window_filter()), device)
    loss_fn = build_loss(cfg.train)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dt = amp_dtype(cfg.train.amp, device)
    scaler = grad_scaler(dt)
    batch = batch_for(cfg, b, device)
    assert batch["eeg"].shape[1] == n_ch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        with torch.autocast(device.type, dtype=dt or torch.float32, enabled=dt is not None):
            logits = model(batch)
        loss = loss_fn(logits.float(), batch["target"], None)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    model.train()
    train_step()  # warm-up
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    sync()
    train_sps = b * steps / (time.perf_counter() - t)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=dt or torch.float32, enabled=dt is not None):
        model(batch)
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            model(batch)
        sync()
    infer_sps = b * steps / (time.perf_counter() - t)
    return train_sps, infer_sps, count_parameters(model)


_CACHES: dict[str, object] = {}


def _cache_for(cfg: ExperimentConfig, root: Path):
    """A small cache in the config's data layout (synthetic data, the config's preprocessing), built once per data config."""
    key = cfg.data.hash()
    if key not in _CACHES:
        data = root / cfg.data.dataset
        if not data.exists():
            if cfg.data.dataset == "hms":
                write_hms(data, n_eegs=12, seed=0, n_test=1)
            else:
                write_chbmit(data, n_patients=1, seed=0, n_files=2, file_s=300.0)
        d = to_dict(cfg.data) | {"data_dir": str(data), "cache_root": str(root / "cache"), "name": f"bench_{key}", "workers": 1}
        d.pop("patients", None)
        _CACHES[key] = Cache(prepare(from_dict(DataConfig, d, "benchmark"), progress=False))
    return _CACHES[key]


def loader_rate(cfg: ExperimentConfig, root: Path, n_items: int = 256, repeats: int = 3) -> float:
    """Dataset items per CPU-second of the main process (slicing, CPU augmentations, collation), best of `repeats`.

    Runs with one torch thread, as a DataLoader worker does: with more, collation's `torch.stack` spreads
    over threads that compete with the other workers (several times slower per core on a busy machine).
    """
    cache = _cache_for(cfg, root)
    ds = experiment_dataset(cfg, cache, cache.samples, train=True)  # centred crop, per_eeg sub-windows, CPU augmentations
    loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = 0.0
    try:
        for _ in range(repeats):
            done, t = 0, time.process_time()
            while done < n_items:
                for batch in loader:
                    done += len(batch["target"])
                    if done >= n_items:
                        break
            best = max(best, done / (time.process_time() - t))
    finally:
        torch.set_num_threads(threads)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=None, help="experiment configs (default: configs/*.yaml except ensembles and features)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--loader-repeats", type=int, default=3, help="loader passes of 256 items; the best counts (default 3)")
    a = p.parse_args()
    configure_threads()
    paths = a.configs or sorted(glob.glob(str(REPO / "configs" / "*.yaml")))
    devices = []
    if a.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if a.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads" + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print(f"{'config':<34} {'device':<6} {'params':>10} {'train/s':>9} {'infer/s':>9} {'step ms':>8} {'loader/core-s':>14} {'x4 CPUs':>8}")
    with tempfile.TemporaryDirectory(prefix="hbac_bench_") as tmp:
        for path in paths:
            cfg = load_config(path)
            if not isinstance(cfg, ExperimentConfig) or cfg.model.kind == "features":
                continue
            rate = loader_rate(cfg, Path(tmp), repeats=a.loader_repeats)
            for dev in devices:
                tr, inf, n = bench(cfg, dev, a.batch, a.steps)
                print(f"{Path(path).stem:<34} {dev.type:<6} {n:>10,} {tr:>9.2f} {inf:>9.2f} {1000 * a.batch / tr:>8.0f} {rate:>14.0f} {4 * rate:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
