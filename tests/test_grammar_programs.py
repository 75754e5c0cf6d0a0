"""Fallback programs on the engine: a guidance grammar walked by llguidance as an engine constraint
(generators/grammar.py), and the segmented, batched program runner (pipeline/fallback.py)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from generators.decoding.ar import generate_ar, one_position
from generators.decoding.lookup import PromptLookup
from generators.decoding.reference_ar import generate_ar_reference
from generators.grammar import GrammarConstraint, GrammarError
from generators.prompts import chat_ids
from generators.tiny import tiny_model, tiny_tokenizer
from pipeline.fallback import run_programs, segment_grammar, segments, template_pattern
from pipeline.kinds import get_kind
from pipeline.kinds.base import Fallback, Prompt

TOK = tiny_tokenizer()
EOS = TOK.eos_token_id
TEMPLATE = [("text", '{"name": "'), ("gen", {"name": "name", "regex": "[a-z]{2,12}", "max_tokens": 12}),
            ("text", '", "note": "'),
            ("gen", {"name": "note", "regex": "[a-z ]{4,30}[.]", "max_tokens": 30, "temperature": 0.7}),
            ("text", '"}')]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_model("tiny-llama")


def test_segments_split_by_temperature_and_literal_text_joins_the_generation_after_it():
    parts = segments(TEMPLATE)
    assert [s.temperature for s in parts] == [0.0, 0.7]
    assert [s.names for s in parts] == [["name"], ["note"]]
    assert parts[0].pieces == TEMPLATE[:2] and parts[1].pieces == TEMPLATE[2:]
    assert "max_tokens=12" in segment_grammar(parts[0])  # the generation's own token cap reaches the grammar
    assert template_pattern(TEMPLATE).fullmatch('{"name": "ab", "note": "cd ef."}').groupdict() == \
        {"name": "ab", "note": "cd ef."}


def test_a_grammar_decoded_on_the_engine_equals_the_reference_decode_under_it(model):
    grammar = segment_grammar(segments(TEMPLATE[:2] + [("text", '"}')])[0])
    prompts = [chat_ids(TOK, text) for text in ("one", "a longer prompt here", "x")]
    caps = [40] * 3
    ref = generate_ar_reference(model, prompts, eos_token_ids=[EOS], pad_token_id=0, max_new_tokens=caps,
                                logits_transform=one_position(GrammarConstraint([grammar] * 3, TOK, EOS)))
    fast = generate_ar(model, prompts, eos_token_ids=[EOS], pad_token_id=0, max_new_tokens=caps,
                       constraint=GrammarConstraint([grammar] * 3, TOK, EOS), lookup=PromptLookup(most=4))
    assert [r.token_ids for r in fast] == [r.token_ids for r in ref]
    for row in fast:
        assert re.fullmatch(r'\{"name": "[a-z]{2,12}"\}', TOK.decode(row.token_ids)) and row.finish_reason == "eos"
    # the scaffolding is jump-forwarded: fewer forwards than tokens
    assert sum(r.forward_passes for r in fast) < sum(r.generated_tokens for r in fast)


def test_a_grammar_llguidance_refuses_is_an_error_naming_the_row():
    with pytest.raises(GrammarError, match="row 1"):
        GrammarConstraint(["%llguidance {}\nstart: \"a\"\n", "%llguidance {}\nstart: undefined_rule\n"], TOK, EOS)


def test_programs_run_batched_in_segments_and_give_their_values(model):
    from generators.loading import LoadedModel

    lm = LoadedModel("tiny", model, TOK, (EOS,), 0)
    fallbacks = [Fallback("guidance", Prompt(f"Describe item {i}."), TEMPLATE) for i in range(3)]
    results = run_programs(lm, fallbacks, seeds=[1, 2, 3])
    for r in results:
        assert r.problem is None, r.problem
        record = json.loads(r.text)
        assert re.fullmatch("[a-z]{2,12}", record["name"]) and re.fullmatch("[a-z ]{4,30}[.]", record["note"])
        assert r.values == record
        assert r.forward_passes < r.generated_tokens  # scaffolding jump-forwarded
    again = run_programs(lm, fallbacks, seeds=[1, 2, 3])
    assert [r.text for r in again] == [r.text for r in results]  # seeded: the same draw


def test_a_program_that_runs_out_of_tokens_says_so(model, monkeypatch):
    from generators.loading import LoadedModel
    from pipeline import fallback

    monkeypatch.setattr(fallback, "TOKEN_SLACK", -20)  # a budget below the scaffolding itself
    lm = LoadedModel("tiny", model, TOK, (EOS,), 0)
    [r] = run_programs(lm, [Fallback("guidance", Prompt("x"), TEMPLATE)], seeds=[0])
    assert r.problem is not None and "budget" in r.problem


def test_the_product_and_code_programs_are_grammars_llguidance_accepts():
    product = get_kind("product").fallback({"name": "Mug", "attributes": {"colour": "blue", "volume": "1 l"}}, {})
    code = get_kind("code").fallback({"prompt": "def add(a, b):\n    \"\"\"Add two numbers.\"\"\""}, {})
    for fb in (product, code):
        grammars = [segment_grammar(s) for s in segments(fb.template)]
        GrammarConstraint(grammars, TOK, EOS)  # raises GrammarError when llguidance refuses one


def test_the_llguidance_tokenizer_is_built_once_per_tokenizer_and_eos_and_dies_with_it():
    import gc

    from generators import grammar
    from generators.grammar import ll_tokenizer

    tok = tiny_tokenizer()
    first = ll_tokenizer(tok, EOS)
    assert ll_tokenizer(tok, EOS) is first and ll_tokenizer(tok, 0) is not first
    before = len(grammar._tokenizers)
    del tok
    gc.collect()
    assert len(grammar._tokenizers) == before - 1  # weakly keyed: nothing outlives its tokenizer
