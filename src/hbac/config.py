"""Typed, validated configuration: YAML → nested dataclasses.

Every config file is validated on load: an unknown key, a missing required key or a
value of the wrong type is a `ConfigError` that names the dotted key path and the file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence, Union

import yaml

from hbac.datasets import DatasetAdapter, adapter_for
from hbac.errors import ConfigError
from hbac.fields import bounded
from hbac.io import atomic_write_text


# --------------------------------------------------------------------------- data / cache
@dataclass
class EEGParams:
    """How raw EEG becomes the cached signal (all of it is part of the cache hash)."""

    montage: Literal["double_banana", "double_banana_central", "raw", "chbmit_banana", "tcp"] = "double_banana"
    nan: Literal["interp", "zero", "mean"] = "interp"  # how NaN stretches are filled
    bandpass: Optional[list[float]] = bounded(factory=lambda: [0.5, 20.0], ge=0)  # Hz [low, high], null = off; 0 = that edge off
    notch_hz: Optional[float] = bounded(None, gt=0)  # e.g. 60 for CHB-MIT, 50/60 for mains
    # where bandpass/notch run: `recording` = on each whole recording at prepare (CHB-MIT: detect
    # filters whole EDFs too); `window` = the cache keeps the signal unfiltered and the model filters
    # each window on its device (HMS: test EEGs are 50 s files, so training must filter 50 s windows)
    filter_on: Literal["recording", "window"] = "recording"
    clip_uv: Optional[float] = bounded(1024.0, gt=0)  # symmetric clip (after filtering when filter_on is recording), null = off
    standardize: bool = False  # per-channel z-score over each recording
    fs: Optional[float] = bounded(None, gt=0)  # resample to this rate; null keeps the dataset's native rate
    dtype: Literal["float32", "float16"] = "float32"
    # recordings with more than bad_channels_max dead (all-NaN or flat) channels: keep them with those
    # channels zeroed, drop their rows, or stop with an error (hbac.cache.health); counted in meta.json either way
    bad_channels: Literal["zero", "drop", "error"] = "zero"
    bad_channels_max: int = 0
    ica: bool = False  # ICA artifact removal (signals.ica: automatic EOG/EMG component rejection); costs time
    ica_eog_corr: float = 0.6  # reject a component whose 0.1-3 Hz activity correlates this much with FP channels
    ica_emg_ratio: float = 0.6  # reject a component with this share of its power above 20 Hz


@dataclass
class DataConfig:
    """A cache: which raw data, which split, which preprocessing."""

    name: str
    dataset: str = "hms"  # a registered adapter (hbac.datasets.registered()); checked on load
    data_dir: str = "inputs/hms"
    split: Literal["train", "test"] = "train"
    cache_root: str = "inputs/cache"
    eeg: EEGParams = field(default_factory=EEGParams)
    allow_missing: bool = False
    skip_unreadable: bool = False  # skip (and count) recordings whose files cannot be read, e.g. at test time
    workers: int = bounded(0, ge=0)  # prepare workers (threads or processes: cache.build.uses_threads), 0 = all cores
    plugins: list[str] = field(default_factory=list)  # adapter modules to import first: .py paths or dotted names
    # the dataset's own keys (e.g. HMS `kaggle_spec`), an instance of its adapter's `options` dataclass; in a file
    # they sit at the top level beside the keys above (`to_dict` writes them back there); None = its defaults
    options: Any = field(default=None, metadata={"flatten": True})

    def __post_init__(self) -> None:
        """Import `plugins`, check `dataset` against the registry, default `options` to the adapter's (construction only)."""
        opts = _adapter(self.dataset, self.plugins).options
        if self.options is None:
            self.options = opts()
        elif type(self.options) is not opts:
            raise ConfigError(f"options: dataset {self.dataset!r} takes {opts.__qualname__}, got {type(self.options).__qualname__}")

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        """Pickle as the mapping: unpickling imports `plugins` before it rebuilds `options`, whose class may live in a
        plugin module that a fresh process (a forkserver worker) has not imported yet."""
        return _data_from_dict, (to_dict(self),)

    def cache_dir(self) -> Path:
        return Path(self.cache_root) / self.name

    def hash_params(self) -> dict[str, Any]:
        """The parameters that change cache content (not where it lives, how fast it builds, or what the build was
        allowed to skip: `allow_missing` / `skip_unreadable` are recorded in meta.json's `build` and `skipped`)."""
        d = to_dict(self)
        for k in ("name", "cache_root", "workers", "plugins", "allow_missing", "skip_unreadable"):
            d.pop(k)
        d["data_dir"] = str(Path(self.data_dir).resolve())
        for k, v in getattr(self.options, "legacy", {}).items():  # keys every dataset once had: caches built before keep their hash
            d.setdefault(k, v)
        if self.eeg.filter_on == "window":  # applied by the model, not stored in the cache
            d["eeg"].pop("bandpass")
            d["eeg"].pop("notch_hz")
        if not self.eeg.ica:  # ICA off: its thresholds change nothing (and caches built before it stay valid)
            for k in ("ica", "ica_eog_corr", "ica_emg_ratio"):
                d["eeg"].pop(k, None)
        return d

    def window_filter(self) -> Optional[dict[str, Any]]:
        """{bandpass, notch_hz} that models apply per window (filter_on: window), or None."""
        if self.eeg.filter_on != "window" or not (self.eeg.bandpass or self.eeg.notch_hz):
            return None
        return {"bandpass": self.eeg.bandpass, "notch_hz": self.eeg.notch_hz}

    def hash(self) -> str:
        return params_hash(self.hash_params())


