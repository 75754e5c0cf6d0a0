"""Entry points: the `hybridgen` CLI, the HTTP API and the admin review app. No business logic."""

__version__ = "0.1.0"
