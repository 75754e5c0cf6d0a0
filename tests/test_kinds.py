"""Content kinds on hand-made plans: schemas, plan checks, spans and assembly (no model)."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest

from pipeline.kinds import get_kind
from pipeline.kinds.code import with_imports
from validators.code_task import expected_name

ARTICLE_IN = {"topic": "tea", "audience": "beginners", "sections": 2}
PRODUCT_IN = {"name": "Aurora Mug", "attributes": {"capacity": "350 ml", "material": "steel", "colour": "blue"}}
CODE_IN = {"prompt": "Write a function to add two numbers.", "tests": ["assert add_two(1, 2) == 3"], "test_setup": ""}


@pytest.mark.parametrize("kind, inp", [("article", ARTICLE_IN), ("article", {**ARTICLE_IN, "sections": ["A b", "C d"]}),
                                       ("product", PRODUCT_IN), ("code", CODE_IN)])
def test_plan_schemas_are_valid_json_schemas_with_bounded_strings(kind, inp):
    req = get_kind(kind).plan_request(inp)
    jsonschema.Draft202012Validator.check_schema(req.schema)
    assert req.max_new_tokens >= 40 and req.prompt.user

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
    plan = {"signature": "def add(a, b):"}
    assert "does not define add_two()" in kind.check_plan(CODE_IN, plan)[0]
    plan["signature"] = "def add_two(a, b):"
    assert kind.check_plan(CODE_IN, plan) == []
    plan2 = {**plan, "signature": "def add_two(a, b"}
    assert "does not parse" in kind.check_plan(CODE_IN, plan2)[0]
    span = kind.spans(CODE_IN, plan)[0]
    # the task text is the docstring, as written
    assert span.prompt.assistant_prefix == \
        '```python\ndef add_two(a, b):\n    """Write a function to add two numbers."""\n    # '

    code = kind.assemble(CODE_IN, plan, ["2. Add the numbers\n    return a + b\n```\nextra"])
    assert code.startswith("def add_two(a, b):") and "\n    # 2. Add the numbers\n    return a + b\n" in code
    # the model's own first comment is a step too: a numbering run is dropped, the code kept
    noisy = kind.assemble(CODE_IN, plan, ["1. 1. 2. 3. 4. 5. 6.\n    return a + b\n"])
    assert noisy.endswith('"""\n    return a + b\n')


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
    assert fb.template[2] == ("text", '\n    """Write a function to add two numbers."""\n')  # the task, verbatim
    assert get_kind("article").fallback(ARTICLE_IN, {}).kind == "spans"


def test_product_plan_repair_states_facts_from_attributes():
    kind = get_kind("product")
    bad = {"title": "Aurora Mug", "tagline": "Warm drinks", "facts": ["Luxury brand", "Japanese", "Best seller"]}
    assert kind.check_plan(PRODUCT_IN, bad)
    fixed = kind.repair_plan(PRODUCT_IN, bad)
    assert kind.check_plan(PRODUCT_IN, fixed) == []
    assert fixed["facts"] == ["Capacity: 350 ml", "Material: steel", "Colour: blue"] and fixed["title"] == "Aurora Mug"


def test_code_plans_have_no_steps_by_default():
    code = get_kind("code")
    request = code.plan_request(CODE_IN)
    assert list(request.schema["properties"]) == ["signature"] and "steps" not in request.prompt.user
    assert code.known_plan(HUMANEVAL_STYLE) == {"signature": "def evens(numbers: List[int]) -> List[int]:"}
    assert code.known_plan(CODE_IN) is None  # the model names the parameters
    out = code.assemble(CODE_IN, {"signature": "def add_two(a, b):", "steps": ["Add the numbers"]}, ["x\n"])
    assert "Add the numbers" not in out


STEPPED = dataclasses.replace(get_kind("code"), steps=True)
"""The code kind with plan steps (off by default; benchmarks/code_steps.py measures both)."""


