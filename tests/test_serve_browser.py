"""The page at / in a real headless Chromium: a person types the API key, fills a mask, searches the corpus.

Needs Debian's `chromium` and `chromium-driver` and the `browser` extra (selenium); `.ci/run` installs
them. Outside CI a machine without them skips the test. The screenshot is kept in `.artefacts/`
(gitignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from domainlm.serve import ServeConfig, build_app

ARTEFACTS = Path(__file__).resolve().parents[1] / ".artefacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
KEY = "browser-test-key-1234"


def _needs_browser():
    missing = [n for n, p in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if p is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[browser]')")
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI must install {', '.join(missing)} (.ci/run does)")
    if missing:
        pytest.skip(f"no {', '.join(missing)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served_run(corpus_dir, bert_tokenizer, tmp_path):
    """A real tiny pretraining run served by uvicorn on loopback with an API key; yields its URL."""
    import uvicorn

    from domainlm.pretrain.loop import pretrain

    res = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="bert-tiny",
        objective="mlm",
        max_steps=30,
        name="page",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=8,
        lr=3e-3,
    )
    (tmp_path / "key").write_text(KEY)
    port = _free_port()
    app, _engine, _notes = build_app(res.run_dir, ServeConfig(port=port, api_key_file=str(tmp_path / "key")))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.slow  # a tiny pretraining run and a browser: ~1 minute on a busy 2-core machine
def test_a_person_fills_a_mask_and_searches_the_corpus_in_the_browser(served_run):
    _needs_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,2400"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(served_run)
        # without the key, /card answers 401 and the page asks for it
        wait.until(ec.visibility_of_element_located((By.ID, "key"))).send_keys(KEY + "\n")
        submit = wait.until(ec.element_to_be_clickable((By.ID, "fill-mask-submit")))
        assert "[MASK]" in driver.find_element(By.ID, "fill-mask-input").get_attribute("value")
        assert "page" in driver.find_element(By.ID, "title").text
        submit.click()
        rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#fill-mask-answer tbody tr"))
        assert len(rows) == 5 and all(r.find_elements(By.TAG_NAME, "td")[1].text for r in rows)

        query = driver.find_element(By.ID, "search-input")
        query.send_keys("The President shall be elected by the members of an electoral college")
        driver.find_element(By.ID, "search-submit").click()
        hits = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#search-answer .hit"))
        assert len(hits) == 5 and "document" in hits[0].text

        assert "train_summary.json" in driver.find_element(By.ID, "metrics").text
        assert driver.find_element(By.ID, "card").text.strip()
        assert not driver.find_element(By.ID, "error").is_displayed()
        # nothing the page did was blocked by its Content-Security-Policy (no inline or remote code)
        blocked = [
            e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]
        ]
        assert blocked == []
        ARTEFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTEFACTS / "serve-page.png"))
    finally:
        driver.quit()
