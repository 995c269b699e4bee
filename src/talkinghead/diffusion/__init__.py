"""Diffusion, pure and model-agnostic: noise schedule, few-step sampler, classifier-free
guidance, and the overlapping windows that let a fixed-length denoiser cover any length."""
