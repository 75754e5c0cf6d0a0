"""Block-diffusion refiner: model adapters, hierarchical KV cache, decoding strategies, decoders."""
