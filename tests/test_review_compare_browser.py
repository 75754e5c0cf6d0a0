"""The comparison, "use this version", the field-by-field edit and feedback, in real headless Chromium
on PostgreSQL (the pattern and fixtures of tests/test_admin_browser.py), under the app's CSP.

The screenshot of the comparison at 1366 px goes to docs/results/review-compare-2026-12-04.png when
SAVE_DOC_SCREENSHOTS=1 (so a plain test run does not rewrite a committed file; not a HYBRIDGEN_
variable, since tests/conftest.py clears those), and always to
test-artifacts/browser/.
"""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.export import export_records
from service.feedback import feedback_labels
from service.storage.db import session_factory
from service.storage.models import Attempt, Feedback, Item, Review
from tests.compare_fixtures import ATTRIBUTES, HYBRID_CODE, seed_compare_data
from tests.conftest import REPO
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data
from tests.browser import artifacts_dir, browser, console_problems, wait_until  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MODEL_FREE = "contradiction,product_attributes,sandbox_tests"
SCREENSHOT = REPO / "docs" / "results" / "review-compare-2026-12-04.png"


@pytest.fixture
def site(migrated_pg, tmp_path):
    review = seed_review_data(migrated_pg)
    extra = seed_compare_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg, validators_disabled=MODEL_FREE)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    with LiveServer(app) as server:
        yield server, migrated_pg, review, extra


def log_in(browser, server) -> None:
    from selenium.webdriver.common.by import By

    browser.set_window_size(1366, 2000)
    browser.get(f"{server.url}/admin/login")
    browser.find_element(By.NAME, "username").send_keys(ADMIN)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(browser, lambda b: "/admin/login" not in b.current_url, "the login to go through")


def open_item(browser, server, item_id: int):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    browser.get(f"{server.url}/admin/item/details/{item_id}")
    return wait_until(browser, EC.presence_of_element_located((By.ID, "compare")), f"item {item_id}'s comparison")


def test_use_this_version_makes_the_hybrid_output_final_and_exported(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    server, url, review, extra = site
    log_in(browser, server)
    open_item(browser, server, extra.code_id)
    hybrid, fallback = (browser.find_element(By.ID, f"attempt-{p}") for p in ("hybrid", "ar_fallback"))
    assert hybrid.location["y"] == fallback.location["y"] and hybrid.location["x"] < fallback.location["x"], \
        "the two versions sit side by side"
    assert "final" in fallback.find_element(By.ID, "final-badge").text
    assert browser.find_elements(By.ID, "use-ar_fallback") == [], "the final version does not offer itself"
    assert browser.find_element(By.ID, "job-input").location["y"] < hybrid.location["y"], "the input comes first"
    assert browser.find_elements(By.CSS_SELECTOR, "#attempt-hybrid pre.highlight span.k"), "the code is highlighted"
    assert "def add(a, b)" in browser.find_element(By.CSS_SELECTOR, "#diff-1 .word-diff").text
    assert browser.find_elements(By.CSS_SELECTOR, "#diff-1 del.diff-del, #diff-1 ins.diff-ins")
    browser.save_screenshot(str(artifacts_dir() / "compare-1-code-before.png"))

    browser.find_element(By.ID, "use-hybrid").click()
    wait_until(browser, lambda b: f"/details/{extra.code_id}" not in b.current_url,
               "the decision to move on from the item")
    with session_factory(url)() as s:
        item = s.get(Item, extra.code_id)
        hybrid_attempt = s.execute(select(Attempt).where(Attempt.item_id == item.id, Attempt.path == "hybrid")).scalar_one()
        assert item.edited_output == HYBRID_CODE and item.review_status == "edited"
        review_row = s.execute(select(Review).where(Review.item_id == item.id)).scalar_one()
        assert (review_row.decision, review_row.attempt_id, review_row.reviewer_name) == \
            ("use_attempt", hybrid_attempt.id, ADMIN)
        exported = {r["item_id"]: r for r in export_records(s, extra.batch_id)}
        assert exported[item.id]["output"] == HYBRID_CODE, "export gives the chosen hybrid version"

    open_item(browser, server, extra.code_id)
    assert "chosen by a reviewer" in browser.find_element(By.CSS_SELECTOR, "#attempt-hybrid #final-badge").text
    assert browser.find_elements(By.ID, "use-hybrid") == [] and browser.find_elements(By.ID, "use-ar_fallback")
    assert "exported: the hybrid output, chosen by a reviewer" in browser.find_element(By.ID, "exported-label").text
    # The unparseable fallback keeps its evidence view: the failing line is marked in its source.
    source = browser.find_element(By.CSS_SELECTOR, "#attempt-ar_fallback details.evidence-source")
    assert source.find_elements(By.CSS_SELECTOR, "mark.evidence"), "the source view marks the evidence"
    assert browser.find_elements(By.CSS_SELECTOR, "#attempt-ar_fallback .hll"), "the failing line is banded"
    assert console_problems(browser) == [], "the comparison runs under the CSP"


def test_comparison_screenshot_and_feedback(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    server, url, review, extra = site
    log_in(browser, server)
    open_item(browser, server, extra.product_id)
    title = browser.find_element(By.CSS_SELECTOR, "#attempt-hybrid .product-title")
    assert title.text == "<b>Aurora</b> Travel Mug", "HTML in a product field is shown as text"
    assert browser.find_elements(By.CSS_SELECTOR, "#attempt-hybrid .product-title b") == []
    marked = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#attempt-hybrid .product-description mark")]
    assert marked == ["The Aurora Travel Mug keeps drinks hot."]
    assert "final" in browser.find_element(By.CSS_SELECTOR, "#attempt-ar_fallback #final-badge").text
    assert len(browser.find_elements(By.ID, "final-output")) == 1, "the final output is not repeated"
    shot = artifacts_dir() / "compare-2-product.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))

    # "False flag" on the hybrid's failing report.
    browser.find_element(By.CSS_SELECTOR, "#attempt-hybrid .btn-false-flag").click()
    wait_until(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#attempt-hybrid .false-flagged")),
               "the false flag to show")
    assert ADMIN in browser.find_element(By.CSS_SELECTOR, "#attempt-hybrid .false-flagged").text
    # "Missed defect" on the passing fallback.
    browser.find_element(By.CSS_SELECTOR, "#attempt-ar_fallback details.missed-defect summary").click()
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.CSS_SELECTOR, "#attempt-ar_fallback select[name=defect_class]")) \
        .select_by_value("unsupported-claim")
    browser.find_element(By.CSS_SELECTOR, "#attempt-ar_fallback input[name=note]").send_keys("whole commute")
    browser.find_element(By.CSS_SELECTOR, "#attempt-ar_fallback .missed-defect-submit").click()
    wait_until(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#attempt-ar_fallback .missed")),
               "the missed defect to show")
    assert "unsupported-claim" in browser.find_element(By.ID, "feedback").text
    assert console_problems(browser) == []
    with session_factory(url)() as s:
        rows = [(f.label, f.validator, f.defect_class, f.note) for f in s.execute(select(Feedback).order_by(Feedback.id)).scalars()]
        assert rows == [("false_flag", "degeneration[description]", None, None),
                        ("missed_defect", None, "unsupported-claim", "whole commute")]
        labels = list(feedback_labels(s))
        assert sorted(line["output_id"].split(":")[2] for line in labels) == ["ar_fallback", "hybrid"]
        assert [d["class"] for line in labels for d in line["defects"]] == ["unsupported-claim"]


