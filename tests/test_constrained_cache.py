"""Constraint set-up does not grow with distinct jobs: plan regexes are few and fixed, the index cache
is bounded, and its keys outlive no object (no `id()` reuse)."""

from __future__ import annotations

import dataclasses
import json
import re

import psutil
import pytest

from benchmarks.distinct_jobs import distinct_code_jobs
from generators import constrained
from generators.constrained import LruCache, regex_index
from generators.tiny import tiny_tokenizer
from pipeline.kinds import get_kind
from pipeline.planner import plan_regex


@pytest.mark.parametrize("steps", [False, True])
def test_distinct_code_jobs_share_three_plan_regexes(steps):
    kind = dataclasses.replace(get_kind("code"), steps=steps)
    jobs = distinct_code_jobs(60)
    requests = [kind.plan_request(job) for job in jobs]
    assert len({plan_regex(r) for r in requests}) == 3
    # the job's own text is in the forced prefix, and prefix + continuation reads as a whole plan
    signatures = ["def solve_0(values, limit_0=3):", "def task_1(x):", "def numbers(x):"]
    for request, sig in zip(requests[:3], signatures):
        plan = json.dumps({"signature": sig, **({"steps": ["do it"]} if steps else {})})
        assert plan.startswith(request.prompt.assistant_prefix), (plan, request.prompt.assistant_prefix)
        assert re.fullmatch(request.continuation_regex, plan[len(request.prompt.assistant_prefix):])


def test_lru_cache_keeps_the_most_recent_entries():
    cache = LruCache(3)
    built = []
    for key in ["a", "b", "c", "a", "d", "e"]:
        cache.get_or_build(key, lambda k=key: built.append(k) or k.upper())
    assert len(cache) == 3 and built == ["a", "b", "c", "d", "e"]  # "a" was reused, not rebuilt
    assert cache.get_or_build("a", lambda: "new") == "A"  # most recently used before d, e: kept
    assert cache.get_or_build("b", lambda: "rebuilt") == "rebuilt"  # least recently used: dropped


def test_index_cache_is_bounded_and_keyed_by_vocabulary(monkeypatch):
    monkeypatch.setattr(constrained, "_indexes", LruCache(4))
    tok = tiny_tokenizer()
    first = regex_index(tok, "a[0-9]{1,3}")
    assert regex_index(tiny_tokenizer(), "a[0-9]{1,3}") is first  # an equal tokenizer object shares it
    for i in range(10):
        regex_index(tok, f"x{i}[a-z]{{1,4}}")
    assert len(constrained._indexes) == 4


@pytest.mark.slow
def test_fifty_distinct_code_plans_stay_under_a_memory_bound(model_cache_dir):
    """The real tokenizer (49k tokens), 50 distinct code jobs: the first jobs compile the three plan
    indexes, after that the set-up is a cache hit and resident memory stays flat (it grew by
    ~150 MB per job when the signature was part of the regex)."""
    from generators.loading import load_model

    default_model_tokenizer = load_model("smollm2-135m-instruct", cache_dir=model_cache_dir).tokenizer
    kind = get_kind("code")
    process = psutil.Process()
    jobs = distinct_code_jobs(50)
    for job in jobs[:3]:
        regex_index(default_model_tokenizer, plan_regex(kind.plan_request(job)))
    warm_rss = process.memory_info().rss
    for job in jobs[3:]:
        regex_index(default_model_tokenizer, plan_regex(kind.plan_request(job)))
    growth_mb = (process.memory_info().rss - warm_rss) / 2**20
    assert growth_mb < 50, f"RSS grew by {growth_mb:.0f} MB over 47 distinct code plans"
