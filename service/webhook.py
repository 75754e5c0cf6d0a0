"""A batch's webhook: one signed POST when its last item reaches a final state, retried with backoff.

    submit (URL checked)  ──►  last item stored: a `WebhookDelivery` row, in that item's transaction
                          ──►  worker task / reaper: `deliver` (claim, POST, record)  ──►  delivered | failed

The row is written in the transaction that stores the batch's last item, so a finished batch always
has its delivery, even if the worker dies right after; workers (and the reaper, for deliveries
whose task was lost) only carry it out. Each try first claims the row (moves `next_try_at` past its
own timeout), so duplicate tasks never POST twice at once.

SSRF: the URL comes from whoever submits the batch, and the worker POSTs to it from inside the
network. Only URLs under an operator's prefix (HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES) or equal to the
configured default are accepted, at submission and again before each try; redirects are not followed.

Signature (Stripe's scheme): `X-Hybridgen-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>" keyed with HYBRIDGEN_WEBHOOK_SECRET>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.export import decision_counts
from service.storage.models import Batch, Item, ItemStatus, WebhookDelivery
from service.storage.queries import status_counts
from service.storage.types import utcnow

SIGNATURE_HEADER = "X-Hybridgen-Signature"
MAX_URL_CHARS = 2000
MAX_BACKOFF_S = 3600.0
PARAM = "webhook_url"  # where a batch keeps its URL (Batch.params)


class WebhookError(ValueError):
    """A webhook URL that is not accepted; the message says why and what is."""


@dataclass(frozen=True)
class WebhookConfig:
    default_url: str = ""
    allowed_prefixes: tuple[str, ...] = ()
    secret: str = ""
    max_attempts: int = 6
    backoff_s: float = 30.0
    timeout_s: float = 10.0

    def backoff(self, attempts: int) -> float:
        """Wait after the `attempts`-th failed try: backoff_s, doubling, at most an hour."""
        return min(MAX_BACKOFF_S, self.backoff_s * 2 ** max(0, attempts - 1))


def check_url(url: str, config: WebhookConfig) -> str:
    """`url` if a batch may be announced to it; WebhookError naming the reason otherwise."""
    if not url or len(url) > MAX_URL_CHARS:
        raise WebhookError(f"the URL must have 1 to {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise WebhookError("the URL must not contain spaces, control characters or backslashes")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(f"expected an http:// or https:// URL with a host, got {url[:100]!r}")
    if "@" in parts.netloc:
        raise WebhookError("the URL must not carry a user name or password")
    if not config.secret:
        raise WebhookError("webhooks are off: HYBRIDGEN_WEBHOOK_SECRET is not set, and bodies must be signed")
    if url == config.default_url or any(under_prefix(url, p) for p in config.allowed_prefixes):
        return url
    allowed = ", ".join(config.allowed_prefixes)
    raise WebhookError(f"{url[:100]!r} is not under an allowed prefix (HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES: "
                       + (allowed if allowed else "none, so only HYBRIDGEN_WEBHOOK_URL itself is accepted") + ")")


def under_prefix(url: str, prefix: str) -> bool:
    """`url` starts with `prefix` at a boundary: "https://hooks.example.com" admits ".../x" and "?a", never
    "https://hooks.example.com.evil.net" or "https://hooks.example.com@evil.net"."""
    if not prefix or not url.startswith(prefix):
        return False
    rest = url[len(prefix):]
    return prefix.endswith(("/", "?", "=", "&")) or rest == "" or rest[0] in "/?#"


def batch_url(requested: str | None, config: WebhookConfig) -> str | None:
    """The URL a new batch keeps: the one asked for (checked), else the configured default, else none."""
    if requested:
        return check_url(requested, config)
    return config.default_url or None


# -- the delivery row, written with the batch's last item ----------------------------------------------
def announce_if_finished(session: Session, item_id: int) -> int | None:
    """Called in the transaction that stored `item_id`'s final state: when that finished its batch and
    the batch has a webhook, create the batch's delivery (once) and return its id.

    The batch row is locked first: two workers storing a batch's last two items at once each see the
    other's item still running, and without the lock neither would announce it (on PostgreSQL a
    statement after the lock sees what the other transaction committed).
    """
    row = session.execute(select(Batch.id, Batch.params).join(Item, Item.batch_id == Batch.id)
                          .where(Item.id == item_id)).first()
    if row is None or not (row.params or {}).get(PARAM):
        return None  # no webhook: no lock either, so batches without one store items concurrently
    batch_id, url = row.id, row.params[PARAM]
    session.execute(select(Batch.id).where(Batch.id == batch_id).with_for_update())
    unfinished = session.execute(
        select(func.count()).where(Item.batch_id == batch_id,
                                   Item.status.not_in([s.value for s in ItemStatus.final()]))
    ).scalar_one()
    if unfinished:
        return None
    exists = session.execute(select(WebhookDelivery.id).where(WebhookDelivery.batch_id == batch_id)).scalar()
    if exists is not None:
        return None  # announced when it first finished (a requeued item finishing again announces nothing)
    delivery = WebhookDelivery(batch_id=batch_id, url=url, status="pending", attempts=0, created_at=utcnow(),
                               next_try_at=utcnow())
    session.add(delivery)
    session.flush()
    return delivery.id


# -- carrying it out -------------------------------------------------------------------------------------
def payload(session: Session, delivery: WebhookDelivery) -> dict[str, Any]:
    """The JSON body: the batch's counts by status and by export decision (as `export` names them), and
    where to fetch it."""
    batch = session.get(Batch, delivery.batch_id)
    by_status = status_counts(session, delivery.batch_id)
    by_decision = {k: v for k, v in decision_counts(session, delivery.batch_id).items() if v}
    return {
        "event": "batch.finished",
        "delivery_id": delivery.id,
        "batch_id": delivery.batch_id,
        "name": batch.name if batch else None,
        "mode": batch.mode if batch else None,
        "items": sum(by_status.values()),
        "counts": by_status,
        "decisions": by_decision,
        "links": {"batch": f"/api/batches/{delivery.batch_id}", "export": f"/api/batches/{delivery.batch_id}/export"},
    }


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Hybridgen-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: float = 300, now: float | None = None) -> bool:
    """What a receiver does (README: "Webhooks"): recompute the MAC, compare in constant time, and refuse
    old timestamps (a replayed body)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass(frozen=True)
