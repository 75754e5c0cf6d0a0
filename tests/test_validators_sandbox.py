"""The sandbox: real tests pass, and every adversarial program is contained and reported as a failure."""

from __future__ import annotations

import os
import time

import pytest

from validators.base import ValidationContext
from validators.sandbox.runner import Limits, run_tests
from validators.sandbox.validator import SandboxTests

LIMITS = Limits(wall_s=8, cpu_s=3, memory_mb=256)


def ctx(tests, setup=""):
    return ValidationContext(kind="code", input={"prompt": "x", "tests": tests, "test_setup": setup})


def test_passing_and_failing_tests_are_counted():
    code = "def add(a, b):\n    return a + b\n"
    ok = SandboxTests(LIMITS).check(code, ctx(["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]))
    assert ok.passed and ok.details["passed"] == 2
    bad = SandboxTests(LIMITS).check(code, ctx(["assert add(1, 2) == 3", "assert add(2, 2) == 5"]))
    assert not bad.passed and bad.score == 0.5 and "1/2 tests passed" in bad.message


def test_setup_code_and_no_tests():
    code = "def area(r):\n    return PI * r * r\n"
    assert SandboxTests(LIMITS).check(code, ctx(["assert area(1) == 3"], setup="PI = 3")).passed
    none = SandboxTests(LIMITS).check(code, ctx([]))
    assert none.passed and none.message == "no tests given for this item"


def test_code_that_does_not_load_is_reported():
    report = SandboxTests(LIMITS).check("def f(:\n", ctx(["assert f() == 1"]))
    assert not report.passed and "fails to run" in report.message and "SyntaxError" in report.message


ADVERSARIAL = {
    "infinite loop": ("def f():\n    while True:\n        pass\n", "CPU limit"),
    "fork bomb": ("import os\ndef f():\n    while True:\n        os.fork()\n", "os.fork is not allowed"),
    "10 GB allocation": ("def f():\n    return len(bytearray(10 * 2**30))\n", "MemoryError"),
    "write outside": ("def f():\n    open('/tmp/hybridgen-sandbox-escape.txt', 'w').write('x')\n", "outside the sandbox"),
    "socket": ("import socket\ndef f():\n    socket.create_connection(('127.0.0.1', 5432))\n", "socket"),
    "os.system": ("import os\ndef f():\n    os.system('touch /tmp/hybridgen-pwned')\n", "os.system is not allowed"),
    "subprocess": ("import subprocess\ndef f():\n    subprocess.run(['true'])\n", "not allowed"),
    "env secret": ("import os\ndef f():\n    return os.environ['HYBRIDGEN_TEST_SECRET']\n", "KeyError"),
    "print 100 MB": ("def f():\n    print('x' * 100_000_000)\n", "File too large"),
    "hard exit": ("import os\ndef f():\n    os._exit(0)\n", "no result"),
    "ctypes": ("import ctypes\ndef f():\n    return 1\n", "ctypes is not allowed"),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_code_is_contained(name, monkeypatch):
    monkeypatch.setenv("HYBRIDGEN_TEST_SECRET", "s3cret")
    code, expected = ADVERSARIAL[name]
    t0 = time.monotonic()
    report = SandboxTests(LIMITS).check(code, ctx(["assert f() == 1"]))
    assert time.monotonic() - t0 < LIMITS.wall_s + 5  # never hangs the worker
    assert not report.passed
    assert expected in report.message or expected in str(report.details["results"]), report.message
    assert "s3cret" not in report.message and "s3cret" not in str(report.details)
    assert not os.path.exists("/tmp/hybridgen-sandbox-escape.txt") and not os.path.exists("/tmp/hybridgen-pwned")


def test_wall_clock_limit_kills_sleeping_code():
    result = run_tests("import time\ndef f():\n    time.sleep(30)\n", ["f()"], limits=Limits(wall_s=1.5, cpu_s=5))
    assert not result.passed and "timed out after 1.5 s" in result.problem and result.seconds < 6


def test_sandbox_folder_is_removed():
    before = {p for p in os.listdir("/tmp") if p.startswith("hybridgen-sandbox-")}
    run_tests("def f():\n    return 1\n", ["assert f() == 1"], limits=LIMITS)
    after = {p for p in os.listdir("/tmp") if p.startswith("hybridgen-sandbox-")}
    assert after <= before
