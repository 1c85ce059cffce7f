"""Open the report in headless Chromium: it renders, every image loads, no console errors.

Needs the Debian package ``chromium`` (``apt-get install -y chromium``); skips with the reason when
it is absent. The report itself holds no script: the test injects one that writes the image check
into the page title before Chromium dumps the DOM.
"""

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_eval_scoring import write_two_evaluations
from test_report_html import full_report, kept_results, make_run_folders

from ssinfnet.report.html import write_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)"
)

IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  document.title = "images=" + images.length + " broken=" + broken.length;
});
</script>"""


def chromium(args, profile):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def check_page(html_path, tmp_path):
    """(images, broken images, console errors, screenshot) of one page."""
    checked = tmp_path / f"checked_{html_path.name}"
    checked.write_text(html_path.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    dom = chromium(["--dump-dom", checked.as_uri()], tmp_path / "profile_dom")
    title = re.search(r"<title>images=(\d+) broken=(\d+)</title>", dom.stdout)
    assert title, f"the image check did not run; Chromium said: {dom.stderr[-2000:]}"
    console_errors = [line for line in dom.stderr.splitlines()
                      if "Uncaught" in line or ("CONSOLE" in line and "error" in line.lower())]
    shot = tmp_path / f"{html_path.stem}.png"
    chromium(["--window-size=1200,1600", f"--screenshot={shot}", checked.as_uri()], tmp_path / "profile_shot")
    assert shot.is_file(), "Chromium wrote no screenshot"
    return int(title.group(1)), int(title.group(2)), console_errors, Image.open(io.BytesIO(shot.read_bytes()))


def test_report_renders_in_chromium(tmp_path):
    report = full_report(tmp_path)
    images, broken, console_errors, screenshot = check_page(report, tmp_path)
    assert images == 9 and broken == 0
    assert console_errors == []
    pixels = np.asarray(screenshot.convert("L"), dtype=np.float32)
    assert (pixels < 200).mean() > 0.01, "the screenshot is blank"


def test_report_from_kept_results_renders_its_figures(tmp_path):
    # What scripts/regenerate_results.py draws from a results folder: ROC curves, overlay galleries and the
    # training curves from the kept files alone, each image decoded by the browser (natural size > 0).
    _, inputs = kept_results(tmp_path, write_two_evaluations(tmp_path), make_run_folders(tmp_path)[:1])
    report = write_report(inputs, tmp_path / "kept.html", title="Kept results")
    images, broken, console_errors, _ = check_page(report, tmp_path)
    assert (images, broken) == (5, 0)  # 2 ROC levels + 2 galleries + 1 training-curve plot
    assert console_errors == []


@pytest.mark.parametrize("report", sorted((ROOT / "results").glob("*/report.html")), ids=lambda p: p.parent.name)
def test_committed_reports_render(report, tmp_path):
    # Whatever figures a committed report holds load; a figure it cannot draw is a note, not a broken image.
    images, broken, console_errors, _ = check_page(report, tmp_path)
    assert images == report.read_text().count("<img ") and broken == 0
    assert console_errors == []


def test_the_check_catches_broken_images_and_script_errors(tmp_path):
    # A check that cannot fail proves nothing: a missing image and a thrown error must be reported.
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>x</title></head><body><p>text</p>'
                    '<img src="missing.png" alt="missing"><script>throw new Error("boom");</script></body></html>')
    images, broken, console_errors, _ = check_page(page, tmp_path)
    assert (images, broken) == (1, 1)
    assert any("boom" in line for line in console_errors)
