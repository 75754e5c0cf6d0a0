"""Words for messages, shared by the CLI and the HTTP API: plurals and durations."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 item`, `3 items`; `many` for irregular words (`1 batch`, `2 batches`)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def duration(seconds: float | None) -> str:
    """H:MM:SS (or `-` when unknown)."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
