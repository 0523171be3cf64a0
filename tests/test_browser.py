"""The serve page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium; ``scripts/install_browser.sh`` installs them): upload an image, see the
skeleton drawn over it and the JSON; use the (fake) webcam. The screenshot is kept at
``runs/artifacts/serve_page.png``."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install 'fusepose[serve]')"
)
pytest.importorskip("uvicorn", reason="the serve extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from serve_helpers import LiveServer  # noqa: E402

from fusepose.data.io import read_image  # noqa: E402
from fusepose.inference import Predictor  # noqa: E402
from fusepose.serve import create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "runs" / "artifacts"
IMAGE = "000000197388.jpg"


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no browser: headless Chromium and its driver are missing (Debian: "
                    "`bash scripts/install_browser.sh` installs chromium and chromium-driver)")  # fmt: skip
    return chromium, driver


def _chrome(webcam: bool = False):
    chromium, driver = _browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--disable-background-networking",
                "--no-first-run", "--disable-extensions"):  # fmt: skip
        opts.add_argument(arg)
    if webcam:  # Chromium's built-in test pattern camera; no permission prompt
        opts.add_argument("--use-fake-device-for-media-stream")
        opts.add_argument("--use-fake-ui-for-media-stream")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver is the packaged one: selenium never downloads a browser or driver
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def _wait_state(page, states: tuple[str, ...], timeout: float = 120) -> str:
    WebDriverWait(page, timeout).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("data-state") in states
    )
    return page.find_element(By.ID, "status").get_attribute("data-state")


@pytest.mark.slow
def test_upload_draws_the_skeleton_and_shows_the_json(overfit_lmfnet, coco_dir):
    """A trained L-MFNet behind the page: after the upload the SVG overlay has one limb line
    per limb whose two joints pass kpt_thr, at the joints of the JSON, which equals the
    Predictor's answer; the pixels over the image changed; nothing loaded from elsewhere."""
    _browser()
    predictor = Predictor(overfit_lmfnet["ckpt"])
    path = coco_dir / IMAGE
    want = predictor.predict_frame(read_image(path, apply_exif=True))
    assert len(want) >= 3
    with LiveServer(create_app(predictor)) as server:
        page = _chrome()
        try:
            page.get(server.url + "/")
            WebDriverWait(page, 60).until(lambda d: "lmfnet" in d.find_element(By.ID, "model").text)
            page.find_element(By.ID, "file").send_keys(str(path))
            assert _wait_state(page, ("done", "error")) == "done", page.find_element(
                By.ID, "status").text  # fmt: skip

            shown = json.loads(page.find_element(By.ID, "json").text)
            assert shown["image"] == {"width": 640, "height": 392}
            assert len(shown["people"]) == len(want)
            for got, inst in zip(shown["people"], want, strict=True):
                kp = np.asarray(got["keypoints"]).reshape(-1, 3)
                assert np.abs(kp[:, :2] - inst.keypoints).max() < 2e-3

            thr = predictor.description.test.kpt_thr
            segments = []
            for person in shown["people"]:
                k = np.asarray(person["keypoints"]).reshape(-1, 3)
                for a, b in predictor.skeleton.limbs:
                    if k[a, 2] >= thr and k[b, 2] >= thr:
                        segments.append((*k[a, :2], *k[b, :2]))
            lines = page.find_elements(By.CSS_SELECTOR, "#overlay line.limb")
            drawn = [tuple(float(ln.get_attribute(c)) for c in ("x1", "y1", "x2", "y2"))
                     for ln in lines]  # fmt: skip
            assert len(drawn) == len(segments) > 10
            assert np.allclose(sorted(drawn), sorted(segments), atol=1e-3)
            rows = page.find_elements(By.CSS_SELECTOR, "#people tr")
            assert len(rows) == len(want)
            assert page.find_element(By.ID, "download").is_enabled()

            # on screen: the stage differs from the bare image where the skeleton is drawn
            stage = page.find_element(By.ID, "stage")
            shot = cv2.imdecode(np.frombuffer(stage.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
            bare = cv2.resize(cv2.imread(str(path)), (shot.shape[1], shot.shape[0]))
            changed = (np.abs(shot.astype(int) - bare.astype(int)).max(axis=2) > 80).mean()
            assert changed > 0.01, changed

            origin = server.url
            urls = page.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"
            )
            assert all(u.startswith(origin) or u.startswith("blob:") for u in urls), urls
            errors = [e for e in page.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.save_screenshot(str(ARTIFACTS / "serve_page.png"))
        finally:
            page.quit()
    assert (ARTIFACTS / "serve_page.png").stat().st_size > 10_000


@pytest.mark.slow
def test_webcam_mode_predicts_frames_and_stops(coco_dir):
    """Chromium's fake camera (a moving test pattern) through the webcam loop: frames are
    posted one at a time and answered; Stop ends the loop. Random weights: the plumbing."""
    _browser()
    predictor = Predictor("test_lmfnet", allow_random_weights=True, input_size=64, score_thr=0)
    with LiveServer(create_app(predictor)) as server:
        page = _chrome(webcam=True)
        try:
            page.get(server.url + "/")
            WebDriverWait(page, 60).until(lambda d: "lmfnet" in d.find_element(By.ID, "model").text)
            page.find_element(By.ID, "webcam").click()
            WebDriverWait(page, 120).until(
                lambda d: (
                    "webcam:" in d.find_element(By.ID, "status").text
                    or d.find_element(By.ID, "status").get_attribute("data-state") == "error"
                )
            )
            status = page.find_element(By.ID, "status")
            assert status.get_attribute("data-state") == "done", status.text
            shown = json.loads(page.find_element(By.ID, "json").text)
            assert shown["image"]["width"] > 0 and len(shown["people"]) > 0
            page.find_element(By.ID, "stop").click()
            time.sleep(1.0)
            assert page.find_element(By.ID, "webcam").is_enabled()
            assert "stopped" in page.find_element(By.ID, "status").text
        finally:
            page.quit()
