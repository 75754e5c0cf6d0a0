"""The metrics page in real headless Chromium on PostgreSQL: a reviewer opens "Quality metrics" from
the menu and sees the charts (inline SVG with data points, drawn on the server) and the alerts, all
under the app's Content-Security-Policy. Saves a screenshot at 1366 px.

The screenshot goes to test-artifacts/browser/ (override with HYBRIDGEN_TEST_ARTIFACTS); set
METRICS_SCREENSHOT to a path to keep a copy (docs/results/ has the one in the README).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.accounts import create_user
from service.storage.db import session_factory
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD
from tests.browser import artifacts_dir, browser, console_problems, log_in, wait_until  # noqa: F401 - fixture
from tests.test_metrics import seed_metrics

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_metrics_page_shows_charts_with_points_and_the_alerts(browser, migrated_pg, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    today = datetime.now(timezone.utc).date()
    yesterday = today - timedelta(days=1)
    seed_metrics(migrated_pg, yesterday, today)
    with session_factory(migrated_pg).begin() as s:
        create_user(s, ADMIN, ADMIN_PASSWORD)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg,
                        alert_thresholds="flag_rate>0.4,final_pass_rate<0.7", alert_min_items=3)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    browser.set_window_size(1366, 900)
    with LiveServer(app) as server:
        log_in(browser, server.url, ADMIN, ADMIN_PASSWORD)

        menu = wait_until(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "a[href$='/admin/metrics']")),
                          "the menu's metrics link")
        assert "Quality metrics" in menu.get_attribute("textContent")
        browser.get(menu.get_attribute("href"))
        wait_until(browser, EC.presence_of_element_located((By.ID, "chart-flag_rate")), "the metrics page")

        # the flag-rate chart: one series per group, a point per day it has, the alert point ringed
        points = browser.find_elements(By.CSS_SELECTOR, "#chart-flag_rate circle.point")
        seen = {(p.get_attribute("data-series"), p.get_attribute("data-day"), p.get_attribute("data-value"))
                for p in points}
        assert seen == {("article/model-a/hybrid", yesterday.isoformat(), "0.5"),
                        ("product/model-a/hybrid", yesterday.isoformat(), "0.0"),
                        ("article/model-a/hybrid", today.isoformat(), "0.3333"),
                        ("article/model-b/ar", today.isoformat(), "0.0"),
                        # the seed's one item of the day before: 1 of 1 flagged, too few items to alert
                        ("product/model-a/hybrid", (yesterday - timedelta(days=1)).isoformat(), "1.0")}
        alert_points = browser.find_elements(By.CSS_SELECTOR, "#chart-flag_rate circle.point.alert")
        assert [(p.get_attribute("data-series"), p.get_attribute("data-day")) for p in alert_points] == [
            ("article/model-a/hybrid", yesterday.isoformat())]
        assert browser.find_element(By.ID, "chart-flag_rate").is_displayed()
        assert browser.find_element(By.ID, "chart-flag_rate").size["width"] > 400  # drawn, not collapsed
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg.metrics-chart")) == 8
        assert browser.find_elements(By.CSS_SELECTOR, "#chart-flag_rate line.guide"), "the threshold line"

        # the alerts: rate, day, group, value and threshold
        alerts = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#alerts tr.metrics-alert")]
        assert alerts == [f"flag_rate {yesterday} article model-a hybrid 50% > 40% 4",
                          f"final_pass_rate {yesterday} article model-a hybrid 50% < 70% 4",
                          f"final_pass_rate {today} article model-a hybrid 66.7% < 70% 3"]
        assert "Items per hour is per hour of worker time" in browser.find_element(By.ID, "metrics").text
        assert console_problems(browser) == [], "the inline SVG runs under the CSP"

        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1366, min(height + 140, 6000))
        shot = artifacts_dir() / "metrics.png"
        browser.save_screenshot(str(shot))
        if os.environ.get("METRICS_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["METRICS_SCREENSHOT"])
