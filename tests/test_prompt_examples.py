"""The user's doctest-style examples in a code prompt are tests: read from the prompt
(validators/sandbox/examples.py), run in the sandbox like the job's own `tests`, and what the
sampled retries must pass. A job with neither is validated as before."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.jobs import ItemJob
from pipeline.orchestrator import _generate
from pipeline.runtime import Runtime
from validators.base import ValidationContext
from validators.sandbox.examples import example_tests
from validators.sandbox.runner import Limits
from validators.sandbox.validator import SandboxTests

LIMITS = Limits(wall_s=8, cpu_s=3, memory_mb=256)
PROMPT = '''from typing import List


def evens(numbers: List[int]) -> List[int]:
    """ Keep the even numbers, in order.
    >>> evens([1, 2, 3, 4])
    [2, 4]
    >>> xs = [6,
    ...       7]
    >>> evens(xs)
    [6]
    >>> print(evens([]))
    []
    >>> evens([1]) # doctest: +SKIP
    [5]
    >>> evens([8, 9])
    [8]"""'''


def test_examples_become_asserts_with_the_setup_they_use():
    assert example_tests(PROMPT) == [
        "assert evens([1, 2, 3, 4]) == [2, 4]",
        "xs = [6,\n      7]\nassert evens(xs) == [6]",  # the statement it needs, and only it
        "assert evens([8, 9]) == [8]",  # the closing quotes on its line are not part of the value
    ]  # printed output and a doctest directive: skipped
    # a call without output is setup too, where it changes a name the example uses
    assert example_tests(">>> xs = [3, 1]\n>>> xs.sort()\n>>> f(0)\n>>> first(xs)\n1\n>>> f(2)\n4") == [
        "xs = [3, 1]\nxs.sort()\nassert first(xs) == 1", "assert f(2) == 4"]
    # a comment after the call cannot swallow the comparison
    assert example_tests(">>> f(1)  # note\n2\n>>> f([1,\n...    2])\n3") == [
        "assert (f(1)) == 2", "assert (f([1, 2])) == 3"]


@pytest.mark.parametrize("prompt", [
    "Write a function to add two numbers.",
    'def f(x):\n    """Return x.\n    >>> f(1)\n    """',  # no expected value: f returned None or printed nothing
    'def f(x):\n    """>>> f(0)\n    Traceback (most recent call last):\n    ZeroDivisionError"""',
    'def f(x):\n    """>>> f(1)\n    <object at 0x7f>\n    """',  # a repr that is not a Python value
    'def f(x):\n    """>>> f(1)\n    [1, 2, ...]\n    """',  # an ellipsis
])
def test_prompts_without_usable_examples_give_no_tests(prompt):
    assert example_tests(prompt) == []


DOCTEST_LINES = st.sampled_from([
    ">>> f(1)", ">>> f(2)  # note", ">>> x = [1,", "...   2]", "1", "[1, 2]", "'a'", '"""', "", ">>> print(2)", ">>> g(x)",
    'True"""', ">>> import math", ">>> math.pi", "Traceback (most recent call last):", ">>> f(", "...", "{1: 2}",
    ">>> def h(): return 1", ">>> h()", "# doctest: +SKIP"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(["", "    ", "\t"]), st.lists(DOCTEST_LINES, max_size=12), st.text(max_size=40))
def test_any_prompt_gives_tests_that_compile_and_never_an_error(indent, lines, noise):
    prompt = "\n".join(indent + line for line in lines) + noise
    for test in example_tests(prompt):
        *setup, check = ast.parse(test).body  # compiles; nothing in it swallowed the comparison
        assert isinstance(check, ast.Assert) and isinstance(check.test, ast.Compare)
        assert isinstance(check.test.ops[-1], ast.Eq) and not any(isinstance(n, ast.Assert) for n in setup)


def test_examples_run_in_the_sandbox_like_the_jobs_tests():
    check = SandboxTests(LIMITS).check
    given = ValidationContext(kind="code", input={"prompt": PROMPT, "tests": ["assert evens([0]) == [0]"]})
    right = "def evens(numbers):\n    return [n for n in numbers if n % 2 == 0]\n"
    report = check(right, given)
    assert report.passed and report.details["tests"] == 4 and report.details["from_examples"] == 3
    assert report.message == "all 4 tests (3 from the prompt's examples) passed"
    wrong = "def evens(numbers):\n    return numbers\n"
    only_examples = ValidationContext(kind="code", input={"prompt": PROMPT})
    report = check(wrong, only_examples)
    assert not report.passed and "0/3 tests (3 from the prompt's examples) passed" in report.message
    assert "assert evens([1, 2, 3, 4]) == [2, 4]" in report.message and "got [1, 2, 3, 4]" in report.message
    # no tests and no examples: as before
    plain_task = ValidationContext(kind="code", input={"prompt": "Write a function evens(numbers)."})
    assert check(wrong, plain_task).passed and check(wrong, plain_task).details["tests"] == 0


def test_a_job_whose_examples_fail_gets_the_sampled_retries(tiny_settings):
    runtime = Runtime(tiny_settings.replace(max_new_tokens=16, retry_samples="code=3"))
    with_examples = ItemJob(1, 1, "code", {"prompt": PROMPT, "tests": []}, {}, "ar")
    without = ItemJob(2, 1, "code", {"prompt": 'def evens(numbers):\n    """Keep the even numbers."""', "tests": []},
                      {}, "ar")
    out = _generate([with_examples, without], runtime)
    [attempt] = out[1].attempts
    sandbox = [r for r in attempt.reports if r["validator"] == "sandbox_tests"]
    # the random tiny model cannot pass them: three sampled bodies were tried against the examples
    assert sandbox and not sandbox[-1]["passed"] and sandbox[-1]["details"]["from_examples"] == 3
    assert attempt.timings["retry_samples"] == 3 and not attempt.passed and out[1].status == "flagged"
    assert PROMPT in attempt.output  # the user's prompt, examples included, is in what was delivered
    # nothing to test: the sandbox passes it, as before
    [untested] = out[2].attempts
    sandbox = next(r for r in untested.reports if r["validator"] == "sandbox_tests")
    assert sandbox["passed"] and sandbox["details"]["tests"] == 0
