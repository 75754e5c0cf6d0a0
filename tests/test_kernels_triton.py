"""Triton kernels against their torch references: in Triton's interpreter on CPU (CI), natively on CUDA.

Shapes are small but awkward: lengths that are not multiples of the tiles, several GQA ratios,
rows with different cached lengths, block sizes 4-32, vocabularies off the tile size.
"""

from __future__ import annotations

import os

import pytest
import torch

from kernels import registry
from kernels.block_attention_torch import block_attention as attention_ref
from kernels.checks import KernelInputError
from kernels.confidence_torch import confidence as confidence_ref
from kernels.masked_attention_torch import masked_attention as masked_ref

triton = pytest.importorskip("triton")
from kernels.block_attention_triton import block_attention as attention_tri  # noqa: E402
from kernels.confidence_triton import confidence as confidence_tri  # noqa: E402
from kernels.masked_attention_triton import masked_attention as masked_tri  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Tolerances per dtype (outputs are O(1)): fp32 accumulation everywhere, inputs rounded to dtype.
TOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}

ATTENTION_CASES = [
    # rows, q heads, kv heads, active block (new tokens), clean span, cache_len, queries offset, head_dim
    (3, 9, 3, 4, 4, 37, 0, 64),    # SmolLM2's GQA 9/3, commit forward of a 4-token block
    (2, 4, 2, 8, 0, 70, 0, 32),    # draft block of 8 over a cache not a multiple of the tile
    (2, 6, 1, 16, 0, 5, 4, 48),    # multi-query, sub-block queries at offset 4, head_dim off pow2
    (1, 4, 4, 32, 0, 129, 0, 16),  # no GQA, block 32
    (3, 8, 2, 5, 5, 0, 0, 32),     # prefill: no cache, everything causal
]


def _inputs(case, dtype, seed=0):
    r, hq, hkv, block, clean, cache_len, q_offset, d = case
    g = torch.Generator().manual_seed(seed)
    tn = clean + block
    tq = tn - q_offset if q_offset else tn
    mk = lambda *shape: torch.randn(*shape, generator=g).to(dtype).to(DEVICE)  # noqa: E731
    q = mk(r, hq, tq, d)
    k_cache, v_cache = mk(r, hkv, cache_len + 7, d), mk(r, hkv, cache_len + 7, d)
    k_new, v_new = mk(r, hkv, tn, d), mk(r, hkv, tn, d)
    kv_start = torch.tensor([min(i * 3 % 13, cache_len) for i in range(r)], device=DEVICE)  # rows differ
    return (q, k_cache, v_cache, k_new, v_new, kv_start), dict(cache_len=cache_len, n_causal=clean, q_offset=q_offset)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", ATTENTION_CASES)
def test_block_attention_matches_reference(case, dtype):
    args, kw = _inputs(case, dtype)
    got = attention_tri(*args, **kw)
    want = attention_ref(*(a.float() if a.is_floating_point() else a for a in args), **kw)
    assert got.dtype == dtype and got.shape == want.shape
    torch.testing.assert_close(got.float(), want, rtol=TOL[dtype], atol=TOL[dtype])


def test_block_attention_zeroes_queries_that_see_nothing():
    q = torch.randn(1, 2, 2, 16, device=DEVICE)
    kv = torch.randn(1, 2, 4, 16, device=DEVICE)
    # kv_start beyond every key the two clean queries may see
    out = attention_tri(q, kv, kv, kv[:, :, :2], kv[:, :, :2], torch.tensor([9], device=DEVICE), cache_len=4,
                        n_causal=2)
    assert torch.equal(out, torch.zeros_like(out))


def test_block_attention_rejects_float64_and_bad_shapes():
    args, kw = _inputs(ATTENTION_CASES[0], torch.float32)
    with pytest.raises(KernelInputError, match="dtype torch.float64 unsupported"):
        attention_tri(*(a.double() if a.is_floating_point() else a for a in args), **kw)
    with pytest.raises(KernelInputError, match="multiple of KV heads"):
        attention_tri(args[0][:, :8], *args[1:], **kw)


MASKED_CASES = [
    # rows, q heads, kv heads, queries, keys (used cache slots), head_dim
    (1, 9, 3, 1, 130, 64),   # SmolLM2's GQA 9/3, one AR step over a long cache
    (3, 9, 3, 5, 40, 64),    # a verify forward of 5 tokens
    (3, 9, 3, 17, 130, 64),  # a wider one over a longer cache
    (3, 3, 1, 17, 130, 32),  # multi-query, 17 queries in a 32-row tile, keys 2 tiles + 2
    (1, 4, 4, 17, 40, 64),   # no GQA
    (3, 4, 4, 1, 7, 32),     # fewer keys than one tile
    (1, 3, 1, 5, 7, 64),
    (1, 2, 1, 5, 40, 128),   # the largest head_dim
]


