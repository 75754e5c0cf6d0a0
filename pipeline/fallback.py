"""Full-AR regeneration of items whose hybrid attempt failed.

Structured kinds run a guidance program: literal JSON / code scaffolding with regex-constrained
generations in between, so the record is valid JSON and the function has the right header and
shape by construction. Articles keep their plan and have every section rewritten by AR (sampled,
so that a retry is a different draw from the greedy refiner's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pipeline.kinds.base import Fallback


@dataclass
class GuidanceResult:
    values: dict[str, str]
    text: str
    generated_tokens: int
    seconds: float


def run_guidance(lm, guidance_model, fb: Fallback, seed: int = 0) -> GuidanceResult:
    """Run a kind's guidance template after its chat prompt; returns the filled-in values and text.
    A gen may ask for sampling ("temperature"); `seed` makes that draw repeatable."""
    import random

    import numpy as np
    import torch
    from guidance import gen

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    tok = lm.tokenizer
    p = fb.prompt
    messages = ([{"role": "system", "content": p.system}] if p.system else []) + [{"role": "user", "content": p.user}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + p.assistant_prefix
    g = guidance_model + prompt
    names: list[str] = []
    for piece, arg in fb.template:
        if piece == "text":
            g += arg
        else:
            names.append(arg["name"])
            g += gen(name=arg["name"], regex=arg["regex"], max_tokens=arg["max_tokens"], temperature=arg.get("temperature"))
    text = str(g)[len(prompt):] if str(g).startswith(prompt) else str(g)
    values = {n: g[n] for n in names}
    generated = sum(len(tok(v, add_special_tokens=False)["input_ids"]) for v in values.values())
    return GuidanceResult(values, text, generated, time.perf_counter() - t0)


def guidance_output(kind: Any, result: GuidanceResult, job_input: dict[str, Any]) -> str:
    """The deliverable from a guidance run: the kind's own finishing step (from the generated values
    and the job's input) if it has one."""
    finish = getattr(kind, "finish_fallback", None)
    return finish(result.values, job_input) if finish else result.text
