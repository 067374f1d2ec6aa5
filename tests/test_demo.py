"""`make demo` end to end on the shared data (tiny model, few steps), then the report and the viewer
in headless Chromium: every image loads and the console stays clean."""
import json
import shutil
from pathlib import Path

import pytest

from demo import run as demo

pytestmark = pytest.mark.spark
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "out" / "screenshots"


@pytest.fixture(scope="module")
def run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    warcs = sorted(str(p) for p in (shared_data / "warc").glob("*.warc.gz"))
    result = demo.main([*warcs, "--output", str(out), "--train-config", "tiny", "--steps", "3"])
    return out, result


def test_demo_runs_every_stage_and_the_funnel_adds_up(run):
    out, result = run
    stages = result["stages"]
    assert list(stages) == ["extract", "filter", "dedup", "images", "shards"]
    previous = None
    for name, stats in stages.items():
        d = stats["docs"]
        assert d["in"] == d["out"] + sum(d["dropped"].values()), name
        if previous is not None:
            assert d["in"] == previous, f"{name} reads what the stage before wrote"
        previous = d["out"]
    assert result["verify"]["problems"] == [] and result["verify"]["images"] > 0
    records = [json.loads(line) for line in (out / "train-tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    held_out = json.loads((out / "train-tiny" / "eval.json").read_text())
    assert held_out["right"]["docs"] == held_out["shuffled"]["docs"] > 0
    report = out / "report"
    # every image that passed its checks was scored for safety, and the report plots the scores
    safety = stages["images"]["urls"]["nsfw"]
    assert safety["scored"] == stages["images"]["urls"]["status"]["ok"] > 0
    assert (report / "nsfw-scores.png").stat().st_size > 0 and "downloaded images (unique URLs) scored" in (report / "index.html").read_text()
    assert (report / "funnel.png").stat().st_size > 0
    assert (report / "train-tiny-loss.png").stat().st_size > 0 and (report / "train-tiny-health.png").stat().st_size > 0


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian package chromium; .ci/run installs it)")
@pytest.mark.parametrize("page", ["index.html", "viewer.html"])
def test_report_pages_open_in_chromium_with_every_image_loaded(run, page):
    from playwright.sync_api import sync_playwright

    out, _ = run
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors, failed_requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        tab = browser.new_page(viewport={"width": 1200, "height": 900})
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("requestfailed", lambda r: failed_requests.append(r.url))
        tab.goto((out / "report" / page).as_uri())
        tab.wait_for_load_state("load")
        images = tab.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        outside = tab.evaluate("[...document.querySelectorAll('[src],link[href]')]"
                               ".map(e => e.src || e.href).filter(u => !u.startsWith('file:'))")
        tab.screenshot(path=str(SCREENSHOTS / page.replace(".html", ".png")), full_page=False)
        browser.close()
    assert images, "the page shows images"
    assert [src for src, ok in images if not ok] == []
    assert errors == [] and failed_requests == [] and outside == []
