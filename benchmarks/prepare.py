"""Benchmark `prepare` (hbac.cache) against the raw parquet read limit and the per-row pandas loop of public notebooks.

Builds an HMS-layout folder of N (and 4N) recordings in a temp dir by replicating source
files under new eeg_ids / spectrogram_ids (symlinks to the real files in ../shared/data/hms
when present, else to a small synthetic set), then times, each in a fresh subprocess:

- `raw read`: every parquet file read once, nothing else, with the same number of workers: with
  polars in a process pool (`pl.read_parquet(path)`, and from the file's bytes as prepare reads),
  with polars in threads of one process (from bytes, as prepare's HMS workers read), and with
  pyarrow in a process pool (`ParquetFile.read`): the read limit. The summary prints prepare's
  speed as a fraction of the fastest of the four (goal: >= 80 %), and the threaded raw read's fraction:
  the ceiling of a prepare that runs in threads, as HMS prepares below 1,000 files (it reads the same
  way, then converts and writes);
- `prepare`: `hbac.cache.prepare` with the shipped HMS config (all workers, in the pool prepare picks:
  threads below `hbac.cache.build.THREADS_MAX_FILES` files, so at the default N, else a process
  pool, so at the default 4N; 1 worker; and all workers in the other kind of pool, forced, for comparison). That config
  band-passes in the model (`eeg.filter_on: window`), so prepare reads, applies the montage,
  checks channels, fills NaN, clips and writes;
- `read + write`: the raw read (polars, from bytes; in a process pool and in threads), then as many of
  each file's decoded columns as the cache holds for it written as they are into one file: what writing
  the cache costs with no conversion at all. prepare reads the same files and writes the same bytes, so
  the summary prints this as the ceiling of any prepare that writes a cache, and prepare's fraction of it;
- `pandas per row`: `pd.read_parquet` per train.csv row, crop, montage, NaN fill, band-pass,
  append to a list, `np.stack` at the end (at N only unless --baseline-both).

Reports recordings/s, MB/s (raw parquet bytes of the N recordings' files / wall time), CPU
seconds (the process + every descendant, polled from /proc: prepare's pool workers are children
of the forkserver, which `os.times()` never counts), RSS of the main process after its imports
(`rss_start`) and at its peak (`rss_main`, VmHWM), and the largest peak RSS of any descendant
process (`rss_workers`, VmHWM polled from /proc; forked workers count the pages they share with
the parent), all in MB. Linux only.
Files are symlinks to a few sources, so reads hit the page cache for every method alike.

    python benchmarks/prepare.py --n 200 --workers 2
    python benchmarks/prepare.py --full-scale     # the competition's 17,089 EEGs / 11,138 spectrograms

`--full-scale` replicates the real files to the competition's size with the real train.csv's
offsets (every EEG and spectrogram long enough for its labelled windows: real files where they
are, else real signal tiled to the length needed), runs the real `prepare` once with all workers
and reports wall time, CPU time, peak RSS and the cache's size on disk.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "hms"
SECONDS_PER_ROW_WINDOW = 50.0
DATA_CFG = str(ROOT / "configs" / "data" / "hms.yaml")  # prepare runs with the shipped HMS data config


def source_dir(tmp: Path) -> tuple[Path, str]:
    """The folder to replicate: the real HMS files when present, else a small synthetic set."""
    if (REAL / "train.csv").exists() and any((REAL / "train_eegs").glob("*.parquet")):
        return REAL, "real"
    from hbac.datasets.synthetic import write_hms

    out = tmp / "synthetic_source"
    write_hms(out, n_eegs=8, seed=0, n_test=1)
    return out, "synthetic"


def source_pairs(src: Path) -> list[tuple[int, int, pd.DataFrame]]:
    """(eeg_id, spectrogram_id, train.csv rows) for every EEG whose EEG and spectrogram files are present.

    EEG ↔ spectrogram pairs without rows in train.csv (the real folder has four) get one row at offset 0.
    """
    train = pd.read_csv(src / "train.csv")
    eegs = {int(p.stem) for p in (src / "train_eegs").glob("*.parquet")}
    specs = {int(p.stem) for p in (src / "train_spectrograms").glob("*.parquet")}
    pairs = []
    for eid, rows in train[train.eeg_id.isin(eegs) & train.spectrogram_id.isin(specs)].groupby("eeg_id", sort=True):
        pairs.append((int(eid), int(rows.spectrogram_id.iloc[0]), rows))
    known = {p[0] for p in pairs}
    if src == REAL:  # pairs listed in ../shared/data/README.md
        template = train.iloc[:1]
        for eid, sid in [(2717392258, 465078132), (3701757135, 10530005), (1572717157, 15428069), (1445780287, 4004824)]:
            if eid in eegs and sid in specs and eid not in known:
                r = template.copy()
                r[["eeg_id", "spectrogram_id", "eeg_sub_id", "spectrogram_sub_id"]] = [eid, sid, 0, 0]
                r[["eeg_label_offset_seconds", "spectrogram_label_offset_seconds"]] = [0.0, 0.0]
                pairs.append((eid, sid, r))
    return pairs


def build(src: Path, pairs: list, n: int, out: Path) -> dict:
    """Replicate the source pairs to `n` recordings under new ids (symlinks); returns sizes."""
    (out / "train_eegs").mkdir(parents=True)
    (out / "train_spectrograms").mkdir(parents=True)
    frames, nbytes = [], 0
    for k in range(n):
        eid, sid, rows = pairs[k % len(pairs)]
        new_eid, new_sid = 10_000_000 + k, 20_000_000 + k
        for sub, old, new in (("train_eegs", eid, new_eid), ("train_spectrograms", sid, new_sid)):
            target = src / sub / f"{old}.parquet"
            os.symlink(target, out / sub / f"{new}.parquet")
            nbytes += target.stat().st_size
        r = rows.copy()
        r["eeg_id"], r["spectrogram_id"], r["patient_id"] = new_eid, new_sid, 100_000 + k
        r["label_id"] = np.arange(len(r)) + 1_000_000 * (k + 1)
        frames.append(r)
    train = pd.concat(frames, ignore_index=True)
    train.to_csv(out / "train.csv", index=False)
    return {"recordings": n, "rows": len(train), "mb": nbytes / 1e6}


# Each measured run is a fresh interpreter; it prints one JSON line with its numbers.
PRELUDE = """
import json, os, sys, threading, time

