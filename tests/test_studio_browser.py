"""``gatys studio`` end to end in a real browser: Debian's chromium driven by chromedriver
through Selenium, against the server started as a user starts it. Upload a photo and a
painting, run, watch the picture and the curves change, stop, find the PNG and reopen it;
paint a region and find it white in the saved mask; the Inside view's Gram matrices."""
from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the studio's tests need pip install 'gatys[studio]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from support.studio import start_studio  # noqa: E402

from gatys.run.options import TransferOptions  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="no chromium and chromedriver here (.ci/run installs "
                                       "Debian's chromium and chromium-driver)")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


@pytest.fixture
def pictures(tmp_path):
    """A photo and a painting to upload: the paper's where ../shared has them, else made."""
    if (SHARED / "tubingen.jpg").is_file():
        return SHARED / "tubingen.jpg", SHARED / "starry_night.jpg"
    rng = np.random.default_rng(0)
    paths = tmp_path / "photo.png", tmp_path / "painting.png"
    for p in paths:
        Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(p)
    return paths


@pytest.fixture
def studio(tmp_path, real_weights):
    folder = tmp_path / "studio"
    folder.mkdir()
    server = start_studio(folder)
    yield server
    server.stop()


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--window-size=1400,1100", f"--user-data-dir={tmp_path / 'c'}"):
        options.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, what, timeout=90):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; the page shows {shown(driver)}") \
            from None


def shown(driver):
    """What the page shows and holds, for a failed wait's message."""
    return driver.execute_script(
        "const text = (id) => document.getElementById(id).textContent;"
        "return {connection: text('connection'), status: text('status'),"
        " message: text('message'), queue: text('queue'), selected: state.selected,"
        " runs: [...state.runs.values()].map((r) => [r.id, r.state, r.message, r.iterations])};")


def by_id(driver, name):
    return driver.find_element(By.ID, name)


def upload(driver, which, path):
    before = driver.execute_script("return document.querySelectorAll('#photo option').length")
    by_id(driver, f"upload-{which}").send_keys(str(path))
    wait(driver, lambda d: d.execute_script(
        "return document.querySelectorAll('#photo option').length") > before, f"the {which}")


def state_of(driver, run):
    """The run's state as the queue shows it (read in one script: the list is redrawn)."""
    return driver.execute_script(
        f"const li = document.querySelector(\"#queue li[data-run='{run}']\");"
        "return li ? li.dataset.state : null;")


def open_and_upload(browser, studio, pictures):
    """The page opened from the printed URL, the photo and the painting uploaded through it."""
    browser.get(studio.url)
    wait(browser, lambda d: by_id(d, "connection").text == "connected", "the event stream")
    for which, path in zip(("photo", "painting"), pictures):
        upload(browser, which, path)


def test_upload_run_watch_stop_find_the_png_and_reopen_it(studio, browser, pictures):
    open_and_upload(browser, studio, pictures)
    painting = pictures[1]
    assert Select(by_id(browser, "photo")).first_selected_option.text.startswith("upload-")
    ticked = browser.find_elements(By.CSS_SELECTOR, "#paintings input:checked")
    assert len(ticked) == 1 and ticked[0].get_attribute("value").startswith(
        f"upload-{painting.stem}-")
    # the form's defaults are the declarations'
    assert by_id(browser, "opt-size").get_attribute("placeholder") == str(TransferOptions.size)
    # a mistake gets the command line's one-line message in the page, and starts nothing
    by_id(browser, "opt-size").send_keys("abc")
    by_id(browser, "start").click()
    wait(browser, lambda d: by_id(d, "message").is_displayed(), "the message")
    assert by_id(browser, "message").text == "--size: 'abc' is not an integer"
    assert state_of(browser, 1) is None
    by_id(browser, "opt-size").clear()
    for name, value in (("size", "32"), ("iterations", "3000"), ("seed", "0")):
        by_id(browser, f"opt-{name}").send_keys(value)
    by_id(browser, "start").click()
    wait(browser, lambda d: not by_id(d, "message").is_displayed(), "the message to go")

    previews, points = set(), []

    def grown(d):
        previews.add(by_id(d, "preview").get_attribute("src"))
        points.append(int(by_id(d, "curves").get_attribute("data-points")))
        return len(previews - {None, ""}) >= 3 and points[-1] >= 10
    wait(browser, grown, "the picture to change and the curves to grow")
    assert points[-1] > min(p for p in points if p > 0)
    assert "iteration" in by_id(browser, "status").text
    by_id(browser, "stop").click()
    wait(browser, lambda d: state_of(d, 1) == "stopped", "the run to stop")
    # the stop's reply, made while the run was still running, may arrive after its "over"
    # event: the page keeps the later state
    browser.execute_script("mergeRun({...state.runs.get(1), state: 'running', message: ''});"
                           "showQueue();")
    assert state_of(browser, 1) == "stopped"

    png = studio.folder / "run-001.png"
    with Image.open(png) as im:
        text = dict(im.text)
    assert text["gatys:command"] == "transfer" and text["gatys:size"] == "32"
    assert 10 <= int(text["gatys:iterations_done"]) < 3000
    assert by_id(browser, "command").text.startswith("gatys transfer ")

    # reopen it from the history strip, with its settings
    by_id(browser, "opt-size").clear()
    item = wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, ".history-item[data-name='run-001.png']"), "the history strip")[0]
    item.find_element(By.CSS_SELECTOR, "button.reopen").click()
    assert by_id(browser, "opt-size").get_attribute("value") == "32"
    assert by_id(browser, "opt-iterations").get_attribute("value") == "3000"
    assert "/files/run-001.png" in by_id(browser, "preview").get_attribute("src")
    download = item.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
    assert "download=1" in download and "run-001.png" in download

    # continue from it: a second run starting from its picture
    by_id(browser, "opt-iterations").clear()
    by_id(browser, "opt-iterations").send_keys("4")
    by_id(browser, "continue").click()
    wait(browser, lambda d: state_of(d, 2) == "done", "the continued run")
    with Image.open(studio.folder / "run-002.png") as im:
        assert im.text["gatys:init"] == str(studio.folder / "run-001.png")
        assert im.text["gatys:iterations_done"] == "4"

    # the Inside view of that run: A^l, G^l and their difference for conv1_1 (64 filters)
    by_id(browser, "tab-inside").click()
    wait(browser, lambda d: (by_id(d, "inside-A").get_attribute("src") or "").startswith(
        "data:image/png"), "the Gram matrices")
    for key in ("A", "G", "D"):
        data = by_id(browser, f"inside-{key}").get_attribute("src").split(",", 1)[1]
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            assert im.size == (64, 64)
    assert "N_l = 64" in by_id(browser, "inside-status").text
    browser.save_screenshot(str(studio.folder.parent / "inside.png"))
    # no script error, no failed request but the refused run's (a 400, shown in the page)
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
            and not (e["source"] == "network" and "/api/runs - " in e["message"]
                     and "status of 400" in e["message"])]
    assert logs == []