class TryResult:
    delivery_id: int
    status: str
    """delivered | pending (will be tried again at `retry_in_s`) | failed | skipped (not due, or taken)."""
    attempts: int = 0
    retry_in_s: float | None = None
    error: str | None = None


def deliver(sessions: sessionmaker[Session], delivery_id: int, config: WebhookConfig) -> TryResult:
    """One try of one delivery, if it is due and no one else holds it."""
    now = utcnow()
    with sessions.begin() as session:
        # The claim: only one try at a time; if this process dies mid-POST, the row is due again
        # once the claim runs out, and the reaper sends it.
        claimed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                   or_(WebhookDelivery.next_try_at.is_(None), WebhookDelivery.next_try_at <= now))
            .values(attempts=WebhookDelivery.attempts + 1,
                    next_try_at=now + timedelta(seconds=config.timeout_s + 60))
            .returning(WebhookDelivery.attempts)
        ).first()
        if claimed is None:
            return TryResult(delivery_id, "skipped")
        attempts = claimed[0]
        delivery = session.get(WebhookDelivery, delivery_id)
        url = delivery.url
        body = json.dumps(payload(session, delivery), sort_keys=True).encode()
    try:
        check_url(url, config)  # settings may have changed since the batch was submitted
        error = post(url, body, config, delivery_id)
    except WebhookError as e:
        return _record(sessions, delivery_id, attempts, f"refused: {e}", config, give_up=True)
    return _record(sessions, delivery_id, attempts, error, config)


def post(url: str, body: bytes, config: WebhookConfig, delivery_id: int) -> str | None:
    """POST the body; None on a 2xx answer, else what went wrong (a redirect counts as wrong)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "hybridgen-webhook",
        "X-Hybridgen-Event": "batch.finished",
        "X-Hybridgen-Delivery": str(delivery_id),
        SIGNATURE_HEADER: sign(config.secret, body, int(time.time())),
    })
    try:
        with _OPENER.open(request, timeout=config.timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"{type(e).__name__}: {getattr(e, 'reason', e)}"[:500]
    return None if 200 <= status < 300 else f"HTTP {status}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 3xx becomes an HTTPError: no hop to another host
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _record(sessions: sessionmaker[Session], delivery_id: int, attempts: int, error: str | None,
            config: WebhookConfig, *, give_up: bool = False) -> TryResult:
    now = utcnow()
    with sessions.begin() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if error is None:
            delivery.status, delivery.delivered_at, delivery.next_try_at, delivery.last_error = \
                "delivered", now, None, None
            return TryResult(delivery_id, "delivered", attempts)
        delivery.last_error = error
        if give_up or attempts >= config.max_attempts:
            delivery.status, delivery.next_try_at = "failed", None
            return TryResult(delivery_id, "failed", attempts, error=error)
        wait = config.backoff(attempts)
        delivery.next_try_at = now + timedelta(seconds=wait)
        return TryResult(delivery_id, "pending", attempts, retry_in_s=wait, error=error)


def take_due_deliveries(session: Session, due_before: Any, limit: int = 100) -> list[int]:
    """Pending deliveries due since before `due_before` (a task should have tried them by then): their
    `next_try_at` becomes now, so the next pass re-sends them only after the same wait again."""
    now = utcnow()
    candidates = (select(WebhookDelivery.id)
                  .where(WebhookDelivery.status == "pending", WebhookDelivery.next_try_at <= due_before)
                  .order_by(WebhookDelivery.id).limit(limit).scalar_subquery())
    rows = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(candidates), WebhookDelivery.status == "pending",
               WebhookDelivery.next_try_at <= due_before)
        .values(next_try_at=now).returning(WebhookDelivery.id)
    ).all()
    return sorted(r[0] for r in rows)


def deliveries_of(session: Session, batch_ids: Sequence[int]) -> dict[int, WebhookDelivery]:
    rows = session.execute(select(WebhookDelivery).where(WebhookDelivery.batch_id.in_(list(batch_ids)))).scalars()
    return {d.batch_id: d for d in rows}
