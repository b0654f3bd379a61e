"""The Kaggle loop through the `kaggle` package: download the competition, bundle, upload, push a notebook, status.

Every network call goes through `kaggle.api.kaggle_api_extended.KaggleApi` (no hand-written
HTTP); `dry_run=True` prints what would be sent (files with sizes, metadata JSON) and touches
no network. The `kaggle` package is imported lazily inside `_api()`: importing it
authenticates at import time and prints a page of help when no credential exists.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from hbac.cache.build import plan_rows
from hbac.config import DataConfig, load_config
from hbac.inference.predict import member_folds
from hbac.io import read_json
from hbac.leaderboard import build_leaderboard

log = logging.getLogger(__name__)

COMPETITIONS = {"hms": "hms-harmful-brain-activity-classification"}
# What submit.py imports that a Kaggle GPU image lacks (with what they need in turn), pinned to the versions here.
BUNDLE_DEPS = ("polars", "polars-runtime-32", "skops", "prettytable", "timescoring", "pyEDFlib")
EXPERIMENT_FILES = ("config.yaml", "scores.json", "oof.csv", "weights.json")
NO_CREDENTIALS = (
    "no Kaggle credentials: put your API token in ~/.kaggle/kaggle.json ({\"username\": …, \"key\": …}), "
    "or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN (https://www.kaggle.com/settings/api)"
)


class KaggleError(ValueError):
    """A Kaggle step that cannot go on; the message says what to do."""


def competition_slug(name: str) -> str:
    """'hms' → 'hms-harmful-brain-activity-classification'; any other name is taken as a slug."""
    return COMPETITIONS.get(name, name)


def _api() -> Any:
    """An authenticated `KaggleApi`; a missing credential is a one-line `KaggleError` saying where to put one."""
    sink = io.StringIO()
    # lazy and silenced: `import kaggle` (2.x) authenticates at import and prints a long help text without credentials
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit:  # the client calls exit(1) after printing its help
            raise KaggleError(NO_CREDENTIALS) from None
    return api


def _http_status(e: BaseException) -> Optional[int]:
    """The HTTP status of a `requests` error raised inside the client, else None."""
    return getattr(getattr(e, "response", None), "status_code", None)


def _username() -> Optional[str]:
    """The Kaggle user from KAGGLE_USERNAME or ~/.kaggle/kaggle.json (no network)."""
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    cfg = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    try:
        return json.loads(cfg.read_text()).get("username")
    except (OSError, ValueError):
        return None


def _ref(ref: Optional[str], default_slug: str, what: str) -> str:
    """'user/slug' from `ref`, or the known user + `default_slug`; KaggleError when no user is known."""
    if ref and "/" in ref:
        return ref
    user = _username()
    if not user:
        raise KaggleError(f"{what}: give --id USER/SLUG (or set KAGGLE_USERNAME)")
    return f"{user}/{ref or default_slug}"


def _size(n: int) -> str:
    """Bytes → '1.2 MB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _file_list(root: Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file under `root`, sorted."""
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def _print_files(title: str, files: Sequence[tuple[str, int]]) -> None:
    """One line per file with its size, then the total."""
    print(title)
    for name, n in files:
        print(f"  {name}  ({_size(n)})")
    print(f"  total {_size(sum(n for _, n in files))} in {len(files)} file(s)")


# --------------------------------------------------------------------------- download


def validate_layout(data_dir: Path) -> dict[str, int]:
    """The checks `prepare` runs (the HMS adapter's tables, every referenced file present) → rows per split."""
    return {split: len(plan_rows(DataConfig(name=f"kaggle_check_{split}", dataset="hms", data_dir=str(data_dir), split=split)).table)
            for split in ("train", "test")}


def _unzip(zpath: Path, to: Path) -> int:
    """Extract `zpath` into `to`, skipping members already there with the right size; → members written."""
    try:
        zf = zipfile.ZipFile(zpath)
    except zipfile.BadZipFile:
        raise KaggleError(f"{zpath} is incomplete or corrupt; run the download again (it resumes) or delete it") from None
    n = 0
    with zf:
        for info in zf.infolist():
            dest = to / info.filename
            if info.is_dir() or (dest.exists() and dest.stat().st_size == info.file_size):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            with zf.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, dest)
            n += 1
    return n


