"""The review queue and the triage list in real headless Chromium (Debian's chromium + chromium-driver,
via Selenium), on PostgreSQL: a reviewer clears a queue with keys only, undoes a decision, decides
in bulk on everything a filter matches, and finds an item by a word of its output.

Page loads are counted from Chrome's own performance log (`Page.frameNavigated` of the top frame:
one per document shown, however many redirects led to it), and each page's navigation entry is
checked too. Every page runs under the app's Content-Security-Policy; the console must show no
violation of it. Screenshots at 1366 px go to test-artifacts/browser/, and the two the closing note
cites to docs/results/ (HYBRIDGEN_SAVE_RESULT_SHOTS=0 leaves docs/ alone).
"""

from __future__ import annotations

import json
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
from tests.queue_fixtures import seed_queue
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD
from tests.browser import artifacts_dir, chromium, console_problems, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WIDTH = 1366
RESULTS = REPO / "docs" / "results"
QUEUE_SHOT, LIST_SHOT = "review-queue-2026-12-04.png", "review-list-2026-12-04.png"


@pytest.fixture
def browser():
    yield from chromium(WIDTH, 1000, performance_log=True)


def site(url: str, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    return LiveServer(create_app(settings, AppServices(settings, session_factory(url), lambda ids: 1)))


def save_result_shot(browser, name: str) -> Path:
    path = artifacts_dir() / name
    browser.save_screenshot(str(path))
    if os.environ.get("HYBRIDGEN_SAVE_RESULT_SHOTS", "1") != "0":
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, RESULTS / name)
    return path