def test_edit_keeps_the_text_on_a_validation_error_and_shows_reports_on_save(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC

    server, url, review, extra = site
    log_in(browser, server)
    # Code that does not parse: refused, and the typed text is still there.
    open_item(browser, server, extra.code_id)
    browser.find_element(By.ID, "review-edit").click()
    text = wait_until(browser, EC.presence_of_element_located((By.ID, "edit-text")), "the code edit page")
    broken = "def add(a, b)\n    return a + b  # reviewer's fix"
    text.clear()
    text.send_keys(broken)
    browser.find_element(By.ID, "save-edit").click()
    error = wait_until(browser, EC.presence_of_element_located((By.ID, "edit-error")), "the refusal")
    assert "does not parse" in error.text
    assert browser.find_element(By.ID, "edit-text").get_attribute("value") == broken
    with session_factory(url)() as s:
        assert s.get(Item, extra.code_id).edited_output is None

    # A product with an empty title: refused beside the field, the other fields as typed.
    open_item(browser, server, extra.product_id)
    browser.find_element(By.ID, "review-edit").click()
    title = wait_until(browser, EC.presence_of_element_located((By.ID, "edit-title")), "the product edit page")
    title.send_keys(" X")
    wait_until(browser, EC.text_to_be_present_in_element((By.ID, "count-title"), "19 / 200"),
               "the title's character count to follow the typing")
    title.clear()
    description = browser.find_element(By.ID, "edit-description")
    description.clear()
    description.send_keys("A steel mug of 350 ml for hot drinks on the way to work. Wash it by hand.")
    browser.find_element(By.ID, "edit-fact-3").clear()
    browser.find_element(By.ID, "save-edit").click()
    wait_until(browser, EC.presence_of_element_located((By.ID, "error-title")), "the title's error")
    assert "the title is empty" in browser.find_element(By.ID, "error-title").text
    assert browser.find_element(By.ID, "edit-description").get_attribute("value").startswith("A steel mug of 350 ml")
    assert browser.find_element(By.ID, "edit-fact-3").get_attribute("value") == ""
    browser.save_screenshot(str(artifacts_dir() / "compare-3-edit-refused.png"))

    # Fixed and saved (Ctrl+Enter): the validators' reports on the edit, and approve is still offered.
    title = browser.find_element(By.ID, "edit-title")
    title.send_keys("Aurora Travel Mug")
    title.send_keys(Keys.CONTROL, Keys.ENTER)
    saved = wait_until(browser, EC.presence_of_element_located((By.ID, "edit-saved")), "the saved edit")
    reports = {e.get_attribute("data-validator"): "passed" if "report-pass" in e.get_attribute("class") else "failed"
               for e in saved.find_elements(By.CSS_SELECTOR, ".edit-report")}
    assert reports["json_schema"] == "failed", "two facts are fewer than the schema's three"
    assert reports["degeneration[description]"] == "passed"
    browser.save_screenshot(str(artifacts_dir() / "compare-4-edit-saved.png"))
    with session_factory(url)() as s:
        item = s.get(Item, extra.product_id)
        record = json.loads(item.edited_output)
        assert item.review_status == "edited" and record["title"] == "Aurora Travel Mug"
        assert len(record["facts"]) == 2 and record["attributes"] == ATTRIBUTES
    browser.find_element(By.ID, "approve-edit").click()
    wait_until(browser, lambda b: "/review/save-edit" not in b.current_url, "the approval")
    with session_factory(url)() as s:
        item = s.get(Item, extra.product_id)
        assert item.review_status == "approved" and json.loads(item.edited_output)["title"] == "Aurora Travel Mug"
    # A refused save answers 422 (the form, with the reason); Chromium logs that status as a failed load.
    refused = "/admin/review/save-edit - Failed to load resource: the server responded with a status of 422"
    assert [p for p in console_problems(browser) if refused not in p] == [], "the edit page's script runs under the CSP"
