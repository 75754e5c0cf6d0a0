"""The decode engine: parity with the slow references, jump-forward under a grammar, the cost table,
the prepared linear layouts and the dtype choice."""

from __future__ import annotations

import json

import pytest
import torch

from generators.decoding.ar import ARConfig, generate_ar, one_position
from generators.adapter_io import lora_factors_of
from generators.constrained import RegexConstraint, regex_index, schema_regex
from generators.decoding.engine import NO_BLOCKS, TREE, step_tokens
from generators.decoding.lookup import LookupIndex, PromptLookup
from generators.decoding.linear import PreparedLinear, onednn_bf16_available, reference
from generators.decoding.reference_ar import generate_ar_reference
from generators.decoding.row_cache import RowKVCache
from generators.decoding.widths import CostTable, budget_width, cached_cost_table, cost_width, monotone
from generators.decoding.families import get_family
from generators.decoding.model import PackedBlockModel
from generators.decoding.verify import generate_verified
from generators.loading import cpu_has_bf16, load_model, resolve_dtype
from generators.prompts import chat_ids
from generators.tiny import tiny_model, tiny_tokenizer
from tests.diffusion_helpers import MASK, with_random_lora

TOK = tiny_tokenizer()
TEXTS = ["Hello there", "A much longer prompt, with more bytes in it.", "x", "Two words", "def f(a, b):"]