def documents_loaded(browser) -> list[str]:
    """URLs of the top-frame documents Chrome committed since the last call."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Page.frameNavigated" and not message["params"]["frame"].get("parentId"):
            urls.append(message["params"]["frame"]["url"])
    return urls


class Keyboard:
    """Presses one key on the page and waits for the next document; counts keys and page loads."""

    def __init__(self, browser):
        self.browser = browser
        self.keys = 0
        self.loads: list[list[str]] = []

    def press(self, key: str) -> dict:
        from selenium.webdriver.common.action_chains import ActionChains

        documents_loaded(self.browser)  # drop what came before
        self.browser.execute_script("window.__beforeKey = true;")  # gone once another document is shown
        ActionChains(self.browser).send_keys(key).perform()
        self.keys += 1
        wait_until(self.browser, lambda b: b.execute_script(
            "return window.__beforeKey === undefined && document.readyState === 'complete';"),
            f"the page after pressing {key!r}")
        self.loads.append(documents_loaded(self.browser))
        return self.browser.execute_script("return performance.getEntriesByType('navigation')[0].toJSON();")


def item_on_page(browser) -> int | None:
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.ID, "item-summary")
    return int(found[0].get_attribute("data-item-id")) if found else None


def log_in(browser, server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{server.url}/admin/login")
    browser.find_element(By.NAME, "username").send_keys(ADMIN)
    browser.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)
    wait_until(browser, lambda b: "/admin/login" not in b.current_url, "the login to go through")


def test_reviewer_clears_a_queue_of_ten_with_one_key_and_one_page_load_per_decision(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By

    q = seed_queue(migrated_pg, products=8, articles=2, passing=2)
    assert len(q.flagged) == 10
    with site(migrated_pg, tmp_path) as server:
        log_in(browser, server)
        # Login lands on the queue, which says how many wait.
        assert browser.current_url.endswith("/admin/review")
        assert browser.find_element(By.ID, "queue-count").text == "10"
        assert "10 flagged items waiting" in browser.find_element(By.ID, "review-queue").text
        keyboard = Keyboard(browser)
        keyboard.press("j")  # start with the oldest
        assert item_on_page(browser) == q.flagged[0]
        assert "a approve" in browser.find_element(By.ID, "key-legend").text.replace("\n", " ")
        assert browser.find_element(By.ID, "queue-waiting").text == "10 waiting"
        assert browser.execute_script("return window.innerWidth") == WIDTH
        save_result_shot(browser, QUEUE_SHOT)

        keys_before, loads_before = keyboard.keys, len(keyboard.loads)
        decisions = {}
        for n, expected in enumerate(q.flagged):
            assert item_on_page(browser) == expected, f"decision {n + 1}: the queue shows the oldest waiting item"
            key = "r" if expected in q.articles else "a"
            nav = keyboard.press(key)
            decisions[expected] = key
            assert len(keyboard.loads[-1]) == 1, f"decision {n + 1}: page loads {keyboard.loads[-1]}"
            assert nav["type"] == "navigate" and nav["redirectCount"] == 1  # the POST's 303, straight to the next
        per_decision_keys = (keyboard.keys - keys_before) / len(q.flagged)
        per_decision_loads = sum(len(x) for x in keyboard.loads[loads_before:]) / len(q.flagged)
        assert (per_decision_keys, per_decision_loads) == (1.0, 1.0)
        print(f"\nkeypresses per decision: {per_decision_keys}, page loads per decision: {per_decision_loads}")
        # The queue is empty now, and says so.
        assert item_on_page(browser) is None
        assert browser.find_element(By.ID, "queue-count").text == "0"
        assert browser.find_elements(By.ID, "queue-empty")
        assert console_problems(browser) == [], "the queue pages and the keys script run under the CSP"

    with session_factory(migrated_pg)() as s:
        reviews = s.execute(select(Review).order_by(Review.id)).scalars().all()
        assert [(r.item_id, r.decision, r.reviewer_name) for r in reviews] == \
            [(i, "reject" if decisions[i] == "r" else "approve", ADMIN) for i in q.flagged]
        assert {s.get(Item, i).review_status for i in q.products} == {"approved"}
        assert {s.get(Item, i).review_status for i in q.articles} == {"rejected"}


def test_undo_brings_the_item_back_unreviewed_and_keys_ignore_text_fields(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By

    q = seed_queue(migrated_pg, products=3, articles=0, passing=0)
    with site(migrated_pg, tmp_path) as server:
        log_in(browser, server)
        browser.get(f"{server.url}/admin/review/next?kind=product")
        first = item_on_page(browser)
        assert first == q.products[0]
        keyboard = Keyboard(browser)
        keyboard.press("a")
        assert item_on_page(browser) == q.products[1]
        with session_factory(migrated_pg)() as s:
            assert s.get(Item, first).review_status == "approved"
        nav = keyboard.press("u")
        assert len(keyboard.loads[-1]) == 1 and nav["redirectCount"] == 1
        assert item_on_page(browser) == first, "undo lands back on the item it took back"
        assert browser.find_element(By.ID, "review-status").text == "review: not reviewed"
        assert "kind=product" in browser.current_url, "the filter is kept"
        with session_factory(migrated_pg)() as s:
            assert s.get(Item, first).review_status is None
            assert [r.decision for r in s.execute(select(Review).order_by(Review.id)).scalars()] == ["approve", "undo"]

        # j / k move through the queue without deciding.
        keyboard.press("j")
        assert item_on_page(browser) == q.products[1]
        keyboard.press("k")
        assert item_on_page(browser) == first
        # A key typed into a text field is text, not a decision (a field put on the page for the test).
        field = browser.execute_script("""
            const f = document.createElement('input'); f.type = 'text'; f.id = 'typing-test';
            document.getElementById('decisions').appendChild(f); f.focus(); return f;""")
        field.send_keys("arju")
        assert field.get_attribute("value") == "arju" and item_on_page(browser) == first
        # The keys script marks the page busy as it acts on a key, synchronously within the keydown.
        assert browser.execute_script("return document.body.classList.contains('review-busy')") is False
        with session_factory(migrated_pg)() as s:
            assert len(s.execute(select(Review)).scalars().all()) == 2
        assert console_problems(browser) == []


def test_filtered_bulk_select_all_matching_confirm_and_filter_kept(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    q = seed_queue(migrated_pg, products=30, articles=2, passing=2)
    with site(migrated_pg, tmp_path) as server:
        log_in(browser, server)
        browser.get(f"{server.url}/admin/item/list?pageSize=25")
        # Filter from the sidebar: failing validator "degeneration" (the products are flagged on a field:
        # degeneration[description]), and not reviewed.
        browser.find_element(By.XPATH, "//div[@id='filter-sidebar']//a[normalize-space()='degeneration']").click()
        wait_until(browser, EC.url_contains("failing=degeneration"), "the validator filter")
        browser.find_element(By.XPATH, "//div[@id='filter-sidebar']//a[normalize-space()='not reviewed']").click()
        wait_until(browser, EC.url_contains("review=none"), "the review filter")
        rows = browser.find_elements(By.CSS_SELECTOR, "tr.item-row")
        assert len(rows) == 25, "a page of 25 of the 30 matching"
        assert "degeneration[description]: the sentence" in rows[0].find_element(By.CSS_SELECTOR, ".item-why").text
        assert "Trailhead Bottle" in rows[0].find_element(By.CSS_SELECTOR, ".item-title").text

        browser.find_element(By.ID, "select-all").click()
        banner = wait_until(browser, EC.visibility_of_element_located((By.ID, "select-matching")), "the banner")
        assert "All 25 items on this page are selected." in banner.text
        browser.find_element(By.ID, "select-all-matching").click()
        assert "All 30 items matching this filter are selected" in banner.text
        browser.find_element(By.ID, "dropdownMenuButton").click()
        wait_until(browser, EC.element_to_be_clickable((By.ID, "action-custom-approve")), "the actions menu").click()
        title = wait_until(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#confirm-card .card-title")),
                           "the confirmation page").text
        assert title == "Approve all 30 matching items?"
        assert "failing=degeneration" in browser.find_element(By.ID, "confirm-card").text
        with session_factory(migrated_pg)() as s:  # nothing changes before the confirmed POST
            assert s.execute(select(Review)).first() is None
        browser.save_screenshot(str(artifacts_dir() / "review-bulk-confirm.png"))
        browser.find_element(By.ID, "confirm-decision").click()
        wait_until(browser, EC.url_contains("/admin/item/list"), "the list after the decision")
        assert "failing=degeneration" in browser.current_url and "review=none" in browser.current_url
        assert browser.find_element(By.ID, "no-items").text == "No item matches this filter."

        assert console_problems(browser) == []

        # An action with nothing ticked: a clear message inside the layout (a 400), and the way back keeps
        # the filter.
        browser.get(f"{server.url}/admin/item/list?status=flagged")
        browser.find_element(By.ID, "dropdownMenuButton").click()
        wait_until(browser, EC.element_to_be_clickable((By.ID, "action-custom-reject")), "the actions menu").click()
        error = wait_until(browser, EC.presence_of_element_located((By.ID, "confirm-error")), "the message").text
        assert error.startswith("No items selected.")
        assert browser.find_elements(By.ID, "navbar-menu"), "shown inside the layout, with the menu"
        assert browser.find_element(By.ID, "back-to-items").get_attribute("href").endswith(
            "/admin/item/list?status=flagged")
        assert [m for m in console_problems(browser) if "400 (Bad Request)" not in m] == []

    with session_factory(migrated_pg)() as s:
        assert sorted(r.item_id for r in s.execute(select(Review)).scalars()) == q.products
        assert {s.get(Item, i).review_status for i in q.products} == {"approved"}
        assert {s.get(Item, i).review_status for i in q.articles + q.passing} == {None}


def test_the_list_fits_1366_px_and_search_finds_a_word_of_the_output(browser, migrated_pg, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC

    q = seed_queue(migrated_pg, products=10, articles=3, passing=3)
    with site(migrated_pg, tmp_path) as server:
        log_in(browser, server)
        browser.get(f"{server.url}/admin/item/list")
        assert browser.execute_script("return window.innerWidth") == WIDTH
        browser.save_screenshot(str(artifacts_dir() / "review-list-before-checks.png"))
        overflow = browser.execute_script("""
            const wrap = document.querySelector('#item-table').parentElement;
            return [wrap.scrollWidth, wrap.clientWidth];""")
        assert overflow[0] <= overflow[1], f"the table is wider than its card at {WIDTH} px: {overflow}"
        review = browser.find_element(By.CSS_SELECTOR, "th.col-batch").rect
        sidebar = browser.find_element(By.ID, "filter-sidebar").rect
        assert review["x"] + review["width"] <= sidebar["x"], "the last column is not cut off"
        assert all(c.is_displayed() for c in browser.find_elements(By.CSS_SELECTOR, ".item-review"))
        assert browser.find_element(By.ID, "queue-waiting").text == "13"
        save_result_shot(browser, LIST_SHOT)

        box = browser.find_element(By.ID, "search-input")
        box.send_keys("Aurora" + Keys.ENTER)
        wait_until(browser, EC.url_contains("search=Aurora"), "the search")
        titles = [a.get_attribute("href").split("?")[0].rsplit("/", 1)[1]
                  for a in browser.find_elements(By.CSS_SELECTOR, "a.item-title")]
        assert titles == [str(q.articles[0])]
        assert browser.find_element(By.CSS_SELECTOR, "a.item-title").text == "Northern Lights"
        # The item page keeps the search; "Back to items" returns to it.
        browser.find_element(By.CSS_SELECTOR, "a.item-title").click()
        wait_until(browser, EC.presence_of_element_located((By.ID, "back-to-items")), "the item page").click()
        wait_until(browser, EC.url_contains("/admin/item/list"), "the list again")
        assert "search=Aurora" in browser.current_url
        assert len(browser.find_elements(By.CSS_SELECTOR, "tr.item-row")) == 1
        assert console_problems(browser) == []