def test_code_steps_that_are_not_prose_are_never_used():
    code = STEPPED
    inp = {"prompt": "Write a function max_of_three(a, b, c) that returns the largest of three numbers.",
           "tests": ["assert max_of_three(1, 2, 3) == 3"]}
    noise = ["assert max_of_three(1, 2, 3) == 3", "compare the numbers", "Compare the numbers",
             "int) -> bool | (int, int) -> bool | (int, int) -> bool", "1. 1. 2. 3. 4. 5. 6.", "] }} ...",
             "def max_of_three(a, b, c):", "max_of_three(a, b, c):", "x = max(a, b)", "2. Return the largest one"]
    plan = code.normalise_plan(inp, {"signature": "def max_of_three(a, b, c):", "steps": noise})
    assert plan["steps"] == ["compare the numbers", "Return the largest one"]  # own numbering dropped, once each
    assert code.check_plan(inp, plan) == []  # a step is dropped, never a reason to re-plan
    # a plan stored before (or from any source) goes through the same filter on its way to the output
    out = code.assemble(inp, {"signature": "def max_of_three(a, b, c):", "steps": noise}, ["x\n    return a\n"])
    assert "# 1. compare the numbers\n    # 2. Return the largest one\n    return a\n" in out and "->" not in out
    repaired = code.repair_plan(inp, {"signature": "def max_of_three(a, b, c:", "steps": noise})
    assert repaired == {"signature": "def max_of_three(arg1, arg2, arg3):",
                        "steps": ["compare the numbers", "Return the largest one"]}
    assert code.check_plan(inp, repaired) == []


def test_code_body_span_starts_at_an_indented_comment_and_ends_at_column_zero():
    code = get_kind("code")
    inp = {"prompt": "Write a function add(a, b) that adds two numbers."}
    plan = {"signature": "def add(a, b):", "steps": []}
    (span,) = code.spans(inp, plan)
    assert span.prompt.assistant_prefix.endswith('"""Write a function add(a, b) that adds two numbers."""\n    # ')
    # the model's continuation: a step, the code, then test code back at column 0
    out = code.assemble(inp, plan, ["1. Add them\n    return a + b\n\nprint(add(1, 2))\n"])
    assert out == ('def add(a, b):\n    """Write a function add(a, b) that adds two numbers."""\n    # 1. Add them\n'
                   '    return a + b\n')


HUMANEVAL_STYLE = {"prompt": (
    "from typing import List\n\n\n"
    "def is_even(n: int) -> bool:\n    return n % 2 == 0\n\n\n"
    "def evens(numbers: List[int]) -> List[int]:\n"
    '    """ Keep the even numbers of the list, in order.\n'
    "    >>> evens([1, 2, 3, 4])\n    [2, 4]\n    >>> evens([])\n    []\n"
    '    """')}


def test_code_output_keeps_the_users_prompt_verbatim():
    code = STEPPED
    plan = code.normalise_plan(HUMANEVAL_STYLE, {"signature": "def evens(numbers: List[int]) -> List[int]:",
                                                 "steps": ["Filter the list with is_even", "def x():"]})
    body = "    return [n for n in numbers if is_even(n)]\n"
    for output in (code.assemble(HUMANEVAL_STYLE, plan, ["Keep the evens\n" + body]),
                   code.finish_fallback({"body": body}, HUMANEVAL_STYLE)):
        # imports, the helper, the signature, the whole docstring with its examples, as written
        assert HUMANEVAL_STYLE["prompt"] in output
        namespace: dict = {}
        exec(compile(output, "<output>", "exec"), namespace)
        assert namespace["evens"]([1, 2, 3, 4]) == [2, 4]
    assert "    # 1. Filter the list with is_even\n    # Keep the evens\n" in code.assemble(HUMANEVAL_STYLE, plan,
                                                                                   ["Keep the evens\n"])
    # the plan is asked for what the user did not write only: the signature is theirs, forced
    request = code.plan_request(HUMANEVAL_STYLE)
    assert request.prompt.assistant_prefix == '{"signature": "def evens(numbers: List[int]) -> List[int]:",'
    assert expected_name(HUMANEVAL_STYLE) == "evens"  # the function to complete is the last one


