"""Fault matrix: bad inputs and faults thrown at the real commands, on tiny synthetic data.

Every case runs real commands (`python -m hbac …`, `python submit.py …`) in a fresh copy of a
tiny synthetic dataset, then records: exit code, the message (first `error:` line, else the last
stderr line), leftovers (temp files/folders, processes still alive that the case started, stale
`/tmp/hbac_submit_*`), and the result of a rerun (after the fault is fixed, or as is). Verdict:

- `error`: a clear error: non-zero exit, one line naming the file / key / cause, no traceback,
  nothing left behind (and nothing half-written trusted afterwards);
- `recovered`: the command (or its rerun) did the right thing (rebuilt, skipped and counted, resumed);
- `FAIL`: anything else (a traceback, a vague message, a leftover, a stale or half-written result used).

    OMP_NUM_THREADS=1 python benchmarks/faults.py [--work DIR] [--group G ...] [--case TEXT ...] [--list] [--json F]

Prints a table and totals (per group: errors, recoveries, FAILs, median seconds); writes
`<work>/faults.md` (and `--json F`). The base data (synthetic HMS and CHB-MIT, caches `c` and `chb`,
trained experiments `feat` and `seiz`) is built once in `<work>/base` and copied per case; delete
`<work>/base` to rebuild it. Every command runs with OMP_NUM_THREADS=1 (median 6.8 s per case, 20 min
for the matrix on a shared 2-core CPU at load about 7; 72 min at load 9–15).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TIMEOUT = 300.0  # seconds per command (--timeout)
MARK = "HBAC_FAULT_CASE"  # env marker: find every process a case started, orphans included


# --------------------------------------------------------------------------- running commands


@dataclass
class Run:
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def msg(self) -> str:
        """The message a user sees: the first `error:` / `interrupted:` line, else the last stderr line."""
        lines = [ln.strip() for ln in self.err.splitlines() if ln.strip()]
        for ln in lines:
            if ln.startswith(("error:", "interrupted:")):
                return ln
        return lines[-1] if lines else (self.out.strip().splitlines() or [""])[-1]

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.err


@dataclass
class Ctx:
    """One case's folder (a fresh copy of the base data) and its command runner."""

    root: Path
    base: Path
    tag: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    tmp_before: set[str] = field(default_factory=lambda: {p.name for p in Path(tempfile.gettempdir()).glob("hbac_submit_*")})

    @property
    def hms(self) -> Path:
        return self.root / "hms"

    @property
    def chb(self) -> Path:
        return self.root / "chb"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "HBAC_THREADS": "1", MARK: self.tag, "TQDM_DISABLE": "1"}

    def popen(self, args: list[str], fsize: Optional[int] = None) -> subprocess.Popen:
        def limit() -> None:  # runs in the child: a file size limit simulates a full disk
            # a shell's background job starts with SIGINT ignored, and Python keeps an ignored SIGINT
            # ignored: restore it, or the Ctrl-C case tests nothing
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        p = subprocess.Popen(args, cwd=self.root, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
        self.procs.append(p)
        return p

    def run(self, *args: str, timeout: Optional[float] = None, fsize: Optional[int] = None) -> Run:
        t0 = time.perf_counter()
        argv = [PY, "submit.py", *args[1:]] if args[0] == "submit" else [PY, "-m", "hbac", *args]
        if args[0] == "submit":
            argv[1] = str(REPO / "submit.py")
        p = self.popen(argv, fsize)
        try:
            out, err = p.communicate(timeout=timeout or TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            return Run(124, out, err + "\n(timeout)", time.perf_counter() - t0)
        return Run(p.returncode, out, err, time.perf_counter() - t0)

    def kill_when(self, args: list[str], ready: Callable[[], bool], sig: int, timeout: Optional[float] = None) -> Run:
        """Start a command, send `sig` once `ready()` is true (polled), wait for it."""
        timeout = timeout or TIMEOUT
        t0 = time.perf_counter()
        p = self.popen([PY, "-m", "hbac", *args])
        while time.perf_counter() - t0 < timeout and p.poll() is None and not ready():
            time.sleep(0.02)
        if p.poll() is None:
            os.kill(p.pid, sig)
        out, err = p.communicate(timeout=timeout)
        return Run(p.returncode, out, err, time.perf_counter() - t0)


def children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def marked_processes(tag: str) -> list[psutil.Process]:
    """Live processes carrying this case's env marker (its commands, their workers, orphans)."""
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != os.getpid() and p.environ().get(MARK) == tag and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def leftovers(ctx: Ctx) -> list[str]:
    """Temp files/folders under the case folder, stale submit temp folders, processes still running."""
    left = [str(p.relative_to(ctx.root)) for p in ctx.root.rglob(".*") if p.name.endswith(".tmp") or ".old." in p.name]
    left += [p.name for p in Path(tempfile.gettempdir()).glob("hbac_submit_*") if p.name not in ctx.tmp_before and not _alive_prefix(p.name)]
    procs = marked_processes(ctx.tag)
    if procs:
        time.sleep(2)  # give dying processes a moment
        procs = marked_processes(ctx.tag)
    left += [f"pid {p.pid} ({' '.join(p.cmdline()[:3])[:40]})" for p in procs]
    return left


def _alive_prefix(name: str) -> bool:
    pid = name[len("hbac_submit_"):].split("_", 1)[0]
    return pid.isdigit() and psutil.pid_exists(int(pid))


# --------------------------------------------------------------------------- base data


def write_data_yaml(ctx: Ctx, name: str = "c", dataset: str = "hms", **over) -> Path:
    src = REPO / "configs" / "tiny" / ("data_hms.yaml" if dataset == "hms" else "data_chbmit.yaml")
    d = yaml.safe_load(src.read_text())
    d.update(name=name, data_dir=str(ctx.hms if dataset == "hms" else ctx.chb), cache_root=str(ctx.cache), workers=1)
    for k, v in over.items():
        if isinstance(v, dict):
            d.setdefault(k, {}).update(v)
        else:
            d[k] = v
    p = ctx.root / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def write_exp_yaml(ctx: Ctx, name: str = "feat", base: str = "hms_features.yaml", data_over: Optional[dict] = None,
                   dataset: str = "hms", **over) -> Path:
    d = yaml.safe_load((REPO / "configs" / "tiny" / base).read_text())
    data = yaml.safe_load((REPO / "configs" / "tiny" / ("data_hms.yaml" if dataset == "hms" else "data_chbmit.yaml")).read_text())
    data.update({"data_dir": str(ctx.hms if dataset == "hms" else ctx.chb), "cache_root": str(ctx.cache), "workers": 1, **(data_over or {})})
    d.update(name=name, data=data, output_root=str(ctx.outputs))
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
        else:
            d[k] = v
    p = ctx.root / f"{name}.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


BASE_VERSION = "2"  # bump when make_base builds something else
BASE_CACHES = ("tiny_hms", "tiny_chbmit")  # caches every case starts with (the trained experiment's); others on request


def make_base(work: Path) -> Path:
    """Build once: tiny synthetic HMS (6 EEGs, 2 test) and CHB-MIT (2 patients × 2 files × 120 s), the
    caches `c` (HMS) and `chb`, a trained HMS feature experiment `feat` (cache `tiny_hms`) and a one-epoch
    CHB-MIT 1D experiment `seiz` (cache `tiny_chbmit`) for `detect`.

    Built in `<work>/case` (the folder every case runs in) and then moved to `<work>/base`, so the
    paths recorded in caches and configs are the paths each case sees: a copied cache is reused as is.
    """
    base, root = work / "base", work / "case"
    if (base / "done").exists() and (base / "done").read_text() == BASE_VERSION:
        return base
    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    ctx = Ctx(root, base, "base")
    steps = (["synth", "hms", "--out", str(ctx.hms), "--n-eegs", "6", "--n-test", "2"],
             ["synth", "chbmit", "--out", str(ctx.chb), "--n-patients", "2", "--n-files", "2", "--file-s", "120"],
             ["prepare", str(write_data_yaml(ctx))],
             ["prepare", str(write_data_yaml(ctx, "chb", "chbmit"))],
             ["train", str(write_exp_yaml(ctx))],
             ["train", str(write_exp_yaml(ctx, "seiz", "chbmit_1d.yaml", dataset="chbmit", folds={"n_folds": 2}, train={"epochs": 1}))])
    for args in steps:
        r = ctx.run(*args)
        assert r.rc == 0, f"base: {' '.join(args)} failed: {r.err[-3000:]}"
    for y in root.glob("*.yaml"):
        y.unlink()
    os.replace(root, base)
    (base / "done").write_text(BASE_VERSION)
    return base


def fresh(base: Path, root: Path) -> Ctx:
    """A case folder: a copy of the base data and the trained experiment; of the caches only BASE_CACHES
    (a case that needs `c` or `chb` ready calls `use_cache`)."""
    if root.exists():
        shutil.rmtree(root)

    def skip(d: str, names: list[str]) -> list[str]:
        if Path(d) == base / "cache":
            return [n for n in names if n not in BASE_CACHES and n.lstrip(".").split(".")[0] not in BASE_CACHES]
        return ["done"] if Path(d) == base else []

    shutil.copytree(base, root, symlinks=True, ignore=skip)
    return Ctx(root, base, uuid.uuid4().hex[:12])


def use_cache(ctx: Ctx, name: str = "c") -> Run:
    """Copy base cache `name` (built by `prepare` with the same config, at the same path) into the case: the
    state right after a successful `prepare`, without paying for one. Returns a stand-in successful Run."""
    shutil.copytree(ctx.base / "cache" / name, ctx.cache / name)
    return Run(0, "", "(base cache copied)", 0.0)


# --------------------------------------------------------------------------- fault helpers


def train_csv(ctx: Ctx) -> Path:
    return ctx.hms / "train.csv"


def first_eeg(ctx: Ctx, split: str = "train") -> Path:
    t = pd.read_csv(ctx.hms / f"{split}.csv")
    return ctx.hms / f"{split}_eegs" / f"{int(t.eeg_id.iloc[0])}.parquet"


def first_spec(ctx: Ctx) -> Path:
    t = pd.read_csv(train_csv(ctx))
    return ctx.hms / "train_spectrograms" / f"{int(t.spectrogram_id.iloc[0])}.parquet"


def first_edf(ctx: Ctx) -> Path:
    return sorted(ctx.chb.rglob("*.edf"))[0]


def edit_parquet(path: Path, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    pq.write_table(pa.Table.from_pandas(fn(pd.read_parquet(path)), preserve_index=False), path)


def truncate(path: Path, frac: float = 0.5) -> None:
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * frac))


class Payload:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


# --------------------------------------------------------------------------- verdicts


@dataclass
class Result:
    group: str
    case: str
    rc: int
    msg: str
    left: list[str]
    rerun: str
    verdict: str
    why: str = ""
    seconds: float = 0.0


def clear_error(r: Run, *needles: str) -> tuple[bool, str]:
    """Non-zero exit, no traceback, the message names every needle."""
    if r.rc == 0:
        return False, "exit 0"
    if r.traceback:
        return False, "traceback"
    missing = [n for n in needles if n.lower() not in r.msg.lower()]
    return (not missing), (f"message lacks {missing}" if missing else "")


CASES: list[tuple[str, str, Callable[[Ctx], tuple]]] = []


def case(group: str, name: str):
    def deco(fn):
        CASES.append((group, name, fn))
        return fn
    return deco


# A case returns (first Run, ok: bool, why: str, rerun description). Helpers below build these.


def err_case(r: Run, *needles: str, rerun: Optional[Run] = None, rerun_ok: bool = True) -> tuple:
    ok, why = clear_error(r, *needles)
    desc = "-"
    if rerun is not None:
        desc = f"rc {rerun.rc}"
        if (rerun.rc == 0) != rerun_ok:
            ok, why = False, (why + "; " if why else "") + f"rerun rc {rerun.rc}: {rerun.msg[:80]}"
    return r, ok, why, desc, "error"


def ok_case(r: Run, cond: bool, why: str, rerun: Optional[Run] = None) -> tuple:
    good = r.rc == 0 and cond and not r.traceback
    return r, good, "" if good else (why or f"rc {r.rc}: {r.msg[:80]}"), (f"rc {rerun.rc}" if rerun else "-"), "recovered"


def prep(ctx: Ctx, *extra: str, yaml_path: Optional[Path] = None, **kw) -> Run:
    return ctx.run("prepare", str(yaml_path or write_data_yaml(ctx)), *extra, **kw)


def meta(ctx: Ctx, name: str = "c") -> dict:
    return json.loads((ctx.cache / name / "meta.json").read_text())


# --------------------------------------------------------------------------- table inputs (HMS train.csv / test.csv)


@case("table", "train.csv is 0 bytes")
def _t1(ctx):
    train_csv(ctx).write_bytes(b"")
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv header only")
def _t2(ctx):
    train_csv(ctx).write_text(train_csv(ctx).read_text().splitlines()[0] + "\n")
    r = prep(ctx)
    if r.rc == 0:
        return ok_case(r, meta(ctx)["n_samples"] == 0 and "empty" in r.err, "empty cache without a warning")
    return err_case(r, "train.csv")


@case("table", "train.csv missing a column")
def _t3(ctx):
    t = pd.read_csv(train_csv(ctx))
    t.drop(columns=["eeg_label_offset_seconds"]).to_csv(train_csv(ctx), index=False)
    return err_case(prep(ctx), "train.csv", "eeg_label_offset_seconds")


@case("table", "train.csv non-numeric eeg_id")
def _t4(ctx):
    t = pd.read_csv(train_csv(ctx)).astype({"eeg_id": object})
    t.loc[2, "eeg_id"] = "abc"
    t.to_csv(train_csv(ctx), index=False)
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv negative offset")
def _t5(ctx):
    t = pd.read_csv(train_csv(ctx))
    t.loc[0, "eeg_label_offset_seconds"] = -100
    t.to_csv(train_csv(ctx), index=False)
    r = prep(ctx)
    return err_case(r, "train.csv" if "train.csv" in r.msg else ".parquet", "offset" if "train.csv" in r.msg else "outside")


@case("table", "train.csv offset past the recording end")
def _t6(ctx):
    t = pd.read_csv(train_csv(ctx))
    t.loc[0, "eeg_label_offset_seconds"] = 1e6
    t.to_csv(train_csv(ctx), index=False)
    r = prep(ctx)
    r2 = prep(ctx, "--allow-missing")
    return err_case(r, ".parquet", "--allow-missing", rerun=r2)


@case("table", "train.csv all-zero votes in a row")
def _t7(ctx):
    t = pd.read_csv(train_csv(ctx))
    t.loc[0, [c for c in t.columns if c.endswith("_vote")]] = 0
    t.to_csv(train_csv(ctx), index=False)
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv NaN vote")
def _t8(ctx):
    t = pd.read_csv(train_csv(ctx))
    t.loc[1, "seizure_vote"] = np.nan
    t.to_csv(train_csv(ctx), index=False)
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv negative vote")
def _t9(ctx):
    t = pd.read_csv(train_csv(ctx))
    t.loc[1, "seizure_vote"] = -3
    t.to_csv(train_csv(ctx), index=False)
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv duplicate label_id")
def _t10(ctx):
    t = pd.read_csv(train_csv(ctx))
    pd.concat([t, t.iloc[:1]]).to_csv(train_csv(ctx), index=False)
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv absent")
def _t11(ctx):
    train_csv(ctx).unlink()
    return err_case(prep(ctx), "train.csv")


@case("table", "train.csv binary garbage")
def _t12(ctx):
    train_csv(ctx).write_bytes(os.urandom(4096))
    return err_case(prep(ctx), "train.csv")


@case("table", "votes edited after prepare → rebuilt")
def _t13(ctx):
    r0 = use_cache(ctx, "c")
    t = pd.read_csv(train_csv(ctx))
    vc = [c for c in t.columns if c.endswith("_vote")]
    t.loc[0, vc] = 0
    t.loc[0, vc[0]] = 50
    t.to_csv(train_csv(ctx), index=False)
    r = prep(ctx)
    s = pd.read_csv(ctx.cache / "c" / "samples.csv").set_index("label_id")
    row = s.loc[int(t.label_id.iloc[0]), vc].to_numpy(float)
    return ok_case(r, r0.rc == 0 and "input data changed" in r.err and row.argmax() == 0, "old labels served")


@case("table", "rows removed after prepare → rebuilt")
def _t14(ctx):
    use_cache(ctx, "c")
    n0 = meta(ctx)["n_samples"]
    t = pd.read_csv(train_csv(ctx))
    t.iloc[: len(t) // 2].to_csv(train_csv(ctx), index=False)
    r = prep(ctx)
    return ok_case(r, meta(ctx)["n_samples"] < n0, "old rows served")


@case("table", "train.csv extra column and BOM")
def _t15(ctx):
    t = pd.read_csv(train_csv(ctx))
    t["note"] = "x"
    train_csv(ctx).write_bytes(b"\xef\xbb\xbf" + t.to_csv(index=False).encode())
    r = prep(ctx)
    if r.rc == 0:
        return ok_case(r, meta(ctx)["n_samples"] == len(t), "rows lost")
    return err_case(r, "train.csv")


@case("table", "test.csv is 0 bytes (submit)")
def _t16(ctx):
    (ctx.hms / "test.csv").write_bytes(b"")
    return err_case(ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(ctx.root / "sub.csv")), "test.csv")


@case("table", "test.csv without eeg_id (submit)")
def _t17(ctx):
    t = pd.read_csv(ctx.hms / "test.csv")
    t.drop(columns=["eeg_id"]).to_csv(ctx.hms / "test.csv", index=False)
    return err_case(ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(ctx.root / "sub.csv")), "test.csv")


