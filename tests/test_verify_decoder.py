"""Draft-and-verify decoder: its output is the model's own greedy AR output, token for token."""

from __future__ import annotations

import pytest
import torch

from generators.decoding.families import get_family
from generators.decoding.layers import ModelShape
from generators.decoding.model import PackedBlockModel
from generators.decoding.proposals import DecodeConfig
from generators.decoding.reference_block import reference_greedy
from generators.decoding.proposals import banned_next_tokens
from generators.decoding.verify import generate_verified, span_mask
from tests.diffusion_helpers import MASK, PROMPTS, model, with_random_lora


def verified(m, prompts=PROMPTS, *, drafts=3, tree=True, eos=(-1,), caps=None, stop_checker=None, seeds=None,
             **config):
    cfg = DecodeConfig(**{"max_new_tokens": 13, **config})
    return generate_verified(m, prompts, family=get_family("tiny-shifted"), mask_token_id=MASK,
                             eos_token_ids=list(eos), pad_token_id=0, config=cfg, drafts=drafts, tree=tree,
                             max_new_tokens=caps, stop_checker=stop_checker, seeds=seeds)


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("drafts,tree", [(1, True), (3, True), (3, False), (5, True)])
def test_output_equals_greedy_ar(arch, drafts, tree):
    m = model(arch)
    caps = [13, 7, 20]
    fast = verified(m, drafts=drafts, tree=tree, caps=caps)
    ref = reference_greedy(m, PROMPTS, eos_token_ids=[-1], max_new_tokens=caps)
    assert [r.token_ids for r in fast] == [r.token_ids for r in ref]
    assert [r.finish_reason for r in fast] == ["length"] * 3
    # packed weights (the CPU fast path) decode the same
    packed = verified(PackedBlockModel(m), drafts=drafts, tree=tree, caps=caps)
    assert [r.token_ids for r in packed] == [r.token_ids for r in fast]


def test_eos_stop_sequences_and_no_repeat_match_the_reference():
    m = model("tiny-llama")
    plain = reference_greedy(m, PROMPTS, eos_token_ids=[-1], max_new_tokens=[16] * 3)
    eos = plain[0].token_ids[5]  # a token row 0 really produces
    stop_at = plain[1].token_ids[3]

    def checker(row, tokens):  # stop (and cut) at the first occurrence of one token, as stop sequences do
        return tokens.index(stop_at) if row == 1 and stop_at in tokens else None

    for kw in (dict(eos_token_ids=[eos]), dict(eos_token_ids=[-1], stop_checker=checker),
               dict(eos_token_ids=[-1], no_repeat_ngram=2)):
        fast = verified(m, caps=[16] * 3, eos=kw["eos_token_ids"], stop_checker=kw.get("stop_checker"),
                        no_repeat_ngram=kw.get("no_repeat_ngram", 0))
        ref = reference_greedy(m, PROMPTS, max_new_tokens=[16] * 3, **kw)
        assert [(r.token_ids, r.finish_reason) for r in fast] == [(r.token_ids, r.finish_reason) for r in ref], kw
    # the no-repeat rule changed something: the tiny model repeats bigrams ("91 239 ... 91 239")
    assert [r.token_ids for r in fast] != [r.token_ids for r in plain]


def test_rows_decode_alone_as_in_a_batch_and_sampling_is_seeded():
    m = model("tiny-qwen2")
    batch = verified(m)
    for p, r in zip(PROMPTS, batch):
        assert verified(m, [p])[0].token_ids == r.token_ids
    a = verified(m, temperature=1.0, seeds=[1, 2, 3])
    b = verified(m, temperature=1.0, seeds=[1, 2, 3])
    c = verified(m, temperature=1.0, seeds=[4, 5, 6])
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    assert [r.token_ids for r in a] != [r.token_ids for r in c]