def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0

class Workers(threading.Thread):
    # peak RSS (VmHWM) and CPU time of every descendant process (pool workers are children of the
    # forkserver, not of this process, so os.times()'s children_* never count them), polled while they live
    TICK = os.sysconf("SC_CLK_TCK")
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.cpu, self.stop = 0.0, {}, threading.Event()
    def poll(self):
        me, parent, ticks = os.getpid(), {}, {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()
                parent[int(pid)], ticks[int(pid)] = int(st[1]), int(st[11]) + int(st[12])
            except (OSError, ValueError, IndexError):
                pass
        for pid in parent:
            p, seen = parent[pid], 0
            while p not in (me, 0, 1) and seen < 64:
                p, seen = parent.get(p, 0), seen + 1
            if p == me:
                try:
                    self.peak = max(self.peak, vm(pid, "VmHWM"))
                except OSError:
                    pass
                self.cpu[pid] = ticks[pid] / self.TICK
    def run(self):
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(0.05)

def measure(fn):
    rss0, mon, c0 = vm("self", "VmRSS"), Workers(), os.times()
    mon.start()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    mon.stop.set(); mon.join()
    mon.poll()
    c1 = os.times()
    cpu = (c1.user + c1.system) - (c0.user + c0.system) + sum(mon.cpu.values())  # this process + every descendant seen
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_start": rss0, "rss_main": vm("self", "VmHWM"), "rss_workers": mon.peak}))
"""

RUN_PREPARE = PRELUDE + """
import logging
import hbac.cache.build
from hbac.cache import prepare
from hbac.config import load_config
if len(sys.argv) > 6:  # the other pool than prepare picks for this many files: "threads" or "processes"
    hbac.cache.build.uses_threads = lambda cfg, adapter, n_files=0: sys.argv[6] == "threads"
over = {"name": "bench", "data_dir": sys.argv[1], "cache_root": sys.argv[2], "workers": int(sys.argv[3])}
cfg = load_config(sys.argv[5], overrides=over)  # the shipped HMS data config (configs/data/hms.yaml)
progress = sys.argv[4] == "progress"
measure(lambda: prepare(cfg, force=True, progress=progress))
"""

RUN_RAW_POLARS = PRELUDE + """
import glob, multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor
MODE = sys.argv[2]  # path, bytes: a process pool, one polars thread each; threads: bytes, threads of this process
if MODE == "threads":
    import polars  # before the clock, as prepare (threads) has imported it; a pool's children import it themselves
def read(p):  # every column
    import polars as pl
    if MODE == "path":
        pl.read_parquet(p)
    else:  # parsed from the file's bytes, as prepare reads (hbac.datasets.hms._read_parquet)
        with open(p, "rb") as fh:
            pl.read_parquet(fh.read(), use_statistics=False)
files = sorted(glob.glob(sys.argv[1] + "/train_eegs/*.parquet") + glob.glob(sys.argv[1] + "/train_spectrograms/*.parquet"))
def run():
    if MODE == "threads":
        with ThreadPoolExecutor(int(sys.argv[3])) as pool:
            for _ in pool.map(read, files):
                pass
        return
    os.environ["POLARS_MAX_THREADS"] = "1"  # read by each child's first polars call
    with mp.get_context("fork").Pool(int(sys.argv[3])) as pool:  # fork is safe: this parent never runs polars
        for _ in pool.imap_unordered(read, files, chunksize=8):
            pass
measure(run)
"""

RUN_RAW = PRELUDE + """
import glob, multiprocessing as mp
import pyarrow.parquet as pq
def read(p):  # the fastest plain pyarrow read (no dataset layer), as hbac.datasets.hms does
    pq.ParquetFile(p).read(use_threads=False)
files = sorted(glob.glob(sys.argv[1] + "/train_eegs/*.parquet") + glob.glob(sys.argv[1] + "/train_spectrograms/*.parquet"))
def run():
    with mp.get_context("fork").Pool(int(sys.argv[3])) as pool:
        for _ in pool.imap_unordered(read, files, chunksize=8):
            pass
measure(run)
"""

# What writing a cache costs on top of the read, with no conversion at all: each file read as the raw read reads
# it (from bytes), then as many of its decoded columns as the cache holds for it written as they are (an EEG's
# first C columns for the montage's C channels, a spectrogram's 400 value columns) into one file, at an offset
# reserved under a lock as prepare's workers reserve their slices. prepare reads the same files and writes the same
# number of bytes, and converts too: it cannot beat this, the ceiling of any prepare that writes its cache.
RUN_READ_WRITE = PRELUDE + """
import glob, multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor
MODE, OUT, N_EEG = sys.argv[2], sys.argv[4], int(sys.argv[5])  # pool: a process pool, one polars thread each; threads: threads of this process
if MODE == "threads":
    import polars  # before the clock, as prepare (threads) has imported it
def start(lock, nxt):
    global FD, LOCK, NEXT
    FD, LOCK, NEXT = os.open(OUT, os.O_WRONLY), lock, nxt
def read_write(p):
    import polars as pl
    with open(p, "rb") as fh:
        df = pl.read_parquet(fh.read(), use_statistics=False)
    keep = df.get_columns()[:N_EEG] if "train_eegs" in p else df.get_columns()[1:]  # a spectrogram's first column is time
    cols = [s.to_numpy() for s in keep]  # no copy for a column without nulls
    n = sum(c.nbytes for c in cols)
    with LOCK:
        at = NEXT.value
        NEXT.value += n
    done = os.pwritev(FD, cols, at)
    if done < n:  # pwritev may write less than asked: the rest from one buffer
        rest = memoryview(b"".join(c.tobytes() for c in cols))
        while done < n:
            done += os.pwrite(FD, rest[done:], at + done)
files = sorted(glob.glob(sys.argv[1] + "/train_eegs/*.parquet") + glob.glob(sys.argv[1] + "/train_spectrograms/*.parquet"))
open(OUT, "wb").close()
def run():
    nxt = mp.Value("q", 0)
    if MODE == "threads":
        start(nxt.get_lock(), nxt)
        with ThreadPoolExecutor(int(sys.argv[3])) as pool:
            for _ in pool.map(read_write, files):
                pass
        return
    os.environ["POLARS_MAX_THREADS"] = "1"  # read by each child's first polars call
    with mp.get_context("fork").Pool(int(sys.argv[3]), initializer=start, initargs=(nxt.get_lock(), nxt)) as pool:
        for _ in pool.imap_unordered(read_write, files, chunksize=8):
            pass
measure(run)
os.unlink(OUT)
"""


# The way public notebooks build their arrays: one pd.read_parquet per train.csv row.
RUN_PANDAS = PRELUDE + """
import numpy as np, pandas as pd
from scipy.signal import butter, filtfilt
train = pd.read_csv(sys.argv[1] + "/train.csv")
PAIRS = [("Fp1","F7"),("F7","T3"),("T3","T5"),("T5","O1"),("Fp2","F8"),("F8","T4"),("T4","T6"),("T6","O2"),
         ("Fp1","F3"),("F3","C3"),("C3","P3"),("P3","O1"),("Fp2","F4"),("F4","C4"),("C4","P4"),("P4","O2")]
b, a = butter(4, [0.5 / 100, 20 / 100], btype="band")
def run():
  eegs, specs = [], []
  for row in train.itertuples():
    df = pd.read_parquet(f"{sys.argv[1]}/train_eegs/{row.eeg_id}.parquet")
    start = int(row.eeg_label_offset_seconds * 200)
    df = df.iloc[start:start + 10000]
    df = df.fillna(df.mean()).fillna(0)
    x = np.stack([(df[p] - df[q]).to_numpy() for p, q in PAIRS]).astype(np.float32)
    x = np.clip(filtfilt(b, a, x, axis=1), -1024, 1024).astype(np.float32)
    eegs.append(x)
    sp = pd.read_parquet(f"{sys.argv[1]}/train_spectrograms/{row.spectrogram_id}.parquet")
    off = row.spectrogram_label_offset_seconds
    sp = sp.loc[(sp.time >= off) & (sp.time < off + 600)].iloc[:, 1:].to_numpy(np.float32)
    specs.append(np.pad(sp, ((0, 300 - len(sp)), (0, 0)), constant_values=np.nan))
  X = np.stack(eegs)
  S = np.stack(specs)
measure(run)
"""


def run(code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter with argv; returns its JSON line."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def eeg_channels() -> int:
    """Channels of the shipped HMS config's montage: the columns of an EEG the read + write runs write (no torch)."""
    from hbac.config import load_config
    from hbac.datasets import adapter_for

    cfg = load_config(DATA_CFG)
    return len(adapter_for(cfg).channels(cfg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="recordings in the small run (the large run has 4N)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline-both", action="store_true", help="also run the pandas loop at 4N (slow, memory-hungry)")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas per-row loop (about 1 s per recording)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--full-scale", action="store_true", help="prepare the competition's 17,089 EEGs / 11,138 spectrograms once")
    ap.add_argument("--workdir", default=None, help="--full-scale: folder for the replicated data and the cache (default: a temp folder)")
    a = ap.parse_args()
    if a.full_scale:
        full_scale(a.workers, a.workdir)
        return

    from hbac.cache.build import THREADS_MAX_FILES

    results = []
    n_eeg = eeg_channels()
    with tempfile.TemporaryDirectory(prefix="hbac_bench_") as tmp_s:
        tmp = Path(tmp_s)
        src, kind = source_dir(tmp)
        pairs = source_pairs(src)
        print(f"source: {kind} ({src}), {len(pairs)} EEG+spectrogram pairs, {sum(len(p[2]) for p in pairs)} rows; "
              f"{a.workers} workers, {os.cpu_count()} cores")
        for n in (a.n, 4 * a.n):
            data = tmp / f"hms_{n}"
            info = build(src, pairs, n, data)
            # what prepare picks for n EEG + n spectrogram files (hbac.cache.build.uses_threads), and the other kind
            pool, other = ("threads", "processes") if 2 * n < THREADS_MAX_FILES else ("processes", "threads")
            runs = [
                ("raw read (polars)", RUN_RAW_POLARS, (str(data), "path", str(a.workers))),
                ("raw read (polars, bytes)", RUN_RAW_POLARS, (str(data), "bytes", str(a.workers))),
                ("raw read (polars, threads)", RUN_RAW_POLARS, (str(data), "threads", str(a.workers))),
                ("raw read (pyarrow)", RUN_RAW, (str(data), "", str(a.workers))),
                (f"prepare ({a.workers} {pool})", RUN_PREPARE, (str(data), str(tmp / "cache"), str(a.workers), "quiet", DATA_CFG)),
                ("prepare (1 worker)", RUN_PREPARE, (str(data), str(tmp / "cache"), "1", "quiet", DATA_CFG)),
                (f"prepare ({a.workers} {other}, forced)", RUN_PREPARE, (str(data), str(tmp / "cache"), str(a.workers), "quiet", DATA_CFG, other)),
                # after the prepares: their caches are deleted, so these writes reuse freed page-cache memory that a
                # first writer pays for (on this VM, writing 1.5 GB into fresh memory took 2.4 s against 0.5 s)
                ("read + write (polars)", RUN_READ_WRITE, (str(data), "pool", str(a.workers), str(tmp / "rw.bin"), str(n_eeg))),
                ("read + write (polars, threads)", RUN_READ_WRITE, (str(data), "threads", str(a.workers), str(tmp / "rw.bin"), str(n_eeg))),
            ]
            if (n == a.n or a.baseline_both) and not a.no_pandas:
                runs.append(("pandas per row", RUN_PANDAS, (str(data),)))
            for name, code, args in runs:
                shutil.rmtree(tmp / "cache", ignore_errors=True)  # a first build: removing an old cache is not timed
                r = run(code, *args)
                r.update(info, method=name)
                results.append(r)
                print(f"  N={n:5d} {name:30s} {r['wall']:7.2f} s", flush=True)

    df = pd.DataFrame(results)
    df["rec_per_s"] = df.recordings / df.wall
    df["mb_per_s"] = df.mb / df.wall
    base = df[df.method == "pandas per row"].set_index("recordings").wall if "method" in df else pd.Series(dtype=float)
    df["speedup_vs_pandas"] = df.recordings.map(base) / df.wall
    cols = ["recordings", "rows", "method", "wall", "cpu", "rec_per_s", "mb_per_s", "rss_start", "rss_main", "rss_workers", "speedup_vs_pandas"]
    print()
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print()
    for n, g in df.groupby("recordings"):
        limit = g[g.method.str.startswith("raw read")].wall.min()
        written = g[g.method.str.startswith("read + write")].wall.min()
        for _, r in g[g.method.str.startswith("prepare")].iterrows():
            print(f"N={n:5d} {r.method:40s} {100 * limit / r.wall:5.1f} % of the raw read limit (fastest raw read {limit:.2f} s); "
                  f"{100 * written / r.wall:5.1f} % of the fastest read + write ({written:.2f} s)")
        threads = g[g.method == "raw read (polars, threads)"].wall
        if len(threads):  # prepare (threads) reads the same way and then converts and writes: it cannot beat this
            print(f"N={n:5d} {'ceiling of threaded prepare':40s} {100 * limit / threads.iloc[0]:5.1f} % of the raw read limit "
                  f"(the raw read alone in threads, no conversion or write: {threads.iloc[0]:.2f} s)")
        for _, r in g[g.method.str.startswith("read + write")].iterrows():  # any prepare writes its cache: it cannot beat these
            print(f"N={n:5d} {'ceiling: ' + r.method:40s} {100 * limit / r.wall:5.1f} % of the raw read limit "
                  f"(the read, then the cache's bytes written with no conversion: {r.wall:.2f} s)")
    if a.json:
        df[cols].to_json(a.json, orient="records", indent=1)


# --------------------------------------------------------------------------- full competition scale
FULL_EEGS, FULL_SPECS = 17_089, 11_138
TILE_EEG_S, TILE_SPEC_S = 100.0, 600.0  # tiled files are made in steps of this length


def _tiled(src: Path, seconds: float, fs: float, out: Path) -> Path:
    """A parquet file of `src`'s columns tiled to at least `seconds` (rows at `fs` Hz), written once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if out.exists():
        return out
    t = pq.read_table(src)
    n = int(np.ceil(seconds * fs))
    reps = int(np.ceil(n / t.num_rows))
    big = pa.concat_tables([t] * reps).slice(0, n)
    if "time" in big.column_names:  # spectrogram: keep `time` increasing (1, 3, 5, … s)
        times = pa.array(np.arange(n, dtype=np.float64) * 2 + 1, type=t.schema.field("time").type)
        big = big.set_column(big.column_names.index("time"), "time", times)
    pq.write_table(big, out)
    return out


def _pick(lengths: dict[Path, float], need: float, tiles: Path, fs: float, tile_s: float, kind: str) -> Path:
    """The shortest real file at least `need` seconds long, else a tiled copy of the longest."""
    ok = [p for p, n in lengths.items() if n >= need]
    if ok:
        return min(ok, key=lambda p: lengths[p])
    longest = max(lengths, key=lengths.get)
    size = float(np.ceil(need / tile_s) * tile_s)
    return _tiled(longest, size, fs, tiles / f"{kind}_{int(size)}.parquet")


def build_full(src: Path, out: Path) -> dict:
    """The competition's train set, replicated: real train.csv rows (offsets) cycled to 17,089 EEGs."""
    import pyarrow.parquet as pq

    train = pd.read_csv(src / "train.csv")
    eeg_len = {p: pq.read_metadata(p).num_rows / 200.0 for p in (src / "train_eegs").glob("*.parquet")}
    spec_len = {p: pq.read_metadata(p).num_rows * 2.0 for p in (src / "train_spectrograms").glob("*.parquet")}
    tiles = out / "tiles"
    for sub in ("train_eegs", "train_spectrograms", "tiles"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    codes, eegs = pd.factorize(train.eeg_id, sort=True)
    spec_code, _ = pd.factorize(train.spectrogram_id)
    n_spec = int(spec_code.max()) + 1
    frames = []
    for copy in range(-(-FULL_EEGS // len(eegs))):  # whole copies of the real table, the last one partial
        keep = codes < min(len(eegs), FULL_EEGS - copy * len(eegs))
        g = train[keep].copy()
        g["eeg_id"] = 100_000_000 + copy * len(eegs) + codes[keep]
        # whole copies get new spectrogram ids; the partial last copy gets just enough new ones to make
        # FULL_SPECS in all and reuses earlier ids for the rest (as real EEGs share spectrograms)
        rank = pd.factorize(spec_code[keep])[0]
        fresh = FULL_SPECS - copy * n_spec
        new_id = np.where(rank < fresh, copy * n_spec + rank, (rank - fresh) % max(1, copy * n_spec))
        g["spectrogram_id"] = 200_000_000 + new_id
        g["label_id"] = g["label_id"] + copy * 10_000_000_000
        g["patient_id"] = g["patient_id"] + copy * 100_000
        frames.append(g)
    full = pd.concat(frames, ignore_index=True)
    full.to_csv(out / "train.csv", index=False)
    nbytes = 0
    for eid, need in (full.groupby("eeg_id").eeg_label_offset_seconds.max() + 50.0).items():
        target = _pick(eeg_len, need, tiles, 200.0, TILE_EEG_S, "eeg")
        os.symlink(target.resolve(), out / "train_eegs" / f"{eid}.parquet")
        nbytes += target.stat().st_size
    for sid, need in (full.groupby("spectrogram_id").spectrogram_label_offset_seconds.max() + 600.0).items():
        target = _pick(spec_len, need, tiles, 0.5, TILE_SPEC_S, "spec")
        os.symlink(target.resolve(), out / "train_spectrograms" / f"{sid}.parquet")
        nbytes += target.stat().st_size
    return {"rows": len(full), "eegs": full.eeg_id.nunique(), "specs": full.spectrogram_id.nunique(), "mb": nbytes / 1e6}


def _du(path: Path) -> float:
    """Bytes actually allocated under `path` (sparse files count what was written), in GB."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 1e9


def full_scale(workers: int, workdir: Optional[str]) -> None:
    if not (REAL / "train.csv").exists():
        raise SystemExit(f"--full-scale needs the real files in {REAL}")
    with tempfile.TemporaryDirectory(prefix="hbac_full_", dir=workdir) as tmp_s:
        tmp = Path(tmp_s)
        info = build_full(REAL, tmp / "hms")
        print(f"full scale: {info['rows']} rows, {info['eegs']} EEGs, {info['specs']} spectrograms, "
              f"{info['mb'] / 1e3:.1f} GB of parquet (symlinked); {workers} workers, {os.cpu_count()} cores", flush=True)
        r = run(RUN_PREPARE, str(tmp / "hms"), str(tmp / "cache"), str(workers), "progress", DATA_CFG)
        gb = _du(tmp / "cache")
        print(f"prepare: {r['wall']:.0f} s wall ({r['wall'] / 60:.1f} min), {r['cpu']:.0f} CPU-s, "
              f"{(info['eegs'] + info['specs']) / r['wall']:.1f} files/s, peak RSS main {r['rss_main']:.0f} MB, "
              f"largest worker {r['rss_workers']:.0f} MB, cache {gb:.1f} GB on disk")


if __name__ == "__main__":
    main()