def prompts(n: int) -> list[list[int]]:
    return [chat_ids(TOK, TEXTS[i % len(TEXTS)] + " " * (i // len(TEXTS))) for i in range(n)]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-qwen2"])
def model(request):
    torch.manual_seed(0)
    return tiny_model(request.param)


@pytest.mark.parametrize("batch,length", [(1, 5), (3, 17), (5, 9)])
def test_engine_ar_equals_the_hf_reference_token_for_token(model, batch, length):
    ps = prompts(batch)
    caps = [length - (i % 3) for i in range(batch)]  # rows of different lengths leave the batch at different steps
    ref = generate_ar_reference(model, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    for m in (model, PackedBlockModel(model)):  # the HF modules and the packed weights
        fast = generate_ar(m, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
        assert [r.token_ids for r in fast] == [r.token_ids for r in ref]
        assert [r.forward_passes for r in fast] == caps  # no drafts: one token per forward


@pytest.mark.parametrize("batch,length,drafts", [(1, 12, 2), (3, 17, 3), (5, 9, 1)])
@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
def test_draft_and_verify_equals_plain_ar_token_for_token(arch, batch, length, drafts):
    ps = prompts(batch)
    caps = [length] * batch
    base, peft_model = with_random_lora(arch, dtype=torch.float32, seed=2)
    ref = generate_ar_reference(base, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    adapted = PackedBlockModel(base).with_lora(lora_factors_of(peft_model))  # drafts by a random adapter
    fast = generate_verified(adapted, ps, family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1],
                             pad_token_id=0, drafts=drafts, max_new_tokens=caps)
    assert [r.token_ids for r in fast] == [r.token_ids for r in ref]


def test_width_policies_change_speed_never_output(model):
    ps, caps = prompts(4), [15] * 4
    cheap = CostTable({(b, t): 10.0 for b in (1, 8) for t in (1, 64)})  # wide forwards free: draft the most
    outs = []
    for width in (budget_width(1), budget_width(None), cost_width(cheap, 0.5)):
        outs.append(generate_verified(model, ps, family=get_family("tiny-shifted"), mask_token_id=MASK,
                                      eos_token_ids=[-1], pad_token_id=0, drafts=3, width=width, max_new_tokens=caps))
    assert all([r.token_ids for r in o] == [r.token_ids for r in outs[0]] for o in outs)
    assert [r.forward_passes for r in outs[0]] == caps  # a budget of one token: plain AR steps


# -- the grammar: masks at every verified position, forced runs drafted (jump-forward) ----------------------

SCHEMA = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 12},
                                           "points": {"type": "array", "items": {"type": "string", "maxLength": 8},
                                                      "minItems": 2, "maxItems": 2}},
          "required": ["title", "points"]}


@pytest.fixture(scope="module")
def smollm2_vocab_model(model_cache_dir):
    return load_model("tiny-llama-smollm2-vocab", cache_dir=model_cache_dir, device="cpu", dtype="float32")


def test_constrained_engine_equals_the_plain_constrained_decode_and_jumps_forward(smollm2_vocab_model):
    lm = smollm2_vocab_model
    tok = lm.tokenizer
    ps = [chat_ids(tok, f"Write a plan about {t}.") for t in ("tea", "bicycles in cities", "rain")]
    index = regex_index(tok, schema_regex(SCHEMA))
    caps = [120] * len(ps)

    def constraint():
        return RegexConstraint([index] * len(ps), tok.eos_token_id, tokenizer=tok)

    ref = generate_ar_reference(lm.model, ps, eos_token_ids=lm.eos_token_ids, pad_token_id=lm.pad_token_id,
                                max_new_tokens=caps, logits_transform=one_position(constraint()))
    fast = generate_ar(lm.engine, ps, eos_token_ids=lm.eos_token_ids, pad_token_id=lm.pad_token_id,
                       max_new_tokens=caps, constraint=constraint())
    assert [r.token_ids for r in fast] == [r.token_ids for r in ref]
    for row in fast:
        json.loads(tok.decode(row.token_ids, skip_special_tokens=True))  # the grammar held
    # the same grammar without its tokenizer drafts nothing: one token per forward, same text
    plain = generate_ar(lm.engine, ps, eos_token_ids=lm.eos_token_ids, pad_token_id=lm.pad_token_id,
                        max_new_tokens=caps, constraint=RegexConstraint([index] * len(ps), tok.eos_token_id))
    assert [r.token_ids for r in plain] == [r.token_ids for r in ref]
    assert all(r.forward_passes == r.generated_tokens + (r.finish_reason == "eos") for r in plain)
    # forced runs came in one forward each (a random tiny model often prefers a shorter tokenization
    # than the drafted one, so the real model's rate is measured in benchmarks/pipeline.py)
    assert sum(r.forward_passes for r in fast) < 0.9 * sum(r.forward_passes for r in plain)


def test_sampled_constrained_decode_is_seeded_and_keeps_the_grammar(smollm2_vocab_model):
    lm = smollm2_vocab_model
    tok = lm.tokenizer
    ps = [chat_ids(tok, "Write a plan.")] * 2
    index = regex_index(tok, schema_regex(SCHEMA))
    runs = [generate_ar(lm.engine, ps, eos_token_ids=lm.eos_token_ids, pad_token_id=lm.pad_token_id,
                        config=ARConfig(temperature=1.0), seeds=[1, 2], max_new_tokens=[120, 120],
                        constraint=RegexConstraint([index] * 2, tok.eos_token_id, tokenizer=tok)) for _ in range(2)]
    assert [r.token_ids for r in runs[0]] == [r.token_ids for r in runs[1]]
    for row in runs[0]:
        if row.finish_reason == "eos":
            json.loads(tok.decode(row.token_ids, skip_special_tokens=True))


# -- the cost table ------------------------------------------------------------------------------------

def test_cost_table_picks_wide_steps_only_where_they_pay():
    flat = CostTable({(1, 1): 30.0, (1, 16): 32.0, (8, 1): 40.0, (8, 16): 60.0, (32, 16): 400.0})
    steep = CostTable({(1, 1): 30.0, (1, 16): 120.0, (8, 1): 40.0, (8, 16): 400.0})
    assert flat.best_drafts(1, 3, TREE, accept_rate=0.6) == 3  # 16 tokens for ~1x: draft all
    assert steep.best_drafts(8, 3, TREE, accept_rate=0.6) == 0  # 10x the cost for < 2.5x the tokens
    assert flat.best_drafts(1, 3, TREE, accept_rate=0.0) == 0  # drafts never accepted: never worth it
    assert flat.cost(2, 4) == flat.ms[(8, 16)]  # the nearest measured point at or above
    assert flat.cost(64, 16) == pytest.approx(800.0)  # beyond the table: scaled by tokens


def test_cost_table_is_measured_once_and_cached(tmp_path):
    bm = PackedBlockModel(tiny_model("tiny-llama"))
    table = CostTable.calibrate(bm, batches=(1, 2), tokens=(1, 4), prefix=8, repeats=1, key="tiny")
    assert set(table.ms) == {(1, 1), (1, 4), (2, 1), (2, 4)} and all(v > 0 for v in table.ms.values())
    assert CostTable.from_json(table.to_json()).ms == pytest.approx(table.ms, abs=1e-3)  # saved to 3 decimals of a ms
    saved = cached_cost_table(bm, tmp_path, "tiny llama/fp32")
    assert len(list(tmp_path.iterdir())) == 1
    again = cached_cost_table(bm, tmp_path, "tiny llama/fp32")
    assert again.ms == pytest.approx(saved.ms, abs=1e-3) and again.measured_s == pytest.approx(saved.measured_s)


def test_a_disturbed_calibration_point_never_makes_a_wider_step_look_cheaper():
    ms = monotone({(1, 1): 30.0, (1, 16): 20.0, (4, 1): 90.0, (4, 16): 50.0})  # (1, 1) and (4, 1) were disturbed
    assert ms == {(1, 1): 30.0, (1, 16): 30.0, (4, 1): 90.0, (4, 16): 90.0}


def test_budget_width_fits_the_step_in_the_budget():
    width = budget_width(9)
    assert width(1, 2, TREE) == 2 and step_tokens(2, TREE) == 9
    assert width(2, 2, TREE) == 1 and width(5, 2, TREE) == 0
    assert budget_width(None)(100, 3, TREE) == 3


# -- the row cache's mask --------------------------------------------------------------------------------

def test_row_cache_masks_padding_stale_slots_and_the_span_pattern():
    cache = RowKVCache(1, 2, 1, 2, 10, torch.tensor([1, 0]), torch.float32, torch.device("cpu"))
    cache.lengths = [3, 5]  # row 0: slot 0 is padding; rows differ in length
    new = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)[None].expand(2, -1, -1)  # causal over 2 new tokens
    cache.begin(new)
    mask = cache._mask[:, 0].int()  # (R, Tq, S), S = 5 + 2
    assert mask[0].tolist() == [[0, 1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0, 0]]
    assert mask[1].tolist() == [[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]]


# -- prepared linear layouts and the dtype choice ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 1, 7), (3, 5, 7), (2, 33, 64)])
def test_prepared_linear_equals_the_plain_product(dtype, shape):
    torch.manual_seed(1)
    w, b = torch.randn(13, shape[-1], dtype=dtype), torch.randn(13, dtype=dtype)
    x = torch.randn(*shape, dtype=dtype)
    for bias in (None, b):
        got, want = PreparedLinear(w, bias)(x), reference(x, w, bias)
        assert got.shape == want.shape and got.dtype == dtype
        torch.testing.assert_close(got.float(), want.float(), atol=2e-2 if dtype == torch.bfloat16 else 1e-5,
                                   rtol=2e-2 if dtype == torch.bfloat16 else 1e-5)
    layer = PreparedLinear(w)
    assert layer.kind == ("onednn" if dtype == torch.bfloat16 and onednn_bf16_available() else "transposed")


def test_auto_dtype_is_bf16_exactly_where_the_cpu_has_bf16_units():
    flags = open("/proc/cpuinfo").read().split()
    assert cpu_has_bf16() == ("amx_bf16" in flags or "avx512_bf16" in flags)
    assert resolve_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (scripts/gpu/engine.sh runs it on a GPU machine)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_engine_on_cuda_equals_the_reference(dtype):
    m = tiny_model("tiny-llama", dtype=dtype).cuda()
    ps, caps = prompts(4), [12] * 4
    ref = generate_ar_reference(m, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    fast = generate_ar(PackedBlockModel(m), ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    agree = sum(a.token_ids == b.token_ids for a, b in zip(fast, ref))
    assert agree == len(ps) if dtype == torch.float32 else agree >= len(ps) // 2  # bf16: ties may break either way


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (scripts/gpu/engine.sh runs it on a GPU machine)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_replays_equal_the_eager_static_step(dtype):
    from generators.decoding.cuda_graphs import GraphedModel

    packed = PackedBlockModel(tiny_model("tiny-llama", dtype=dtype).cuda())
    ps, caps = prompts(5), [6, 14, 9, 14, 3]
    eager = generate_ar(GraphedModel(packed, capture=False), ps, eos_token_ids=[-1], pad_token_id=0,
                        max_new_tokens=caps)
    graphed = GraphedModel(packed)
    replayed = generate_ar(graphed, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    assert graphed.captures == 5 and graphed.replays == max(caps)  # prefill + 4 batch sizes; every forward replayed
    assert [r.token_ids for r in replayed] == [r.token_ids for r in eager]  # the same kernels, replayed


def test_prompt_lookup_finds_the_latest_earlier_occurrence_never_itself():
    index = LookupIndex(PromptLookup(most=4, longest_ngram=3, shortest_ngram=2), [[1, 2, 3, 9, 1, 2, 3, 7, 8]])
    # the prompt ends in 7 8; "7 8" occurred nowhere earlier, so there is nothing to copy
    assert index.draft(0, [], 4) == []
    # the output goes on 1 2 3: its latest earlier occurrence (after 9) is followed by 7 8 1 2
    assert index.draft(0, [1, 2, 3], 4) == [7, 8, 1, 2]
    assert index.draft(0, [1, 2, 3], 1) == [7]  # the width policy's limit
    # "3 5" is new, the bigram "9 1" is not: the shorter n-gram is the fallback
    assert index.draft(0, [1, 2, 3, 5, 9, 1], 2) == [2, 3]
    with pytest.raises(ValueError, match="rewritten"):
        index.draft(0, [4], 2)
    with pytest.raises(ValueError, match="n-gram sizes"):
        PromptLookup(longest_ngram=1, shortest_ngram=2)


@pytest.mark.parametrize("batch", [1, 5])
def test_prompt_lookup_drafts_change_speed_never_output(model, batch):
    # long continuations of repetitive prompts: the random tiny models repeat a few n-grams of their
    # context within 120 tokens, enough for some drafts to be accepted
    ps = [chat_ids(TOK, (TEXTS[i % len(TEXTS)] + " ") * 6) for i in range(batch)]
    caps = [120] * batch
    ref = generate_ar_reference(model, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    plain = generate_ar(model, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    looked = generate_ar(model, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps,
                         lookup=PromptLookup(most=6))
    assert [r.token_ids for r in looked] == [r.token_ids for r in plain] == [r.token_ids for r in ref]
    assert sum(r.forward_passes for r in looked) < sum(r.forward_passes for r in plain)
    # with the adapter's drafts too (the refiner's case), and under a no-drafts width: still the same output
    both = generate_verified(model, ps, family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1],
                             pad_token_id=0, drafts=3, max_new_tokens=caps, lookup=PromptLookup(most=6))
    assert [r.token_ids for r in both] == [r.token_ids for r in ref]
    none = generate_ar(model, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps,
                       lookup=PromptLookup(most=6), width=budget_width(1))
    assert [r.token_ids for r in none] == [r.token_ids for r in ref]
    assert [r.forward_passes for r in none] == caps


def test_the_cost_width_learns_the_acceptance_rate_per_decode_call():
    table = CostTable({(1, 1): 10.0, (1, 4): 12.0, (1, 16): 30.0, (8, 1): 20.0, (8, 4): 40.0, (8, 16): 150.0})
    shared = cost_width(table, 0.5)
    assert shared(1, 8, NO_BLOCKS) > 0
    call = shared.fresh()
    for _ in range(20):
        call.observe(proposed=8, accepted=0)  # free prose: no copy is ever right
    assert call.accept_rate < 0.1 and call(1, 8, NO_BLOCKS) == 0
    assert shared.accept_rate == 0.5 and shared.fresh().accept_rate == 0.5  # other calls start from the prior
    copying = shared.fresh()
    for _ in range(20):
        copying.observe(proposed=8, accepted=8)
    assert copying(1, 8, NO_BLOCKS) >= shared(1, 8, NO_BLOCKS)


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
def test_the_graph_ready_static_step_equals_the_plain_engine(arch):
    """GraphedModel with capture off runs the CUDA-graph bookkeeping eagerly on CPU: the static row
    cache (attention over every slot, buffers filled in place), one recording per step shape, new
    recordings once rows leave the batch. The captured replay is held to this on a GPU (engine.sh)."""
    from generators.decoding.cuda_graphs import GraphedModel

    ps = prompts(5)
    caps = [6, 14, 9, 14, 3]  # rows leave at different steps: the cache reallocates, the graphs go stale
    base, peft_model = with_random_lora(arch, dtype=torch.float32, seed=3)
    packed = PackedBlockModel(base)
    graphed = GraphedModel(packed, capture=False)
    ar = generate_ar(packed, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    ar_static = generate_ar(graphed, ps, eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
    assert [r.token_ids for r in ar_static] == [r.token_ids for r in ar]
    # prefill + one AR step shape per batch size the decode went through (5, 4, 3, 1 rows live)
    assert graphed.captures == 1 + 4
    adapted = packed.with_lora(lora_factors_of(peft_model))
    graphed_adapted = graphed.with_lora(lora_factors_of(peft_model))  # the refiner's view, graphed too
    kw = dict(family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1], pad_token_id=0, drafts=2,
              max_new_tokens=caps, lookup=PromptLookup(most=3))
    assert [r.token_ids for r in generate_verified(graphed_adapted, ps, **kw)] == \
        [r.token_ids for r in generate_verified(adapted, ps, **kw)] == [r.token_ids for r in ar]
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedModel(packed, capture=True)


def test_a_watcher_hears_each_row_finish_as_it_leaves_the_batch(model):
    from generators.decoding.progress import watching

    heard: list[int] = []
    caps = [3, 7, 3, 5]  # rows leave at steps 3, 5 and 7
    with watching(heard.append):
        generate_ar(model, prompts(4), eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
        with watching(None):  # an inner block watched by no one
            generate_ar(model, prompts(2), eos_token_ids=[-1], pad_token_id=0, max_new_tokens=[2, 2])
    assert heard == [2, 1, 1]
    generate_ar(model, prompts(1), eos_token_ids=[-1], pad_token_id=0, max_new_tokens=[2])
    assert heard == [2, 1, 1], "outside the block nothing is reported"