def download(competition: str = "hms", to: Path = Path("inputs/hms"), force: bool = False, dry_run: bool = False,
             keep_zip: bool = False) -> dict[str, int]:
    """Fetch the competition zip (the client resumes a partial one), unzip, validate → rows per split."""
    slug = competition_slug(competition)
    to = Path(to)
    zpath = to / f"{slug}.zip"
    if not force and not zpath.exists():
        with contextlib.suppress(FileNotFoundError, ValueError):
            rows = validate_layout(to)
            print(f"{to}: already complete ({rows['train']} train rows, {rows['test']} test rows); nothing to download")
            return rows
    if dry_run:
        print(f"would call competition_download_files({slug!r}, path={str(to)!r}, force={force}) → {zpath}, "
              f"then unzip into {to} and validate the layout")
        return {}
    to.mkdir(parents=True, exist_ok=True)
    api = _api()
    try:
        api.competition_download_files(slug, path=str(to), force=force, quiet=False)
    except Exception as e:  # the client raises requests' HTTPError; anything else propagates unchanged
        status = _http_status(e)
        if status == 403:
            raise KaggleError(f"download refused (403): accept the competition rules at "
                              f"https://www.kaggle.com/competitions/{slug}/rules, then run this again") from None
        if status == 401:
            raise KaggleError(f"download refused (401): the Kaggle credential was rejected; {NO_CREDENTIALS}") from None
        raise
    if zpath.exists():
        log.info("unzipping %s (%s)", zpath, _size(zpath.stat().st_size))
        log.info("%d file(s) extracted", _unzip(zpath, to))
        if not keep_zip:
            zpath.unlink()
    rows = validate_layout(to)
    print(f"{to}: {rows['train']} train rows, {rows['test']} test rows; layout valid")
    return rows


# --------------------------------------------------------------------------- bundle


@dataclass
class BundlePlan:
    """What `bundle` writes: files copied as they are, configs rewritten, wheels built or downloaded."""

    copies: list[tuple[Path, str]] = field(default_factory=list)  # (source, path in the bundle)
    configs: dict[str, dict] = field(default_factory=dict)  # path in the bundle → config to write
    deps: list[str] = field(default_factory=list)  # 'pkg==version' for pip download
    metadata: dict[str, Any] = field(default_factory=dict)


def _members(outputs: Path, names: Sequence[str]) -> list[str]:
    """Experiments and ensembles named, plus every ensemble's members, in order, each once."""
    out: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        if not (outputs / name).is_dir():
            raise FileNotFoundError(f"bundle: no experiment or ensemble {outputs / name}")
        out.append(name)
        w = outputs / name / "weights.json"
        if w.exists():
            todo += [k for k, v in read_json(w)["weights"].items() if float(v) > 0]
    return out


def _default_experiments(outputs: Path) -> list[str]:
    """The best complete HMS entry of the leaderboard."""
    lb = build_leaderboard(outputs)
    lb = lb[lb["task"] == "hms"] if len(lb) else lb
    if not len(lb):
        raise FileNotFoundError(f"bundle: no HMS experiment under {outputs}; pass --experiments")
    return [str(lb.iloc[0]["name"])]


def _plan_experiment(plan: BundlePlan, exp_dir: Path) -> None:
    """Add one experiment's (or ensemble's) files; its timm weights go to timm/ and its config points there."""
    rel = f"outputs/{exp_dir.name}"
    ensemble = (exp_dir / "weights.json").exists()
    for name in EXPERIMENT_FILES:
        if (exp_dir / name).exists() and (ensemble or name != "config.yaml"):
            plan.copies.append((exp_dir / name, f"{rel}/{name}"))
    if ensemble:
        return  # weights.json, its config, scores, OOF; the members are planned on their own
    load_config(exp_dir / "config.yaml")  # a config that no longer validates fails here, not on Kaggle
    for ckpt in member_folds(exp_dir):
        plan.copies.append((ckpt, f"{rel}/{ckpt.relative_to(exp_dir).as_posix()}"))
    cfg = yaml.safe_load((exp_dir / "config.yaml").read_text())
    model = cfg.get("model") or {}
    if model.get("pretrained") and model.get("pretrained_path"):
        src = Path(model["pretrained_path"])
        if not src.exists():
            raise FileNotFoundError(f"bundle: {exp_dir.name}: model.pretrained_path {src} not found")
        dest = f"timm/{src.name}"
        if dest not in {d for _, d in plan.copies}:
            plan.copies.append((src, dest))
        model["pretrained_path"] = dest  # relative to the bundle root: run submit from there
    plan.configs[f"{rel}/config.yaml"] = cfg


