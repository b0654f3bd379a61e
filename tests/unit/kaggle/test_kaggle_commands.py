"""`python -m hbac kaggle …`: dry runs print exactly what would be sent; the real client's HTTP methods are stubbed."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import requests
import yaml
from conftest import REPO_ROOT

import hbac.kaggle as kg
from hbac.cli import main
from hbac.config import load_config, save_config

SLUG = "hms-harmful-brain-activity-classification"
NETWORK = ("authenticate", "competition_download_files", "dataset_status", "dataset_create_new",
           "dataset_create_version", "kernels_push", "competition_submissions")


def _http_error(code: int) -> requests.HTTPError:
    r = requests.Response()
    r.status_code = code
    return requests.HTTPError(f"{code} error", response=r)


@pytest.fixture
def kaggle_api() -> type:
    """The kaggle client class, `KaggleApi` (imported here, not at the top: 0.3 s that only the tests using it need)."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    return KaggleApi


@pytest.fixture
def no_network(monkeypatch, kaggle_api):
    """Every HTTP method of the kaggle client fails the test if called."""
    for m in NETWORK:
        monkeypatch.setattr(kaggle_api, m, lambda self, *a, **k: pytest.fail("network touched in a dry run"))


@pytest.fixture
def calls(monkeypatch, kaggle_api):
    """Stub the client's network boundary: authentication passes, each call is recorded."""
    log: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(kaggle_api, "authenticate", lambda self: None)
    for m in NETWORK[1:]:
        monkeypatch.setattr(kaggle_api, m, lambda self, *a, _m=m, **k: log.append((_m, a, k)))
    return log


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    """outputs/tiny_hms_1d with a resolved config, three fold checkpoints (dummy bytes), scores and OOF."""
    exp = tmp_path / "outputs" / "tiny_hms_1d"
    exp.mkdir(parents=True)
    save_config(load_config(REPO_ROOT / "configs" / "tiny" / "hms_1d.yaml"), exp / "config.yaml")
    for k in range(3):
        (exp / f"fold{k}").mkdir()
        (exp / f"fold{k}" / "best.pt").write_bytes(b"x" * (100 + k))
    (exp / "scores.json").write_text("{}")
    (exp / "oof.csv").write_text("a\n1\n")
    return exp


def test_missing_credentials_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    for v in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["kaggle", "status"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "kaggle.json" in err and "KAGGLE_USERNAME" in err and "KAGGLE_API_TOKEN" in err


def test_status_prints_the_submissions(calls, monkeypatch, capsys, kaggle_api) -> None:
    # imported here with the client (see `kaggle_api`)
    from kagglesdk.competitions.types.competition_api_service import ApiSubmission

    s = ApiSubmission()
    s.description, s.public_score, s.private_score = "tiny ensemble", "0.412", "0.455"
    monkeypatch.setattr(kaggle_api, "competition_submissions", lambda self, slug, **k: [s] if slug == SLUG else [])
    rows = kg.status("hms")
    assert rows[0]["public_score"] == "0.412"
    assert "tiny ensemble" in capsys.readouterr().out


def _zip_of(folder: Path, zpath: Path) -> None:
    with zipfile.ZipFile(zpath, "w") as z:
        for p in folder.rglob("*"):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())


def test_download_unzips_and_validates(calls, monkeypatch, synth_hms, tmp_path, kaggle_api) -> None:
    def fetch(self, competition, path=None, force=False, quiet=True, unzip=False):
        calls.append(("download", (competition, path), {}))
        _zip_of(synth_hms, Path(path) / f"{competition}.zip")

    monkeypatch.setattr(kaggle_api, "competition_download_files", fetch)
    to = tmp_path / "hms"
    rows = kg.download("hms", to)
    assert calls == [("download", (SLUG, str(to)), {})]
    assert rows["test"] == 4 and rows["train"] > 0 and not (to / f"{SLUG}.zip").exists()
    assert kg.download("hms", to) == rows and len(calls) == 1  # complete: nothing fetched again


def test_download_incomplete_layout_names_the_file(calls, monkeypatch, synth_hms, tmp_path, kaggle_api) -> None:
    src = tmp_path / "src"
    shutil.copytree(synth_hms, src)
    (src / "test.csv").write_text("spectrogram_id,eeg_id,patient_id\n1,999,3\n")  # a test EEG with no parquet

    def fetch(self, competition, path=None, **k):
        _zip_of(src, Path(path) / f"{competition}.zip")

    monkeypatch.setattr(kaggle_api, "competition_download_files", fetch)
    with pytest.raises(ValueError, match="missing files"):
        kg.download("hms", tmp_path / "hms")


def test_download_403_says_accept_the_rules(calls, monkeypatch, tmp_path, capsys, kaggle_api) -> None:
    def refuse(self, *a, **k):
        raise _http_error(403)

    monkeypatch.setattr(kaggle_api, "competition_download_files", refuse)
    assert main(["kaggle", "download", "hms", "--to", str(tmp_path / "hms")]) == 2
    assert f"accept the competition rules at https://www.kaggle.com/competitions/{SLUG}/rules" in capsys.readouterr().err


