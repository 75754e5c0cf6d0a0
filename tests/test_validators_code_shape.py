"""hollow_code and signature_kept: the delivered function is the one asked for, and it has a body."""

from __future__ import annotations

import pytest

from validators.base import ValidationContext
from validators.hollow_code import HollowCode
from validators.signature_kept import SignatureKept

TASK = {"prompt": "Write a python function to find the product of non-repeated elements in a given array.",
        "tests": ["assert find_Product([1,1,2,3],4) == 6", "assert find_Product([1,2,3,1,1],5) == 6"]}
DOC = '    """Find the product."""\n'


def hollow(code: str, job=TASK) -> str | None:
    report = HollowCode().check(code, ValidationContext("code", job))
    assert code[report.evidence[0].start:report.evidence[0].end] == report.evidence[0].text if report.evidence else True
    return None if report.passed else report.message


def signature(code: str, job=TASK) -> str | None:
    report = SignatureKept().check(code, ValidationContext("code", job))
    return None if report.passed else report.message


@pytest.mark.parametrize("body", ["", "    pass\n", "    ...\n", "    # multiply the elements\n    return None\n",
                                  "    raise NotImplementedError\n", "    raise NotImplementedError('later')\n"])
def test_a_body_of_docstring_comments_or_placeholders_is_hollow(body):
    assert "no working body" in hollow(f"def find_Product(arr, n):\n{DOC}{body}")


def test_a_function_that_must_return_but_only_prints_is_hollow():
    code = f"def find_Product(arr, n):\n{DOC}    p = 1\n    for x in arr:\n        p *= x\n    print(p)\n"
    assert "must return a value" in hollow(code)
    nested = f"def find_Product(arr, n):\n{DOC}    def inner():\n        return 1\n    inner()\n"
    assert "must return a value" in hollow(nested), "a nested function's return is not the function's"
    printing_task = {"prompt": "Write a function that prints a greeting.", "tests": []}
    assert hollow("def greet():\n    print('hi')\n", printing_task) is None, "nothing says it must return"
    assert "must return" in hollow("def f() -> int:\n    print(1)\n", printing_task), "the annotation says so"


def test_short_complete_bodies_and_generators_are_not_hollow():
    assert hollow("def find_Product(arr, n):\n    return max(arr)\n") is None
    assert hollow("def find_Product(arr, n):\n    yield from arr\n") is None
    assert hollow("def find_Product(arr, n)\n    return 1\n") is None, "unparseable code is python_syntax's"
    assert "no function" in hollow("x = 1\n")


def test_the_function_must_have_the_name_the_tests_call_case_included():
    assert "asks for find_Product() but the code defines find_product()" in \
        signature("def find_product(arr, n):\n    return 1\n")
    assert signature("import math\n\ndef find_Product(arr, n):\n    return 1\n") is None


def test_every_test_call_must_bind_to_the_parameters():
    assert "without limit, which it requires" in signature("def find_Product(arr, n, limit):\n    return 1\n")
    assert "at most 1" in signature("def find_Product(arr):\n    return 1\n")
    assert signature("def find_Product(arr, n, limit=3):\n    return 1\n") is None, "a defaulted extra is fine"
    assert signature("def find_Product(*xs):\n    return 1\n") is None
    keyword = dict(TASK, tests=["assert find_Product(arr=[1], size=1) == 1"])
    assert "size=" in signature("def find_Product(arr, n):\n    return 1\n", keyword)


def test_a_code_prompt_keeps_its_parameters_and_annotations_are_minor():
    job = {"prompt": 'def add(a: int, b: int) -> int:\n    """Add."""\n', "tests": []}
    assert "differ from the prompt's (a, b)" in signature("def add(x, y):\n    return x + y\n", job)
    report = SignatureKept().check("def add(a, b):\n    return a + b\n", ValidationContext("code", job))
    assert report.passed and report.details["minor"] == ["annotations or defaults differ from the prompt's signature"]