def _adapter(dataset: Any, plugins: Any, path: str = "") -> DatasetAdapter:
    """The adapter of `dataset` after importing `plugins`; ConfigError naming `path.dataset` (listing the registered
    ones) or `path.plugins`."""
    try:
        return adapter_for(types.SimpleNamespace(dataset=dataset, plugins=plugins))
    except ConfigError as e:
        msg = f"dataset: {e}" if str(e).startswith("unknown dataset") else str(e)
        raise ConfigError(f"{path}.{msg}" if path and not msg.startswith("$") else msg) from None


def _route_options(d: dict[str, Any], path: str) -> dict[str, Any]:
    """A raw data-config mapping with its dataset's own keys validated into `options` (the adapter's dataclass).

    A key that neither the generic config nor the dataset's options declare is a ConfigError naming the key and
    the dataset; an old generic key the dataset lists in `options.legacy` is accepted only at that value."""
    generic = {f.name for f in dataclasses.fields(DataConfig)} - {"options"}
    dataset = _coerce(d.get("dataset", "hms"), str, _key(path, "dataset"))
    adapter = _adapter(dataset, _coerce(d.get("plugins", []), list[str], _key(path, "plugins")), path)
    cls = adapter.options
    own, legacy = {f.name for f in dataclasses.fields(cls)}, getattr(cls, "legacy", {})
    kept: dict[str, Any] = {}
    for k, v in d.items():
        if k in generic:
            continue
        if k in own:
            kept[k] = v
        elif k in legacy and deep_update({k: legacy[k]}, {k: v}) == {k: legacy[k]}:
            continue  # the value every config of this dataset had: it never changed anything
        elif k in legacy:
            raise ConfigError(f"{_key(path, k)}: dataset {dataset!r} has no such option (a saved config may give it only as "
                              f"{legacy[k]!r}, which changes nothing)")
        else:
            raise ConfigError(f"unknown key '{_key(path, k)}' for dataset {dataset!r} "
                              f"(allowed here: {', '.join(sorted(generic | own))})")
    out = {k: v for k, v in d.items() if k in generic}
    out["options"] = _build(cls, kept, path)
    return out


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _data_from_dict(d: dict[str, Any]) -> DataConfig:
    """A pickled DataConfig back (`DataConfig.__reduce__`)."""
    return _build(DataConfig, d)


# --------------------------------------------------------------------------- experiment
@dataclass
class FoldConfig:
    n_folds: int = bounded(5, ge=2)
    seed: int = 42
    scheme: Literal["group", "time"] = "group"  # time: CHB-MIT per-patient, train on earlier data
    file: Optional[str] = None  # explicit fold CSV; default inputs/folds/<dataset>_<n>f_s<seed>.csv


@dataclass
class SelectionConfig:
    """Which cached samples are trained on (validation always uses the same strategy)."""

    strategy: Literal["all", "per_eeg", "min_votes"] = "all"
    min_votes: int = bounded(10, ge=1)  # for strategy min_votes
    # per_eeg: which labelled sub-window of an EEG a training item reads: always the middle one, or a
    # random one each epoch (deterministic per seed, fold and epoch); validation reads each row's own window
    per_eeg_window: Literal["middle", "random"] = "middle"


