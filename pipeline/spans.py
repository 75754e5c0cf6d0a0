"""Writing spans: every span of every item in a chunk in one batched decode (refiner or AR).

Stop sequences (e.g. the next section's heading) end a span early; they are checked on the decoded
text of the committed prefix, and the span is cut before them. A prose span that its token budget
cut keeps its complete sentences only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from generators.decoding.ar import ARConfig, generate_ar
from generators.decoding.proposals import DecodeConfig
from generators.decoding.commit_rules import Strategy
from generators.prompts import chat_ids
from pipeline.kinds.base import Span
from pipeline.text import complete_sentences


@dataclass
class SpanText:
    text: str
    prompt_tokens: int
    generated_tokens: int
    forward_passes: int
    finish_reason: str


@dataclass
class SpanBatch:
    texts: list[SpanText] = field(default_factory=list)
    seconds: float = 0.0


def stop_checker(tokenizer, stops: Sequence[Sequence[str]],
                 ends: Sequence[Callable[[str], int | None] | None] | None = None) -> Callable[[int, list[int]], int | None]:
    """(row, generated ids) -> number of tokens to keep if a stop string appeared (the tokens before
    it) or the row's `ends` says its text is complete (the tokens up to that point), else None."""
    ends = ends or [None] * len(stops)

    def done(row: int, text: str) -> bool:
        return any(s in text for s in stops[row]) or (ends[row] is not None and ends[row](text) is not None)

    def check(row: int, ids: list[int]) -> int | None:
        if not stops[row] and ends[row] is None:
            return None
        if not done(row, tokenizer.decode(ids, skip_special_tokens=False)):
            return None
        # the shortest token prefix whose text is done
        for n in range(1, len(ids) + 1):
            piece = tokenizer.decode(ids[:n], skip_special_tokens=False)
            if any(s in piece for s in stops[row]):
                return n - 1  # a stop string is not kept
            if ends[row] is not None and ends[row](piece) is not None:
                return n
        return None

    return check


def _cut(text: str, stops: Sequence[str], ends: Callable[[str], int | None] | None) -> str:
    cuts = [text.find(s) for s in stops if s in text]
    end = ends(text) if ends is not None else None
    if end is not None:
        cuts.append(end)
    return text[:min(cuts)] if cuts else text


def write_spans(spans: Sequence[Span], *, tokenizer, generate: Callable, seeds: Sequence[int]) -> SpanBatch:
    t0 = time.perf_counter()
    prompts = [chat_ids(tokenizer, s.prompt.user, s.prompt.system, s.prompt.assistant_prefix) for s in spans]
    checker = stop_checker(tokenizer, [s.stop for s in spans], [s.ends for s in spans])
    rows = generate(prompts, [s.max_new_tokens for s in spans], checker, seeds)
    out = SpanBatch(seconds=time.perf_counter() - t0)
    for span, ids, row in zip(spans, prompts, rows):
        text = _cut(tokenizer.decode(row.token_ids, skip_special_tokens=False), span.stop, span.ends)
        if span.finish_sentences and row.finish_reason == "length":
            text = complete_sentences(text)
        out.texts.append(SpanText(text, len(ids), row.generated_tokens, row.forward_passes, row.finish_reason))
    return out


def ar_generator(lm, temperature: float = 0.0, top_p: float = 1.0) -> Callable:
    def generate(prompts, caps, checker, seeds):
        return generate_ar(lm.engine, prompts, eos_token_ids=lm.eos_token_ids, pad_token_id=lm.pad_token_id,
                           config=ARConfig(temperature=temperature, top_p=top_p), max_new_tokens=caps,
                           stop_checker=checker, seeds=seeds)
    return generate


def refiner_generator(refiner, config: DecodeConfig, strategy: Strategy) -> Callable:
    def generate(prompts, caps, checker, seeds):
        return refiner.generate(prompts, config=config, strategy=strategy, max_new_tokens=caps, stop_checker=checker,
                                seeds=seeds)
    return generate
