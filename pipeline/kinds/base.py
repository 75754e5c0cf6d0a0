"""What every content kind provides; the orchestrator only talks to this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from validators.base import Validator


@dataclass(frozen=True)
class Prompt:
    """A one-turn chat prompt; `assistant_prefix` starts the reply (e.g. an opening brace)."""

    user: str
    system: str | None = None
    assistant_prefix: str = ""


class ContentKind(Protocol):
    name: str
    max_new_tokens: int
    """Token budget of one full-AR generation of this kind (capped by settings.max_new_tokens)."""

    def ar_prompt(self, job_input: dict[str, Any]) -> Prompt:
        """Prompt for generating the whole deliverable in one AR pass."""

    def finish_ar(self, raw: str, job_input: dict[str, Any]) -> str:
        """Turn the raw AR reply (assistant_prefix included) into the deliverable text."""

    def validators(self) -> list[Validator]:
        """Checks the deliverable must pass to be `done`."""
