"""Job streams whose inputs all differ (signatures, attribute sets, topics), for soaks of anything
kept per distinct input (compiled constraints, caches)."""

from __future__ import annotations


def distinct_code_jobs(n: int, start: int = 0) -> list[dict]:
    """n code job inputs that all differ: given signatures, names only in the tests, and bare tasks."""
    jobs = []
    for i in range(start, start + n):
        if i % 3 == 0:
            jobs.append({"prompt": f"def solve_{i}(values, limit_{i}=3):\n    \"\"\"Task number {i}.\"\"\"",
                         "tests": [f"assert solve_{i}([1], 3) is not None"]})
        elif i % 3 == 1:
            jobs.append({"prompt": f"Write a function for task {i}.", "tests": [f"assert task_{i}([1, 2]) == {i}"]})
        else:
            jobs.append({"prompt": f"Write a function that returns the number {i}."})
    return jobs


COLOURS = ("red", "blue", "green", "black", "white", "amber", "teal", "grey")
MATERIALS = ("steel", "oak", "glass", "wool", "cotton", "ceramic", "bamboo")


def distinct_product_jobs(n: int, start: int = 0) -> list[dict]:
    """n product inputs with distinct names and attribute sets (1 to 4 attributes)."""
    jobs = []
    for i in range(start, start + n):
        attributes = {"colour": COLOURS[i % len(COLOURS)], "weight": f"{100 + i} g"}
        if i % 2:
            attributes["material"] = MATERIALS[i % len(MATERIALS)]
        if i % 5 == 0:
            attributes[f"edition_{i}"] = i
        jobs.append({"name": f"Item {i} {COLOURS[(i // 3) % len(COLOURS)].title()}", "attributes": attributes})
    return jobs


def distinct_article_jobs(n: int, start: int = 0) -> list[dict]:
    """n article inputs with distinct topics, section counts 2-4, some with given headings."""
    jobs = []
    for i in range(start, start + n):
        job = {"topic": f"topic number {i} in {MATERIALS[i % len(MATERIALS)]} crafts", "sections": 2 + i % 3}
        if i % 4 == 0:
            job["sections"] = [f"Part {i} a", f"Part {i} b"]
        jobs.append(job)
    return jobs


def distinct_jobs(n: int, code_share: float = 0.34, start: int = 0) -> list[dict]:
    """A JSONL-ready mix of n jobs, about `code_share` of them code, the rest products and articles;
    jobs from different `start` offsets (spaced by at least n) differ too."""
    n_code = round(n * code_share)
    n_product = (n - n_code) // 2
    n_article = n - n_code - n_product
    jobs = ([{"kind": "code", "input": j} for j in distinct_code_jobs(n_code, start)]
            + [{"kind": "product", "input": j} for j in distinct_product_jobs(n_product, start)]
            + [{"kind": "article", "input": j} for j in distinct_article_jobs(n_article, start)])
    order = sorted(range(n), key=lambda k: ((k * 7919) % n, k))  # interleave the kinds, deterministically
    return [jobs[k] for k in order]