def test_a_painted_region_is_saved_white_where_it_was_painted(studio, browser, pictures):
    open_and_upload(browser, studio, pictures)
    by_id(browser, "tab-regions").click()
    browser.execute_script("document.getElementById('soft-edge').value = 0")
    Select(browser.find_element(By.CSS_SELECTOR, ".region-painting")).select_by_index(1)
    # a stroke across the middle, from the left quarter to the right quarter, on the photo
    # and on the region's painting
    for kind in ("on-photo", "on-painting"):
        canvas = wait(browser, lambda d: [
            c for c in d.find_elements(By.CSS_SELECTOR, f"canvas.{kind}")
            if c.size["width"] > 100 and c.size["height"] > 50], "a picture to paint on")[0]
        # wholly in view: Selenium's offsets are from the centre of the part in view
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        width = canvas.size["width"]
        ActionChains(browser).move_to_element_with_offset(canvas, -width // 4, 0) \
            .click_and_hold().move_by_offset(width // 4, 0).move_by_offset(width // 4, 0) \
            .release().perform()
    for name, value in (("size", "32"), ("iterations", "3"), ("seed", "0")):
        by_id(browser, f"opt-{name}").send_keys(value)
    by_id(browser, "start").click()
    wait(browser, lambda d: state_of(d, 1) in ("done", "failed"), "the run", timeout=120)
    assert state_of(browser, 1) == "done", by_id(browser, "queue").text
    command = by_id(browser, "command").get_attribute("textContent")  # in the hidden tab
    assert " --region " in command and ":" + str(studio.folder / "upload-") in command
    masks = {kind: list(studio.folder.glob(f"mask-region-1-{kind}*.png"))
             for kind in ("", "painting-")}
    masks[""] = [m for m in masks[""] if "-painting-" not in m.name]
    assert [len(found) for found in masks.values()] == [1, 1]
    for found in masks.values():
        with Image.open(found[0]) as im:
            assert im.mode == "L"
            grey = np.asarray(im)
        h, w = grey.shape
        assert (grey[h // 2, w // 4 + w // 16: 3 * w // 4 - w // 16] == 255).all()
        assert grey[: h // 8].max() == 0 and grey[-h // 8:].max() == 0  # unpainted: black
    with Image.open(studio.folder / "run-001.png") as im:
        # MASK:PAINTING:PAINTING_MASK
        region = im.text["gatys:regions"].split(":")
        assert Path(region[0]).name == masks[""][0].name
        assert Path(region[2]).name == masks["painting-"][0].name

    # reopened, the run's region is back on the photo, with its painting
    browser.execute_script("document.querySelector('#clear-region').click()")
    item = wait(browser, lambda d: d.find_elements(
        By.CSS_SELECTOR, ".history-item[data-name='run-001.png'] button.reopen"), "history")[0]
    item.click()
    painting = Select(browser.find_element(By.CSS_SELECTOR, ".region-painting"))
    assert painting.first_selected_option.get_attribute("value").startswith("upload-")
    painted = """const c = document.querySelector('canvas.' + arguments[0]);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let k = 3; k < d.length; k += 4) n += d[k] > 128;
        return [n, c.width * c.height];"""
    for kind in ("on-photo", "on-painting"):  # the stroke, not the whole picture
        wait(browser, lambda d: 0 < d.execute_script(painted, kind)[0]
             < d.execute_script(painted, kind)[1] / 2, f"the mask {kind} drawn back")
