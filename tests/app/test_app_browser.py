"""The web demo in a real headless browser: start ``llada-tts app`` on a free localhost port
against a tiny checkpoint + tiny random codec, type text in Chromium, press Generate, fetch the
<audio> element's file and read it back as a WAV.

Needs Debian's Chromium and its driver (``apt-get install -y chromium chromium-driver``) and the
selenium package; skipped with the reason when either is missing.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1280,1600")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install -y chromium chromium-driver"),
]
pytest.importorskip("selenium", reason="needs selenium: pip install selenium")
pytest.importorskip("gradio", reason="needs gradio: pip install -e '.[app]'")


def make_checkpoint(root: Path, tokenizer) -> Path:
    """A tiny untrained checkpoint with voices tara/leo and its tiny random codec (as in test_app)."""
    from audio_tokenizer.codec import create_random_codec
    from llada_tts.checkpoint_meta import META_FILE, CheckpointMeta
    from llada_tts.model import create_model, save_model, tiny_config

    meta = CheckpointMeta(voices=["tara", "leo"], codec=str(create_random_codec(root / "codec", size="tiny")))
    return save_model(create_model(tiny_config(), seed=0), root / "model", tokenizer=tokenizer,
                      extra_files={META_FILE: meta.to_json()})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: never through a proxy


def _start(cmd: list[str], env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _answers(proc: subprocess.Popen, url: str, timeout: float = 120.0) -> bool:
    """True once ``url`` answers 200; False if the process exits first; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with _HTTP.open(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the app did not answer on {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory, offline_tokenizer):
    """``llada-tts app`` serving a tiny checkpoint on its default host; always stopped afterwards.
    Yields (page url, server log path)."""
    root = tmp_path_factory.mktemp("app_browser")
    model = make_checkpoint(root, offline_tokenizer)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(root / "gradio"),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    log = root / "server.log"
    for attempt in range(2):  # a second try only if another process took the free port meanwhile
        port = _free_port()
        proc = _start([sys.executable, "-m", "llada_tts.cli", "app", "--model", str(model), "--device", "cpu",
                       "--port", str(port), "--max-chars", "200"], env, log, root)
        try:
            url = f"http://127.0.0.1:{port}/"
            if _answers(proc, url):
                yield url, log
                return
            if attempt or "port" not in log.read_text(errors="replace").lower():
                pytest.fail(f"the app exited with code {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        finally:
            _stop(proc)


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="llada-tts-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options), profile
    except Exception:
        shutil.rmtree(profile, ignore_errors=True)
        raise


@pytest.fixture(scope="module")
def browser():
    from selenium.common.exceptions import WebDriverException

    try:
        driver, profile = _chrome()
    except WebDriverException:  # Chromium occasionally fails to start on a loaded machine: once more
        driver, profile = _chrome()
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)


def test_type_generate_and_download_a_playable_wav(server, browser):
    import soundfile as sf
    from selenium.webdriver.common.by import By

    server, log = server
    port = int(server.rsplit(":", 1)[1].strip("/"))
    if sys.platform.startswith("linux"):  # all of 127/8 is loopback here: bound to 127.0.0.1 only, .2 is refused
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
    browser.get(server)
    text = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#text textarea"))
    voice = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#voice input"))  # the page renders in parts
    assert voice.get_attribute("value") == "tara"  # the checkpoint's first voice is preselected

    # empty text: a message on the page, no audio
    _wait(browser, lambda d: d.find_element(By.ID, "generate")).click()
    _wait(browser, lambda d: "Please type some text" in d.find_element(By.TAG_NAME, "body").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "#audio audio[src]")

    text.send_keys("Hello from the browser.")
    browser.find_element(By.ID, "generate").click()
    audio = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#audio audio[src]"), timeout=120)[0]
    src = audio.get_attribute("src")
    assert src.startswith(server) and src.endswith(".wav"), src
    status = _wait(browser, lambda d: (t := d.find_element(By.ID, "status").text) and "RTF" in t and t)

    with _HTTP.open(src, timeout=30) as r:  # what the player plays and the download link serves
        data = r.read()
    wave, sr = sf.read(io.BytesIO(data), dtype="int16")
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.channels, sr) == ("WAV", "PCM_16", 1, 24000)
    assert len(wave) > 0 and len(wave) % 2048 == 0  # whole SNAC frames
    seconds = float(re.search(r"([\d.]+) s of audio", status).group(1))
    assert abs(len(wave) / sr - seconds) < 0.01
    pattern = r"RTF \d+\.\d\d \(wall time / audio duration\) · NFE \d+ · valid frames [\d.]+% · seed \d+"
    assert re.search(pattern, status), status

    played = _wait(browser, lambda d: d.execute_script(  # the browser itself decoded the file's header
        "const a = document.querySelector('#audio audio'); return a.readyState >= 1 && a.duration"))
    assert abs(played - len(wave) / sr) < 0.01

    download = browser.find_element(By.CSS_SELECTOR, "#audio a[download]").get_attribute("href")
    assert download == src

    outside = browser.execute_script(  # no fonts, analytics or scripts from the internet
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith(arguments[0]) && !n.startsWith('data:') && !n.startsWith('blob:'))", server)
    assert outside == [], outside
    server_log = log.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-3000:]  # user errors are messages, not crashes