# --------------------------------------------------------------------------- signal files (parquet)


def _bad_parquet(ctx: Ctx, damage: Callable[[Path], None], path: Optional[Path] = None) -> tuple:
    p = path or first_eeg(ctx)
    damage(p)
    r = prep(ctx)
    r2 = prep(ctx, yaml_path=write_data_yaml(ctx, skip_unreadable=True))
    return err_case(r, p.name, rerun=r2)


@case("signal", "EEG parquet truncated")
def _s1(ctx):
    return _bad_parquet(ctx, truncate)


@case("signal", "EEG parquet garbage bytes")
def _s2(ctx):
    return _bad_parquet(ctx, lambda p: p.write_bytes(os.urandom(5000)))


@case("signal", "EEG parquet 0 bytes")
def _s3(ctx):
    return _bad_parquet(ctx, lambda p: p.write_bytes(b""))


@case("signal", "EEG parquet lacks channel Cz")
def _s4(ctx):
    return _bad_parquet(ctx, lambda p: edit_parquet(p, lambda d: d.drop(columns=["Cz"])))


@case("signal", "EEG parquet string column")
def _s5(ctx):
    return _bad_parquet(ctx, lambda p: edit_parquet(p, lambda d: d.assign(Fp1="x")))


@case("signal", "EEG parquet renamed (missing) → --allow-missing")
def _s6(ctx):
    p = first_eeg(ctx)
    p.rename(p.with_suffix(".bak"))
    r = prep(ctx)
    r2 = prep(ctx, "--allow-missing")
    res = err_case(r, p.name, "--allow-missing", rerun=r2)
    if r2.rc == 0 and not meta(ctx)["skipped"].get("missing_recording"):
        return res[0], False, "skips not recorded", res[3], res[4]
    return res


