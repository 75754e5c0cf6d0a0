"""SandboxTests: a `code` item's tests (MBPP style asserts) run against the generated function."""

from __future__ import annotations

from dataclasses import dataclass, field

from validators.base import Report, ValidationContext
from validators.sandbox.runner import Limits, run_tests


@dataclass(frozen=True)
class SandboxTests:
    limits: Limits = field(default_factory=Limits)
    name: str = "sandbox_tests"

    def check(self, text: str, context: ValidationContext) -> Report:
        tests = list(context.input.get("tests") or [])
        if not tests:
            return Report(self.name, True, 1.0, "no tests given for this item", details={"tests": 0})
        result = run_tests(text, tests, context.input.get("test_setup", ""), self.limits)
        passed = sum(t["passed"] for t in result.tests)
        details = {"tests": len(tests), "passed": passed, "results": result.tests, "seconds": round(result.seconds, 3),
                   "stdout_tail": result.stdout[-500:], "stderr_tail": result.stderr[-500:]}
        if result.passed:
            return Report(self.name, True, 1.0, f"all {len(tests)} tests passed", details=details)
        if result.problem:
            message = f"sandbox: {result.problem}; {passed}/{len(tests)} tests passed"
        elif result.solution_error:
            message = f"the code fails to run: {result.solution_error}"
        else:
            first = next(t for t in result.tests if not t["passed"])
            message = f"{passed}/{len(tests)} tests passed; first failure: {first['test'][:120]} -> {first['error']}"
        return Report(self.name, False, passed / len(tests), message, details=details)
