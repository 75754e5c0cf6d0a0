"""A user's own model (here tiny-qwen2 saved as an HF folder, with no diffusion adapter) runs hybrid:
the refiner says at start-up that it has no adapter, and no item ends in `error` for it."""

from __future__ import annotations

import json
import logging

import pytest

from generators.tiny import tiny_model, tiny_tokenizer
from pipeline.jobs import ItemJob
from pipeline.orchestrator import _generate
from pipeline.runtime import Runtime, refiner_family_and_adapter
from pipeline.settings import SettingsError
from service.spec import parse_jsonl

JOBS = [
    {"kind": "article", "input": {"topic": "tea", "sections": 2}},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red"}}},
    {"kind": "code", "input": {"prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\""}},
]


@pytest.fixture(scope="module")
def own_model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own-model")
    model = tiny_model("tiny-qwen2")
    model.generation_config.eos_token_id = tiny_tokenizer().eos_token_id
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def test_a_model_without_an_adapter_runs_hybrid_and_says_so(tiny_settings, own_model_folder, caplog):
    settings = tiny_settings.replace(model=str(own_model_folder), max_new_tokens=12)
    runtime = Runtime(settings)
    assert refiner_family_and_adapter(settings, runtime.planner) == (None, None)
    parsed = parse_jsonl("\n".join(json.dumps(j) for j in JOBS))
    items = [ItemJob(i + 1, 1, j.kind, j.input, {}, "hybrid") for i, j in enumerate(parsed.jobs)]
    with caplog.at_level(logging.WARNING, logger="pipeline.runtime"):
        out = _generate(items, runtime)
    assert any("no diffusion adapter" in r.getMessage() for r in caplog.records)
    assert {o.status for o in out.values()} <= {"done", "flagged"}  # never `error`
    hybrid = [a for o in out.values() for a in o.attempts if a.path == "hybrid"]
    assert hybrid and all("no diffusion adapter" in a.models["refiner"] for a in hybrid)
    assert all(o.error is None for o in out.values())


def test_an_adapter_for_an_own_model_needs_its_family_named(tiny_settings, own_model_folder, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    settings = tiny_settings.replace(model=str(own_model_folder), refiner_adapter=str(adapter))
    with pytest.raises(ValueError, match="HYBRIDGEN_REFINER_FAMILY"):
        refiner_family_and_adapter(settings, None)
    assert refiner_family_and_adapter(settings.replace(refiner_family="none"), None) == (None, None)
    with pytest.raises(SettingsError, match="HYBRIDGEN_REFINER_FAMILY='smollm3'"):
        tiny_settings.replace(refiner_family="smollm3")
