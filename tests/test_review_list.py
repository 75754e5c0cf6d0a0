"""The review list and queue without a browser: filters (checked values, the field-specific
validator names), full-text search on SQLite and PostgreSQL, titles and flag messages, the queue's
order, and the review app's queue pages over HTTP (landing after login, a decision that moves on,
undo, bulk "all matching" and an empty selection shown inside the layout)."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from sqlalchemy import select

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.review_list import (
    FilterError, ItemFilter, list_page, matching_ids, queue_breakdown, queue_count, queue_next, queue_previous,
    title_and_preview,
)
from service.reviews import review_items, reviewer_named
from service.storage.db import session_factory
from service.storage.models import Item, Review
from tests.live_server import LiveServer
from tests.queue_fixtures import seed_queue
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD


# --- the filter ---------------------------------------------------------------------------------


def test_filter_reads_the_list_parameters_and_ignores_what_it_cannot_mean():
    flt = ItemFilter.from_params({"status": "flagged", "kind": "product", "batch": "7", "failing": "degeneration",
                                  "review": "none", "search": "  Aurora  ", "page": "3", "path": "__all"})
    assert flt == ItemFilter(status="flagged", kind="product", batch=7, failing="degeneration", review="none",
                             search="Aurora")
    assert flt.params() == {"status": "flagged", "kind": "product", "batch": "7", "failing": "degeneration",
                            "review": "none", "search": "Aurora"}
    hostile = {"status": "' OR 1=1 --", "batch": "1;DROP TABLE items", "failing": "%' OR 1=1 --", "kind": "x"}
    assert ItemFilter.from_params(hostile).is_empty()


@pytest.mark.parametrize("params, named", [
    ({"status": "done!"}, "status: expected one of queued"),
    ({"batch": "-3"}, "batch: expected a batch id"),
    ({"failing": "Degeneration"}, "failing: expected a validator name"),
    ({"review": "pending"}, "review: expected one of none, approved"),
    ({"search": "a\x00b"}, "search: NUL characters"),
    ({"search": "word " * 50}, "search: at most 200 characters"),
])
def test_strict_filter_names_the_parameter_that_is_wrong(params, named):
    with pytest.raises(FilterError, match=re.escape(named)):
        ItemFilter.from_params(params, strict=True)


def test_queue_defaults_to_flagged_and_not_reviewed_unless_the_filter_says_otherwise():
    assert ItemFilter(kind="code").queue() == ItemFilter(kind="code", status="flagged", review="none")
    assert ItemFilter(status="error", review="rejected").queue() == ItemFilter(status="error", review="rejected")


@pytest.mark.parametrize("kind, input_, output, title, preview_start", [
    ("article", {"topic": "tea"}, "# The Story of Tea\n\n## History\n\nTea came from China.", "The Story of Tea",
     "Tea came from China."),
    ("article", {"topic": "tea"}, None, "tea", ""),
    ("product", {"name": "Mug"}, '{"title": "Steel Mug", "tagline": "Hot for hours", "description": "A mug."}',
     "Steel Mug", "Hot for hours · A mug."),
    ("product", {"name": "Mug"}, "{not json", "Mug", ""),
    ("code", {"prompt": "Write a function that adds."}, "def add(a, b):\n    return a + b\n", "def add(a, b)",
     "Write a function that adds."),
])
def test_title_and_preview_come_from_the_deliverable_then_the_input(kind, input_, output, title, preview_start):
    got_title, preview = title_and_preview(kind, input_, output)
    assert got_title == title and preview.startswith(preview_start)


def test_preview_is_one_bounded_line():
    _, preview = title_and_preview("article", {}, "# T\n\n" + "word " * 400)
    assert len(preview) <= 160 and "\n" not in preview and preview.endswith("…")


# --- on a database ------------------------------------------------------------------------------


def test_search_degeneration_filter_list_and_queue(db_url):
    """The same on SQLite (LIKE) and PostgreSQL (full-text search through the GIN index)."""
    q = seed_queue(db_url, products=4, articles=2, passing=2)
    sessions = session_factory(db_url)
    with sessions() as s:
        # Full-text search over the output: a word of the aurora article's text, any case.
        page = list_page(s, ItemFilter(search="aurora"))
        assert [r.item.id for r in page.rows] == [q.articles[0]] and page.count == 1
        assert list_page(s, ItemFilter(search="charged particles")).count == 1
        assert list_page(s, ItemFilter(search="Trailhead")).count == 4  # a word of the products' input
        assert list_page(s, ItemFilter(search="aurora nonexistentword")).count == 0  # every word must occur
        assert list_page(s, ItemFilter(search="bottle-2")).count == 1  # a client key, whole
        assert list_page(s, ItemFilter(search="100%_")).count == 0  # LIKE wildcards are literal
        # `degeneration` matches the products flagged `degeneration[description]`; the field name alone too.
        assert list_page(s, ItemFilter(failing="degeneration")).count == 4
        assert list_page(s, ItemFilter(failing="degeneration[description]")).count == 4
        assert list_page(s, ItemFilter(failing="degeneration[title]")).count == 0
        assert list_page(s, ItemFilter(failing="contradiction")).count == 2
        # Rows carry a title, a preview and the first failing message.
        row = list_page(s, ItemFilter(failing="degeneration"), page_size=1).rows[0]
        assert row.title.startswith("Trailhead Bottle") and "Keeps water cold" in row.preview
        assert row.message.startswith("degeneration[description]: the sentence 'A steel bottle.' repeats")
        assert list_page(s, ItemFilter(), page=999, page_size=3).page == 3  # 8 items: clamped to the last page
        # The queue: flagged and not reviewed, oldest first.
        assert queue_count(s, ItemFilter()) == 6
        assert queue_breakdown(s, ItemFilter()) == {"kind": {"product": 4, "article": 2},
                                                    "failing": {"degeneration": 4, "contradiction": 2}}
        assert queue_next(s, ItemFilter()) == q.flagged[0]
        assert queue_next(s, ItemFilter(kind="article")) == q.articles[0]
        assert queue_next(s, ItemFilter(), after=q.flagged[-1]) == q.flagged[0]  # wraps around
        assert queue_previous(s, ItemFilter(), before=q.flagged[0]) == q.flagged[-1]
        assert queue_previous(s, ItemFilter(), before=q.flagged[2]) == q.flagged[1]
        assert matching_ids(s, ItemFilter(failing="degeneration"), limit=3) == (q.products[:3], 4)
    with sessions.begin() as s:
        review_items(s, [q.products[0]], "approve", reviewer_named(s, ADMIN))
    with sessions() as s:
        assert queue_next(s, ItemFilter()) == q.flagged[1]
        assert list_page(s, ItemFilter(review="none", failing="degeneration")).count == 3
        assert list_page(s, ItemFilter(review="approved")).count == 1


# --- the review app over HTTP -------------------------------------------------------------------


@pytest.fixture
def queue_site(migrated_pg, tmp_path):
    q = seed_queue(migrated_pg, products=6, articles=2, passing=1)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg)
    app = create_app(settings, AppServices(settings, session_factory(migrated_pg), lambda ids: 1))
    with LiveServer(app) as server:
        client = httpx.Client(base_url=server.url, timeout=30)
        landing = client.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD})
        yield q, client, landing


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.mark.integration
def test_login_lands_on_the_queue_with_the_count_waiting(queue_site):
    q, client, landing = queue_site
    assert landing.status_code == 302 and httpx.URL(landing.headers["location"]).path == "/admin/review"
    page = client.get("/admin/review")
    assert re.search(r'id="queue-count">8<', page.text) and 'id="queue-start"' in page.text
    start = client.get("/admin/review/next", follow_redirects=False)
    assert start.status_code == 303 and start.headers["location"] == f"/admin/item/details/{q.flagged[0]}"
    filtered = client.get("/admin/review/next?kind=article&failing=contradiction", follow_redirects=False)
    assert filtered.headers["location"] == \
        f"/admin/item/details/{q.articles[0]}?kind=article&failing=contradiction"


@pytest.mark.integration
def test_a_decision_moves_on_in_the_filter_and_undo_comes_back(queue_site):
    q, client, _ = queue_site
    item = client.get(f"/admin/item/details/{q.products[0]}?failing=degeneration")
    assert 'name="queue" value="failing=degeneration"' in item.text
    assert 'href="/admin/item/list?failing=degeneration"' in item.text  # "Back to items" keeps the filter
    assert "/static/hybridgen/review-keys.js\"></script>" in item.text and 'id="key-legend"' in item.text
    token = token_of(item.text)
    r = client.post("/admin/review/decide", follow_redirects=False, data={
        "csrf_token": token, "decision": "approve", "pks": str(q.products[0]), "queue": "failing=degeneration"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/item/details/{q.products[1]}?failing=degeneration"
    assert client.post("/admin/review/undo", data={"queue": "failing=degeneration"}).status_code == 403  # no token
    r = client.post("/admin/review/undo", follow_redirects=False,
                    data={"csrf_token": token, "queue": "failing=degeneration"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/item/details/{q.products[0]}?failing=degeneration"
    with session_factory(q.url)() as s:
        assert s.get(Item, q.products[0]).review_status is None
        assert [r.decision for r in s.execute(select(Review).order_by(Review.id)).scalars()] == ["approve", "undo"]
    nothing = client.post("/admin/review/undo", follow_redirects=False, data={"csrf_token": token})
    assert nothing.status_code == 303  # nothing left to undo: said so in a flash, no error page
    # The last item of a queue leads to the queue page, which says it is empty.
    last = client.post("/admin/review/decide", follow_redirects=True, data={
        "csrf_token": token, "decision": "reject", "pks": str(q.articles[1]), "queue": "search=tea&kind=article"})
    assert last.url.path == "/admin/review" and 'id="queue-empty"' in last.text


@pytest.mark.integration
def test_bulk_all_matching_is_confirmed_capped_and_keeps_the_filter(queue_site, monkeypatch):
    q, client, _ = queue_site
    action = client.get("/admin/item/action/reject?all=1&failing=degeneration&review=none", follow_redirects=False)
    assert action.status_code == 303 and "all=1" in action.headers["location"]
    import hybridgen.admin.review_pages as review_pages
    monkeypatch.setattr(review_pages, "MAX_BULK", 4)
    confirm = client.get(action.headers["location"])
    assert "Reject all 4 matching items?" in confirm.text and 'id="confirm-capped"' in confirm.text
    assert "6 items match; one bulk decision covers at most 4" in confirm.text
    pks = re.search(r'name="pks" value="([^"]*)"', confirm.text).group(1)
    assert pks == ",".join(map(str, q.products[:4]))
    done = client.post("/admin/review/decide", follow_redirects=False, data={
        "csrf_token": token_of(confirm.text), "decision": "reject", "pks": pks,
        "next": html.unescape(re.search(r'name="next" value="([^"]*)"', confirm.text).group(1))})
    assert done.headers["location"] == "/admin/item/list?failing=degeneration&review=none"
    with session_factory(q.url)() as s:
        assert [s.get(Item, i).review_status for i in q.products] == ["rejected"] * 4 + [None] * 2


@pytest.mark.integration
def test_an_empty_selection_and_other_errors_are_shown_inside_the_layout(queue_site):
    q, client, _ = queue_site
    empty = client.get(client.get("/admin/item/action/approve?pks=&status=flagged").headers["location"])
    assert empty.status_code == 400 and 'id="confirm-error"' in empty.text and "No items selected" in empty.text
    assert 'id="navbar-menu"' in empty.text and 'href="/admin/item/list?status=flagged"' in empty.text
    token = token_of(client.get("/admin/review").text)
    bad = client.post("/admin/review/decide", data={"csrf_token": token, "decision": "approve", "pks": ""})
    assert bad.status_code == 400 and 'id="error-card"' in bad.text and 'id="navbar-menu"' in bad.text
    listed = client.get("/admin/item/list?status=nope&search=aurora")
    assert listed.status_code == 200 and "Filter ignored: status: expected one of" in listed.text
    assert re.findall(r'class="item-title" href="/admin/item/details/(\d+)\?search=aurora"', listed.text) == \
        [str(q.articles[0])]
