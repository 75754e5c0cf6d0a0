"""Python-syntax and JSON-schema validators: passing and failing cases with evidence."""

from __future__ import annotations

from pipeline.kinds.product import RECORD_SCHEMA
from validators.base import Report, ValidationContext
from validators.json_syntax import JsonSyntax
from validators.python_syntax import PythonSyntax

CTX = ValidationContext(kind="code")


def test_python_syntax_passes_valid_code():
    report = PythonSyntax().check("def f(x):\n    return x + 1\n", CTX)
    assert report.passed and report.details["functions"] == ["f"]


def test_python_syntax_reports_the_failing_line():
    code = "def f(x):\n    return x +\n"
    report = PythonSyntax().check(code, CTX)
    assert not report.passed and report.details["line"] == 2 and report.message.startswith("line 2:")
    assert report.evidence[0].text == "    return x +"
    assert code[report.evidence[0].start:report.evidence[0].end] == "    return x +"


def test_python_syntax_rejects_empty_and_nul_bytes():
    assert not PythonSyntax().check("   \n", CTX).passed
    assert not PythonSyntax().check("x = 1\x00\n", CTX).passed


def test_json_schema_validator():
    good = '{"title": "T", "tagline": "t", "facts": ["a", "b", "c"], "description": "d", "attributes": {"k": 1}}'
    v = JsonSyntax(RECORD_SCHEMA)
    assert v.check(good, CTX).passed
    broken = v.check('{"title": "T",\n "tagline": }', CTX)
    assert not broken.passed and "line 2" in broken.message and broken.evidence[0].text == ' "tagline": }'
    wrong = v.check('{"title": "T", "tagline": "t", "facts": ["a"], "description": "d", "x": 1}', CTX)
    assert not wrong.passed and "facts" in wrong.message and "'x' was unexpected" in wrong.message


def test_reports_round_trip_as_json_data():
    report = PythonSyntax().check("def f(:\n", CTX)
    assert Report.from_dict(report.as_dict()) == report
