"""Full-AR regeneration of items whose hybrid attempt failed.

Structured kinds give a guidance program (kinds/base.py `Fallback`): literal JSON / code scaffolding
with regex-bounded generations in between, so the record is valid JSON and the function has the right
header and shape by construction. guidance turns it into a grammar; the engine decodes it
(generators/grammar.py), every item of the chunk in one batch, the scaffolding jump-forwarded.

A program whose generations ask for different temperatures (a product's greedy title, its sampled
description) decodes in segments, one per run of equal temperature: each segment's prompt is the
chat prompt plus the tokens of the segments before it, and rows that reach the same segment with the
same temperature share a decode call. Articles keep their plan and have every section rewritten by AR
(pipeline/paths.py), sampled, so that a retry is a different draw from the greedy refiner's.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from pipeline.kinds.base import Fallback

TOKEN_SLACK = 8
"""Tokens a segment may use beyond its generations' caps and its literal text's own tokenization
(the model may split the scaffolding into more tokens than the tokenizer would)."""


@dataclass
class ProgramResult:
    values: dict[str, str]
    text: str
    generated_tokens: int
    forward_passes: int
    seconds: float
    problem: str | None = None
    """Why the program gave no usable output (its token budget ran out), or None."""


@dataclass
class _Segment:
    pieces: list[tuple[str, Any]]
    temperature: float
    names: list[str] = field(default_factory=list)


def segments(template: list[tuple[str, Any]]) -> list[_Segment]:
    """The template split into runs of equal temperature; literal text joins the generation after it."""
    out: list[_Segment] = []
    pending: list[tuple[str, Any]] = []
    for piece, arg in template:
        if piece == "text":
            pending.append((piece, arg))
            continue
        temperature = float(arg.get("temperature") or 0.0)
        if out and out[-1].temperature == temperature:
            out[-1].pieces += pending + [(piece, arg)]
        else:
            out.append(_Segment(pending + [(piece, arg)], temperature))
        out[-1].names.append(arg["name"])
        pending = []
    if pending:  # text after the last generation
        if out:
            out[-1].pieces += pending
        else:
            out.append(_Segment(pending, 0.0))
    return out


def segment_grammar(segment: _Segment) -> str:
    """The segment as llguidance Lark, written by guidance (captures, regexes and token caps)."""
    from guidance import gen

    node: Any = ""
    for piece, arg in segment.pieces:
        node = node + (arg if piece == "text" else gen(name=arg["name"], regex=arg["regex"],
                                                       max_tokens=arg["max_tokens"]))
    if isinstance(node, str):  # literal text only
        from guidance import select

        node = select([node])
    return node.ll_grammar()


def template_pattern(template: list[tuple[str, Any]]) -> re.Pattern:
    """A Python regex over the program's whole output with a named group per generation. The grammar
    already held each generation to its regex, and a generation cut by its token cap no longer matches
    it, so a group is any text up to the next literal piece."""
    parts = [re.escape(arg) if piece == "text" else f"(?P<{arg['name']}>.*?)" for piece, arg in template]
    return re.compile("".join(parts), re.S)


def run_programs(lm, fallbacks: Sequence[Fallback], seeds: Sequence[int], *, lookup=None, width=None) -> list[ProgramResult]:
    """Decode every program on the engine (see the module docstring); one result per fallback."""
    from generators.decoding.ar import ARConfig, generate_ar
    from generators.grammar import GrammarConstraint
    from generators.prompts import chat_ids
    from pipeline.spans import stop_checker

    t0 = time.perf_counter()
    tok = lm.tokenizer
    eos = lm.eos_token_ids[0]
    plans = [segments(fb.template) for fb in fallbacks]
    prompts = [chat_ids(tok, fb.prompt.user, fb.prompt.system, fb.prompt.assistant_prefix) for fb in fallbacks]
    tokens: list[list[int]] = [[] for _ in fallbacks]
    forwards = [0] * len(fallbacks)
    problems: list[str | None] = [None] * len(fallbacks)
    for k in range(max((len(p) for p in plans), default=0)):
        groups: dict[float, list[int]] = {}
        for i, plan in enumerate(plans):
            if k < len(plan) and problems[i] is None:
                groups.setdefault(plan[k].temperature, []).append(i)
        for temperature, rows in groups.items():
            segs = [plans[i][k] for i in rows]
            constraint = GrammarConstraint([segment_grammar(s) for s in segs], tok, eos)
            caps = [_segment_cap(tok, s) for s in segs]
            # a last segment whose kind says where it is complete stops there (ends), grammar or not
            ends = [fallbacks[i].ends if k == len(plans[i]) - 1 else None for i in rows]
            results = generate_ar(lm.engine, [prompts[i] + tokens[i] for i in rows], eos_token_ids=lm.eos_token_ids,
                                  pad_token_id=lm.pad_token_id, config=ARConfig(temperature=temperature),
                                  seeds=[seeds[i] * 31 + k for i in rows], max_new_tokens=caps, constraint=constraint,
                                  lookup=lookup, width=width,
                                  stop_checker=stop_checker(tok, [()] * len(rows), ends) if any(ends) else None)
            for i, row, end, cap in zip(rows, results, ends, caps):
                tokens[i] += row.token_ids
                forwards[i] += row.forward_passes
                if row.finish_reason != "eos" and not (end is not None and row.finish_reason == "stop"):
                    problems[i] = f"segment {k + 1} of the program hit its budget of {cap} tokens"
    seconds = time.perf_counter() - t0
    out = []
    for fb, toks, fwd, problem in zip(fallbacks, tokens, forwards, problems):
        text = tok.decode(toks, skip_special_tokens=True)
        match = template_pattern(fb.template).fullmatch(text) if problem is None else None
        if problem is None and match is None:
            problem = "the program's output does not match its template"
        values = {k: v for k, v in match.groupdict().items() if v is not None} if match else {}
        out.append(ProgramResult(values, text, len(toks), fwd, seconds, problem))
    return out


def _segment_cap(tok, segment: _Segment) -> int:
    literal = "".join(arg for piece, arg in segment.pieces if piece == "text")
    gens = sum(arg["max_tokens"] for piece, arg in segment.pieces if piece != "text")
    return gens + len(tok(literal, add_special_tokens=False)["input_ids"]) + TOKEN_SLACK


def program_output(kind: Any, result: ProgramResult, job_input: dict[str, Any]) -> str:
    """The deliverable from a program's run: the kind's own finishing step (from the generated values
    and the job's input) if it has one."""
    finish = getattr(kind, "finish_fallback", None)
    return finish(result.values, job_input) if finish else result.text