@dataclass
class SpecParams:
    """EEG spectrogram computed inside the model (torch, runs on the GPU)."""

    kind: Literal["stft", "mel"] = "mel"
    n_fft: int = bounded(1024, ge=2)
    hop: int = bounded(50, ge=1)
    # 128 samples (0.64 s at 200 Hz) zero-padded to n_fft, as the top HMS solutions' mel images
    # (Chris Deotte's EEG-to-spectrogram notebook: librosa n_fft 1024, win_length 128); null = n_fft
    win_length: Optional[int] = bounded(128, ge=1)
    n_mels: int = bounded(128, ge=1)
    fmin: float = bounded(0.0, ge=0)
    fmax: float = bounded(20.0, gt=0)
    out_width: int = bounded(256, ge=1)  # time frames after resize
    out_height: int = bounded(128, ge=1)  # frequency bins after resize


@dataclass
class CWTParams:
    """Morlet CWT scalogram computed inside the model (torch, runs on the GPU): `eeg_cwt` input."""

    fmin: float = bounded(0.5, gt=0)  # Hz, lowest centre frequency
    fmax: float = bounded(20.0, gt=0)  # Hz, highest centre frequency
    n_freqs: int = bounded(40, ge=2)  # log-spaced centre frequencies
    n_cycles: float = bounded(7.0, gt=0)  # wavelet width: cycles per standard deviation × 2π (time/frequency trade-off)
    out_height: int = 128  # frequency rows after resize
    out_width: int = 256  # time frames after resize


@dataclass
class Raw2DParams:
    """The raw montage laid out as a 2D image: `eeg_raw2d` input."""

    segments: int = bounded(4, ge=1)  # each channel's window is cut into this many rows, stacked under each other
    scale_uv: float = bounded(100.0, gt=0)  # fixed scaling: image = µV / scale_uv
    out_height: Optional[int] = bounded(None, ge=1)  # resize (null = native: channels × segments rows)
    out_width: Optional[int] = bounded(None, ge=1)  # resize (null = native: n_times / segments columns)


@dataclass
class WaveNetParams:
    """WaveNet-style 1D model: gated dilated-convolution blocks, shared over channels."""

    channels: list[int] = bounded(factory=lambda: [8, 16, 32, 64], ge=1)  # width of each block
    dilation_layers: list[int] = bounded(factory=lambda: [6, 6, 6, 6], ge=1)  # n layers: dilations 1, 2, …, 2^(n-1)
    kernel_size: int = bounded(3, ge=1)
    downsample: int = bounded(2, ge=1)  # average-pool stride after each block (1 = full rate throughout)
    scale_uv: float = bounded(32.0, gt=0)  # fixed input scaling: µV / scale_uv
    hidden: int = bounded(64, ge=1)  # head width


@dataclass
class EffNet1DParams:
    """EfficientNet-1D: MBConv blocks (expand, depthwise conv, squeeze-excitation, project)."""

    stem: int = bounded(32, ge=1)  # stem width
    stem_stride: int = bounded(2, ge=1)
    widths: list[int] = bounded(factory=lambda: [24, 40, 80, 112, 192], ge=1)  # per stage
    depths: list[int] = bounded(factory=lambda: [2, 2, 3, 3, 2], ge=1)  # blocks per stage
    strides: list[int] = bounded(factory=lambda: [2, 2, 2, 2, 2], ge=1)  # first block of each stage
    kernel_size: int = bounded(7, ge=1)  # depthwise kernel
    expand: int = bounded(4, ge=1)  # expansion ratio of the inverted bottleneck
    se_ratio: float = bounded(0.25, ge=0)  # squeeze-excitation width / block input width
    head: int = bounded(512, ge=1)  # 1x1 conv width before pooling
    scale_uv: float = bounded(50.0, gt=0)  # fixed input scaling: µV / scale_uv


@dataclass
class OneDParams:
    """1D raw-EEG model."""

    channels: list[int] = bounded(factory=lambda: [32, 64, 128, 256], ge=1)
    kernel_size: int = bounded(7, ge=1)
    blocks_per_stage: int = bounded(2, ge=1)
    downsample: int = bounded(4, ge=1)  # stride of each stage
    pooling: Literal["avg", "gru", "attention"] = "gru"
    hidden: int = bounded(128, ge=1)
    # fixed input scaling: eeg / scale_uv (µV). 32 as Chris Deotte's WaveNet starter (clip ±1024 µV,
    # / 32): bipolar EEG has a std of ~10-50 µV, so inputs are O(1) and amplitude differences survive
    # (a per-sample std would erase them). Set 1.0 for caches built with eeg.standardize.
    scale_uv: float = bounded(32.0, gt=0)


