"""Model loading and decoders (AR and block diffusion). Knows token ids and models, not jobs or queues."""
