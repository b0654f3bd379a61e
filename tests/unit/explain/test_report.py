"""report.html: one self-contained file whose every image decodes as a PNG; the leaderboard links to it."""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_folder

from hbac.engine.outputs import plot_history
from hbac.leaderboard import write_leaderboard
from hbac.tasks import get_task

from test_optimal_figures import HMS, random_oof

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Collect(HTMLParser):
    """Every tag with its attributes, and the text of headings."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.headings: list[str] = []
        self._h = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._h = tag in ("h1", "h2", "h3")

    def handle_data(self, data):
        if self._h:
            self.headings.append(data.strip())
            self._h = False


def fake_experiment(root: Path, name: str, oof: pd.DataFrame, task: str, seizure: dict | None = None) -> Path:
    d = root / name
    (d / "fold0").mkdir(parents=True)
    (d / "explain").mkdir()
    (d / "config.yaml").write_text(f"name: {name}\nmodel: {{kind: 1d}}\n")
    oof.to_csv(d / "oof.csv", index=False)
    scores = {"task": task, "metric": "kl", "cv": 0.8123, "cv_min_votes": 0.7, "n_rows": len(oof),
              "folds": {"0": {"kl": 0.8123, "kl_min_votes": 0.7}}, "missing_folds": [], "model": "1d", "created": "2026-01-01T00:00:00+00:00"}
    if seizure:
        scores["seizure"] = seizure
    (d / "scores.json").write_text(json.dumps(scores))
    hist = pd.DataFrame({"epoch": [1, 2], "stage": "stage1", "train_loss": [1.2, 0.9], "val_kl": [1.1, 0.8], "val_kl_min_votes": [1.0, 0.7]})
    hist.to_csv(d / "fold0" / "history.csv", index=False)
    plot_history(hist, d / "fold0" / "curve.png", get_task("hms"), title=name)
    shutil.copy(d / "fold0" / "curve.png", d / "explain" / "gradcam_profile.png")
    return d


def check_html(path: Path) -> Collect:
    # matplotlib and hbac.report (which imports it) are imported where they are used, not at the top: 1 s of
    # collection in every pytest-xdist worker, which only the worker that runs these tests needs
    import matplotlib.image as mpimg

    text = path.read_text()
    p = Collect()
    p.feed(text)
    imgs = [a for t, a in p.tags if t == "img"]
    assert imgs, "no images in the report"
    for a in imgs:
        src = a["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC)
        arr = mpimg.imread(io.BytesIO(png), format="png")  # decodes the whole image
        assert arr.ndim == 3 and arr.shape[0] > 50 and arr.shape[1] > 50
    # self-contained: nothing fetched from elsewhere
    for t, a in p.tags:
        for k in ("src", "href"):
            assert not str(a.get(k, "data:")).startswith(("http", "//", "file")), (t, a)
    assert "<script" not in text.lower()
    return p


@pytest.fixture(scope="session")
def hms_outputs(tmp_path_factory) -> Path:
    """An outputs folder with two fake HMS experiments, `exp_hms` with its report.html and `exp_other` without:
    written once per test run (`shared_folder`; a report is seconds of matplotlib). Read only."""
    def build(root: Path) -> None:
        from hbac.report import write_report  # here: see `check_html`

        write_report(fake_experiment(root / "outputs", "exp_hms", random_oof(150, HMS), "hms"))
        fake_experiment(root / "outputs", "exp_other", random_oof(50, HMS, seed=2), "hms")

    return shared_folder(tmp_path_factory, "report_outputs", build) / "outputs"


def test_hms_report_is_self_contained_and_complete(hms_outputs):
    path = hms_outputs / "exp_hms" / "report.html"
    p = check_html(path)
    assert {"Scores", "OOF summary figures", "Learning curves", "Explanations", "Config"} <= set(p.headings)
    alts = [a.get("alt") for t, a in p.tags if t == "img"]
    for fig in ("confusion argmax", "confusion votes", "kl per class", "reliability", "kl by votes", "fold0: learning curve", "gradcam profile"):
        assert fig in alts
    assert "0.8123" in path.read_text()


def test_seizure_report_has_timelines_and_event_table(tmp_path):
    rows = []
    for rec in ("chb01_01", "chb01_02"):
        for i in range(60):
            sz = 1.0 if (rec == "chb01_02" and 20 <= i < 26) else 0.0
            p = 0.9 if sz else 0.05
            rows.append({"sample_id": f"{rec}_{i * 5:08.1f}", "recording_id": rec, "start_s": i * 5.0, "duration_s": 10.0,
                         "fold": 0, "n_votes": 1, "background_vote": 1 - sz, "seizure_vote": sz,
                         "background_pred": 1 - p, "seizure_pred": p})
    d = fake_experiment(tmp_path, "exp_sz", pd.DataFrame(rows), "chbmit", seizure={"auroc": 1.0, "best_threshold": 0.5})
    from hbac.report import write_report  # here: see `check_html`

    path = write_report(d)
    p = check_html(path)
    assert "Seizure timelines and events" in p.headings and "Event table" in p.headings
    text = path.read_text()
    assert "true seizure" in text and "detected" in text
    alts = [a.get("alt") for t, a in p.tags if t == "img"]
    assert "roc pr" in alts and "seizure prob hist" in alts


def test_leaderboard_links_to_reports(hms_outputs, tmp_path):
    for name in ("exp_hms", "exp_other"):
        shutil.copytree(hms_outputs / name, tmp_path / name)
    assert (tmp_path / "exp_hms" / "report.html").is_file() and not (tmp_path / "exp_other" / "report.html").exists()
    write_leaderboard(tmp_path)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "[exp_hms](exp_hms/report.html)" in md
    assert "[exp_other]" not in md  # no report, no link


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(hms_outputs, tmp_path):
    """The shared report (`hms_outputs`), rendered: one chromium run takes the screenshot and dumps the DOM (the
    headless mode of Chromium >= 112 does both; an older headless shell does one, then a second run does the other).
    About 2 CPU-s of chromium a run (two runs before, and a report of its own: 3 CPU-s more)."""
    import matplotlib.image as mpimg  # here: see `check_html`

    path = hms_outputs / "exp_hms" / "report.html"
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    run = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,3000"]
    r = subprocess.run([*run, "--dump-dom", path.as_uri()], check=False, capture_output=True, text=True, timeout=120)
    dom = r.stdout
    if not shot.exists():
        r = subprocess.run([*run, path.as_uri()], check=False, capture_output=True, text=True, timeout=120)
    if not dom:
        dom = subprocess.run([*run[:-2], "--dump-dom", path.as_uri()], check=False, capture_output=True, text=True, timeout=120).stdout
    assert shot.exists(), r.stderr[-2000:]
    img = mpimg.imread(shot)
    # rendered, not blank: the page shows figures (many distinct colours), not a white sheet; the colours counted as
    # one packed 0xRRGGBB integer per pixel (np.unique over (3.6 M, 3) rows with axis=0 took 9 of the test's 12 CPU-s)
    rgb = np.round(img[..., :3] * 255).astype(np.uint32).reshape(-1, 3)
    assert img.shape[0] >= 1000 and np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2]).size > 50
    assert dom.count("<img") == path.read_text().count("<img") and "OOF summary figures" in dom