@case("signal", "EEG parquet shorter than its windows → --allow-missing")
def _s7(ctx):
    # a readable file whose labelled windows run past its end: the rows are skipped with --allow-missing
    # (what the message advises), as for an offset past the end; skip_unreadable is for unreadable files
    p = first_eeg(ctx)
    edit_parquet(p, lambda d: d.iloc[:1000])
    r = prep(ctx)
    r2 = prep(ctx, "--allow-missing")
    return err_case(r, p.name, "outside the recording", "--allow-missing", rerun=r2)


@case("signal", "EEG parquet is a folder")
def _s8(ctx):
    def damage(p):
        p.unlink()
        p.mkdir()
    return _bad_parquet(ctx, damage)


@case("signal", "EEG parquet dangling symlink")
def _s9(ctx):
    p = first_eeg(ctx)
    p.unlink()
    p.symlink_to(ctx.root / "nowhere.parquet")
    return err_case(prep(ctx), p.name)


@case("signal", "spectrogram truncated")
def _s10(ctx):
    return _bad_parquet(ctx, truncate, first_spec(ctx))


@case("signal", "spectrogram missing")
def _s11(ctx):
    p = first_spec(ctx)
    p.unlink()
    return err_case(prep(ctx), p.name)


@case("signal", "spectrogram time not increasing")
def _s12(ctx):
    return _bad_parquet(ctx, lambda p: edit_parquet(p, lambda d: d.assign(time=d["time"].to_numpy()[::-1])), first_spec(ctx))