def plan_bundle(outputs: Path, experiments: Optional[Sequence[str]], dataset_id: str, title: str, deps: bool = True) -> BundlePlan:
    """Everything `bundle` will write, without writing it."""
    outputs = Path(outputs)
    plan = BundlePlan()
    for name in _members(outputs, experiments or _default_experiments(outputs)):
        _plan_experiment(plan, outputs / name)
    configs = project_root() / "configs"  # for the training notebooks: the experiment configs, as in the repository
    plan.copies += [(f, f"configs/{f.relative_to(configs).as_posix()}") for f in sorted(configs.rglob("*.yaml"))]
    if deps:
        plan.deps = [f"{d}=={metadata.version(d)}" for d in BUNDLE_DEPS if _installed(d)]
    plan.metadata = {"title": title, "id": dataset_id, "licenses": [{"name": "CC0-1.0"}]}
    return plan


def _installed(dist: str) -> bool:
    """Whether a distribution is installed here."""
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def project_root() -> Path:
    """The source checkout `pip wheel .` builds (the folder holding pyproject.toml above this package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise KaggleError(f"bundle: no pyproject.toml at {root}; run it from a source checkout of hbac")
    return root


def _pip(args: Sequence[str]) -> None:
    """Run pip in this interpreter; a failure is a KaggleError with pip's last lines."""
    r = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if r.returncode:
        raise KaggleError(f"pip {' '.join(args)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def _write_bundle(plan: BundlePlan, out: Path) -> None:
    """Build the bundle in `<out>.tmp`, then swap it in place of `out`."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wheels").mkdir(parents=True)
    _pip(["wheel", str(project_root()), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "wheels")])
    for spec in plan.deps:
        _pip(["download", "--no-deps", "-q", "-d", str(tmp / "wheels"), spec])
    for src, dest in plan.copies:
        (tmp / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, tmp / dest)
    for dest, cfg in plan.configs.items():
        (tmp / dest).parent.mkdir(parents=True, exist_ok=True)
        (tmp / dest).write_text(yaml.safe_dump(cfg, sort_keys=False))
    (tmp / "submit.py").write_text(SUBMIT_ENTRY)
    (tmp / "dataset-metadata.json").write_text(json.dumps(plan.metadata, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


SUBMIT_ENTRY = '''#!/usr/bin/env python
"""Offline inference from the installed hbac wheel: python submit.py --outputs outputs --data-dir … --out …"""
from hbac.cli import submit_main

if __name__ == "__main__":
    raise SystemExit(submit_main())
'''


def bundle(outputs: Path = Path("outputs"), experiments: Optional[Sequence[str]] = None, out: Path = Path("kaggle_bundle"),
           dataset_id: Optional[str] = None, title: str = "hbac bundle", deps: bool = True, dry_run: bool = False) -> BundlePlan:
    """A folder ready to be a Kaggle dataset: wheels/, outputs/<exp>/…, timm/, configs/, submit.py, dataset-metadata.json."""
    plan = plan_bundle(outputs, experiments, _ref(dataset_id, "hbac-bundle", "bundle"), title, deps)
    if dry_run:
        _print_files(f"would write {out}/ with:", [(d, s.stat().st_size) for s, d in plan.copies]
                     + [(d, len(yaml.safe_dump(c, sort_keys=False).encode())) for d, c in plan.configs.items()]
                     + [("submit.py", len(SUBMIT_ENTRY.encode()))])
        print(f"  wheels/: hbac (pip wheel {project_root()} --no-deps)"
              + "".join(f", {d} (pip download --no-deps)" for d in plan.deps))
        print("dataset-metadata.json:\n" + json.dumps(plan.metadata, indent=2))
        return plan
    _write_bundle(plan, Path(out))
    files = _file_list(Path(out))
    print(f"bundle written to {out}: {_size(sum(n for _, n in files))} in {len(files)} file(s)")
    return plan


# --------------------------------------------------------------------------- upload, notebook, status


def upload(bundle_dir: Path, notes: str = "new version", dry_run: bool = False) -> str:
    """Create the dataset of `dataset-metadata.json`, or add a version when it exists → 'created' | 'versioned'."""
    bundle_dir = Path(bundle_dir)
    meta_path = bundle_dir / "dataset-metadata.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"upload: {meta_path} not found (make the folder with `python -m hbac kaggle bundle`)")
    meta = json.loads(meta_path.read_text())
    if dry_run:
        _print_files(f"would upload {bundle_dir} as dataset {meta.get('id')} (folders zipped):", _file_list(bundle_dir))
        print("dataset-metadata.json:\n" + json.dumps(meta, indent=2))
        return "dry-run"
    api = _api()
    try:
        api.dataset_status(meta["id"])
        exists = True
    except Exception as e:  # requests' HTTPError from the client: 404 = no such dataset yet
        if _http_status(e) != 404:
            raise
        exists = False
    if exists:
        api.dataset_create_version(str(bundle_dir), version_notes=notes, quiet=False, dir_mode="zip")
        print(f"dataset {meta['id']}: new version uploaded")
        return "versioned"
    api.dataset_create_new(str(bundle_dir), public=False, quiet=False, dir_mode="zip")
    print(f"dataset {meta['id']}: created (private)")
    return "created"


def kernel_metadata(name: str, kernel_id: str, dataset: str, competition: str) -> dict[str, Any]:
    """kernel-metadata.json of a notebook: GPU on, internet off, the bundle and the competition as sources."""
    return {
        "id": kernel_id,
        "title": kernel_id.split("/", 1)[1],
        "code_file": f"{name}.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_internet": False,
        "dataset_sources": [dataset],
        "competition_sources": [competition_slug(competition)],
        "kernel_sources": [],
        "model_sources": [],
    }


def push_notebook(name: str, dataset: Optional[str] = None, kernel_id: Optional[str] = None, competition: str = "hms",
                  notebooks: Path = Path("notebooks"), out: Optional[Path] = None, dry_run: bool = False) -> Path:
    """Stage `notebooks/<name>.ipynb` with its kernel-metadata.json in `out` and push it (kernels_push) → the folder."""
    nb = Path(notebooks) / f"{name}.ipynb"
    if not nb.exists():
        raise FileNotFoundError(f"push-notebook: {nb} not found")
    meta = kernel_metadata(name, _ref(kernel_id, name.replace("_", "-"), "push-notebook"),
                           _ref(dataset, "hbac-bundle", "push-notebook"), competition)
    folder = Path(out) if out else Path("build") / "kaggle" / name
    if dry_run:
        _print_files(f"would push {folder} with:", [(nb.name, nb.stat().st_size)])
        print("kernel-metadata.json:\n" + json.dumps(meta, indent=2))
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(nb, folder / nb.name)
    (folder / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    r = _api().kernels_push(str(folder))
    url = getattr(r, "url", "") or ""
    err = getattr(r, "error", "") or ""
    if err:
        raise KaggleError(f"push-notebook: Kaggle refused {meta['id']}: {err}")
    print(f"pushed {meta['id']} {url}".rstrip())
    return folder


def status(competition: str = "hms", n: int = 10, dry_run: bool = False) -> list[dict[str, Any]]:
    """The latest submissions (date, description, status, public/private score) as a printed table."""
    slug = competition_slug(competition)
    if dry_run:
        print(f"would call competition_submissions({slug!r}) and print the latest {n}")
        return []
    subs = _api().competition_submissions(slug) or []
    rows = [{k: getattr(s, k, None) for k in ("date", "description", "status", "public_score", "private_score")}
            for s in subs[:n] if s is not None]
    print(f"{'date':<20} {'status':<10} {'public':>8} {'private':>8}  description")
    for r in rows:
        print(f"{str(r['date'])[:19]:<20} {str(r['status']).split('.')[-1][:10]:<10} {str(r['public_score'] or '-'):>8} "
              f"{str(r['private_score'] or '-'):>8}  {r['description'] or ''}")
    if not rows:
        print(f"no submissions yet to {slug}")
    return rows
