"""The noise schedule: x_t = alpha(t) x_0 + sigma(t) noise, t in [0, 1] (cosine, variance
preserving: alpha^2 + sigma^2 = 1, pure noise at t = 1)."""

from __future__ import annotations

import math

import torch


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) at noise levels ``t``, same shape as ``t``."""
    angle = 0.5 * math.pi * t
    return torch.cos(angle), torch.sin(angle)


def timesteps(steps: int) -> torch.Tensor:
    """(steps + 1,) noise levels from 1 (pure noise) down to 0, evenly spaced."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1)