@case("signal", "spectrogram lacks columns")
def _s13(ctx):
    return _bad_parquet(ctx, lambda p: edit_parquet(p, lambda d: d.iloc[:, :50]), first_spec(ctx))


@case("signal", "EEG parquet replaced after prepare → rebuilt")
def _s14(ctx):
    use_cache(ctx, "c")
    p = first_eeg(ctx)
    edit_parquet(p, lambda d: d * 0.5)
    r = prep(ctx)
    return ok_case(r, "input data changed" in r.err and "signal files" in r.err, "stale signal served")


@case("signal", "EEG parquet appears after --allow-missing → rebuilt")
def _s15(ctx):
    p = first_eeg(ctx)
    bak = p.with_suffix(".bak")
    p.rename(bak)
    prep(ctx, "--allow-missing")
    bak.rename(p)
    r = prep(ctx)
    return ok_case(r, meta(ctx)["skipped"] == {}, "restored file not used")


@case("signal", "corrupt test parquet at submit → error, or prior with the flag")
def _s16(ctx):
    p = first_eeg(ctx, "test")
    truncate(p)
    out = ctx.root / "sub.csv"
    args = ["submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(out)]
    r = ctx.run(*args)
    res = err_case(r, p.name, "--allow-prior-fallback")
    if out.exists():
        return res[0], False, "submission written despite the error", "-", "error"
    r2 = ctx.run(*args, "--allow-prior-fallback")
    good = r2.rc == 0 and out.exists() and len(pd.read_csv(out)) == len(pd.read_csv(ctx.hms / "test.csv")) and "class prior" in r2.err
    if not good:
        return res[0], False, f"with --allow-prior-fallback: rc {r2.rc}, no valid submission or no warning ({r2.msg[:60]})", f"rc {r2.rc}", "error"
    return res[0], res[1], res[2], f"rc {r2.rc} (prior)", "error"


@case("signal", "EEG parquet with inf values")
def _s17(ctx):
    edit_parquet(first_eeg(ctx), lambda d: d.assign(Fp1=np.inf))
    r = prep(ctx)
    if r.rc == 0:
        return ok_case(r, "dead" in r.err or "non-finite" in r.err, "inf silently cached")
    return err_case(r, first_eeg(ctx).name)


# --------------------------------------------------------------------------- EDF (CHB-MIT)


def prep_chb(ctx: Ctx, *extra: str, **over) -> Run:
    return prep(ctx, *extra, yaml_path=write_data_yaml(ctx, "chb", "chbmit", **over))


@case("edf", "EDF truncated")
def _e1(ctx):
    p = first_edf(ctx)
    truncate(p, 0.6)
    return err_case(prep_chb(ctx), p.name)


@case("edf", "EDF garbage header")
def _e2(ctx):
    p = first_edf(ctx)
    b = bytearray(p.read_bytes())
    b[:256] = os.urandom(256)
    p.write_bytes(bytes(b))
    return err_case(prep_chb(ctx), p.name)


@case("edf", "EDF 0 bytes")
def _e3(ctx):
    p = first_edf(ctx)
    p.write_bytes(b"")
    return err_case(prep_chb(ctx), p.name)


@case("edf", "EDF missing → --allow-missing")
def _e4(ctx):
    p = first_edf(ctx)
    p.unlink()
    r = prep_chb(ctx)
    return err_case(r, p.name, rerun=prep_chb(ctx, "--allow-missing"))


@case("edf", "summary file missing")
def _e5(ctx):
    s = next(ctx.chb.rglob("*-summary.txt"))
    s.unlink()
    return err_case(prep_chb(ctx), "summary")


@case("edf", "summary seizure times garbage")
def _e6(ctx):
    s = next(ctx.chb.rglob("*-summary.txt"))
    s.write_text(s.read_text().replace("Seizure Start Time: ", "Seizure Start Time: x").replace("Seizure 1 Start Time: ", "Seizure 1 Start Time: x"))
    return err_case(prep_chb(ctx), s.name)


@case("edf", "summary edited after prepare → rebuilt")
def _e7(ctx):
    use_cache(ctx, "chb")
    s = next(ctx.chb.rglob("*-summary.txt"))
    txt = s.read_text()
    # a corrected annotation: the first seizure ends 4 s later
    s.write_text(re.sub(r"(Seizure (?:\d+ )?End Time: *)(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) + 4}", txt, count=1))
    r = prep_chb(ctx)
    return ok_case(r, "input data changed" in r.err or "reusing" not in r.err, "stale labels served")


@case("edf", "EDF file replaced after prepare → rebuilt")
def _e8(ctx):
    use_cache(ctx, "chb")
    p = first_edf(ctx)
    os.utime(p, ns=(time.time_ns(), time.time_ns() + 5 * 10**9))
    r = prep_chb(ctx)
    return ok_case(r, "input data changed" in r.err, "stale signal served")


@case("edf", "detect on a truncated EDF")
def _e9(ctx):
    p = first_edf(ctx)
    truncate(p, 0.3)
    return err_case(ctx.run("detect", str(p), "--outputs", str(ctx.outputs)), p.name)


@case("edf", "detect on a non-EDF file")
def _e10(ctx):
    p = ctx.root / "notes.edf"
    p.write_text("hello")
    return err_case(ctx.run("detect", str(p), "--outputs", str(ctx.outputs)), p.name)


@case("edf", "EDF lacks a montage channel")
def _e11(ctx):
    p = first_edf(ctx)
    b = bytearray(p.read_bytes())
    i = b.find(b"FP1-F7")
    if i < 0:
        return Run(0, "", "", 0), False, "no FP1-F7 label in the synthetic EDF", "-", "error"
    b[i : i + 6] = b"XX1-F7"
    p.write_bytes(bytes(b))
    r = prep_chb(ctx)
    return err_case(r, p.name, rerun=prep_chb(ctx, "--allow-missing"))


# --------------------------------------------------------------------------- configs


def exp_err(ctx: Ctx, *needles: str, cmd: str = "train", **over) -> tuple:
    return err_case(ctx.run(cmd, str(write_exp_yaml(ctx, "bad", **over))), *needles)


@case("config", "epochs: -3")
def _c1(ctx):
    return exp_err(ctx, "train.epochs", base="hms_1d.yaml", train={"epochs": -3})


@case("config", "batch_size: 0")
def _c2(ctx):
    return exp_err(ctx, "batch_size", base="hms_1d.yaml", train={"batch_size": 0})


@case("config", "n_folds: 0")
def _c3(ctx):
    return exp_err(ctx, "n_folds", folds={"n_folds": 0})


@case("config", "reversed band-pass")
def _c4(ctx):
    return err_case(prep(ctx, yaml_path=write_data_yaml(ctx, eeg={"bandpass": [20.0, 0.5]})), "bandpass")


@case("config", "invalid YAML")
def _c5(ctx):
    p = ctx.root / "bad.yaml"
    p.write_text("name: x\ndata: [unclosed\n  - : :\n")
    return err_case(ctx.run("train", str(p)), "bad.yaml")


@case("config", "unknown key")
def _c6(ctx):
    return exp_err(ctx, "lrr", train={"lrr": 0.1})


@case("config", "wrong type")
def _c7(ctx):
    return exp_err(ctx, "train.lr", train={"lr": "fast"})


@case("config", "missing name")
def _c8(ctx):
    p = write_exp_yaml(ctx, "bad")
    d = yaml.safe_load(p.read_text())
    d.pop("name")
    p.write_text(yaml.safe_dump(d))
    return err_case(ctx.run("train", str(p)), "name")


@case("config", "config file absent")
def _c9(ctx):
    return err_case(ctx.run("train", str(ctx.root / "nope.yaml")), "nope.yaml")


@case("config", "data: reference to a missing file")
def _c10(ctx):
    p = write_exp_yaml(ctx, "bad")
    d = yaml.safe_load(p.read_text())
    d["data"] = "missing_data.yaml"
    p.write_text(yaml.safe_dump(d))
    return err_case(ctx.run("train", str(p)), "missing_data.yaml")


@case("config", "model.kind not allowed")
def _c11(ctx):
    return exp_err(ctx, "model.kind", model={"kind": "transformer"})


@case("config", "empty config file")
def _c12(ctx):
    p = ctx.root / "empty.yaml"
    p.write_text("")
    return err_case(ctx.run("train", str(p)), "empty.yaml")


@case("config", "negative learning rate")
def _c13(ctx):
    return exp_err(ctx, "train.lr", base="hms_1d.yaml", train={"lr": -1.0})


@case("config", "ensemble member not trained")
def _c14(ctx):
    p = ctx.root / "ens.yaml"
    p.write_text(yaml.safe_dump({"name": "ens", "members": ["feat", "ghost"], "output_root": str(ctx.outputs)}))
    return err_case(ctx.run("ensemble", str(p)), "ghost")


@case("config", "ensemble lists itself")
def _c15(ctx):
    p = ctx.root / "ens.yaml"
    p.write_text(yaml.safe_dump({"name": "feat2", "members": ["feat", "feat2"], "output_root": str(ctx.outputs)}))
    return err_case(ctx.run("ensemble", str(p)), "feat2")


@case("config", "YAML python tag")
def _c16(ctx):
    p = ctx.root / "tag.yaml"
    p.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    r = ctx.run("train", str(p))
    res = err_case(r, "tag.yaml")
    if (ctx.root / "pwned").exists():
        return r, False, "YAML tag executed", "-", "error"
    return res


@case("config", "clip_uv negative")
def _c17(ctx):
    return err_case(prep(ctx, yaml_path=write_data_yaml(ctx, eeg={"clip_uv": -5.0})), "clip_uv")


@case("config", "eeg.fs zero")
def _c18(ctx):
    return err_case(prep(ctx, yaml_path=write_data_yaml(ctx, eeg={"fs": 0.0})), "eeg.fs")


# --------------------------------------------------------------------------- signals (content)


@case("signals", "dead electrode (all-NaN Fp1) counted")
def _g1(ctx):
    edit_parquet(first_eeg(ctx), lambda d: d.assign(Fp1=np.nan))
    r = prep(ctx)
    h = meta(ctx).get("channel_health", {}) if r.rc == 0 else {}
    return ok_case(r, h.get("n_recordings_with_nan_channels") == 1 and "dead" in r.err, "dead electrode not reported")


@case("signals", "flat recording (all zeros) counted")
def _g2(ctx):
    edit_parquet(first_eeg(ctx), lambda d: d * 0.0)
    r = prep(ctx)
    h = meta(ctx).get("channel_health", {}) if r.rc == 0 else {}
    return ok_case(r, h.get("n_recordings_with_flat_channels") == 1, "flat recording not reported")


@case("signals", "dead electrode, bad_channels: error")
def _g3(ctx):
    p = first_eeg(ctx)
    edit_parquet(p, lambda d: d.assign(Fp1=np.nan))
    return err_case(prep(ctx, yaml_path=write_data_yaml(ctx, eeg={"bad_channels": "error"})), p.name, "dead channel")


@case("signals", "dead electrode, bad_channels: drop")
def _g4(ctx):
    edit_parquet(first_eeg(ctx), lambda d: d.assign(Fp1=np.nan))
    r = prep(ctx, yaml_path=write_data_yaml(ctx, eeg={"bad_channels": "drop"}))
    return ok_case(r, r.rc == 0 and meta(ctx)["skipped"].get("dead_channels", 0) > 0, "rows not dropped/counted")


@case("signals", "huge amplitudes (1e30)")
def _g5(ctx):
    edit_parquet(first_eeg(ctx), lambda d: d.assign(Fp1=1e30))
    r = prep(ctx)
    if r.rc != 0:
        return err_case(r, first_eeg(ctx).name)
    x = np.load(ctx.cache / "c" / "eeg.npy", mmap_mode="r")
    return ok_case(r, bool(np.isfinite(x).all()), "non-finite values cached")


@case("signals", "float16 overflow without clip")
def _g6(ctx):
    edit_parquet(first_eeg(ctx), lambda d: d * 1e4)
    r = prep(ctx, yaml_path=write_data_yaml(ctx, eeg={"dtype": "float16", "clip_uv": None}))
    return ok_case(r, "non-finite" in r.err, "overflow not reported")


@case("signals", "half the recording NaN")
def _g7(ctx):
    def damage(d):
        d.iloc[: len(d) // 2] = np.nan
        return d
    edit_parquet(first_eeg(ctx), damage)
    r = prep(ctx)
    rec = pd.read_csv(ctx.cache / "c" / "recordings.csv") if r.rc == 0 else None
    return ok_case(r, rec is not None and rec["nan_frac"].max() >= 0.4, "NaN share not recorded")


# --------------------------------------------------------------------------- disk


@case("disk", "file size limit during prepare (full disk)")
def _d1(ctx):
    r = prep(ctx, fsize=200_000)
    return err_case(r, "while writing", "cache", rerun=prep(ctx))


@case("disk", "file size limit during train (checkpoint)")
def _d2(ctx):
    shutil.rmtree(ctx.outputs)
    prep(ctx, yaml_path=write_data_yaml(ctx, "tiny_hms"))
    p = write_exp_yaml(ctx, "feat")
    r = ctx.run("train", str(p), fsize=30_000)
    half = [x for x in ctx.outputs.rglob("*.pt")]
    ok, why = clear_error(r, "while writing")
    broken = []
    for x in half:
        try:
            torch.load(x, weights_only=True)
        except Exception:  # a half-written checkpoint left under its final name
            broken.append(x.name)
    if broken:
        ok, why = False, f"half-written {broken}"
    return r, ok, why, "-", "error"


@case("disk", "file size limit during submit")
def _d3(ctx):
    out = ctx.root / "sub.csv"
    r = ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(out), fsize=50_000)
    ok, why = clear_error(r, "while writing")
    if out.exists():
        ok, why = False, "partial submission.csv"
    return r, ok, why, "-", "error"


@case("disk", "cache_root is a file")
def _d4(ctx):
    ctx.cache.mkdir(exist_ok=True)
    shutil.rmtree(ctx.cache)
    ctx.cache.write_text("not a folder")
    return err_case(prep(ctx), str(ctx.cache), "not a folder")


@case("disk", "output_root is a file")
def _d5(ctx):
    f = ctx.root / "outfile"
    f.write_text("x")
    p = write_exp_yaml(ctx, "feat2")
    d = yaml.safe_load(p.read_text())
    d["output_root"] = str(f)
    p.write_text(yaml.safe_dump(d))
    return err_case(ctx.run("train", str(p)), "outfile")


@case("disk", "tmpfs full during prepare")
def _d6(ctx):
    mnt = ctx.root / "small"
    mnt.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if m.returncode != 0:
        r = prep(ctx, fsize=300_000)  # no mount permission: a file size limit instead
        return err_case(r, "while writing", "cache", rerun=prep(ctx))
    try:
        r = prep(ctx, yaml_path=write_data_yaml(ctx, cache_root=str(mnt)))
        left = [p.name for p in mnt.iterdir()]
        ok, why = clear_error(r, "disk full while writing", str(mnt))
        if any(n.endswith(".tmp") for n in left):
            ok, why = False, f"temp left on the full disk: {left}"
        return r, ok, why, "-", "error"
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@case("disk", "file size limit during ensemble")
def _d7(ctx):
    shutil.copytree(ctx.outputs / "feat", ctx.outputs / "feat_b")
    p = ctx.root / "ens.yaml"
    p.write_text(yaml.safe_dump({"name": "ens", "members": ["feat", "feat_b"], "output_root": str(ctx.outputs)}))
    r0 = ctx.run("ensemble", str(p))
    before = (ctx.outputs / "ens" / "weights.json").read_text() if r0.rc == 0 else None
    p.write_text(yaml.safe_dump({"name": "ens", "members": ["feat", "feat_b"], "fit_on": "min_votes", "min_votes": 1, "output_root": str(ctx.outputs)}))
    r = ctx.run("ensemble", str(p), fsize=2_000)
    ok, why = clear_error(r, "while writing", "ens")
    if before is not None and (ctx.outputs / "ens" / "weights.json").read_text() != before:
        ok, why = False, "old folder changed"
    return r, ok, why, "-", "error"


# --------------------------------------------------------------------------- concurrency and kills


@case("concurrency", "two prepares at once")
def _k1(ctx):
    y = write_data_yaml(ctx)
    ps = [ctx.popen([PY, "-m", "hbac", "prepare", str(y)]) for _ in range(2)]
    outs = [p.communicate(timeout=TIMEOUT) for p in ps]
    r = Run(max(p.returncode for p in ps), outs[0][0], outs[0][1] + outs[1][1], 0)
    arrays = (ctx.cache / "c" / "eeg.npy").exists()
    return ok_case(r, arrays and sum("reusing" in o[1] for o in outs) == 1, "not one build + one reuse")


def _workers_up(ctx: Ctx, n: int = 2) -> Callable[[], bool]:
    def ready() -> bool:
        live = [p for p in ctx.procs if p.poll() is None]
        return bool(live) and len(children_of(live[-1].pid)) >= n
    return ready


@case("concurrency", "kill -9 prepare mid-build, rerun")
def _k2(ctx):
    y = write_data_yaml(ctx, workers=2)
    r = ctx.kill_when(["prepare", str(y)], _workers_up(ctx, 3), signal.SIGKILL)
    time.sleep(1)
    orphans = marked_processes(ctx.tag)
    r2 = prep(ctx, yaml_path=y)
    ok = not orphans and r2.rc == 0 and "reusing" not in r2.err
    return r, ok, f"orphans {[p.pid for p in orphans]}" if orphans else ("" if ok else f"rerun: {r2.msg}"), f"rc {r2.rc}", "recovered"


@case("concurrency", "SIGTERM prepare mid-build, rerun")
def _k3(ctx):
    y = write_data_yaml(ctx, workers=2)
    r = ctx.kill_when(["prepare", str(y)], _workers_up(ctx, 3), signal.SIGTERM)
    r2 = prep(ctx, yaml_path=y)
    ok = r.rc == 143 and not r.traceback and r2.rc == 0
    return r, ok, "" if ok else f"rc {r.rc}, traceback {r.traceback}", f"rc {r2.rc}", "recovered"


@case("concurrency", "Ctrl-C prepare mid-build, rerun")
def _k4(ctx):
    y = write_data_yaml(ctx, workers=2)
    r = ctx.kill_when(["prepare", str(y)], _workers_up(ctx, 3), signal.SIGINT)
    r2 = prep(ctx, yaml_path=y)
    ok = r.rc in (130, 143) and not r.traceback and r2.rc == 0
    return r, ok, "" if ok else f"rc {r.rc}, traceback {r.traceback}", f"rc {r2.rc}", "recovered"


@case("concurrency", "half-written cache (eeg.npy truncated)")
def _k5(ctx):
    use_cache(ctx, "c")
    truncate(ctx.cache / "c" / "eeg.npy")
    r = prep(ctx)
    x = np.load(ctx.cache / "c" / "eeg.npy", mmap_mode="r")
    return ok_case(r, "incomplete" in r.err and x.shape[0] > 0, "truncated cache trusted")


@case("concurrency", "cache with meta.json but no eeg.npy")
def _k6(ctx):
    use_cache(ctx, "c")
    (ctx.cache / "c" / "eeg.npy").unlink()
    r = prep(ctx)
    return ok_case(r, (ctx.cache / "c" / "eeg.npy").exists(), "cache without arrays trusted")


@case("concurrency", "stale temp folder of a killed build")
def _k7(ctx):
    ctx.cache.mkdir(exist_ok=True)
    (ctx.cache / ".c.99999999.abcd.tmp").mkdir()
    r = prep(ctx)
    return ok_case(r, not (ctx.cache / ".c.99999999.abcd.tmp").exists(), "stale temp kept")


@case("concurrency", "kill -9 train mid-fold, --resume")
def _k8(ctx):
    y = write_exp_yaml(ctx, "oned", base="hms_1d.yaml", train={"epochs": 2, "stage2": {"enabled": False}}, folds={"n_folds": 2})
    last = ctx.outputs / "oned" / "fold0" / "last.pt"
    r = ctx.kill_when(["train", str(y), "--fold", "0"], lambda: last.exists(), signal.SIGKILL, timeout=2 * TIMEOUT)
    r2 = ctx.run("train", str(y), "--fold", "0", "--resume", timeout=2 * TIMEOUT)
    ok = r2.rc == 0 and (ctx.outputs / "oned" / "fold0" / "best.pt").exists()
    return r, ok, "" if ok else f"resume: {r2.msg}", f"rc {r2.rc}", "recovered"


@case("concurrency", "kill -9 submit, rerun cleans temps")
def _k9(ctx):
    out = ctx.root / "sub.csv"
    p = ctx.popen([PY, str(REPO / "submit.py"), "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(out)])
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None and not list(Path(tempfile.gettempdir()).glob(f"hbac_submit_{p.pid}_*")):
        time.sleep(0.02)
    p.kill()
    p.communicate()
    r = ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(out))
    stale = list(Path(tempfile.gettempdir()).glob(f"hbac_submit_{p.pid}_*"))
    return ok_case(r, out.exists() and not stale, f"stale temp {stale}")


@case("concurrency", "changed config over a trained experiment")
def _k10(ctx):
    y = write_exp_yaml(ctx, "feat", train={"seed": 7})
    r = ctx.run("train", str(y), "--fold", "0")
    r2 = ctx.run("train", str(y), "--fold", "0", "--overwrite")
    return err_case(r, "--overwrite", rerun=r2)


@case("concurrency", "mixed-config experiment at submit")
def _k11(ctx):
    fj = ctx.outputs / "feat" / "fold1" / "fold.json"
    d = json.loads(fj.read_text())
    d["config_hash"] = "0123456789abcdef"
    fj.write_text(json.dumps(d))
    return err_case(ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(ctx.root / "s.csv")), "fold1")


@case("concurrency", "mixed-config experiment on the leaderboard")
def _k12(ctx):
    fj = ctx.outputs / "feat" / "fold1" / "fold.json"
    d = json.loads(fj.read_text())
    d["config_hash"] = "0123456789abcdef"
    fj.write_text(json.dumps(d))
    r = ctx.run("leaderboard", "--outputs", str(ctx.outputs))
    return ok_case(r, "mixed" in r.out, "mixed experiment not flagged")


@case("concurrency", "train failing before its first fold")
def _k13(ctx):
    y = write_exp_yaml(ctx, "nodata", data_over={"data_dir": str(ctx.root / "nowhere")})
    r = ctx.run("train", str(y))
    ok, why = clear_error(r, "nowhere")
    if (ctx.outputs / "nodata").exists():
        ok, why = False, "empty experiment folder left"
    return r, ok, why, "-", "error"


@case("concurrency", "allow-missing cache reused by train")
def _k14(ctx):
    shutil.rmtree(ctx.cache, ignore_errors=True)
    p = first_eeg(ctx)
    p.unlink()
    y = write_exp_yaml(ctx, "feat_am")
    r0 = ctx.run("prepare", str(y), "--allow-missing")
    m = ctx.cache / "tiny_hms" / "meta.json"
    before = m.read_bytes() if r0.rc == 0 else b""
    r = ctx.run("train", str(y), "--fold", "0")
    # train opens a matching cache without a word: "reused" = meta.json untouched, skips still recorded
    reused = r0.rc == 0 and m.exists() and m.read_bytes() == before and bool(json.loads(before)["skipped"])
    return ok_case(r, reused, f"prepare rc {r0.rc}: {r0.msg[:60]}" if r0.rc else "train rebuilt the cache")


# --------------------------------------------------------------------------- crafted files


def _crafted_best(ctx: Ctx, obj: object) -> Path:
    p = ctx.outputs / "feat" / "fold0" / "best.pt"
    torch.save(obj, p)
    return p


def _submit(ctx: Ctx) -> Run:
    return ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--experiment", "feat", "--out", str(ctx.root / "s.csv"))


@case("crafted", "best.pt with a __reduce__ payload")
def _x1(ctx):
    marker = ctx.root / "pwned"
    _crafted_best(ctx, {"model": {}, "x": Payload(f"touch {marker}")})
    r = _submit(ctx)
    res = err_case(r, "not a trusted checkpoint", "best.pt")
    if marker.exists():
        return r, False, "PAYLOAD RAN", "-", "error"
    return res


@case("crafted", "last.pt with a payload, --resume")
def _x2(ctx):
    marker = ctx.root / "pwned"
    torch.save({"complete": False, "x": Payload(f"touch {marker}")}, ctx.outputs / "feat" / "fold0" / "last.pt")
    r = ctx.run("train", str(write_exp_yaml(ctx)), "--fold", "0", "--resume")
    res = err_case(r, "not a trusted checkpoint", "last.pt")
    if marker.exists():
        return r, False, "PAYLOAD RAN", "-", "error"
    return res


@case("crafted", "best.pt truncated")
def _x3(ctx):
    p = ctx.outputs / "feat" / "fold0" / "best.pt"
    truncate(p)
    return err_case(_submit(ctx), "best.pt")


@case("crafted", "best.pt holds a bare tensor")
def _x4(ctx):
    _crafted_best(ctx, torch.zeros(3))
    return err_case(_submit(ctx), "best.pt")


@case("crafted", "best.pt is random bytes")
def _x5(ctx):
    (ctx.outputs / "feat" / "fold0" / "best.pt").write_bytes(os.urandom(3000))
    return err_case(_submit(ctx), "best.pt")


@case("crafted", "feature checkpoint with an untrusted skops type")
def _x6(ctx):
    import skops.io as sio  # only this case needs it

    p = ctx.outputs / "feat" / "fold0" / "best.pt"
    ck = torch.load(p, weights_only=True)
    ck["sklearn"] = torch.frombuffer(bytearray(sio.dumps({"a": Ctx})), dtype=torch.uint8)
    torch.save(ck, p)
    return err_case(_submit(ctx), "not a trusted checkpoint", "best.pt")


@case("crafted", "meta.json with a wrong eeg_shape")
def _x7(ctx):
    use_cache(ctx, "c")
    m = meta(ctx)
    m["eeg_shape"][0] += 1000
    (ctx.cache / "c" / "meta.json").write_text(json.dumps(m))
    r = prep(ctx)
    return ok_case(r, "incomplete" in r.err, "crafted meta trusted")


@case("crafted", "meta.json garbage")
def _x8(ctx):
    use_cache(ctx, "c")
    (ctx.cache / "c" / "meta.json").write_text("{not json")
    r = prep(ctx)
    return ok_case(r, json.loads((ctx.cache / "c" / "meta.json").read_text())["n_samples"] > 0, "not rebuilt")


@case("crafted", "scores.json garbage (leaderboard)")
def _x9(ctx):
    (ctx.outputs / "feat" / "scores.json").write_text("[1, 2")
    r = ctx.run("leaderboard", "--outputs", str(ctx.outputs))
    return ok_case(r, "unreadable" in r.out or "error" in r.out, "broken entry not listed")


@case("crafted", "oof.csv garbage (ensemble)")
def _x10(ctx):
    shutil.copytree(ctx.outputs / "feat", ctx.outputs / "feat_b")
    (ctx.outputs / "feat_b" / "oof.csv").write_text("a,b\n1,2\n")
    p = ctx.root / "ens.yaml"
    p.write_text(yaml.safe_dump({"name": "ens", "members": ["feat", "feat_b"], "output_root": str(ctx.outputs)}))
    return err_case(ctx.run("ensemble", str(p)), "oof.csv")


@case("crafted", "weights.json garbage (submit)")
def _x11(ctx):
    (ctx.outputs / "ens").mkdir()
    (ctx.outputs / "ens" / "weights.json").write_text("{oops")
    r = ctx.run("submit", "--data-dir", str(ctx.hms), "--outputs", str(ctx.outputs), "--ensemble", "ens", "--out", str(ctx.root / "s.csv"))
    return err_case(r, "weights.json")


@case("crafted", "config.yaml in outputs edited (submit)")
def _x12(ctx):
    p = ctx.outputs / "feat" / "config.yaml"
    d = yaml.safe_load(p.read_text())
    d["train"]["seed"] = 1234
    p.write_text(yaml.safe_dump(d))
    return err_case(_submit(ctx), "config")


@case("crafted", "fold CSV with foreign sample ids")
def _x13(ctx):
    folds = list((ctx.root / "inputs" / "folds").glob("*.csv")) if (ctx.root / "inputs" / "folds").exists() else []
    folds += list(ctx.cache.parent.glob("folds/*.csv"))
    if not folds:
        return Run(0, "", "", 0), True, "", "-", "recovered"
    f = pd.read_csv(folds[0])
    f["sample_id"] = f["sample_id"].astype(str) + "_x"
    f.to_csv(folds[0], index=False)
    r = ctx.run("train", str(write_exp_yaml(ctx, "feat_f")), "--fold", "0")
    if r.rc == 0:
        return ok_case(r, True, "")
    return err_case(r, folds[0].name)


# --------------------------------------------------------------------------- main


def run_case(base: Path, work: Path, group: str, name: str, fn: Callable[[Ctx], tuple]) -> Result:
    ctx = fresh(base, work / "case")
    t0 = time.perf_counter()
    try:
        r, ok, why, rerun, kind = fn(ctx)
    except Exception as e:  # a case that crashes the harness is a FAIL with its reason, the matrix goes on
        r, ok, why, rerun, kind = Run(-1, "", "", 0), False, f"harness: {type(e).__name__}: {e}", "-", "error"
    for p in ctx.procs:
        if p.poll() is None:
            p.kill()
    left = leftovers(ctx)
    for p in marked_processes(ctx.tag):  # do not let one case's orphans slow the next
        p.kill()
    if left and ok:
        ok, why = False, "leftovers"
    verdict = kind if ok else "FAIL"
    return Result(group, name, r.rc, r.msg[:110], left, rerun, verdict, why, time.perf_counter() - t0)


def table(results: list[Result]) -> str:
    rows = ["| group | case | rc | message (first line) | leftovers | rerun | verdict |", "|---|---|---|---|---|---|---|"]
    for x in results:
        msg = x.msg.replace("|", "/")
        v = x.verdict + (f" ({x.why[:60]})" if x.why else "")
        rows.append(f"| {x.group} | {x.case} | {x.rc} | {msg} | {', '.join(x.left)[:60] or '-'} | {x.rerun} | {v} |")
    return "\n".join(rows)


def totals(results: list[Result]) -> str:
    """Per group and overall: clear errors, recoveries, FAILs, and the median seconds per case."""
    cols = ["error", "recovered", "FAIL"]
    df = pd.DataFrame([{"group": r.group, "verdict": r.verdict, "seconds": r.seconds} for r in results], columns=["group", "verdict", "seconds"])
    by = df.groupby(["group", "verdict"], sort=False).size().unstack(fill_value=0).reindex(columns=cols, fill_value=0)
    by["median s"] = df.groupby("group", sort=False)["seconds"].median().round(1)
    overall = df["verdict"].value_counts().reindex(cols, fill_value=0)
    return (by.to_string() if len(df) else "(no cases)") + "\n\n" + f"total {len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in overall.items())


def selected(groups: Optional[list[str]], texts: Optional[list[str]]) -> list[tuple[str, str, Callable[[Ctx], tuple]]]:
    """The cases of `groups` (all when None) whose name contains one of `texts` (case-insensitive), in matrix order."""
    unknown = sorted(set(groups or []) - {g for g, _, _ in CASES})
    if unknown:
        raise SystemExit(f"error: unknown group(s) {unknown}; groups: {sorted({g for g, _, _ in CASES})}")
    return [c for c in CASES if (not groups or c[0] in groups) and (not texts or any(t.lower() in c[1].lower() for t in texts))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "hbac_faults"), help="scratch folder (default: <tmp>/hbac_faults)")
    ap.add_argument("--group", nargs="*", help="only these groups, run in this order")
    ap.add_argument("--case", nargs="*", default=None, help="only cases whose name contains one of these (case-insensitive)")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this file")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per command (default 300)")
    a = ap.parse_args()
    chosen = selected(a.group, a.case)
    if a.group:  # run groups in the order given
        chosen.sort(key=lambda c: a.group.index(c[0]))
    if a.list:
        for g, n, _ in chosen:
            print(f"{g:<12} {n}")
        print(f"{len(chosen)} of {len(CASES)} cases")
        return 0
    global TIMEOUT
    TIMEOUT = a.timeout
    work = Path(a.work)
    t0 = time.time()
    base = make_base(work)
    print(f"base data ready in {time.time() - t0:.0f} s ({base}); {len(chosen)} cases", flush=True)
    results = []
    for group, name, fn in chosen:
        res = run_case(base, work, group, name, fn)
        results.append(res)
        print(f"{res.verdict:>9}  {group:<11} {name:<50} rc {res.rc:>4}  {res.seconds:5.1f} s  {res.msg[:70]}" + (f"  [{res.why[:60]}]" if res.why else ""), flush=True)
    wall = time.time() - t0
    md = table(results) + "\n\n```\n" + totals(results) + "\n```\n"
    (work / "faults.md").write_text(md)
    print()
    print(md)
    case_s = [r.seconds for r in results]
    print(f"written {work / 'faults.md'} in {wall:.0f} s (median {np.median(case_s) if case_s else 0:.1f} s per case)")
    if a.json:
        Path(a.json).write_text(json.dumps({"wall_s": round(wall, 1), "results": [asdict(r) for r in results]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    raise SystemExit(main())
