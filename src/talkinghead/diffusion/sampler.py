"""Few-step DDIM sampler over a denoiser that predicts clean data.

``denoise(x, t)`` returns the clean estimate for noisy ``x`` at noise level ``t`` (a float);
guidance and conditioning are wrapped into it by the caller. ``eta`` = 0 is the deterministic
sampler; ``eta`` = 1 re-draws at each step the share of noise that DDPM's ancestral sampler
would (``bench/spread.py`` measures what each does to the spread of the motion).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from talkinghead.diffusion.schedule import alpha_sigma


@torch.no_grad()
def sample_ddim(denoise: Callable[[torch.Tensor, float], torch.Tensor], noise: torch.Tensor,
                ts: torch.Tensor, *, eta: float = 0.0, generator: torch.Generator | None = None,
                step_noise: torch.Tensor | None = None) -> torch.Tensor:
    """Walk ``noise`` (at ts[0] = 1) down the noise levels ``ts`` to clean data.
    ``step_noise`` (len(ts) - 1, *noise.shape): the fresh noise of each step (eta > 0), in
    place of draws from ``generator`` (the streaming engine ties it to frames)."""
    x = noise
    for i, (t, t_next) in enumerate(zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True)):
        x0 = denoise(x, t)
        a, s = alpha_sigma(torch.tensor(t))
        a_next, s_next = alpha_sigma(torch.tensor(t_next))
        eps = (x - a * x0) / s.clamp_min(1e-4)
        fresh = 0.0
        if eta > 0 and t_next > 0:
            fresh = eta * (s_next / s.clamp_min(1e-4)) * torch.sqrt(
                (1 - (a / a_next.clamp_min(1e-4)) ** 2).clamp_min(0.0))
        x = a_next * x0 + torch.sqrt((s_next**2 - fresh**2).clamp_min(0.0)) * eps
        if eta > 0 and t_next > 0:
            drawn = (torch.randn(x.shape, generator=generator) if step_noise is None
                     else step_noise[i]).to(x.device)
            x = x + fresh * drawn
    return x
