"""A reviewer's path in real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
log in, filter to flagged items, open one, see the contradicting sentences, approve it, read the API
docs, log out. Every page runs under the app's Content-Security-Policy, and the browser's console
must show no violation of it (an inline script or style the policy blocks would break the page).

Screenshots go to test-artifacts/browser/ (override with HYBRIDGEN_TEST_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Item, Review
from tests.conftest import REPO, in_ci
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def artifacts_dir() -> Path:
    path = Path(os.environ.get("HYBRIDGEN_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1400,1800"):
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


def test_reviewer_finds_flagged_item_sees_evidence_and_approves(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    seed = seed_review_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    shots = artifacts_dir()
    with LiveServer(app) as server:
        browser.get(f"{server.url}/admin/login")
        browser.find_element(By.NAME, "username").send_keys(ADMIN)
        browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(browser, lambda b: "/admin/login" not in b.current_url, "the login to go through")
        assert console_problems(browser) == []

        browser.get(f"{server.url}/admin/item/list")
        browser.find_element(By.XPATH, "//a[normalize-space()='flagged' and contains(@href, 'status=flagged')]").click()
        wait_until(browser, EC.url_contains("status=flagged"), "the flagged filter")
        rows = browser.find_elements(By.CSS_SELECTOR, "a[href*='/admin/item/details/']")
        assert {r.get_attribute("href").rsplit("/", 1)[1] for r in rows} == {str(seed.flagged_id)}
        browser.save_screenshot(str(shots / "1-flagged-items.png"))

        rows[0].click()
        evidence = wait_until(browser, EC.presence_of_element_located((By.ID, "evidence")), "the item page").text
        assert "contradiction" in evidence and "The museum is closed on Mondays." in evidence
        marked = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#final-output mark.evidence")]
        assert marked == ["The museum is open every day of the week.", "The museum is closed on Mondays."]
        assert browser.find_element(By.ID, "attempt-hybrid").is_displayed()
        assert browser.find_element(By.ID, "attempt-ar_fallback").is_displayed()
        browser.save_screenshot(str(shots / "2-item-evidence.png"))

        browser.find_element(By.ID, "review-approve").click()
        wait_until(browser, EC.text_to_be_present_in_element((By.ID, "review-status"), "review: approved"),
                   "the approval to show")
        assert ADMIN in browser.find_element(By.ID, "reviews").text
        browser.save_screenshot(str(shots / "3-approved.png"))
        assert console_problems(browser) == [], "the item pages and the flash toast run under the CSP"

        browser.get(f"{server.url}/admin/batch/details/{seed.batch_id}")
        assert "3 of 3 finished" in wait_until(browser, EC.presence_of_element_located((By.ID, "batch-summary")),
                                               "the batch page").text
        browser.save_screenshot(str(shots / "4-batch.png"))
        assert console_problems(browser) == []

        # The API docs: Swagger UI from this server (no CDN), started by a same-origin script.
        browser.get(f"{server.url}/api/docs")
        wait_until(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")),
                   "Swagger UI to list the operations")
        assert "/api/batches" in browser.find_element(By.ID, "swagger-ui").text
        assert console_problems(browser) == [], "Swagger UI runs under the CSP"

        # Logout: the menu's link leads to a form; its POST ends the session.
        browser.get(f"{server.url}/admin/item/list")
        browser.find_element(By.CSS_SELECTOR, "a[href$='/admin/logout']").click()
        wait_until(browser, EC.presence_of_element_located((By.ID, "logout-confirm")), "the logout page").click()
        wait_until(browser, EC.url_contains("/admin/login"), "the login page after logout")
        browser.get(f"{server.url}/admin/item/list")
        wait_until(browser, EC.url_contains("/admin/login"), "the item list to need a login again")

    with session_factory(migrated_pg)() as s:
        review = s.execute(select(Review).where(Review.item_id == seed.flagged_id)).scalar_one()
        assert (review.decision, review.reviewer_name) == ("approve", ADMIN)
        assert s.get(Item, seed.flagged_id).review_status == "approved"
    assert all((shots / name).stat().st_size > 10_000 for name in
               ("1-flagged-items.png", "2-item-evidence.png", "3-approved.png"))