@pytest.mark.parametrize("task", ['Return the "largest" of a and b.', "Split on \\d+ (a regex).", 'Say """hi"""',
                                  "Two lines:\n  keep the indent\n\nand the blank", 'Ends with a quote "x"'])
def test_task_text_becomes_the_docstring_verbatim_whatever_its_quotes(task):
    import inspect

    code = get_kind("code")
    inp = {"prompt": task, "tests": ["assert f() is None"]}
    output = code.assemble(inp, {"signature": "def f():", "steps": []}, ["x\n    return None\n"])
    namespace: dict = {}
    exec(compile(output, "<output>", "exec"), namespace)
    assert inspect.cleandoc(namespace["f"].__doc__) == inspect.cleandoc(task)


def test_plan_repair_starts_from_the_earliest_draft_it_can_fix():
    from pipeline.jobs import ItemJob
    from pipeline.planner import PlanResult, repair_plan

    inp = {"prompt": "Write a function max_of_three(a, b, c) that returns the largest of three numbers.",
           "tests": ["assert max_of_three(1, 2, 3) == 3"]}
    greedy = {"signature": "def max_of_three(a, b, c):", "steps": []}
    sampled = {"signature": "def max_of_three(a, b, c:", "steps": []}
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
    broken = {"signature": "def min_length_list(fn: Callable[[List[Any]], Any]]):", "steps": ["find the shortest list"]}
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


def test_article_plans_that_repeat_headings_are_combined_from_every_round():
    from pipeline.jobs import ItemJob
    from pipeline.planner import PlanResult, repair_plan

    job = ItemJob(1, 1, "article", {"topic": "composting", "audience": "gardeners", "sections": 3}, {}, "hybrid")
    title = "Composting at Home"
    greedy = {"title": title, "sections": [{"heading": title, "points": ["1. Use a compost bin"]},
                                          {"heading": "Greens and browns", "points": ["mix them"]},
                                          {"heading": "Greens and browns", "points": ["keep it moist"]}]}
    sampled = {"title": "Other", "sections": [{"heading": "Greens and browns", "points": ["again"]},
                                             {"heading": "Turning the heap", "points": ["weekly"]},
                                             {"heading": "Turning the heap", "points": ["weekly"]}]}
    kind = get_kind("article")
    assert kind.check_plan(job.input, greedy) and kind.check_plan(job.input, sampled)  # both fail alone
    res = PlanResult(plan=sampled, problems=["duplicate heading"], drafts=[greedy, sampled])
    repair_plan(job, res)
    assert res.ok and res.repaired
    assert res.plan["title"] == title  # the first round's
    # the title-echoing heading gave way to its own first point (numbering dropped), then the first
    # distinct headings across the rounds, in order
    assert [s["heading"] for s in res.plan["sections"]] == ["Use a compost bin", "Greens and browns",
                                                            "Turning the heap"]
    assert res.plan["sections"][0]["points"] == ["Use a compost bin"]
    # nothing distinct enough to combine: the plan stays failed
    echo = {"title": title, "sections": [{"heading": title, "points": [title]}] * 3}
    res = PlanResult(plan=echo, problems=["duplicate heading"], drafts=[echo, echo])
    repair_plan(job, res)
    assert not res.ok


def test_a_code_body_ends_after_a_return_at_its_own_indentation():
    from pipeline.spans import stop_checker
    from generators.tiny import tiny_tokenizer

    [span] = get_kind("code").spans({"prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"", "tests": []},
                                    {"signature": "def add(a, b):", "steps": []})
    text = "adds\n    if a is None:\n        return b\n    return a + b\n    add(1, 2)\n    return 0\n"
    assert text[:span.ends(text)] == "adds\n    if a is None:\n        return b\n    return a + b\n"
    assert span.ends("adds\n    return (a +\n") is None  # the return is not complete yet
    tok = tiny_tokenizer()  # bytes: one token per character
    check = stop_checker(tok, [span.stop], [span.ends])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids[:check(0, ids)]) == text[:span.ends(text)]  # the tokens up to the return line's end
    assert check(0, ids[:20]) is None
