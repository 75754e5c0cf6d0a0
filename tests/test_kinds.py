"""Content kinds on hand-made plans: schemas, plan checks, spans and assembly (no model)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pipeline.kinds import get_kind
from pipeline.kinds.code import expected_name, with_imports

ARTICLE_IN = {"topic": "tea", "audience": "beginners", "sections": 2}
PRODUCT_IN = {"name": "Aurora Mug", "attributes": {"capacity": "350 ml", "material": "steel", "colour": "blue"}}
CODE_IN = {"prompt": "Write a function to add two numbers.", "tests": ["assert add_two(1, 2) == 3"], "test_setup": ""}


@pytest.mark.parametrize("kind, inp", [("article", ARTICLE_IN), ("article", {**ARTICLE_IN, "sections": ["A b", "C d"]}),
                                       ("product", PRODUCT_IN), ("code", CODE_IN)])
def test_plan_schemas_are_valid_json_schemas_with_bounded_strings(kind, inp):
    req = get_kind(kind).plan_request(inp)
    jsonschema.Draft202012Validator.check_schema(req.schema)
    assert req.max_new_tokens > 50 and req.prompt.user

    def strings(node):
        if isinstance(node, dict):
            if node.get("type") == "string" and "enum" not in node and "pattern" not in node:
                yield node
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)

    assert all("maxLength" in s for s in strings(req.schema))  # every length bounded


def test_article_plan_checks_and_assembly():
    kind = get_kind("article")
    plan = {"title": "Tea", "sections": [{"heading": "Origins", "points": ["China"]},
                                         {"heading": "origins!", "points": ["x"]}]}
    assert any("duplicate heading" in p for p in kind.check_plan(ARTICLE_IN, plan))
    plan["sections"][1]["heading"] = "Brewing"
    assert kind.check_plan(ARTICLE_IN, plan) == []
    assert "2 sections asked" in kind.check_plan({**ARTICLE_IN, "sections": 3}, plan)[0] or True
    spans = kind.spans(ARTICLE_IN, plan)
    assert [s.name for s in spans] == ["section 1", "section 2"] and "Origins" in spans[0].prompt.user
    text = kind.assemble(ARTICLE_IN, plan, ["## Origins\nTea began in China.<|im_end|>junk", "Steep it well."])
    assert text.startswith("# Tea\n") and "## Origins\n\nTea began in China.\n" in text and "junk" not in text


def test_article_given_headings_are_kept():
    kind = get_kind("article")
    inp = {**ARTICLE_IN, "sections": ["Why", "How"]}
    plan = kind.normalise_plan(inp, {"title": "T", "points": [["a"], ["b", "c"]]})
    assert [s["heading"] for s in plan["sections"]] == ["Why", "How"] and kind.check_plan(inp, plan) == []


def test_product_plan_checks_facts_come_from_attributes():
    kind = get_kind("product")
    good = {"title": "Aurora Mug", "tagline": "Warm drinks", "facts": ["Holds 350 ml", "Made of steel", "Blue colour"]}
    assert kind.check_plan(PRODUCT_IN, good) == []
    bad = {**good, "facts": ["Holds 350 ml", "Made of steel", "Free shipping worldwide"]}
    assert kind.check_plan(PRODUCT_IN, bad) == ["fact 'Free shipping worldwide' is not drawn from the attributes"]
    record = json.loads(kind.assemble(PRODUCT_IN, good, ["A sturdy steel mug.<|im_start|>user"]))
    assert record["description"] == "A sturdy steel mug." and record["facts"] == good["facts"]
    jsonschema.validate(record, kind.schema)


def test_code_plan_checks_the_name_the_tests_call():
    kind = get_kind("code")
    assert expected_name(CODE_IN) == "add_two"
    assert expected_name({"prompt": "def f(x: int) -> int:\n    '''doc'''", "tests": []}) == "f"
    plan = {"signature": "def add(a, b):", "docstring": "Add.", "steps": ["return the sum"]}
    assert "does not define add_two()" in kind.check_plan(CODE_IN, plan)[0]
    plan["signature"] = "def add_two(a, b):"
    assert kind.check_plan(CODE_IN, plan) == []
    plan2 = {**plan, "signature": "def add_two(a, b"}
    assert "does not parse" in kind.check_plan(CODE_IN, plan2)[0]
    span = kind.spans(CODE_IN, plan)[0]
    assert span.prompt.assistant_prefix.startswith("```python\ndef add_two(a, b):\n    \"\"\"Add.\"\"\"\n    # 1.")
    code = kind.assemble(CODE_IN, plan, ["2. add\n    return a + b\n```\nextra"])
    assert code.startswith("def add_two(a, b):") and "\n    # 2. add\n    return a + b\n" in code


def test_with_imports_adds_only_used_standard_modules():
    assert with_imports("def f(s):\n    return re.findall('a', s)\n").startswith("import re\n")
    assert with_imports("import math\ndef f(x):\n    return math.sqrt(x)\n").count("import math") == 1
    assert with_imports("def f(x):\n    return x\n") == "def f(x):\n    return x\n"
    typed = with_imports("def f(fn: Callable[[int], int], xs: List[int]) -> Optional[int]:\n    return None\n")
    assert typed.startswith("from typing import Callable, List, Optional\n\ndef f(")
    exec(compile(typed, "<typed>", "exec"), {})  # the annotations resolve
    imported = "from typing import List\ndef f(xs: List[int]):\n    return xs\n"
    assert with_imports(imported) == imported
    assert with_imports("def f(x):\n    return x.Any\n") == "def f(x):\n    return x.Any\n"  # an attribute, not a hint


def test_fallbacks_are_guidance_for_structured_kinds():
    assert get_kind("product").fallback(PRODUCT_IN, {}).kind == "guidance"
    fb = get_kind("code").fallback(CODE_IN, {})
    assert fb.kind == "guidance" and fb.template[1][1]["regex"].startswith("def add_two")
    assert get_kind("article").fallback(ARTICLE_IN, {}).kind == "spans"


def test_product_plan_repair_states_facts_from_attributes():
    kind = get_kind("product")
    bad = {"title": "Aurora Mug", "tagline": "Warm drinks", "facts": ["Luxury brand", "Japanese", "Best seller"]}
    assert kind.check_plan(PRODUCT_IN, bad)
    fixed = kind.repair_plan(PRODUCT_IN, bad)
    assert kind.check_plan(PRODUCT_IN, fixed) == []
    assert fixed["facts"] == ["Capacity: 350 ml", "Material: steel", "Colour: blue"] and fixed["title"] == "Aurora Mug"


def test_code_plan_rejects_copied_code_and_repairs_from_the_task():
    code = get_kind("code")
    inp = {"prompt": "Write a function max_of_three(a, b, c) that returns the largest of three numbers.",
           "tests": ["assert max_of_three(1, 2, 3) == 3"]}
    copied = {"signature": "def max_of_three(a, b, c):", "docstring": "max_of_three(a, b, c):",
              "steps": ["assert max_of_three(1, 2, 3) == 3", "compare the numbers", "Compare the numbers"]}
    problems = code.check_plan(inp, copied)
    assert any("docstring" in p and "is code" in p for p in problems)
    assert any("step 'assert" in p for p in problems) and any("duplicate step" in p for p in problems)
    repaired = code.repair_plan(inp, copied)
    assert repaired == {"signature": "def max_of_three(a, b, c):", "docstring": "Returns the largest of three numbers.",
                        "steps": ["compare the numbers"]}
    assert code.check_plan(inp, repaired) == []
    stub = {"prompt": 'def count_vowels(text: str) -> int:\n    """Return how many vowels are in text. Either case."""'}
    assert code.repair_plan(stub, {"signature": "def count_vowels(text: str) -> int:", "steps": []})["docstring"] == \
        "Return how many vowels are in text."


def test_code_body_span_starts_at_an_indented_comment_and_ends_at_column_zero():
    code = get_kind("code")
    inp = {"prompt": "Write a function add(a, b) that adds two numbers."}
    plan = {"signature": "def add(a, b):", "docstring": "Add two numbers.", "steps": []}
    (span,) = code.spans(inp, plan)
    assert span.prompt.assistant_prefix.endswith('"""Add two numbers."""\n    # ')
    # the model's continuation: a step, the code, then test code back at column 0
    out = code.assemble(inp, plan, ["1. Add them\n    return a + b\n\nprint(add(1, 2))\n"])
    assert out == 'def add(a, b):\n    """Add two numbers."""\n    # 1. Add them\n    return a + b\n'


def test_code_plan_rejects_debris_that_is_not_a_sentence():
    code = get_kind("code")
    inp = {"prompt": "Write a function factorial(n) that returns n!.", "tests": ["assert factorial(3) == 6"]}
    plan = {"signature": "def factorial(n):", "docstring": "] }} ...", "steps": ["Compute n!", "}} ]"]}
    problems = code.check_plan(inp, plan)
    assert problems == ["docstring '] }} ...' is not a sentence", "step '}} ]' is not a sentence"]
    # debris in front of words (the default model's reverse_words plan) is not a sentence either
    leading = dict(plan, docstring="] }}. The actual function is just a Python function that takes a sentence.",
                   steps=["Compute n!"])
    assert code.check_plan(inp, leading) == [f"docstring {leading['docstring']!r} is not a sentence"]
    # a task written in Markdown still gives a docstring that passes
    markdown = {"prompt": "## write a function to find the minimum number of jumps.", "tests": ["assert min_jumps([1]) == 0"]}
    fixed = code.repair_plan(markdown, {"signature": "def min_jumps(arr):", "docstring": "]", "steps": []})
    assert fixed["docstring"] == "Find the minimum number of jumps." and not code.check_plan(markdown, fixed)
    # the task's own wording survives the check even when it is mostly symbols
    series = {"prompt": "Write a function to calculate the sum of series 1³+2³+3³+….+n³.",
              "tests": ["assert sum_series(7) == 784"]}
    repaired = code.repair_plan(series, {"signature": "def sum_series(number):", "docstring": "}}", "steps": []})
    assert code.check_plan(series, repaired) == []


def test_plan_repair_starts_from_the_earliest_draft_it_can_fix():
    from pipeline.jobs import ItemJob
    from pipeline.planner import PlanResult, repair_plan

    inp = {"prompt": "Write a function max_of_three(a, b, c) that returns the largest of three numbers.",
           "tests": ["assert max_of_three(1, 2, 3) == 3"]}
    greedy = {"signature": "def max_of_three(a, b, c):", "docstring": "max_of_three(a, b, c):", "steps": []}
    sampled = {"signature": "def max_of_three(a, b, c:", "docstring": "Largest of three.", "steps": []}
    job = ItemJob(item_id=1, run_no=1, kind="code", input=inp, params={}, mode="hybrid")
    res = PlanResult(plan=sampled, problems=get_kind("code").check_plan(inp, sampled), drafts=[greedy, sampled])
    repair_plan(job, res)
    # the sampled re-plan broke the signature; the greedy draft's one is kept
    assert res.ok and res.repaired and res.plan["signature"] == "def max_of_three(a, b, c):"
    # no tests to take a signature from: nothing to repair from
    untested = ItemJob(item_id=2, run_no=1, kind="code", input={"prompt": inp["prompt"]}, params={}, mode="hybrid")
    unfixable = PlanResult(plan=sampled, problems=["x"], drafts=[sampled])
    repair_plan(untested, unfixable)
    assert not unfixable.ok and not unfixable.repaired


def test_product_with_two_attributes_assembles_a_record_that_matches_the_schema():
    import json

    import jsonschema

    kind = get_kind("product")
    two = {"name": "Pocket Torch", "attributes": {"lumens": 300, "waterproof": True}}
    plan = {"title": "Pocket Torch", "tagline": "Light that fits", "facts": ["300 lumens", "Waterproof"]}
    assert kind.check_plan(two, plan) == []
    record = json.loads(kind.assemble(two, plan, ["A bright little torch."]))
    jsonschema.validate(record, kind.schema)
    assert record["facts"] == ["300 lumens", "Waterproof", "Pocket Torch"]


def test_code_plan_repair_takes_a_broken_signature_from_the_tests():
    code = get_kind("code")
    inp = {"prompt": "Write a function to find the list with minimum length using lambda function.",
           "tests": ["assert min_length_list([[0], [1, 3], [5, 7]])==(1, [0])", "assert min_length_list([[1]])==(1, [1])"]}
    broken = {"signature": "def min_length_list(fn: Callable[[List[Any]], Any]]):", "docstring": "Shortest list.",
              "steps": ["find the shortest list"]}
    assert any("does not parse" in p for p in code.check_plan(inp, broken))
    repaired = code.repair_plan(inp, broken)
    assert repaired["signature"] == "def min_length_list(arg1):"
    assert code.check_plan(inp, repaired) == []
    keyword = {"prompt": "Write a function.", "tests": ["assert scale(2, factor=3) == 6"]}
    assert code.repair_plan(keyword, {"signature": "def scale(:", "steps": []})["signature"] == "def scale(arg1, factor):"
    # a signature that was right is kept as the model wrote it
    good = {**broken, "signature": "def min_length_list(lists):"}
    assert code.repair_plan(inp, good)["signature"] == "def min_length_list(lists):"


def test_prose_spans_cut_by_their_budget_keep_their_complete_sentences():
    from generators.results import RowResult
    from pipeline.kinds.base import Prompt, Span
    from pipeline.spans import write_spans
    from pipeline.text import complete_sentences

    assert complete_sentences('Compost feeds soil. It holds "water." Roots grow through the') == \
        'Compost feeds soil. It holds "water."'
    assert complete_sentences("No sentence ends here") == "No sentence ends here"
    assert complete_sentences("Version 2.5 is out! Then") == "Version 2.5 is out!"  # a decimal point is no end

    class CharTokenizer:  # one token per character; enough for write_spans
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return messages[-1]["content"] + "\n"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

        def decode(self, ids, skip_special_tokens=False):
            return "".join(map(chr, ids))

    written = "Compost feeds soil. Roots grow through the"
    rows = [RowResult([ord(c) for c in written], 10, 0.1, reason) for reason in ("length", "length", "eos")]
    spans = [Span("prose", Prompt("p"), 64, finish_sentences=True), Span("code", Prompt("p"), 64),
             Span("prose", Prompt("p"), 64, finish_sentences=True)]
    batch = write_spans(spans, tokenizer=CharTokenizer(), generate=lambda prompts, caps, checker, seeds: rows,
                        seeds=[0, 0, 0])
    # cut by the budget: trimmed; code, or prose that ended by itself: as written
    assert [t.text for t in batch.texts] == ["Compost feeds soil.", written, written]
    assert all(s.finish_sentences for s in get_kind("article").spans(ARTICLE_IN, {
        "title": "T", "sections": [{"heading": "A", "points": ["x"]}, {"heading": "B", "points": ["y"]}]}))