# 2D inputs the model computes from the EEG itself (hbac.models.spec2d); any other input is a dataset's extra input
EEG_DERIVED_INPUTS = ("eeg_spec", "eeg_cwt", "eeg_raw2d")


@dataclass
class ModelConfig:
    kind: Literal["2d", "1d", "wavenet", "effnet1d", "multimodal", "features"] = "2d"
    backbone: str = "efficientnet_b0"
    pretrained: bool = False
    pretrained_path: Optional[str] = None  # local weights file, never downloaded
    # 2d: the image tiles, any of kaggle_spec, eeg_spec, eeg_cwt, eeg_raw2d (hbac.models.spec2d.INPUTS_2D)
    inputs: list[Literal["kaggle_spec", "eeg_spec", "eeg_cwt", "eeg_raw2d"]] = field(default_factory=lambda: ["kaggle_spec", "eeg_spec"])
    # seconds of EEG fed to the model, centred on the label (the labelled part is the central 10 s);
    # null = the whole cached window (e.g. HMS data.eeg_window_s). TTA offsets shift this crop.
    window_s: Optional[float] = bounded(None, gt=0)
    spec: SpecParams = field(default_factory=SpecParams)
    cwt: CWTParams = field(default_factory=CWTParams)
    raw2d: Raw2DParams = field(default_factory=Raw2DParams)
    oned: OneDParams = field(default_factory=OneDParams)
    wavenet: WaveNetParams = field(default_factory=WaveNetParams)
    effnet1d: EffNet1DParams = field(default_factory=EffNet1DParams)
    drop_rate: float = bounded(0.2, ge=0, lt=1)
    gem_p: float = bounded(3.0, gt=0)
    in_chans: int = bounded(3, ge=1)
    # Kaggle spectrogram normalisation, computed in the model: standardize = the starter notebook
    # (log of the power clipped to e^-4 … e^8, per-image standardisation, NaN → 0 after normalising);
    # fixed = log(clip(x, 1e-4, 1e4)) scaled to [-1, 1] by constants
    kaggle_spec_norm: Literal["standardize", "fixed"] = "standardize"
    image_size: Optional[list[int]] = bounded(None, ge=1)  # 2d: [height, width] the assembled image is resized to (null = as assembled)
    features_model: Literal["logreg", "hgb"] = "hgb"  # kind == features


@dataclass
class TransformSpec:
    """One albumentations transform: its class name in the `albumentations` package and its keyword arguments."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    mixup: float = bounded(0.0, ge=0, le=1)  # probability of mixup on a batch
    mixup_alpha: float = bounded(0.4, gt=0)
    time_shift_s: float = bounded(0.0, ge=0)  # random shift of the EEG window, ± seconds
    time_mask: float = bounded(0.0, ge=0, le=1)  # probability of one time mask on spectrogram inputs
    freq_mask: float = bounded(0.0, ge=0, le=1)
    hemisphere_flip: float = bounded(0.0, ge=0, le=1)  # probability of swapping left/right chains
    # albumentations transforms applied on the CPU (in the Dataset) to the Kaggle spectrogram image
    # (100 freq × 300 time × 4 regions, HWC), e.g. [{name: XYMasking, params: {...}}]; see hbac.data.albument
    albumentations: list[TransformSpec] = field(default_factory=list)


@dataclass
class StageConfig:
    enabled: bool = False
    min_votes: int = bounded(10, ge=1)
    epochs: int = bounded(3, ge=1)
    lr: float = bounded(3e-4, gt=0)


@dataclass
class PseudoConfig:
    """Pseudo-labels for low-vote training rows from another run's out-of-fold predictions (stage 1)."""

    source: str  # an OOF file with `<class>_pred` columns: outputs/<experiment or ensemble>/oof.csv
    max_votes: int = bounded(9, ge=0)  # rows with n_votes <= max_votes get pseudo-labels
    weight: float = bounded(0.5, ge=0, le=1)  # target = (1 - weight) · votes + weight · OOF prediction (1 = replace)


