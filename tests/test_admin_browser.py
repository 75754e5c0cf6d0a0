"""A reviewer's path in real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
log in, filter to flagged items, open one, see the contradicting sentences, approve it, read the API
docs, log out. Every page runs under the app's Content-Security-Policy, and the browser's console
must show no violation of it (an inline script or style the policy blocks would break the page).

Screenshots go to test-artifacts/browser/ (override with HYBRIDGEN_TEST_ARTIFACTS).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Item, Review
from tests.browser import artifacts_dir, browser, console_problems, log_in, wait_until  # noqa: F401 - fixture
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data

pytestmark = [pytest.mark.integration, pytest.mark.browser]

def test_reviewer_finds_flagged_item_sees_evidence_and_approves(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    seed = seed_review_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    shots = artifacts_dir()
    with LiveServer(app) as server:
        log_in(browser, server.url, ADMIN, ADMIN_PASSWORD)
        assert console_problems(browser) == []

        browser.get(f"{server.url}/admin/item/list")
        browser.find_element(By.XPATH, "//a[normalize-space()='flagged' and contains(@href, 'status=flagged')]").click()
        wait_until(browser, EC.url_contains("status=flagged"), "the flagged filter")
        rows = browser.find_elements(By.CSS_SELECTOR, "a[href*='/admin/item/details/']")
        assert {r.get_attribute("href").split("?")[0].rsplit("/", 1)[1] for r in rows} == {str(seed.flagged_id)}
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
        # A decision moves on to the next flagged item; this was the only one, so the queue is empty.
        wait_until(browser, EC.presence_of_element_located((By.ID, "queue-empty")), "the empty queue")
        browser.get(f"{server.url}/admin/item/details/{seed.flagged_id}")
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
