"""Batch webhooks (issue 25, item 7): the URL guard, the delivery row written with the batch's last item
(by a real run of the orchestrator, and under concurrency on PostgreSQL), the signature, retries with
backoff and giving up, all against a real HTTP receiver on localhost; the worker task and the reaper."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select, text

from pipeline.settings import Settings
from service.spec import parse_array
from service.storage.db import session_factory
from service.storage.models import Item, ItemStatus, WebhookDelivery
from service.storage.queries import AttemptRecord, claim_items, finish_item
from service.storage.types import utcnow
from service.submission import submit_batch
from service.webhook import (PARAM, SIGNATURE_HEADER, WebhookConfig, WebhookError, announce_if_finished,
                             batch_url, check_url, deliver, sign, take_due_deliveries, verify)

SECRET = "test-secret"


class Receiver:
    """A local HTTP server that answers POSTs with the next status of `answers` (the last one repeats)."""

    def __init__(self, answers=(200,), location: str | None = None):
        self.answers, self.location, self.requests = list(answers), location, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"body": body, "headers": dict(self.headers)})
                status = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def config(url: str, **kw) -> WebhookConfig:
    """Webhooks allowed to the receiver at `url` (its host and port) and nowhere else."""
    return WebhookConfig(**{"allowed_prefixes": (base(url),), "secret": SECRET, "max_attempts": 3,
                            "backoff_s": 0.0, "timeout_s": 5.0, "default_url": "", **kw})


def base(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/"


def finished_batch(url: str, hook: str | None, n: int = 2) -> tuple[int, list[int]]:
    """A batch with a webhook whose items are all stored as finished, the last one announcing it."""
    sessions = session_factory(url)
    jobs = [{"kind": "article", "input": {"topic": f"topic {i}"}} for i in range(n)]
    result = submit_batch(sessions, parse_array(jobs), name="hooked", mode="ar",
                          params={PARAM: hook} if hook else None)
    with sessions.begin() as s:
        claims = claim_items(s, result.new_item_ids, "w", utcnow())
    for i, claim in enumerate(claims):
        with sessions.begin() as s:
            status = ItemStatus.flagged if i == 0 else ItemStatus.done
            assert finish_item(s, claim, "w", status=status, final_path="ar", output="# T\n\nText.\n",
                               attempts=[AttemptRecord("ar", status is ItemStatus.done, "# T\n\nText.\n")])
            announce_if_finished(s, claim.item_id)
    return result.batch_id, result.new_item_ids


def delivery_of(url: str, batch_id: int) -> WebhookDelivery | None:
    with session_factory(url)() as s:
        return s.execute(select(WebhookDelivery).where(WebhookDelivery.batch_id == batch_id)).scalar_one_or_none()


# -- the URL guard (SSRF) ------------------------------------------------------------------------------
@pytest.mark.parametrize("url, why", [
    ("http://hooks.example.com.evil.net/x", "not under an allowed prefix"),
    ("https://hooks.example.com@evil.net/", "user name or password"),
    ("ftp://hooks.example.com/x", "http:// or https://"),
    ("https://hooks.example.com/a b", "spaces"),
    ("http://169.254.169.254/latest/meta-data", "not under an allowed prefix"),
    ("", "1 to 2000 characters"),
])
def test_urls_outside_the_allowed_prefixes_are_refused(url, why):
    cfg = WebhookConfig(allowed_prefixes=("https://hooks.example.com",), secret=SECRET)
    with pytest.raises(WebhookError, match=why):
        check_url(url, cfg)


def test_a_prefix_admits_only_urls_at_its_boundary():
    cfg = WebhookConfig(allowed_prefixes=("http://127.0.0.1:8080",), secret=SECRET)
    assert check_url("http://127.0.0.1:8080/hook", cfg)
    for url in ("http://127.0.0.1:80800/hook", "http://127.0.0.1:8080.evil.net/"):
        with pytest.raises(WebhookError, match="not under an allowed prefix"):
            check_url(url, cfg)


def test_allowed_urls_the_default_and_no_secret():
    cfg = WebhookConfig(allowed_prefixes=("https://hooks.example.com",), secret=SECRET,
                        default_url="https://ops.internal/hybridgen")
    assert check_url("https://hooks.example.com/crm?x=1", cfg)
    assert batch_url(None, cfg) == "https://ops.internal/hybridgen", "the default applies without a URL"
    assert check_url("https://ops.internal/hybridgen", cfg), "the configured default itself is accepted"
    with pytest.raises(WebhookError, match="HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES: none"):
        check_url("https://hooks.example.com/x", WebhookConfig(secret=SECRET))  # no prefixes: webhooks off
    with pytest.raises(WebhookError, match="HYBRIDGEN_WEBHOOK_SECRET is not set"):
        check_url("https://hooks.example.com/x", WebhookConfig(allowed_prefixes=("https://hooks.example.com",)))
    assert batch_url(None, WebhookConfig()) is None
    settings = Settings(webhook_allowed_prefixes="https://a.example/, https://b.example/x", webhook_secret="s")
    assert settings.webhook.allowed_prefixes == ("https://a.example/", "https://b.example/x")


# -- delivering: signature, retries, giving up ---------------------------------------------------------
def test_body_is_signed_and_a_receiver_can_verify_it(migrated_sqlite):
    with Receiver([200]) as rx:
        batch_id, ids = finished_batch(migrated_sqlite, rx.url)
        delivery = delivery_of(migrated_sqlite, batch_id)
        assert delivery.status == "pending"
        result = deliver(session_factory(migrated_sqlite), delivery.id, config(rx.url))
        assert result.status == "delivered" and result.attempts == 1
    [request] = rx.requests
    body, header = request["body"], request["headers"][SIGNATURE_HEADER]
    # What the README tells a receiver to do, written out here with the standard library only:
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(SECRET.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    assert abs(time.time() - int(fields["t"])) < 3600
    assert verify(SECRET, body, header)
    assert not verify(SECRET, body.replace(b'"done": 1', b'"done": 2'), header), "a changed body fails"
    assert not verify("another secret", body, header)
    assert not verify(SECRET, body, sign(SECRET, body, int(time.time()) - 3600)), "an old signature fails (replay)"
    payload = json.loads(body)
    assert payload["event"] == "batch.finished" and payload["batch_id"] == batch_id
    assert payload["counts"]["done"] == 1 and payload["counts"]["flagged"] == 1
    assert payload["decisions"] == {"unreviewed-flagged": 1, "unreviewed-pass": 1}
    assert payload["links"]["export"] == f"/api/batches/{batch_id}/export"
    assert request["headers"]["X-Hybridgen-Delivery"] == str(delivery.id)
    stored = delivery_of(migrated_sqlite, batch_id)
    assert stored.status == "delivered" and stored.delivered_at is not None and stored.attempts == 1
    assert deliver(session_factory(migrated_sqlite), delivery.id, config(rx.url)).status == "skipped", \
        "a delivered webhook is not sent again"


def test_a_receiver_that_fails_first_gets_it_on_a_retry(migrated_sqlite):
    sessions = session_factory(migrated_sqlite)
    with Receiver([500, 503, 200]) as rx:
        batch_id, _ = finished_batch(migrated_sqlite, rx.url)
        delivery_id = delivery_of(migrated_sqlite, batch_id).id
        first = deliver(sessions, delivery_id, config(rx.url, backoff_s=3600))
        assert first.status == "pending" and first.error == "HTTP 500" and first.retry_in_s == 3600
        assert deliver(sessions, delivery_id, config(rx.url)).status == "skipped", "not due before the backoff"
        with sessions.begin() as s:  # the backoff has passed
            s.get(WebhookDelivery, delivery_id).next_try_at = utcnow()
        second = deliver(sessions, delivery_id, config(rx.url, backoff_s=0))
        assert second.status == "pending" and second.error == "HTTP 503"
        third = deliver(sessions, delivery_id, config(rx.url, backoff_s=0))
        assert third.status == "delivered" and third.attempts == 3
    assert len(rx.requests) == 3
    assert [json.loads(r["body"])["delivery_id"] for r in rx.requests] == [delivery_id] * 3
    stored = delivery_of(migrated_sqlite, batch_id)
    assert stored.status == "delivered" and stored.last_error is None


def test_backoff_doubles_up_to_an_hour():
    cfg = WebhookConfig(backoff_s=30)
    assert [cfg.backoff(n) for n in (1, 2, 3, 10)] == [30, 60, 120, 3600]


def test_gives_up_after_the_last_attempt(migrated_sqlite):
    sessions = session_factory(migrated_sqlite)
    with Receiver([500]) as rx:
        batch_id, _ = finished_batch(migrated_sqlite, rx.url)
        delivery_id = delivery_of(migrated_sqlite, batch_id).id
        results = [deliver(sessions, delivery_id, config(rx.url, max_attempts=3)) for _ in range(4)]
    assert [r.status for r in results] == ["pending", "pending", "failed", "skipped"]
    assert len(rx.requests) == 3
    stored = delivery_of(migrated_sqlite, batch_id)
    assert stored.status == "failed" and stored.attempts == 3 and stored.last_error == "HTTP 500"
    assert stored.next_try_at is None


def test_connection_errors_and_redirects_count_as_failures(migrated_sqlite):
    sessions = session_factory(migrated_sqlite)
    with Receiver([200]) as elsewhere, Receiver([302], location=elsewhere.url) as rx:
        batch_id, _ = finished_batch(migrated_sqlite, rx.url)
        delivery_id = delivery_of(migrated_sqlite, batch_id).id
        redirected = deliver(sessions, delivery_id, config(rx.url))
        assert redirected.status == "pending" and redirected.error == "HTTP 302"
        assert elsewhere.requests == [], "a redirect is not followed (it could point into the network)"
        closed = Receiver([200])
        closed.server.server_close()  # a port with nobody listening
        with session_factory(migrated_sqlite).begin() as s:
            s.get(WebhookDelivery, delivery_id).url = closed.url
        refused = deliver(sessions, delivery_id, config(closed.url))
        assert refused.status == "pending" and "URLError" in refused.error


def test_a_url_no_longer_allowed_is_not_called(migrated_sqlite):
    with Receiver([200]) as rx:
        batch_id, _ = finished_batch(migrated_sqlite, rx.url)
        delivery_id = delivery_of(migrated_sqlite, batch_id).id
        result = deliver(session_factory(migrated_sqlite), delivery_id, config(rx.url, allowed_prefixes=()))
    assert result.status == "failed" and "not under an allowed prefix" in result.error
    assert rx.requests == []


# -- the delivery row: once, with the batch's last item --------------------------------------------------
def test_no_delivery_until_the_last_item_and_only_once(migrated_sqlite):
    sessions = session_factory(migrated_sqlite)
    result = submit_batch(sessions, parse_array([{"kind": "article", "input": {"topic": t}} for t in "ab"]),
                          name="t", mode="ar", params={PARAM: "http://127.0.0.1:9/hook"})
    with sessions.begin() as s:
        claims = claim_items(s, result.new_item_ids, "w", utcnow())
    created = []
    for claim in claims:
        with sessions.begin() as s:
            finish_item(s, claim, "w", status=ItemStatus.error, error="boom", attempts=[])
            created.append(announce_if_finished(s, claim.item_id))
    assert created[0] is None and created[1] is not None
    with sessions.begin() as s:  # the batch finishing again (a requeued item) announces nothing new
        assert announce_if_finished(s, claims[1].item_id) is None
        assert s.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one() == 1
    batch_id, _ = finished_batch(migrated_sqlite, None)
    assert delivery_of(migrated_sqlite, batch_id) is None, "no webhook, no delivery"


@pytest.mark.integration
def test_a_rolled_back_item_leaves_no_delivery_and_concurrent_last_items_make_one(migrated_pg):
    """PostgreSQL, READ COMMITTED: two workers store a batch's last two items at the same time. Each
    sees the other's item still running; the batch row lock makes the second look again after the
    first commits, so exactly one delivery is made. A transaction that rolls back leaves none."""
    sessions = session_factory(migrated_pg)
    result = submit_batch(sessions, parse_array([{"kind": "article", "input": {"topic": t}} for t in "ab"]),
                          name="t", mode="ar", params={PARAM: "http://127.0.0.1:9/hook"})
    a, b = result.new_item_ids
    with sessions.begin() as s:
        claims = {c.item_id: c for c in claim_items(s, [a, b], "w", utcnow())}

    def finish(session, item_id):
        assert finish_item(session, claims[item_id], "w", status=ItemStatus.done, output="x", final_path="ar",
                           attempts=[AttemptRecord("ar", True, "x")])
        return announce_if_finished(session, item_id)

    first = sessions()
    assert finish(first, a) is None  # b is still running; first holds the batch lock, uncommitted
    found: dict = {}

    def second_worker():
        with sessions() as second:
            found["id"] = finish(second, b)
            second.commit()

    thread = threading.Thread(target=second_worker)
    thread.start()
    with sessions() as watcher:  # wait until the second transaction is blocked on the batch row's lock
        for _ in range(600):
            waiting = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )).scalar_one()
            watcher.rollback()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the second worker should wait for the batch lock"
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert found["id"] is not None, "the second worker, seeing the first's commit, announces the batch"
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one() == 1

    # A result whose transaction rolls back (a lost claim) creates nothing.
    other = submit_batch(sessions, parse_array([{"kind": "article", "input": {"topic": "c"}}]), name="u",
                         mode="ar", params={PARAM: "http://127.0.0.1:9/hook"})
    with sessions.begin() as s:
        [claim] = claim_items(s, other.new_item_ids, "w", utcnow())
    with sessions() as s:
        finish_item(s, claim, "w", status=ItemStatus.done, output="x", final_path="ar", attempts=[])
        assert announce_if_finished(s, claim.item_id) is not None
        s.rollback()
    assert delivery_of(migrated_pg, other.batch_id) is None


@pytest.mark.integration
def test_a_real_run_creates_the_delivery_and_the_worker_task_sends_it(tiny_settings, migrated_pg, redis_url):
    """run_chunk on the tiny model stores the batch's items; the chunk that stores the last one reports
    the delivery it created; the Celery task delivers it (retrying itself after a failure), and the
    reaper re-sends a delivery whose task was lost."""
    import redis as redis_client

    from pipeline.orchestrator import run_chunk
    from pipeline.runtime import Runtime
    from workers.app import create_app
    from workers.reaper import reap_once
    from workers.tasks import DELIVER_WEBHOOK

    with Receiver([500, 200]) as rx:
        settings = tiny_settings.replace(database_url=migrated_pg, broker_url=redis_url, queue_name="hook-test",
                                         webhook_allowed_prefixes=base(rx.url), webhook_secret=SECRET,
                                         webhook_backoff_s=0.0, reenqueue_after_s=0.0)
        sessions = session_factory(migrated_pg)
        jobs = [{"kind": "article", "input": {"topic": "tea"}}, {"kind": "article", "input": {"topic": "coffee"}}]
        ids = submit_batch(sessions, parse_array(jobs), name="run", mode="ar",
                           params={PARAM: batch_url(rx.url, settings.webhook)}).new_item_ids
        runtime = Runtime(settings)
        first = run_chunk(ids[:1], sessions=sessions, runtime=runtime)
        assert first.finished and first.webhooks == []
        second = run_chunk(ids[1:], sessions=sessions, runtime=runtime)
        assert len(second.webhooks) == 1
        [delivery_id] = second.webhooks
        with sessions() as s:
            delivery = s.get(WebhookDelivery, delivery_id)
            assert delivery.status == "pending" and delivery.url == rx.url
            assert all(i.status in ("done", "flagged", "error") for i in s.execute(select(Item)).scalars())

        # An app made earlier in the process with other settings must not lend this one its own
        # (Celery keeps the first callable registered under a task name).
        create_app(settings.replace(database_url="sqlite:////nonexistent/other.db", queue_name="other"))
        app = create_app(settings)
        queue = redis_client.Redis.from_url(redis_url)
        app.tasks[DELIVER_WEBHOOK].apply(args=[delivery_id])  # in this process, as a worker runs it
        assert len(rx.requests) == 1 and delivery_of(migrated_pg, _batch(migrated_pg, delivery_id)).status == "pending"
        assert queue.llen("hook-test") == 1, "after a failure the task sends itself again (after the backoff)"
        message = json.loads(queue.lpop("hook-test"))
        assert message["headers"]["task"] == DELIVER_WEBHOOK

        # That task is lost (popped above): the reaper finds the due delivery and sends it again.
        report = reap_once(settings, app)
        assert report.webhooks_resent == [delivery_id] and queue.llen("hook-test") == 1
        app.tasks[DELIVER_WEBHOOK].apply(args=[delivery_id])
    assert len(rx.requests) == 2
    assert verify(SECRET, rx.requests[-1]["body"], rx.requests[-1]["headers"][SIGNATURE_HEADER])
    body = json.loads(rx.requests[-1]["body"])
    assert body["items"] == 2 and sum(body["counts"].values()) == 2
    assert delivery_of(migrated_pg, body["batch_id"]).status == "delivered"
    report = reap_once(settings, app)
    assert report.webhooks_resent == [], "nothing left to send"


def _batch(url: str, delivery_id: int) -> int:
    with session_factory(url)() as s:
        return s.get(WebhookDelivery, delivery_id).batch_id


def test_take_due_deliveries_waits_before_sending_again(migrated_sqlite):
    batch_id, _ = finished_batch(migrated_sqlite, "http://127.0.0.1:9/hook")
    delivery_id = delivery_of(migrated_sqlite, batch_id).id
    sessions = session_factory(migrated_sqlite)
    with sessions.begin() as s:
        assert take_due_deliveries(s, utcnow()) == [delivery_id]
    with sessions.begin() as s:
        from datetime import timedelta

        assert take_due_deliveries(s, utcnow() - timedelta(seconds=300)) == [], \
            "just re-sent: not again before the wait is over"


def test_submit_webhook_option_is_checked_before_anything_is_stored(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hybridgen.cli import cli
    from service.storage.models import Batch

    (tmp_path / "data").mkdir()
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HYBRIDGEN_BROKER_URL", "memory://")  # no worker: the tasks go nowhere
    monkeypatch.setenv("HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES", "https://hooks.example.com/")
    monkeypatch.setenv("HYBRIDGEN_WEBHOOK_SECRET", SECRET)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"kind": "article", "input": {"topic": "tea"}}) + "\n")
    refused = CliRunner().invoke(cli, ["submit", str(jobs), "--webhook", "http://10.0.0.5/admin"])
    assert refused.exit_code == 2 and "--webhook" in refused.output and "not under an allowed prefix" in refused.output
    url = f"sqlite:///{tmp_path / 'data' / 'hybridgen.sqlite'}"
    ok = CliRunner().invoke(cli, ["submit", str(jobs), "--webhook", "https://hooks.example.com/crm"])
    assert ok.exit_code == 0, ok.output
    with session_factory(url)() as s:
        [batch] = s.execute(select(Batch)).scalars()
        assert batch.params[PARAM] == "https://hooks.example.com/crm"
    monkeypatch.setenv("HYBRIDGEN_WEBHOOK_URL", "https://ops.example.net/hook")  # the default, outside the prefixes
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"kind": "article", "input": {"topic": "coffee"}}) + "\n")
    assert CliRunner().invoke(cli, ["submit", str(other)]).exit_code == 0
    with session_factory(url)() as s:
        assert s.execute(select(Batch).order_by(Batch.id.desc())).scalars().first().params[PARAM] == \
            "https://ops.example.net/hook"