class PositionModel:
    """A fake BlockModel whose next token is a function of the position only, so a draft is right
    unless the model is told to blunder: drafted (masked-input) predictions for positions in
    `wrong` are off by one. The causal prediction is always right."""

    V = 50

    def __init__(self, wrong=frozenset()):
        self.shape = ModelShape(1, 1, 1, 1, self.V)
        self.wrong = wrong

    @staticmethod
    def token_at(p: int) -> int:
        return 5 + (p * 7) % 40

    def forward(self, ids, positions, cache, **kw):
        target = positions + 1  # shifted: position p predicts p + 1
        tokens = torch.tensor([[self.token_at(int(p)) for p in row] for row in target])
        blunder = torch.tensor([[int(p) in self.wrong for p in row] for row in target]) & (ids == MASK)
        return (tokens + blunder.long()).float()[..., None]  # (R, T, 1): the chosen token id

    def logits(self, hidden):
        return torch.nn.functional.one_hot(hidden[..., 0].long(), self.V).float()

    dtype = torch.float32
    device = torch.device("cpu")


@pytest.mark.parametrize("tree", [True, False])
def test_accepted_drafts_and_tokens_per_forward(tree):
    prompt = [[9, 9, 9]]  # positions 0-2; the output starts at position 3
    expected = [PositionModel.token_at(p) for p in range(3, 3 + 13)]
    perfect = verified(PositionModel(), prompt, drafts=3, tree=tree)[0]
    assert perfect.token_ids == expected
    # prefill: 1 token, then every step accepts 3 drafts + the bonus: 1 + 4 + 4 + 4 = 13 in 4 forwards
    assert perfect.forward_passes == 4
    flawed = verified(PositionModel(wrong=frozenset({6, 11})), prompt, drafts=3, tree=tree)[0]
    assert flawed.token_ids == expected  # wrong drafts are rejected, never delivered
    assert perfect.forward_passes < flawed.forward_passes < 13


def test_tree_keeps_drafting_after_a_rejection():
    prompt = [[9, 9, 9]]
    wrong = frozenset({5, 9, 13})
    with_tree = verified(PositionModel(wrong), prompt, drafts=3, tree=True)[0]
    without = verified(PositionModel(wrong), prompt, drafts=3, tree=False)[0]
    assert with_tree.token_ids == without.token_ids
    assert with_tree.forward_passes < without.forward_passes


def test_span_mask_pattern():
    c_valid = torch.tensor([[True, True, False]])  # a run of 2 real slots + 1 padding slot
    attach = torch.tensor([[0, 1]])
    live = torch.tensor([[True, True]])
    m = span_mask(c_valid, attach, live, block=2)[0].int()  # (7, 7)
    assert m.tolist() == [
        [1, 0, 0, 0, 0, 0, 0],  # run slot 0: itself
        [1, 1, 0, 0, 0, 0, 0],  # run slot 1: causal
        [0, 0, 1, 0, 0, 0, 0],  # padding: only itself
        [1, 0, 0, 1, 1, 0, 0],  # block attached at 0: run slot 0 + its own block
        [1, 0, 0, 1, 1, 0, 0],
        [1, 1, 0, 0, 0, 1, 1],  # block attached at 1
        [1, 1, 0, 0, 0, 1, 1],
    ]


def test_banned_next_tokens():
    assert banned_next_tokens([1, 2, 3, 1, 2], 3) == [3]
    assert banned_next_tokens([1, 2, 1, 2, 1, 4, 1], 2) == [2, 2, 4]
    assert banned_next_tokens([1], 3) == []


