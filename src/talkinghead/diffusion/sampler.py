"""Few-step deterministic sampler (DDIM, eta = 0) over a denoiser that predicts clean data.

``denoise(x, t)`` returns the clean estimate for noisy ``x`` at noise level ``t`` (a float);
guidance and conditioning are wrapped into it by the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from talkinghead.diffusion.schedule import alpha_sigma


@torch.no_grad()
def sample_ddim(denoise: Callable[[torch.Tensor, float], torch.Tensor], noise: torch.Tensor,
                ts: torch.Tensor) -> torch.Tensor:
    """Walk ``noise`` (at ts[0] = 1) down the noise levels ``ts`` to clean data."""
    x = noise
    for t, t_next in zip(ts[:-1].tolist(), ts[1:].tolist(), strict=True):
        x0 = denoise(x, t)
        a, s = alpha_sigma(torch.tensor(t))
        a_next, s_next = alpha_sigma(torch.tensor(t_next))
        eps = (x - a * x0) / s.clamp_min(1e-4)
        x = a_next * x0 + s_next * eps
    return x
