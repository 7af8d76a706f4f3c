"""The web page against a service started with an API key, in headless Chromium, behind the server's guards.

The page asks for the key when the service answers 401, keeps it for the tab and sends it as
``Authorization: Bearer KEY``; the page itself is served under its Content-Security-Policy.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'fakescope[serve]'")

from test_detect import make_checkpoint, make_media  # noqa: E402
from test_serve_security import KEY, Server  # noqa: E402
from test_web import browser  # noqa: E402, F401  (the fixture)

from fakescope.inference import Detector  # noqa: E402
from fakescope.serve import ServeSettings, create_app  # noqa: E402


def test_the_page_asks_for_the_key_and_scores_with_it(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from fakescope.serve.security import allowed_hosts

    media = make_media(tmp_path / "media")
    det = Detector.from_pretrained(make_checkpoint(tmp_path / "ck", "simple_cnn_tiny"), device="cpu")
    settings = ServeSettings(max_upload_mb=5, isolation="thread")
    srv = Server(create_app(det, settings), settings, hosts=allowed_hosts("127.0.0.1"), api_key=KEY)
    try:
        browser.get(f"http://127.0.0.1:{srv.port}/")
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "auth").is_displayed())
        assert "unavailable" in browser.find_element(By.ID, "model").text
        browser.find_element(By.ID, "api-key").send_keys("not-the-key-0123456789")
        browser.find_element(By.ID, "key-ok").click()
        WebDriverWait(browser, 30).until(lambda d: "refused" in d.find_element(By.ID, "auth-msg").text)
        browser.find_element(By.ID, "api-key").clear()
        browser.find_element(By.ID, "api-key").send_keys(KEY)
        browser.find_element(By.ID, "key-ok").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "model").text.startswith("model simple"))
        assert not browser.find_element(By.ID, "auth").is_displayed()
        browser.find_element(By.ID, "file").send_keys(str(media["face"]))
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, 60).until(
            lambda d: d.find_element(By.ID, "result").get_attribute("data-state") in ("done", "error"))
        assert browser.find_element(By.ID, "result").get_attribute("data-state") == "done"
        assert browser.find_element(By.ID, "label").text == det.predict(media["face"])["label"]
        # nothing on the page was blocked by its Content-Security-Policy
        logs = [e["message"] for e in browser.get_log("browser")]
        assert not [m for m in logs if "Content Security Policy" in m], logs
    finally:
        srv.stop()
