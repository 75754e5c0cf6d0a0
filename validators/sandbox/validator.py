"""SandboxTests: a `code` item's tests (MBPP style asserts) and the examples in its prompt (doctest
style, validators/sandbox/examples.py) run against the generated function."""

from __future__ import annotations

from dataclasses import dataclass, field

from validators.base import Report, ValidationContext
from validators.sandbox.examples import example_tests
from validators.sandbox.runner import Limits, run_tests


@dataclass(frozen=True)
class SandboxTests:
    limits: Limits = field(default_factory=Limits)
    name: str = "sandbox_tests"

    def check(self, text: str, context: ValidationContext) -> Report:
        given = list(context.input.get("tests") or [])
        examples = [t for t in example_tests(context.input.get("prompt") or "") if t not in given]
        tests = given + examples
        if not tests:
            return Report(self.name, True, 1.0, "no tests given for this item and no examples in its prompt",
                          details={"tests": 0})
        result = run_tests(text, tests, context.input.get("test_setup", ""), self.limits)
        passed = sum(t["passed"] for t in result.tests)
        details = {"tests": len(tests), "from_examples": len(examples), "passed": passed, "results": result.tests,
                   "seconds": round(result.seconds, 3), "stdout_tail": result.stdout[-500:],
                   "stderr_tail": result.stderr[-500:]}
        counted = f"{len(tests)} tests" + (f" ({len(examples)} from the prompt's examples)" if examples else "")
        if result.passed:
            return Report(self.name, True, 1.0, f"all {counted} passed", details=details)
        if result.problem:
            message = f"sandbox: {result.problem}; {passed}/{counted} passed"
        elif result.solution_error:
            message = f"the code fails to run: {result.solution_error}"
        else:
            first = next(t for t in result.tests if not t["passed"])
            message = f"{passed}/{counted} passed; first failure: {first['test'][:120]} -> {first['error']}"
        return Report(self.name, False, passed / len(tests), message, details=details)
