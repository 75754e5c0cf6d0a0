"""The Celery app factory. It only wires: settings -> Celery config, tasks registered, fork hooks."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from pipeline.settings import Settings
from service.storage.db import dispose_engines
from workers import embedded_broker


def celery_config(settings: Settings) -> dict:
    broker = embedded_broker.embedded_url(settings.resolved_broker_url)
    transport_options: dict = {
        "visibility_timeout": settings.visibility_timeout_s,
        # kombu sweeps for unacked messages past the visibility timeout only every 10 s x 10 calls
        # by default; sweep every call, at most every 10 s, so a dead worker's task comes back
        # soon after the timeout (the sweep is one cheap sorted-set range query).
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
    }
    if broker.startswith(embedded_broker.ALIAS):
        transport_options = {"polling_interval": settings.broker_poll_interval_s}
    return {
        "broker_url": broker,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # keep reconnecting through a broker restart
        "task_default_queue": settings.queue_name,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        # A task is acknowledged only after it ran; if the worker dies, the broker redelivers it.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": max(1, settings.task_time_limit_s - 30),
        "worker_concurrency": settings.worker_concurrency,
        # Recycling a child after N chunks bounds memory growth that no object count explains
        # (allocator and library caches: +62 MB over 10,000 items even with malloc_trim). A child
        # leaves only after its task is acknowledged, so nothing is redelivered or lost.
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child or None,
        # Models load lazily inside the first task, so a child's start is fast; still, give
        # slow machines room before Celery declares a fresh child dead.
        "worker_proc_alive_timeout": 60,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    embedded_broker.register()
    app = Celery("hybridgen")
    app.conf.update(celery_config(settings))
    app.conf.hybridgen_settings = settings

    from workers.tasks import register_tasks

    register_tasks(app)
    return app


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    # A forked child must not share the parent's pooled DB connections.
    dispose_engines()
    # Import torch and the pipeline now, not inside the first task: a delivered task then claims
    # its items at once, so its claim (and heartbeat) covers nearly all of its time unacked.
    import pipeline.orchestrator  # noqa: F401


_reaper = {"thread": None}


@worker_ready.connect
def _start_reaper(sender=None, **_kwargs) -> None:
    # Every worker reaps (in its main process): a default deployment is never silently stuck.
    from workers import reaper

    if _reaper["thread"] is None and sender is not None:
        _reaper["thread"] = reaper.start_in_worker(sender.app)
