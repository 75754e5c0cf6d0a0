"""Celery wiring: the app factory, thin tasks that take item ids, and enqueueing."""