@dataclass
class TrainConfig:
    epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(1e-2, ge=0)
    schedule: Literal["onecycle", "cosine", "constant"] = "cosine"
    warmup_frac: float = bounded(0.1, ge=0, lt=1)
    grad_clip: Optional[float] = bounded(1.0, gt=0)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    ema: Optional[float] = bounded(None, gt=0, lt=1)  # decay, e.g. 0.999
    seed: int = 42
    seeds: Optional[list[int]] = None  # several seeds per fold, averaged as one experiment (overrides seed)
    num_workers: Optional[int] = bounded(None, ge=0)  # DataLoader workers: null = what the machine has (0 on a CPU run); a number caps it
    threads: Optional[int] = bounded(None, ge=1)  # torch CPU threads: null = HBAC_THREADS, OMP_NUM_THREADS, else physical cores
    loss: Literal["kl", "bce", "focal"] = "kl"
    weight_by_votes: bool = False
    class_weights: Optional[list[float]] = bounded(None, ge=0)
    sampler: Literal["none", "balanced"] = "none"
    focal_gamma: float = bounded(2.0, ge=0)
    max_steps_per_epoch: Optional[int] = bounded(None, ge=1)  # cap, for quick runs
    # per-epoch scalars besides fold{k}/history.csv (= csv): tensorboard events (extra `tensorboard`) or wandb (offline)
    logger: Literal["none", "csv", "tensorboard", "wandb"] = "csv"
    stage2: StageConfig = field(default_factory=StageConfig)
    pseudo: Optional[PseudoConfig] = None


@dataclass
class TTAConfig:
    hemisphere_flip: bool = False
    # shifts (s) of the model's EEG window around the label; predictions over all offsets (and flips) averaged
    offsets_s: list[float] = field(default_factory=lambda: [0.0])


