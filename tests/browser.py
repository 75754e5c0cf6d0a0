"""Headless Debian Chromium for the browser tests: the driver fixture, waiting, and console checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, in_ci

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def artifacts_dir() -> Path:
    path = Path(os.environ.get("HYBRIDGEN_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser():
    yield from chromium()


def chromium(width: int = 1400, height: int = 1800, performance_log: bool = False):
    """A headless Chromium driver (a generator, so a test file's own fixture can size it)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if performance_log else {})})
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_until(browser, condition, what: str, timeout: float = 30):
    """A click that navigates returns before the next page is there (more so on a busy machine)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout).until(condition)
    except TimeoutException:
        raise AssertionError(f"waited {timeout} s for {what}; the page is {browser.current_url}") from None


def console_problems(browser) -> list[str]:
    """Console messages since the last call that are CSP violations or failed loads."""
    return [e["message"] for e in browser.get_log("browser")
            if "Content Security Policy" in e["message"]
            or ("Failed to load resource" in e["message"] and "/favicon.ico" not in e["message"])]


def log_in(browser, server_url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server_url}/admin/login")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(browser, lambda b: "/admin/login" not in b.current_url, "the login to go through")
