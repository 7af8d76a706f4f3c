"""The web page, end to end in headless Chromium: upload an image and a video, see the result, save screenshots.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and the ``selenium`` package (dev extra);
skips with the reason when they are missing. ``.ci/run`` installs the browser and sets
``FAKESCOPE_REQUIRE_BROWSER=1``, which turns the skip into a failure so CI cannot pass without running it.
Screenshots go to the test's temporary folder, or to ``$FAKESCOPE_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'fakescope[serve]'")

from conftest import MTCNN_MISSING, REQUIRE_FACES  # noqa: E402
from test_detect import HAVE_MTCNN, make_checkpoint, make_media  # noqa: E402

from fakescope.inference import Detector  # noqa: E402
from fakescope.serve import ServeSettings, create_app  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def _find(names) -> str | None:
    for n in names:
        p = shutil.which(n) or (f"/usr/bin/{n}" if os.path.exists(f"/usr/bin/{n}") else None)
        if p:
            return p
    return None


def _browser_or_skip() -> tuple[str, str]:
    problems = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("the selenium package is not installed (pip install selenium)")
    browser, driver = _find(BROWSERS), _find(DRIVERS)
    if browser is None:
        problems.append("no Chromium browser found (Debian: apt-get install chromium)")
    if driver is None:
        problems.append("no chromedriver found (Debian: apt-get install chromium-driver)")
    if problems:
        reason = "web page test needs a headless browser: " + "; ".join(problems)
        if os.environ.get("FAKESCOPE_REQUIRE_BROWSER"):
            pytest.fail(reason + " (FAKESCOPE_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    return browser, driver


class LiveServer:
    """uvicorn serving the app on a free loopback port, in a thread of the test process."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1100,1300"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media"))


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FAKESCOPE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _upload(browser, url: str, path: Path) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: "model " in d.find_element(By.ID, "model").text)
    browser.find_element(By.ID, "file").send_keys(str(path))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 120).until(
        lambda d: d.find_element(By.ID, "result").get_attribute("data-state") in ("done", "error"))
    return browser.find_element(By.ID, "result").get_attribute("data-state")


def _image_loaded(browser, element_id: str) -> bool:
    return bool(browser.execute_script(
        "const i = document.getElementById(arguments[0]); return i.complete && i.naturalWidth > 0;", element_id))


def test_web_page_scores_an_image_and_a_video(browser, media, tmp_path):
    from selenium.webdriver.common.by import By

    face = HAVE_MTCNN
    if not face and os.environ.get(REQUIRE_FACES):  # the page's face path must run in CI
        pytest.fail(f"{MTCNN_MISSING} ({REQUIRE_FACES} is set)")
    ck = make_checkpoint(tmp_path / "ck", "efficientnet_tiny" if face else "simple_cnn_tiny")
    det = Detector.from_pretrained(ck, device="cpu", num_frames=6)
    shots = _shots(tmp_path)
    with LiveServer(create_app(det, ServeSettings(max_upload_mb=5))) as url:
        # an image: label, score, the input beside its spectrum, and (face model) the crop used
        assert _upload(browser, url, media["face"]) == "done"
        label = browser.find_element(By.ID, "label").text
        assert label in ("real", "fake")
        expected = det.predict(media["face"])
        sign = "≥" if expected["label"] == "fake" else "<"
        assert browser.find_element(By.ID, "score").text == f"P(fake) = {expected['score']} {sign} threshold 0.5"
        assert label == expected["label"]
        assert _image_loaded(browser, "input-view") and _image_loaded(browser, "spectrum")
        faces = browser.find_elements(By.CSS_SELECTOR, "#faces img")
        if face:
            assert len(faces) == 1 and "1 face(s) found" in browser.find_element(By.ID, "detail").text
        browser.save_screenshot(str(shots / "web_image.png"))
        assert (shots / "web_image.png").stat().st_size > 10_000

        # a video: the per-frame score plot has one point per scored frame
        assert _upload(browser, url, media["video"]) == "done"
        assert browser.find_element(By.ID, "frames-box").is_displayed()
        points = browser.find_element(By.ID, "frame-curve").get_attribute("points").split()
        scored = [s for s in det.predict(media["video"])["frame_scores"] if s is not None]
        assert len(points) == len(scored) >= 4
        browser.save_screenshot(str(shots / "web_video.png"))

        # a file that is no picture: the page shows the service's error
        assert _upload(browser, url, media["text"]) == "error"
        assert "neither an image nor a video" in browser.find_element(By.ID, "detail").text


def test_web_page_says_when_the_model_is_a_demonstration(browser, media, tmp_path):
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ck = make_checkpoint(tmp_path / "ck", "simple_cnn_tiny")
    for demo in (False, True):
        if demo:  # what training writes for a checkpoint trained only on the built-in synthetic benchmark
            config = json.loads((ck / "config.json").read_text())
            config["intended_use"] = {"demonstration": True, "note": "a demonstration, trained on synthetic data"}
            (ck / "config.json").write_text(json.dumps(config))
        det = Detector.from_pretrained(ck, device="cpu")
        with LiveServer(create_app(det, ServeSettings(max_upload_mb=5))) as url:
            browser.get(url)
            WebDriverWait(browser, 30).until(lambda d: "model " in d.find_element(By.ID, "model").text)
            banner = browser.find_element(By.ID, "demo")
            assert banner.is_displayed() is demo
            if demo:
                assert "Demonstration model" in banner.text and "synthetic data" in banner.text
                browser.save_screenshot(str(_shots(tmp_path) / "web_demo_banner.png"))


