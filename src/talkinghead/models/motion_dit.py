"""MotionDiT: a transformer denoiser over a window of motion frames (no I/O here).

Given noisy motion for a window, its noise level, the window's audio features, the K frames of
motion before the window and the controls (gaze, head distance, emotion), it predicts the clean
motion of the window. Conditions can be switched off one by one (``keep_*`` flags, learned null
embeddings in their place), which is what classifier-free guidance needs. ``forward`` is
``condition`` (the audio, context and controls embedded: the same for every sampler step of a
window) followed by ``denoise`` (the rest), so that a sampler embeds them once per window.

Dimensions: B batch, W window frames, K context frames, D motion channels, A audio features,
C width. Motion is normalised by the buffers ``motion_mean`` and ``motion_std`` (set from the
corpus and saved with the weights) before it reaches this network.

Slow channels (head pose, gaze, brows: ``MotionDiTConfig.slow``) are band-limited by
construction: the network's estimate for them passes a fixed Gaussian low-pass over time
(``slow_sigma`` frames) before it is returned, and the training loss sees the filtered
estimate. Real heads do not move at the frame rate, so this costs no real motion and removes
the frame-to-frame noise a few-step sampler otherwise leaves there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MotionDiTConfig:
    motion_dim: int = 41  # D: len(MOTION_NAMES)
    audio_dim: int = 128  # A: see generator.audio_conditioning
    window: int = 75  # W: frames generated at once (3 s at 25 fps)
    context: int = 10  # K: frames of the previous window the model sees
    width: int = 160  # C
    depth: int = 4  # transformer blocks
    heads: int = 4
    gaze_dim: int = 2
    emotion_dim: int = 5
    slow: tuple[int, ...] = ()  # channels that pass the low-pass (indices into D)
    slow_sigma: float = 0.0  # its Gaussian's standard deviation, frames (0: off)

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """(2r + 1,) normalised Gaussian taps, r = ceil(3 sigma)."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def low_pass(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """(B, W, S) filtered over W with ``taps`` (edges repeat the end frames)."""
    radius = (len(taps) - 1) // 2
    channels = x.shape[2]
    y = nn.functional.pad(x.transpose(1, 2), (radius, radius), mode="replicate")  # (B, S, W + 2r)
    kernel = taps.to(x)[None, None].expand(channels, 1, -1)  # (S, 1, 2r + 1)
    return nn.functional.conv1d(y, kernel, groups=channels).transpose(1, 2)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) in [0, 1] -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)  # (dim/2,)
    angles = 1000.0 * t[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class Block(nn.Module):
    """Pre-norm transformer block whose norms are scaled and shifted by the condition (adaLN)."""

    def __init__(self, *, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # h: (B, K+W, C), c: (B, C)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=2)
        x = self.norm1(h) * (1 + scale1) + shift1
        h = h + gate1 * self.attn(x, x, x, need_weights=False)[0]
        x = self.norm2(h) * (1 + scale2) + shift2
        return h + gate2 * self.mlp(x)


@dataclass(frozen=True)
class Conditions:
    """``MotionDiT.condition``'s output: the embedded audio (B, W, C), context (B, K, C) and
    controls (B, C), with the dropped ones replaced by their null embeddings."""

    audio: torch.Tensor
    context: torch.Tensor
    controls: torch.Tensor


class MotionDiT(nn.Module):
    def __init__(self, config: MotionDiTConfig) -> None:
        super().__init__()
        self.config = cfg = config
        c = cfg.width
        self.register_buffer("motion_mean", torch.zeros(cfg.motion_dim))
        self.register_buffer("motion_std", torch.ones(cfg.motion_dim))
        self.audio_in = nn.Linear(cfg.audio_dim, c)
        self.audio_conv = nn.Conv1d(c, c, kernel_size=5, padding=2)
        self.motion_in = nn.Linear(cfg.motion_dim, c)
        self.context_in = nn.Linear(cfg.motion_dim, c)
        self.position = nn.Parameter(torch.randn(cfg.context + cfg.window, c) * 0.02)
        self.null_audio = nn.Parameter(torch.zeros(c))
        self.null_context = nn.Parameter(torch.zeros(c))
        self.time_mlp = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, c))
        self.gaze_in = nn.Linear(cfg.gaze_dim, c)
        self.distance_in = nn.Linear(1, c)
        self.emotion_in = nn.Linear(cfg.emotion_dim, c)
        self.null_controls = nn.Parameter(torch.zeros(3, c))  # gaze, distance, emotion
        self.blocks = nn.ModuleList(Block(width=c, heads=cfg.heads) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(c)
        self.out = nn.Linear(c, cfg.motion_dim)
        self.slow = list(cfg.slow)
        if cfg.slow and cfg.slow_sigma > 0:
            self.register_buffer("slow_taps", gaussian_kernel(cfg.slow_sigma), persistent=False)
        else:
            self.slow_taps = None

    def forward(self, x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, context: torch.Tensor,
                gaze: torch.Tensor, distance: torch.Tensor, emotion: torch.Tensor, *,
                keep_audio: torch.Tensor, keep_context: torch.Tensor, keep_controls: torch.Tensor
                ) -> torch.Tensor:
        """Clean-motion estimate (B, W, D), normalised.

        x (B, W, D) noisy motion; t (B,) noise level in [0, 1]; audio (B, W, A); context (B, K, D);
        gaze (B, 2) degrees; distance (B,); emotion (B, 5); keep_audio, keep_context (B,) and
        keep_controls (B, 3) are 1 where the condition is given, 0 where it is dropped. W may be
        shorter than the window it learned: the first positions are used.
        """
        conditions = self.condition(audio, context, gaze, distance, emotion, keep_audio=keep_audio,
                                    keep_context=keep_context, keep_controls=keep_controls)
        return self.denoise(x, t, conditions)

    def condition(self, audio: torch.Tensor, context: torch.Tensor, gaze: torch.Tensor,
                  distance: torch.Tensor, emotion: torch.Tensor, *, keep_audio: torch.Tensor,
                  keep_context: torch.Tensor, keep_controls: torch.Tensor) -> Conditions:
        """What ``forward`` makes of everything but the noisy motion and its level: the same for
        every sampler step of a window, so a sampler computes it once (``denoise``)."""
        a = self.audio_in(audio)  # (B, W, C)
        a = a + self.audio_conv(a.transpose(1, 2)).transpose(1, 2)  # (B, W, C)
        ka = keep_audio[:, None, None]
        a = ka * a + (1 - ka) * self.null_audio  # (B, W, C)
        k = self.context_in(context)  # (B, K, C)
        kc = keep_context[:, None, None]
        k = kc * k + (1 - kc) * self.null_context  # (B, K, C)
        controls = torch.stack([self.gaze_in(gaze / 10.0), self.distance_in((distance - 1.0)[:, None] * 4.0),
                                self.emotion_in(emotion)], dim=1)  # (B, 3, C)
        kk = keep_controls[:, :, None]  # (B, 3, 1)
        controls = kk * controls + (1 - kk) * self.null_controls  # (B, 3, C)
        return Conditions(audio=a, context=k, controls=controls.sum(dim=1))

    def denoise(self, x: torch.Tensor, t: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        """``forward`` on ``condition``'s output: the clean-motion estimate (B, W, D) for the
        noisy motion x (B, W, D) at noise levels t (B,)."""
        cfg = self.config
        k = conditions.context
        h = torch.cat([k, self.motion_in(x) + conditions.audio], dim=1)  # (B, K+W, C)
        h = h + self.position[: h.shape[1]]
        c = self.time_mlp(timestep_embedding(t, cfg.width)) + conditions.controls  # (B, C)
        for block in self.blocks:
            h = block(h, c)
        estimate = self.out(self.norm_out(h[:, cfg.context :]))  # (B, W, D)
        if self.slow_taps is None:
            return estimate
        estimate = estimate.clone()
        estimate[:, :, self.slow] = low_pass(estimate[:, :, self.slow], self.slow_taps)
        return estimate