@dataclass
class ExperimentConfig:
    name: str
    data: DataConfig
    folds: FoldConfig = field(default_factory=FoldConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tta: TTAConfig = field(default_factory=TTAConfig)
    output_root: str = "outputs"

    def output_dir(self) -> Path:
        return Path(self.output_root) / self.name


@dataclass
class EnsembleConfig:
    name: str
    members: list[str]  # experiment names under output_root
    fit_on: Literal["all", "min_votes"] = "all"
    min_votes: int = bounded(10, ge=1)
    output_root: str = "outputs"

    def output_dir(self) -> Path:
        return Path(self.output_root) / self.name


# --------------------------------------------------------------------------- cross-field checks
# Each check takes the just-built config and its key prefix ("" or "data." …) and raises a ConfigError that
# names the keys in conflict. They run on load (from_dict / load_config), never mid-training.
def check_name(cfg: Any, p: str) -> None:
    """`name` becomes a folder name: non-empty, no path separators, not a hidden or relative name."""
    n = cfg.name
    if not n.strip() or "/" in n or "\\" in n or n.startswith("."):
        raise ConfigError(f"{p}name: {n!r} is not a valid folder name (non-empty, no '/', not starting with '.')")


def check_bandpass(eeg: EEGParams, p: str) -> None:
    """`eeg.bandpass` is [low, high] Hz with low < high, and high below the Nyquist rate when `eeg.fs` is set."""
    band = eeg.bandpass
    if band is None:
        return
    if len(band) != 2:
        raise ConfigError(f"{p}bandpass: expected [low, high] in Hz, got {band}")
    low, high = band
    if low > 0 and high > 0 and low >= high:
        raise ConfigError(f"{p}bandpass: low edge {low:g} Hz must be below the high edge {high:g} Hz")
    if eeg.fs is not None:
        check_band_vs_rate(band, eeg.fs, f"{p}bandpass", f"{p}fs = {eeg.fs:g} Hz")


def check_band_vs_rate(band: Sequence[float], fs: float, key: str, what: str) -> None:
    """A band edge at or above fs/2 cannot be filtered: ConfigError naming `key` and where `fs` came from."""
    for edge in band:
        if edge and edge >= fs / 2:
            raise ConfigError(f"{key}: edge {edge:g} Hz is at or above the Nyquist frequency {fs / 2:g} Hz ({what})")


def check_band_vs_native_rate(data: DataConfig, p: str) -> None:
    """The band-pass runs at the recordings' native rate: its edges must be below the dataset's Nyquist frequency."""
    fs = adapter_for(data).fs
    if data.eeg.bandpass and fs:
        check_band_vs_rate(data.eeg.bandpass, fs, f"{p}eeg.bandpass", f"dataset {data.dataset!r} is sampled at {fs:g} Hz")


def check_spec(spec: SpecParams, p: str) -> None:
    """STFT window within the FFT size; mel band non-empty."""
    if spec.win_length is not None and spec.win_length > spec.n_fft:
        raise ConfigError(f"{p}win_length: {spec.win_length} is longer than {p}n_fft {spec.n_fft}")
    if spec.fmin >= spec.fmax:
        raise ConfigError(f"{p}fmin ({spec.fmin:g} Hz) must be below {p}fmax ({spec.fmax:g} Hz)")


def check_oned(oned: OneDParams, p: str) -> None:
    """At least one stage; an odd kernel keeps 'same' padding symmetric."""
    if not oned.channels:
        raise ConfigError(f"{p}channels: needs at least one stage")
    if oned.kernel_size % 2 == 0:
        raise ConfigError(f"{p}kernel_size: must be odd, got {oned.kernel_size}")


def check_model_inputs(exp: ExperimentConfig, p: str) -> None:
    """2D/multimodal inputs are non-empty and unique; an input other than those the model computes from the EEG
    (`EEG_DERIVED_INPUTS`) must be an extra input the dataset's adapter declares and caches for this data config."""
    m = exp.model
    if m.kind not in ("2d", "multimodal"):
        return
    if not m.inputs:
        raise ConfigError(f"{p}model.inputs: empty; a {m.kind} model needs at least one input (e.g. eeg_spec)")
    if len(set(m.inputs)) != len(m.inputs):
        raise ConfigError(f"{p}model.inputs: {m.inputs} lists an input twice")
    adapter = adapter_for(exp.data)
    declared = {e.name: e for e in adapter.extra_inputs}
    for name in m.inputs:
        e = declared.get(name)
        if e is None and name not in EEG_DERIVED_INPUTS:
            raise ConfigError(f"{p}model.inputs: {name!r} is not an input of dataset {adapter.name!r} "
                              f"(its extra inputs: {', '.join(declared) or 'none'}; from the EEG: {', '.join(EEG_DERIVED_INPUTS)})")
        if e is not None and not e.enabled(exp.data):
            how = f"{p}data.{e.switch}: true" if e.switch else "a data config that caches it"
            raise ConfigError(f"{p}model.inputs: {name!r} needs {how} (the cache would not hold it)")


def check_spec_vs_rate(exp: ExperimentConfig, p: str) -> None:
    """The in-model spectrogram's fmax cannot exceed the cached signal's Nyquist rate (when data.eeg.fs fixes it)."""
    fs = exp.data.eeg.fs
    if fs is not None and exp.model.kind in ("2d", "multimodal") and "eeg_spec" in exp.model.inputs and exp.model.spec.fmax > fs / 2:
        raise ConfigError(f"{p}model.spec.fmax: {exp.model.spec.fmax:g} Hz is above the Nyquist frequency of {p}data.eeg.fs ({fs:g} Hz)")


def check_stage2(exp: ExperimentConfig, p: str) -> None:
    """Stage 2 must select fewer rows than stage 1: its min_votes above a min_votes selection's."""
    s2, sel = exp.train.stage2, exp.selection
    if s2.enabled and sel.strategy == "min_votes" and s2.min_votes <= sel.min_votes:
        raise ConfigError(
            f"{p}train.stage2.min_votes ({s2.min_votes}) <= {p}selection.min_votes ({sel.min_votes}): stage 2 would "
            "train on the same rows as stage 1; raise train.stage2.min_votes or set train.stage2.enabled: false"
        )


def check_class_weights(train: TrainConfig, p: str) -> None:
    """Class weights (already each >= 0) must not all be zero: the loss would be 0 everywhere."""
    cw = train.class_weights
    if cw is not None and (not cw or sum(cw) <= 0):
        raise ConfigError(f"{p}class_weights: {cw} must hold at least one positive weight")


def check_loss_vs_task(exp: ExperimentConfig, p: str) -> None:
    """The loss's per-class weights must match the dataset's classes (6 for HMS, 2 for a seizure task)."""
    cw = exp.train.class_weights
    classes = list(adapter_for(exp.data).classes)
    if cw is not None and len(cw) != len(classes):
        raise ConfigError(
            f"{p}train.class_weights: {len(cw)} values for the {len(classes)} classes of {p}data.dataset "
            f"{exp.data.dataset!r} ({', '.join(classes)})"
        )


def check_members(ens: EnsembleConfig, p: str) -> None:
    """An ensemble has at least one member, each once, and is not its own member."""
    if not ens.members:
        raise ConfigError(f"{p}members: empty; list the experiments to blend")
    dup = sorted({m for m in ens.members if ens.members.count(m) > 1})
    if dup:
        raise ConfigError(f"{p}members: {dup[0]!r} is listed twice")
    if ens.name in ens.members:
        raise ConfigError(f"{p}members: the ensemble's own name {ens.name!r} cannot be a member")


CHECKS: dict[type, tuple[Callable[[Any, str], None], ...]] = {
    EEGParams: (check_bandpass,),
    SpecParams: (check_spec,),
    OneDParams: (check_oned,),
    TrainConfig: (check_class_weights,),
    DataConfig: (check_name, check_band_vs_native_rate),
    ExperimentConfig: (check_name, check_model_inputs, check_spec_vs_rate, check_stage2, check_loss_vs_task),
    EnsembleConfig: (check_name, check_members),
}


# --------------------------------------------------------------------------- machinery
def params_hash(d: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able dict."""
    s = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(s.encode()).hexdigest()[:16]


def to_dict(obj: Any) -> Any:
    """Dataclass → plain dict (recursively), suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            v = to_dict(getattr(obj, f.name))
            if f.metadata.get("flatten"):  # DataConfig.options: its keys sit beside the generic ones
                out.update(v or {})
            else:
                out[f.name] = v
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against type hint `tp`; return the (possibly converted) value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[-1] if errors else f"{path}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = args[:1] or (Any,)
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")


_OPS = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"), "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}


def _check_bounds(value: Any, bounds: dict[str, float], key: str) -> None:
    """Raise ConfigError naming `key` when `value` (or any item of a list value) is out of `bounds`."""
    if value is None or not bounds:
        return
    for i, v in enumerate(value if isinstance(value, list) else [value]):
        for op, b in bounds.items():
            ok, sym = _OPS[op]
            if not ok(v, b):
                where = f"{key}[{i}]" if isinstance(value, list) else key
                raise ConfigError(f"{where}: must be {sym} {b:g}, got {v!r}")


def _build(cls: type, d: dict[str, Any], path: str = "") -> Any:
    """Validate mapping `d` into dataclass `cls` (fields' types and bounds, then CHECKS); errors name `path.key`."""
    if cls is DataConfig:
        d = _route_options(d, path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown key '{key}' (allowed here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name in d:
            kwargs[name] = _coerce(d[name], hints[name], key)
            _check_bounds(kwargs[name], f.metadata.get("bounds", {}), key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key '{key}'")
    try:
        obj = cls(**kwargs)
    except ConfigError as e:  # a cross-field check in __post_init__: prefix the key path
        raise ConfigError(f"{path}.{e}" if path and not str(e).startswith("$") else str(e)) from None
    for check in CHECKS.get(cls, ()):
        check(obj, f"{path}." if path else "")
    return obj


def from_dict(cls: type, d: dict[str, Any], source: str = "<dict>") -> Any:
    """Build a config dataclass from a dict, with every check of `load_config`; errors name the key and the source."""
    try:
        cfg = _build(cls, d)
        if isinstance(cfg, ExperimentConfig):
            check_experiment(cfg)
        return cfg
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_experiment(cfg: ExperimentConfig) -> None:
    """Checks across keys that types alone cannot express; a ConfigError names the key."""
    m, t = cfg.model, cfg.train
    sample = adapter_for(cfg.data).sample_s(cfg.data)  # (key, seconds) of every cached sample
    if m.window_s is not None and sample is not None and not m.window_s <= sample[1]:
        raise ConfigError(f"model.window_s: {m.window_s} must be <= data.{sample[0]} ({sample[1]}), the cached window")
    if not cfg.tta.offsets_s:
        raise ConfigError("tta.offsets_s: needs at least one offset (0 = the centre)")
    if t.seeds is not None and (not t.seeds or len(set(t.seeds)) != len(t.seeds)):
        raise ConfigError(f"train.seeds: needs distinct seeds, got {t.seeds}")
    if t.pseudo is not None and not 0.0 <= t.pseudo.weight <= 1.0:
        raise ConfigError(f"train.pseudo.weight: must be in [0, 1], got {t.pseudo.weight}")
    if m.kind == "features" and (t.seeds or t.pseudo is not None):
        raise ConfigError("train.seeds / train.pseudo: the features baseline (model.kind features) trains neither; use a torch model")
    if cfg.augment.albumentations:
        check_albumentations(cfg.augment.albumentations, "augment.albumentations")


def check_albumentations(specs: list[TransformSpec], key: str) -> None:
    """Every spec names an albumentations transform that accepts its params (else ConfigError naming the key)."""
    # albumentations pulls in OpenCV (~1 s); only configs that use it pay for the import
    import albumentations as A

    for i, spec in enumerate(specs):
        cls = getattr(A, spec.name, None)
        if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)) or cls is A.BasicTransform:
            raise ConfigError(f"{key}[{i}].name: {spec.name!r} is not an albumentations transform (e.g. XYMasking, CoarseDropout)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # albumentations only warns about unknown arguments
                cls(**spec.params)
        except (TypeError, ValueError, UserWarning) as e:  # pydantic's ValidationError is a ValueError
            first = str(e).strip().splitlines()
            raise ConfigError(f"{key}[{i}].params: {spec.name} rejects {spec.params}: {' '.join(first[:3])}") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars, as users expect: `1e-3` is a float (PyYAML's 1.1 rules make it a string)
    and only true/false are booleans (1.1 also turns on/off/yes/no into booleans, so `amp: off` was False)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text → Python objects; a syntax error is one ConfigError line naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's top-level mapping; errors name the file (and the line of a YAML syntax error)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file") from None
    d = parse_yaml(text, str(path))
    if d is None:  # else an empty file reads as {} and is blamed for looking like a data config
        raise ConfigError(f"{path}: empty config file (no keys)")
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(d).__name__}")
    return d


def _resolve_data(d: dict[str, Any], base: Path) -> dict[str, Any]:
    """`data: other.yaml` in an experiment config is a reference, resolved relative to the file."""
    data = d.get("data")
    if isinstance(data, str):
        p = Path(data)
        if not p.is_absolute() and not p.exists():
            p = base / data
        d = dict(d)
        d["data"] = read_yaml(p)
    return d


def config_kind(d: dict[str, Any]) -> str:
    """Guess which config a dict is: 'experiment', 'ensemble' or 'data'."""
    if "members" in d:
        return "ensemble"
    if "data" in d or "model" in d or "train" in d:
        return "experiment"
    return "data"


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """`--set` arguments → one nested override dict: ["train.epochs=3", "data.eeg.bandpass=[0.5,40]"] →
    {"train": {"epochs": 3}, "data": {"eeg": {"bandpass": [0.5, 40]}}}. Values are YAML (`null`, lists, numbers);
    a later item wins over an earlier one."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. train.epochs=3")
        value = parse_yaml(raw, f"--set {key}")
        out = deep_update(out, _nest(parts, value))
    return out


def _nest(parts: Sequence[str], value: Any) -> dict[str, Any]:
    """["a", "b"], v → {"a": {"b": v}}."""
    node: Any = value
    for p in reversed(parts):
        node = {p.strip(): node}
    return node


CONFIG_CLASSES: dict[str, type] = {"experiment": ExperimentConfig, "ensemble": EnsembleConfig, "data": DataConfig}


def load_config(
    path: str | Path,
    overrides: Optional[dict[str, Any]] = None,
    *,
    data_overrides: Optional[dict[str, Any]] = None,
    expect: Sequence[str] = ("data", "experiment", "ensemble"),
) -> Any:
    """Load a config file (data, experiment or ensemble), merge overrides into the raw mapping, then validate.

    `data_overrides` go to the cache settings wherever they live (the file's top level for a data config,
    `data:` for an experiment); `overrides` (e.g. from `parse_sets`) are relative to the file's top level
    and applied last. Validation is the same for overridden and file values: an unknown key, a wrong type,
    a value out of range or a cross-field conflict is a one-line ConfigError naming the file and the key.
    """
    path = Path(path)
    d = _resolve_data(read_yaml(path), path.parent)
    kind = config_kind(d)
    if kind not in expect:
        wanted = " or ".join(("an " if k[0] in "aeiou" else "a ") + k for k in expect)
        raise ConfigError(f"{path}: this looks like a {kind} config; expected {wanted} config")
    if data_overrides:
        d = deep_update(d, {"data": data_overrides} if kind == "experiment" else data_overrides)
    if overrides:
        d = _resolve_data(deep_update(d, overrides), path.parent)
    source = str(path) + (" (with command-line overrides)" if overrides or data_overrides else "")
    return from_dict(CONFIG_CLASSES[kind], d, source)


def with_overrides(cfg: Any, overrides: dict[str, Any], source: str = "<derived config>") -> Any:
    """A new, re-validated config: `cfg` with `overrides` (a nested dict) merged in; `cfg` is unchanged."""
    return from_dict(type(cfg), deep_update(to_dict(cfg), overrides), source)


def deep_update(d: dict[str, Any], u: dict[str, Any]) -> dict[str, Any]:
    """`d` with `u` merged in recursively (new dicts; neither input is modified)."""
    out = dict(d)
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
