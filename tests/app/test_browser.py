"""A real browser (Debian's chromium, driven by playwright) uploads a phantom exam and reads the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import files_under

from mrnet.app.handlers import DEMO_BANNER
from mrnet.app.ui import Limits, serving
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, TASK_TITLES

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_upload_predict_and_look_at_the_slices(predictor, phantom_files, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    uploads = tmp_path / "gradio-uploads"
    with serving(predictor, uploads, Limits(upload_grace_s=0)) as demo, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(demo.local_url)
            banner = page.locator("#clinical-banner")
            expect(banner).to_be_visible(timeout=30_000)
            expect(banner).to_have_text(DEMO_BANNER if predictor.bundle.synthetic else NOT_FOR_CLINICAL_USE)

            page.locator("#exam-files input[type=file]").set_input_files([str(p) for p in phantom_files])
            expect(page.locator("#exam-files")).to_contain_text("sagittal", timeout=30_000)
            page.locator("#predict").click()

            probabilities = page.locator("#probabilities")
            for task_title in TASK_TITLES.values():
                expect(probabilities).to_contain_text(task_title, timeout=60_000)
            expect(probabilities).to_contain_text("%")
            expect(page.locator("#bundle")).to_contain_text(predictor.bundle.version)
            # The viewers open at the strongest evidence for the finding chosen; choosing another moves them.
            for task in ("abnormal", "acl"):
                page.get_by_role("radio", name=TASK_TITLES[task]).check()
                for plane in PLANES:
                    viewer_title = f"{plane}: strongest {TASK_TITLES[task]} evidence at slice"
                    expect(page.get_by_text(viewer_title)).to_be_visible()
            expect(banner).to_be_visible()
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        finally:
            browser.close()
        # The page emptied its upload box, and the server deleted the uploaded exam.
        assert not [f for f in files_under(uploads) if f.suffix == ".npy"]
    assert (tmp_path / "demo.png").stat().st_size > 10_000