def test_download_dry_run(no_network, tmp_path, capsys) -> None:
    kg.download("hms", tmp_path / "hms", dry_run=True)
    out = capsys.readouterr().out
    assert f"competition_download_files({SLUG!r}, path={str(tmp_path / 'hms')!r}, force=False)" in out


def test_bundle_dry_run_lists_files_and_metadata(no_network, experiment, tmp_path, capsys) -> None:
    plan = kg.bundle(experiment.parent, ["tiny_hms_1d"], tmp_path / "b", dataset_id="me/hbac-bundle", dry_run=True)
    out = capsys.readouterr().out
    want = ["outputs/tiny_hms_1d/scores.json  (2 B)", "outputs/tiny_hms_1d/oof.csv  (4 B)",
            "outputs/tiny_hms_1d/fold0/best.pt  (100 B)", "outputs/tiny_hms_1d/fold2/best.pt  (102 B)",
            "outputs/tiny_hms_1d/config.yaml", "submit.py"]
    for w in want:
        assert w in out
    assert not (tmp_path / "b").exists()
    assert json.loads(out.split("dataset-metadata.json:\n")[1]) == {
        "title": "hbac bundle", "id": "me/hbac-bundle", "licenses": [{"name": "CC0-1.0"}]}
    assert {d.split("==")[0] for d in plan.deps} >= {"skops", "timescoring", "pyEDFlib", "polars"}


def test_bundle_copies_pretrained_weights_and_points_the_config_there(experiment, tmp_path) -> None:
    w = tmp_path / "timm_b0.pth"
    w.write_bytes(b"w" * 10)
    d = yaml.safe_load((experiment / "config.yaml").read_text())
    d["model"].update(pretrained=True, pretrained_path=str(w))
    (experiment / "config.yaml").write_text(yaml.safe_dump(d))
    plan = kg.plan_bundle(experiment.parent, ["tiny_hms_1d"], "me/x", "t", deps=False)
    assert (w, "timm/timm_b0.pth") in plan.copies
    assert plan.configs["outputs/tiny_hms_1d/config.yaml"]["model"]["pretrained_path"] == "timm/timm_b0.pth"


def test_bundle_missing_fold_is_an_error(experiment) -> None:
    (experiment / "fold1" / "best.pt").unlink()
    with pytest.raises(FileNotFoundError, match="fold1"):
        kg.plan_bundle(experiment.parent, ["tiny_hms_1d"], "me/x", "t", deps=False)


def _bundle_dir(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    (b / "wheels").mkdir(parents=True)
    (b / "wheels" / "hbac-0.1.0-py3-none-any.whl").write_bytes(b"z" * 2000)
    (b / "dataset-metadata.json").write_text(json.dumps({"title": "t", "id": "me/hbac-bundle", "licenses": []}))
    return b


def test_upload_dry_run(no_network, tmp_path, capsys) -> None:
    kg.upload(_bundle_dir(tmp_path), dry_run=True)
    out = capsys.readouterr().out
    assert "as dataset me/hbac-bundle" in out and "wheels/hbac-0.1.0-py3-none-any.whl  (2.0 kB)" in out


def test_upload_creates_then_versions(calls, monkeypatch, tmp_path, kaggle_api) -> None:
    b = _bundle_dir(tmp_path)

    def absent(self, ref, *a, **k):
        raise _http_error(404)

    monkeypatch.setattr(kaggle_api, "dataset_status", absent)
    assert kg.upload(b) == "created"
    assert calls[-1] == ("dataset_create_new", (str(b),), {"public": False, "quiet": False, "dir_mode": "zip"})
    monkeypatch.setattr(kaggle_api, "dataset_status", lambda self, ref, *a, **k: "ready")
    assert kg.upload(b, notes="v2") == "versioned"
    assert calls[-1] == ("dataset_create_version", (str(b),), {"version_notes": "v2", "quiet": False, "dir_mode": "zip"})


def test_push_notebook_writes_metadata_and_pushes(calls, tmp_path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (nbs / "hms_submit.ipynb").write_text("{}")
    folder = kg.push_notebook("hms_submit", dataset="me/hbac-bundle", kernel_id="me/hms-submit", notebooks=nbs,
                              out=tmp_path / "stage")
    assert calls == [("kernels_push", (str(folder),), {})]
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta == kg.kernel_metadata("hms_submit", "me/hms-submit", "me/hbac-bundle", "hms")
    assert meta["enable_gpu"] is True and meta["enable_internet"] is False
    assert meta["dataset_sources"] == ["me/hbac-bundle"] and meta["competition_sources"] == [SLUG]
    assert (folder / "hms_submit.ipynb").read_text() == "{}"


def test_push_notebook_dry_run(no_network, tmp_path, capsys) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (nbs / "hms_submit.ipynb").write_text("{}")
    assert main(["kaggle", "push-notebook", "hms_submit", "--dataset", "me/b", "--id", "me/k", "--notebooks", str(nbs),
                 "--out", str(tmp_path / "stage"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.split("kernel-metadata.json:\n")[1]) == kg.kernel_metadata("hms_submit", "me/k", "me/b", "hms")
    assert not (tmp_path / "stage").exists()


def test_status_dry_run(no_network, capsys) -> None:
    assert main(["kaggle", "status", "--dry-run"]) == 0
    assert f"competition_submissions({SLUG!r})" in capsys.readouterr().out