def _masked_inputs(case, dtype, seed=0):
    """Random masks, denser in some rows than others, row 1 with a padded prefix longer than a key
    tile; query i always sees its own key, slot S - Tq + i (the new tokens end the buffer)."""
    r, hq, hkv, tq, s, d = case
    g = torch.Generator().manual_seed(seed)
    mk = lambda *shape: torch.randn(*shape, generator=g).to(dtype).to(DEVICE)  # noqa: E731
    q, k, v = mk(r, hq, tq, d), mk(r, hkv, s, d), mk(r, hkv, s, d)
    density = torch.tensor([0.5, 0.1, 0.9])[:r, None, None, None]
    mask = torch.rand(r, 1, tq, s, generator=g) < density
    if r > 1 and s > 64:
        mask[1, ..., : s - tq - 2] = False  # the first key tile fully hidden: the -inf rescaling
    i = torch.arange(tq)
    mask[:, :, i, s - tq + i] = True
    return q, k, v, mask.to(DEVICE)


@pytest.mark.parametrize("masked", [True, False], ids=["mask", "no-mask"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", MASKED_CASES)
def test_masked_attention_matches_reference(case, dtype, masked):
    q, k, v, mask = _masked_inputs(case, dtype)
    mask = mask if masked else None
    got = masked_tri(q, k, v, mask, scale=0.2)
    want = masked_ref(q.float(), k.float(), v.float(), mask, scale=0.2)
    assert got.dtype == dtype and got.shape == want.shape
    torch.testing.assert_close(got.float(), want, rtol=TOL[dtype], atol=TOL[dtype])


def test_masked_attention_reads_the_engines_buffer_slices():
    """As RowKVCache calls it: K/V the first S slots of a larger buffer, q a transposed view, and
    the default scale; an expanded (stride 0) mask reads the same as a materialised one."""
    q, k, v, mask = _masked_inputs((3, 9, 3, 5, 40, 64), torch.float32, seed=1)
    k_buf, v_buf = torch.zeros(3, 3, 100, 64, device=DEVICE), torch.zeros(3, 3, 100, 64, device=DEVICE)
    k_buf[:, :, :40], v_buf[:, :, :40] = k, v
    q_t = q.transpose(1, 2).contiguous().transpose(1, 2)  # (R, Hq, Tq, D) view of (R, Tq, Hq, D)
    want = masked_ref(q, k, v, mask)
    torch.testing.assert_close(masked_tri(q_t, k_buf[:, :, :40], v_buf[:, :, :40], mask), want,
                               rtol=TOL[torch.float32], atol=TOL[torch.float32])
    shared = mask[:1].expand(3, 1, 5, 40)
    torch.testing.assert_close(masked_tri(q, k, v, shared), masked_ref(q, k, v, shared),
                               rtol=TOL[torch.float32], atol=TOL[torch.float32])


@pytest.mark.parametrize("impl", [masked_ref, masked_tri], ids=["torch", "triton"])
def test_masked_attention_bad_shapes_raise_naming_them(impl):
    q, k, v, mask = _masked_inputs((3, 9, 3, 5, 40, 64), torch.float32)
    with pytest.raises(ValueError, match=r"q \(3, 8, 5, 64\), k \(3, 3, 40, 64\), v \(3, 3, 40, 64\) do not fit"):
        impl(q[:, :8], k, v, mask)  # 8 query heads over 3 KV heads
    with pytest.raises(ValueError, match=r"q \(3, 9, 5, 64\), k \(3, 3, 40, 32\)"):
        impl(q, k[..., :32], v[..., :32], mask)  # head sizes differ
    with pytest.raises(ValueError, match=r"mask \(3, 1, 5, 39\) should be \(3, 1, 5, 40\)"):
        impl(q, k, v, mask[..., :39])


def test_masked_attention_triton_refuses_what_it_cannot_run():
    q, k, v, mask = _masked_inputs((1, 2, 1, 3, 7, 48), torch.float32)
    with pytest.raises(ValueError, match=r"head_dim 48 unsupported; it must be a power of two up to 128"):
        masked_tri(q, k, v, mask)
    q, k, v, mask = _masked_inputs((1, 2, 1, 3, 7, 32), torch.float32)
    with pytest.raises(KernelInputError, match="dtype torch.float64 unsupported"):
        masked_tri(q.double(), k.double(), v.double(), mask)
    with pytest.raises(KernelInputError, match="mask must be bool"):
        masked_tri(q, k, v, mask.float())


def test_registry_picks_triton_masked_attention_on_cuda():
    with registry.use_backend("auto"):
        assert registry.resolve("masked_attention", on_cuda=True) == "triton"
        assert registry.resolve("masked_attention", on_cuda=False) == "torch"
    with registry.use_backend("triton"):
        assert registry.get("masked_attention", on_cuda=False) is masked_tri


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n,vocab,temperature", [(5, 1000, 1.0), (3, 4097, 0.7), (2, 49155, 1.3), (4, 31, 1.0)])
def test_confidence_matches_reference(n, vocab, temperature, dtype):
    logits = (torch.randn(n, vocab, generator=torch.Generator().manual_seed(vocab)) * 4).to(dtype).to(DEVICE)
    conf, idx = confidence_tri(logits, temperature)
    want_conf, want_idx = confidence_ref(logits, temperature)
    assert conf.dtype == torch.float32 and idx.dtype == torch.int64
    torch.testing.assert_close(conf, want_conf, rtol=1e-5, atol=1e-6)
    assert torch.equal(idx, want_idx)


def test_confidence_ties_go_to_the_first_index_across_tiles():
    logits = torch.zeros(2, 9000, device=DEVICE)
    logits[0, [10, 5000]] = 3.0  # same maximum in two different tiles
    logits[1, [8191, 8192]] = 2.0
    _, idx = confidence_tri(logits)
    assert idx.tolist() == [10, 8191]


def test_registry_picks_reference_on_cpu_and_can_force_either():
    q = torch.zeros(1, 1, 1, 4)
    if not torch.cuda.is_available():
        assert registry.resolve("block_attention", on_cuda=False) == "torch"
    with registry.use_backend("triton"):
        assert registry.get("confidence", on_cuda=False) is confidence_tri
        assert registry.get("block_attention", on_cuda=q.is_cuda) is attention_tri
    with registry.use_backend("torch"):
        assert registry.get("confidence", on_cuda=True) is confidence_ref
    assert registry.resolve("confidence", on_cuda=True) in {"triton", "torch"}


def test_registry_setting_is_validated():
    from pipeline.runtime import Runtime
    from pipeline.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="HYBRIDGEN_KERNELS='cuda-magic'"):
        Settings.from_env({"HYBRIDGEN_KERNELS": "cuda-magic"})
    with pytest.raises(ValueError, match="unknown kernel backend"):
        with registry.use_backend("fast"):
            pass
    try:
        Runtime(Settings(kernels="torch"))  # a worker's runtime sets the process default
        assert registry.current_backend() == "torch"
        assert registry.get("confidence", on_cuda=True) is confidence_ref
    finally:
        registry.set_default_backend("auto")


def test_the_refiner_decodes_the_same_through_the_triton_kernels():
    """The decoder calls only the registry: forcing Triton changes the kernels, not the tokens."""
    from tests.diffusion_helpers import decode, model

    m = model("tiny-llama", torch.float32).to(DEVICE)  # Triton runs where the tensors are
    with registry.use_backend("torch"):
        a = decode(m, block_size=4, sub_block_size=2, max_new_tokens=9)
    with registry.use_backend("triton"):
        b = decode(m, block_size=4, sub_block_size=2, max_new_tokens=9)
    assert [r.token_ids for r in a] == [r.token_ids for r in b]
    m.to("cpu")


@pytest.mark.cuda
def test_cuda_parity_at_benchmark_shapes():
    """On a GPU: the benchmark's shapes (batch 16, block 32, cache 2k) in bf16."""
    args, kw = _inputs((16, 9, 3, 32, 0, 2048, 0, 64), torch.bfloat16)
    got = attention_tri(*args, **kw)
    want = attention_ref(*(a.float() if a.is_floating_point() else a for a in args), **kw)
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
    logits = torch.randn(512, 151936, device="cuda", dtype=torch.bfloat16)
    conf, idx = confidence_tri(logits)
    want_conf, want_idx = confidence_ref(logits)
    torch.testing.assert_close(conf, want_conf, rtol=1e-4, atol=1e-6)
    assert (idx == want_idx).float().mean() > 0.999  # bf16 near-ties may break either way
    assert os.environ.get("TRITON_INTERPRET") != "1"


@pytest.mark.cuda
def test_cuda_masked_attention_at_engine_shapes():
    """On a GPU: a verify forward at batch 8 over a 300-slot cache, 32 queries, SmolLM2's heads, bf16."""
    q, k, v, mask = _masked_inputs((3, 9, 3, 32, 300, 64), torch.bfloat16)
    q, k, v, mask = (t.repeat(3, 1, 1, 1)[:8] for t in (q, k, v, mask))
    got = masked_tri(q, k, v, mask)
    want = masked_ref(q.float(), k.float(), v.float(), mask)
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)
