"""The screenshots of docs/studio.md and the README: ``gatys studio`` with a run under way, in
Debian's headless chromium (run from the repository root, with the test extra installed).

    python docs/make_studio_screenshot.py [--images ../shared/images] [--size 256]
        [--iterations 60,300] [--after 90]

Starts the studio on a fresh folder, uploads Tübingen and The Starry Night through the page,
runs a small one (96 px, 40 iterations) so that the history strip has a picture, then one
with the defaults but --size and --iterations, and once ``--after`` iterations are done writes docs/studio.jpg (the picture and the curves), docs/studio_inside.jpg (the
Inside view, conv3_1) and /tmp/gatys-studio-shots/regions.png (a region painted, to look at,
not committed); then stops the run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from support.studio import start_studio  # noqa: E402

DOCS = Path(__file__).parent


def shot(driver: webdriver.Chrome, path: Path, quality: int = 85) -> None:
    png = Path(tempfile.mkstemp(suffix=".png")[1])
    driver.save_screenshot(str(png))
    with Image.open(png) as im:
        im.convert("RGB").save(path, quality=quality, optimize=True, progressive=True)
    png.unlink()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="../shared/images")
    ap.add_argument("--size", default="256")
    ap.add_argument("--iterations", default="60,300")
    ap.add_argument("--after", type=int, default=90)
    a = ap.parse_args()
    images = Path(a.images)
    folder = Path(tempfile.mkdtemp(prefix="gatys-studio-"))
    extra = Path("/tmp/gatys-studio-shots")
    extra.mkdir(exist_ok=True)
    studio = start_studio(folder)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    wait = WebDriverWait(driver, 600, poll_frequency=0.2)
    try:
        driver.get(studio.url)
        wait.until(lambda d: d.find_element(By.ID, "connection").text == "connected")
        for which, name in (("photo", "tubingen.jpg"), ("painting", "starry_night.jpg")):
            count = len(driver.find_elements(By.CSS_SELECTOR, "#photo option"))
            driver.find_element(By.ID, f"upload-{which}").send_keys(str((images / name).resolve()))
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#photo option")) > count)
        # a first small run, over before the second starts: the history strip shows it
        for runs, (size, iterations) in enumerate(((96, "40"), (a.size, a.iterations)), 1):
            for name, value in (("size", size), ("iterations", iterations), ("seed", "0")):
                field = driver.find_element(By.ID, f"opt-{name}")
                field.clear()
                field.send_keys(str(value))
            driver.find_element(By.ID, "start").click()
            if runs == 1:
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".history-item"))
        wait.until(lambda d: int(d.find_element(By.ID, "curves").get_attribute("data-points"))
                   >= a.after)
        time.sleep(0.5)  # the preview of that iteration
        shot(driver, DOCS / "studio.jpg")
        driver.find_element(By.ID, "tab-inside").click()
        Select(driver.find_element(By.ID, "inside-layer")).select_by_value("conv3_1")
        wait.until(lambda d: "conv3_1" in d.find_element(By.ID, "inside-status").text)
        time.sleep(0.5)
        shot(driver, DOCS / "studio_inside.jpg")
        driver.find_element(By.ID, "tab-regions").click()
        canvas = wait.until(lambda d: [c for c in d.find_elements(By.CSS_SELECTOR, "canvas")
                                       if c.size["width"] > 100])[0]
        ActionChains(driver).move_to_element_with_offset(canvas, -150, -60).click_and_hold() \
            .move_by_offset(300, 0).move_by_offset(0, 40).move_by_offset(-300, 0) \
            .release().perform()
        driver.save_screenshot(str(extra / "regions.png"))
        print(f"wrote {extra / 'regions.png'}")
    finally:
        driver.quit()
        code, err = studio.stop()
        print(f"studio exited {code}: {err.strip()}")
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
