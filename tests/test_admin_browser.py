"""A reviewer's path in real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
log in, filter to flagged items, open one, see the contradicting sentences, approve it.

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
from pipeline.storage.db import session_factory
from pipeline.storage.models import Item, Review
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
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_reviewer_finds_flagged_item_sees_evidence_and_approves(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By

    seed = seed_review_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    shots = artifacts_dir()
    with LiveServer(app) as server:
        browser.get(f"{server.url}/admin/login")
        browser.find_element(By.NAME, "username").send_keys(ADMIN)
        browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        assert "/admin/login" not in browser.current_url

        browser.get(f"{server.url}/admin/item/list")
        browser.find_element(By.XPATH, "//a[normalize-space()='flagged' and contains(@href, 'status=flagged')]").click()
        assert "status=flagged" in browser.current_url
        rows = browser.find_elements(By.CSS_SELECTOR, "a[href*='/admin/item/details/']")
        assert {r.get_attribute("href").rsplit("/", 1)[1] for r in rows} == {str(seed.flagged_id)}
        browser.save_screenshot(str(shots / "1-flagged-items.png"))

        rows[0].click()
        evidence = browser.find_element(By.ID, "evidence").text
        assert "contradiction" in evidence and "The museum is closed on Mondays." in evidence
        marked = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#final-output mark.evidence")]
        assert marked == ["The museum is open every day of the week.", "The museum is closed on Mondays."]
        assert browser.find_element(By.ID, "attempt-hybrid").is_displayed()
        assert browser.find_element(By.ID, "attempt-ar_fallback").is_displayed()
        browser.save_screenshot(str(shots / "2-item-evidence.png"))

        browser.find_element(By.ID, "review-approve").click()
        assert "review: approved" in browser.find_element(By.ID, "review-status").text
        assert ADMIN in browser.find_element(By.ID, "reviews").text
        browser.save_screenshot(str(shots / "3-approved.png"))

    with session_factory(migrated_pg)() as s:
        review = s.execute(select(Review).where(Review.item_id == seed.flagged_id)).scalar_one()
        assert (review.decision, review.reviewer_name) == ("approve", ADMIN)
        assert s.get(Item, seed.flagged_id).review_status == "approved"
    assert all((shots / name).stat().st_size > 10_000 for name in
               ("1-flagged-items.png", "2-item-evidence.png", "3-approved.png"))