def test_bad_arguments_are_named():
    m = model("tiny-llama")
    with pytest.raises(ValueError, match="shifted family"):
        generate_verified(m, PROMPTS, family=get_family("tiny-unshifted"), mask_token_id=MASK, eos_token_ids=[-1],
                          pad_token_id=0)
    with pytest.raises(ValueError, match="drafts must be >= 1"):
        verified(m, drafts=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        verified(m, caps=[1, 0, 1])


@pytest.mark.parametrize("arch", ["tiny-llama", "tiny-qwen2"])
def test_the_adapter_drafts_and_the_base_model_decides(arch):
    import copy

    from generators.adapter_io import lora_factors_of
    from generators.decoding.model import ModuleBlockModel

    base, peft_model = with_random_lora(arch, seed=1)
    merged = copy.deepcopy(peft_model).merge_and_unload()
    caps = [12, 12, 12]
    base_greedy = [r.token_ids for r in reference_greedy(base, PROMPTS, eos_token_ids=[-1], max_new_tokens=caps)]
    adapted_greedy = [r.token_ids for r in reference_greedy(merged, PROMPTS, eos_token_ids=[-1], max_new_tokens=caps)]
    assert base_greedy != adapted_greedy  # the adapter changes what the model would write
    packed = PackedBlockModel(base, lora=lora_factors_of(peft_model))
    for bm in (packed, ModuleBlockModel(peft_model)):
        on_base = generate_verified(bm, PROMPTS, family=get_family("tiny-shifted"), mask_token_id=MASK,
                                    eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps)
        assert [r.token_ids for r in on_base] == base_greedy
        adapted = generate_verified(bm, PROMPTS, family=get_family("tiny-shifted"), mask_token_id=MASK,
                                    eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps, verify_on_base=False)
        assert [r.token_ids for r in adapted] == adapted_greedy


@pytest.mark.parametrize("budget", [1, 10, 25, None])
def test_forward_budget_changes_speed_never_output(budget):
    m = model("tiny-llama")
    caps = [14, 9, 17]
    ref = reference_greedy(m, PROMPTS, eos_token_ids=[-1], max_new_tokens=caps)
    for tree in (True, False):
        out = generate_verified(m, PROMPTS, family=get_family("tiny-shifted"), mask_token_id=MASK, eos_token_ids=[-1],
                                pad_token_id=0, max_new_tokens=caps, drafts=3, tree=tree, forward_budget=budget)
        assert [r.token_ids for r in out] == [r.token_ids for r in ref], (budget, tree)
        if budget == 1:  # no room for a draft: every forward is one AR step
            assert [r.forward_passes for r in out] == caps


def test_budget_drafts_more_as_rows_finish():
    # a tree step with d drafts holds (1+d) + (d+1)*d tokens per row: 4 at d=1, 9 at d=2, 16 at d=3.
    # While three rows are live both budgets allow d=1 (12 tokens); the last row alone drafts 2 under a
    # budget of 12 and 3 under 16, so it needs fewer forwards there
    prompt = [[9, 9, 9]]
    rows = prompt * 3
    caps = [3, 3, 20]
    tight = generate_verified(PositionModel(), rows, family=get_family("tiny-shifted"), mask_token_id=MASK,
                              eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps, drafts=3, forward_budget=12)
    loose = generate_verified(PositionModel(), rows, family=get_family("tiny-shifted"), mask_token_id=MASK,
                              eos_token_ids=[-1], pad_token_id=0, max_new_tokens=caps, drafts=3, forward_budget=16)
    expected = [PositionModel.token_at(p) for p in range(3, 23)]
    assert tight[2].token_ids == loose[2].token_ids == expected
    assert loose[2].forward_passes < tight[2].forward_passes


def test_edge_cases_match_the_reference():
    m = model("tiny-qwen2")
    prompts = [[5], PROMPTS[1], [7, 8]]  # a one-token prompt beside a long one
    plain = reference_greedy(m, prompts, eos_token_ids=[-1], max_new_tokens=[6, 6, 6])
    first = plain[2].token_ids[0]
    cases = [
        dict(caps=[1, 1, 1]),  # every row done by the prefill
        dict(caps=[1, 9, 4]),
        dict(caps=[6, 6, 6], eos=(first,)),  # row 2 ends at its first token (nothing delivered)
        dict(caps=[6, 6, 6], stop_checker=lambda row, toks: 0 if toks else None),  # cut before anything
    ]
    for case in cases:
        fast = verified(m, prompts, caps=case["caps"], eos=case.get("eos", (-1,)), stop_checker=case.get("stop_checker"))
        ref = reference_greedy(m, prompts, eos_token_ids=list(case.get("eos", (-1,))), max_new_tokens=case["caps"],
                               stop_checker=case.get("stop_checker"))
        assert [(r.token_ids, r.finish_reason) for r in fast] == [(r.token_ids, r.finish_reason) for r in ref], case
    assert verified(m, prompts, caps=[6, 6, 6], eos=(first,))[2].token_ids == []
    assert verified(m, []) == []
