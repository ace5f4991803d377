"""A real headless Chromium (Debian's chromium and chromium-driver, from `.ci/setup --test`)
driven through Selenium, for the health page tests and the README's screenshot.

Every method blocks (the WebDriver protocol is synchronous HTTP): async tests call them
through `asyncio.to_thread`. Waits are bounded and poll the page, never sleep a fixed time.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
FETCH = """
const [path, method, headers, done] = arguments;
fetch(path, {method, headers, credentials: "same-origin"})
  .then(async (r) => done([r.status, r.headers.get("Content-Type"), await r.text()]))
  .catch((e) => done([0, null, String(e)]));
"""


def chromium_paths() -> tuple[str, str] | None:
    """The browser and its driver, or None when they are not installed."""
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which(DRIVER)
    return None if browser is None or driver is None else (browser, driver)


@contextmanager
def headless_chromium(
    paths: tuple[str, str], width: int = 1280, height: int = 1000
) -> Iterator[Page]:
    browser, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    flags = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
    for argument in [*flags, "--no-first-run", f"--window-size={width},{height}"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    try:
        yield Page(driver)
    finally:
        driver.quit()


class Page:
    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The first match's text; "" when there is none, or when the page replaced it
        between finding and reading (a re-render: the next poll finds the new one)."""
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        try:
            return found[0].text if found else ""
        except StaleElementReferenceException:
            return ""

    def wait_for(self, check: Callable[[], Any], seconds: float = 10) -> Any:
        """Poll `check` until it returns something true; that value, or TimeoutError."""
        deadline = time.monotonic() + seconds
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {seconds} s: {check}")
            time.sleep(0.05)

    def wait_text(self, css: str, wanted: str, seconds: float = 10) -> str:
        """The text of `css` once it contains `wanted`."""
        return str(self.wait_for(lambda: (t := self.text(css)) and wanted in t and t, seconds))

    def click(self, css: str) -> None:
        self.find(css).click()

    def fill(self, css: str, text: str) -> None:
        self.find(css).send_keys(text)

    def console_errors(self) -> list[dict[str, Any]]:
        """Severe console entries since the last call (the browser's log is read once)."""
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def fetch(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, str | None, str]:
        """A fetch from inside the page (its cookies, its origin): status, type, body."""
        status, kind, body = self.driver.execute_async_script(FETCH, path, method, headers or {})
        return int(status), kind, str(body)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        if full_page:
            height = self.driver.execute_script("return document.documentElement.scrollHeight")
            width = self.driver.get_window_size()["width"]
            self.driver.set_window_size(width, min(int(height) + 120, 4000))
        self.driver.save_screenshot(str(path))
        return path
