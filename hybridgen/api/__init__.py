"""The HTTP API under /api: batch submission, progress, items, export, requeue. Bearer-token auth."""
