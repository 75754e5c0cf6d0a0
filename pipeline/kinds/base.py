"""What every content kind provides; the planner, the span generators and the fallback only talk to this.

A kind turns a job's input into
    plan_request(input) -> PlanRequest    the planner's prompt and the JSON schema its plan must match
    check_plan(input, plan) -> problems   what is wrong with a plan (duplicates, facts not from the input)
    spans(input, plan) -> [Span]          the pieces of text the refiner (or AR) writes, each with its
                                          own prompt, token budget and stop sequences
    assemble(input, plan, texts) -> str   the deliverable (Markdown, JSON, Python)
    fallback(input, plan) -> Fallback     how full AR regenerates a failed item (a guidance program
                                          for structured kinds, or AR spans)
and, for `plain` mode (no plan: the baseline),
    plain_span(input, cap) -> Span        one chat prompt asking for the whole deliverable
    parse_plain(input, reply) -> PlainReply   the deliverable read from the model's reply
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Prompt:
    """A one-turn chat prompt; `assistant_prefix` starts the reply (e.g. an opening brace)."""

    user: str
    system: str | None = None
    assistant_prefix: str = ""


@dataclass(frozen=True)
class PlanRequest:
    prompt: Prompt
    schema: dict[str, Any]
    """The whole plan's JSON schema (what a finished plan must match)."""
    max_new_tokens: int
    continuation_regex: str | None = None
    """When the prompt's assistant prefix already holds the job-specific start of the plan (the user's
    own signature), the regex for the rest of the JSON. It must be the same for every job of a shape:
    each distinct regex costs a compiled token index (~1 s and up to ~150 MB with a 49k vocabulary)."""


@dataclass(frozen=True)
class Span:
    """One piece of the deliverable that a decoder writes from its own prompt."""

    name: str
    prompt: Prompt
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    finish_sentences: bool = False
    """Prose: when the token budget cuts the span, keep only its complete sentences."""
    ends: Callable[[str], int | None] | None = None
    """Where the text is complete (the offset to keep up to), or None: a function body ends after a
    return at its own indentation, because nothing after it runs."""


@dataclass(frozen=True)
class Fallback:
    """Full-AR regeneration: a guidance program (structure valid by construction), or AR spans."""

    kind: str  # "guidance" | "spans"
    prompt: Prompt | None = None
    template: list[tuple[str, Any]] = field(default_factory=list)
    """guidance: ('text', str) literal pieces and ('gen', {name, regex, max_tokens, stop}) pieces."""
    ends: Callable[[str], int | None] | None = None
    """Where the program's last generation is complete (an offset into its text), as `Span.ends`."""


@dataclass(frozen=True)
class PlainReply:
    """A `plain` mode reply read as the deliverable: the output, and how it was read or why it could not be."""

    output: str
    readable: bool
    note: str


class ContentKind(Protocol):
    name: str
    schema: dict[str, Any] | None
    """JSON schema of the deliverable (product records), or None."""

    def plan_request(self, job_input: dict[str, Any]) -> PlanRequest: ...

    def check_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[str]: ...

    def spans(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[Span]: ...

    def assemble(self, job_input: dict[str, Any], plan: dict[str, Any], texts: list[str]) -> str: ...

    def fallback(self, job_input: dict[str, Any], plan: dict[str, Any]) -> Fallback: ...

    def plain_span(self, job_input: dict[str, Any], cap: int) -> Span: ...

    def parse_plain(self, job_input: dict[str, Any], reply: str) -> PlainReply: ...