def test_web_page_shows_provenance_operating_point_and_where_it_looked(browser, tmp_path):
    """A calibrated checkpoint at its 5%-FPR operating point scores an image with a signed C2PA manifest: the page
    shows the manifest (apart from the score), the calibrated P(fake) against the threshold on the same scale and
    the data that chose it, the region the model scored, and the Grad-CAM overlay."""
    pytest.importorskip("c2pa", reason="pip install c2pa-python (the provenance extra)")
    import json

    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    from c2pa_signing import sign_image

    ck = make_checkpoint(tmp_path / "ck", "simple_cnn_tiny")
    config = json.loads((ck / "config.json").read_text())  # what fakescope calibrate writes (values made up)
    config["calibration"] = {"temperature": 2.0, "thresholds": {"eer": 0.5, "fpr1": 0.6, "fpr5": 0.55},
                             "data": "web-test val", "n": 200, "n_real": 100, "n_fake": 100, "fitted": "today"}
    (ck / "config.json").write_text(json.dumps(config))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(
        tmp_path / "a.jpg", quality=90)
    signed = sign_image(tmp_path / "a.jpg", tmp_path / "signed.jpg")
    det = Detector.from_pretrained(ck, device="cpu", operating_point="fpr5")
    with LiveServer(create_app(det, ServeSettings(max_upload_mb=5))) as url:
        assert _upload(browser, url, signed) == "done"
        prov = browser.find_element(By.ID, "provenance").text
        assert "C2PA manifest (Valid" in prov and "trainedAlgorithmicMedia" in prov and "fakescope-test" in prov
        op = browser.find_element(By.ID, "operating-point").text
        # the threshold on the calibrated scale (sigmoid(logit(0.55) / 2) = 0.525056, 4 digits rounded up), and
        # the label decided on the number shown beside it
        assert "threshold 0.5251" in op and "fpr5" in op and "web-test val" in op
        label, score = browser.find_element(By.ID, "label").text, browser.find_element(By.ID, "score").text
        shown = float(score.split("P(fake) = ")[1].split()[0])
        assert score.startswith("calibrated P(fake) = ") and score.endswith("threshold 0.5251")
        assert label == ("fake" if shown >= 0.5251 else "real") and ("≥" in score) == (label == "fake")
        # what the model saw, and the warning that it was a small part of the upload
        assert "centre 32 x 32 of 128 x 128" in browser.find_element(By.ID, "region").text
        warning = browser.find_element(By.ID, "warnings")
        assert warning.is_displayed() and "6.2% of the image" in warning.text
        assert browser.find_element(By.ID, "cam-fig").is_displayed() and _image_loaded(browser, "cam")
        browser.save_screenshot(str(_shots(tmp_path) / "web_evidence.png"))


def test_web_page_gives_a_fusions_verdict_with_its_members_and_signals(browser, tmp_path, tiny_synth):
    """A fusion of two user detectors plus the watermark and C2PA signals, served in worker processes: an SDXL-
    watermarked PNG with a signed C2PA manifest gets the fused verdict, and the page lists why, member by member
    and signal by signal."""
    pytest.importorskip("c2pa", reason="pip install c2pa-python (the provenance extra)")
    pytest.importorskip("imwatermark", reason="make install puts invisible-watermark in")
    import functools
    import json

    from PIL import Image
    from selenium.webdriver.common.by import By
    from skimage import data

    from c2pa_signing import sign_image
    from fakescope.fuse import fuse
    from fakescope.inference.fusion import load_scorer
    from fakescope.media.watermark import watermark_image
    from test_fusion import _detector

    members = [_detector(tmp_path, "red", 0, 20.0), _detector(tmp_path, "blue", 2, 15.0)]
    folder = tmp_path / "fused"
    fuse(members, [str(p) for p in sorted((tiny_synth / "test").iterdir())], folder, echo=lambda m: None)
    spec = json.loads((folder / "fusion.json").read_text())
    spec["stacker"]["coef"][2:4] = [6.0, 6.0]  # no fitting file carries a mark or a manifest: weights by hand
    (folder / "fusion.json").write_text(json.dumps(spec))
    watermark_image(Image.fromarray(data.astronaut()).resize((512, 512)), "sdxl").save(tmp_path / "marked.png")
    signed = sign_image(tmp_path / "marked.png", tmp_path / "marked_signed.png", generator="ImageMaker")
    det = load_scorer(str(folder))
    app = create_app(det, ServeSettings(max_upload_mb=5, workers=1),
                     loader=functools.partial(load_scorer, str(folder)))
    with LiveServer(app) as url:
        assert _upload(browser, url, signed) == "done"
        assert "model fused: a fusion of red, blue" in browser.find_element(By.ID, "model").text
        assert browser.find_element(By.ID, "label").text == "fake"
        box = browser.find_element(By.ID, "reasons-box")
        assert box.is_displayed()
        reasons = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#reasons li")]
        assert any("watermark, 48/48 bits" in r for r in reasons)
        assert any("C2PA manifest says generated by ImageMaker" in r for r in reasons)
        assert any(r.startswith("red ") for r in reasons) and any(r.startswith("blue ") for r in reasons)
        browser.save_screenshot(str(_shots(tmp_path) / "web_fusion.png"))
