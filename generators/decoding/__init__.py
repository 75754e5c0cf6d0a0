"""The decode engine: every token the pipeline writes goes through this package.

One span's path: `ar.generate_ar` or `verify.generate_verified` (fronts) -> `engine.decode` (the loop)
-> `model.PackedBlockModel.forward` -> `layers.run_layers` -> `row_cache.RowKVCache.attend` ->
`kernels.registry.masked_attention`.

    engine.py          the loop: prefill, steps of [last token | drafts | draft blocks], verify, accept
    rows.py            the row lifecycle: caps, per-row RNG, EOS, stop rule, finished rows out
    row_cache.py       the engine's KV cache (per-row lengths, one mask per forward)
    model.py           the model protocol: HF modules (ModuleBlockModel) or prepared weights (PackedBlockModel)
    layers.py          the one layer loop, over module-backed or packed layers
    linear.py          a weight prepared for the device's fastest matmul (oneDNN bf16, transposed fp32)
    widths.py          drafts per step: a token budget, or the machine's measured forward cost table
    ar.py              plain AR (planner, spans, retries, fallback), with grammar jump-forward
    verify.py          draft-and-verify with a block-diffusion adapter as drafter
    refiner.py         the refiner: a family + the engine's weights + an adapter's factors
    families.py        diffusion families (mask token, logit shift)
    proposals.py       block-decoding config, token proposals, no-repeat rules
    commit_rules.py    which masked positions a block-diffusion step commits (threshold, factor, fixed-k)
    block_cache.py     the block decoder's block + sub-block KV cache
    block_state.py     the block decoder's per-row state
    block_decoder.py   the Fast-dLLM-style confidence-threshold decoder
    reference_ar.py    slow twin: the HF forward and DynamicCache, one token per forward
    reference_block.py slow twin of the block decoder: no cache, full forwards

The references share none of the engine's machinery; tests/test_engine.py, test_verify_decoder.py
and test_diffusion_parity.py hold the fast paths to them.
"""
