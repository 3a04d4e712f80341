"""Take docs/demo.png: the web demo in a real browser, after predicting the example phantom knee.

Starts the demo on a free local port (upload folder in a temporary directory), opens it in Debian's
headless chromium through playwright, uploads the example exam (a zipped DICOM study of a phantom
knee with an ACL tear), clicks Predict, shows where the models looked for the ACL tear, and saves
the whole page as a 256-colour PNG (small enough to keep in git). Run from the repository root:

    .venv/bin/python docs/make_demo_screenshot.py [--out docs/demo.png]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def main(out: Path) -> str:
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory(prefix="mrnet-screenshot-") as scratch:
        from mrnet.app.examples import write_examples
        from mrnet.app.ui import Limits, serving
        from mrnet.infer.predictor import Predictor
        from mrnet.infer.registry import TASK_TITLES

        examples = write_examples(Path(scratch) / "examples")
        dicom_zip = next(f for e in examples for f in e.files if f.suffix == ".zip")
        with serving(Predictor(), Path(scratch) / "gradio", Limits(), examples) as demo:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(demo.local_url)
                page.locator("#exam-files input[type=file]").set_input_files([str(dicom_zip)])
                expect(page.locator("#exam-files")).to_contain_text("phantom-knee-dicom", timeout=30_000)
                page.locator("#predict").click()
                expect(page.locator("#probabilities")).to_contain_text(TASK_TITLES["acl"], timeout=60_000)
                page.get_by_role("radio", name=TASK_TITLES["acl"]).check()
                expect(page.get_by_text(f"sagittal: strongest {TASK_TITLES['acl']} evidence")).to_be_visible()
                page.wait_for_timeout(500)  # let the last images paint
                png = page.screenshot(full_page=True)
                browser.close()

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return f"wrote {out} ({image.width}x{image.height}, {out.stat().st_size // 1024} KB)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo.png")
    print(main(parser.parse_args().out))
