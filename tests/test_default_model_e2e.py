"""`hybridgen run` with the real default model (SmolLM2-135M-Instruct) on the embedded SQLite defaults."""

from __future__ import annotations

import json

import pytest

from tests.helpers import cli_env, run_cli

pytestmark = pytest.mark.slow


def test_run_examples_subset_with_default_model(tmp_path, model_cache_dir):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in [
        {"kind": "article", "input": {"topic": "the history of tea", "sections": 2}},
        {"kind": "product", "input": {"name": "Aurora Mug", "attributes": {"material": "steel", "capacity": "350 ml"}}},
        {"kind": "code", "input": {"prompt": "Write a function add(a, b) that returns the sum of a and b.",
                                   "tests": ["assert add(1, 2) == 3"]}},
    ]))
    env = cli_env(data_dir=tmp_path / "data", cache_dir=model_cache_dir, max_new_tokens=48)
    result = run_cli(["run", str(jobs), "--json"], env, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout)[0]
    assert summary["finished"] == 3 and summary["counts"]["error"] == 0
    hybrid = summary["paths"]["hybrid"]  # the default mode: plan + refiner (+ AR fallback when needed)
    assert hybrid["attempts"] == 3 and hybrid["tokens_per_forward"] > 0

    out = tmp_path / "out.jsonl"
    assert run_cli(["export", str(summary["batch_id"]), "-o", str(out), "--include-flagged"], env).returncode == 0
    records = {r["kind"]: r for r in map(json.loads, out.read_text().splitlines())}
    print(json.dumps(records, indent=1)[:6000])
    assert records["article"]["output"].startswith("# ")  # title, then the planned sections
    assert records["article"]["output"].count("\n## ") == 2
    assert "def add(" in records["code"]["output"]
    assert {r["validator"] for r in records["code"]["reports"]} >= {"python_syntax", "sandbox_tests"}
    assert json.loads(records["product"]["output"])["title"]
    # The small model really writes: outputs are sentences, not token soup.
    assert len(records["article"]["output"].split()) > 15


def test_plain_mode_with_default_model(tmp_path, model_cache_dir):
    """The baseline on the real model: one plain prompt per item, read and validated, stored as `plain`."""
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in [
        {"kind": "article", "input": {"topic": "the history of tea", "sections": ["Origins", "Tea today"]}},
        {"kind": "product", "input": {"name": "Aurora Mug", "attributes": {"material": "steel", "capacity": "350 ml"}}},
        {"kind": "code", "input": {
            "prompt": 'def add(a, b):\n    """Return the sum of a and b.\n    >>> add(1, 2)\n    3\n    """'}},
    ]))
    env = cli_env(data_dir=tmp_path / "data", cache_dir=model_cache_dir, max_new_tokens=96, retry_samples="")
    result = run_cli(["run", str(jobs), "--mode", "plain", "--json"], env, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout)[0]
    assert summary["finished"] == 3 and summary["counts"]["error"] == 0 and set(summary["paths"]) == {"plain"}
    out = tmp_path / "out.jsonl"
    assert run_cli(["export", str(summary["batch_id"]), "-o", str(out), "--include-flagged"], env).returncode == 0
    records = {r["kind"]: r for r in map(json.loads, out.read_text().splitlines())}
    print(json.dumps(records, indent=1)[:6000])
    for record in records.values():
        assert record["reports"][0]["validator"] == "plain_reply"  # how the reply was read, or why not
    code = records["code"]
    assert "def add(" in code["output"] and code["reports"][0]["passed"]
    sandbox = next(r for r in code["reports"] if r["validator"] == "sandbox_tests")
    assert sandbox["details"]["from_examples"] == 1  # the prompt's example ran as a test
    assert len(records["article"]["output"].split()) > 15
