"""Benchmark `hbac.prepare` against the per-row pandas loop of public notebooks.

Builds an HMS-layout folder of N (and 4N) recordings in a temp dir by replicating source
files under new eeg_ids / spectrogram_ids (symlinks to the real files in ../shared/data/hms
when present, else to a small synthetic set), then times, each in a fresh subprocess:

- `raw read`: every parquet file read once with pyarrow (`ParquetFile.read`), nothing else, same
  number of processes: the floor that "near raw parquet read speed" is measured against;
- `prepare`: `hbac.prepare.prepare` with the default HMS config (all workers, and 1 worker), and
  without the band-pass filter (what is left: read, montage, NaN check, clip, write, sizing);
- `pandas per row`: `pd.read_parquet` per train.csv row, crop, montage, NaN fill, band-pass,
  append to a list, `np.stack` at the end (at N only unless --baseline-both).

Reports recordings/s, MB/s (raw parquet bytes of the N recordings' files / wall time), CPU
seconds (process + workers), RSS of the main process after its imports (`rss_start`, mostly
torch, which `hbac.signals` imports) and at its peak (`rss_main`, VmHWM), and the largest
peak RSS of any worker process (`rss_workers`, VmHWM polled from /proc; forked workers
count the pages they share with the parent), all in MB. Linux only.
Files are symlinks to a few sources, so reads hit the page cache for every method alike.

    python benchmarks/prepare.py --n 200 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "hms"
SECONDS_PER_ROW_WINDOW = 50.0


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
    # peak RSS (VmHWM) of this process's children, polled while they live
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = 0.0, threading.Event()
    def run(self):
        me = os.getpid()
        while not self.stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                            self.peak = max(self.peak, vm(pid, "VmHWM"))
                except (OSError, ValueError, IndexError):
                    pass
            self.stop.wait(0.05)

def measure(fn):
    rss0, mon, c0 = vm("self", "VmRSS"), Workers(), os.times()
    mon.start()
    t = time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    mon.stop.set(); mon.join()
    c1 = os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - (c0.user + c0.system + c0.children_user + c0.children_system)
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_start": rss0, "rss_main": vm("self", "VmHWM"), "rss_workers": mon.peak}))
"""

RUN_PREPARE = PRELUDE + """
import logging
from hbac.config import DataConfig
from hbac.prepare import prepare
cfg = DataConfig(name="bench", data_dir=sys.argv[1], cache_root=sys.argv[2], workers=int(sys.argv[3]))
if len(sys.argv) > 4 and sys.argv[4] == "nofilter":  # I/O + montage only: how close to the raw read
    cfg.eeg.bandpass = None
measure(lambda: prepare(cfg, force=True, progress=False))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="recordings in the small run (the large run has 4N)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline-both", action="store_true", help="also run the pandas loop at 4N (slow, memory-hungry)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    a = ap.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="hbac_bench_") as tmp_s:
        tmp = Path(tmp_s)
        src, kind = source_dir(tmp)
        pairs = source_pairs(src)
        print(f"source: {kind} ({src}), {len(pairs)} EEG+spectrogram pairs, {sum(len(p[2]) for p in pairs)} rows; "
              f"{a.workers} workers, {os.cpu_count()} cores")
        for n in (a.n, 4 * a.n):
            data = tmp / f"hms_{n}"
            info = build(src, pairs, n, data)
            runs = [
                ("raw read (pyarrow)", RUN_RAW, (str(data), "", str(a.workers))),
                (f"prepare ({a.workers} workers)", RUN_PREPARE, (str(data), str(tmp / "cache"), str(a.workers))),
                ("prepare (1 worker)", RUN_PREPARE, (str(data), str(tmp / "cache"), "1")),
                (f"prepare, no band-pass ({a.workers} w)", RUN_PREPARE, (str(data), str(tmp / "cache"), str(a.workers), "nofilter")),
            ]
            if n == a.n or a.baseline_both:
                runs.append(("pandas per row", RUN_PANDAS, (str(data),)))
            for name, code, args in runs:
                r = run(code, *args)
                r.update(info, method=name)
                results.append(r)
                print(f"  N={n:5d} {name:30s} {r['wall']:7.2f} s", flush=True)

    df = pd.DataFrame(results)
    df["rec_per_s"] = df.recordings / df.wall
    df["mb_per_s"] = df.mb / df.wall
    base = df[df.method == "pandas per row"].set_index("recordings").wall
    df["speedup_vs_pandas"] = df.recordings.map(base) / df.wall
    cols = ["recordings", "rows", "method", "wall", "cpu", "rec_per_s", "mb_per_s", "rss_start", "rss_main", "rss_workers", "speedup_vs_pandas"]
    print()
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if a.json:
        df[cols].to_json(a.json, orient="records", indent=1)


if __name__ == "__main__":
    main()
