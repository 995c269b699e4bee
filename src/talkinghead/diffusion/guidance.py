"""Classifier-free guidance with one scale per condition.

With three clean estimates, nothing given (``none``), audio only (``audio``) and audio with
controls (``full``):

    guided = none + w_audio * (audio - none) + w_controls * (full - audio)

w_audio = w_controls = 1 is the plain conditional estimate (one network pass instead of three).
"""

from __future__ import annotations

import torch


def guide(none: torch.Tensor, audio: torch.Tensor, full: torch.Tensor, *,
          w_audio: float | torch.Tensor, w_controls: float) -> torch.Tensor:
    """The guided estimate; ``w_audio`` is one scale or one per channel (D,)."""
    return none + w_audio * (audio - none) + w_controls * (full - audio)


def needs_branches(w_audio: float, w_controls: float) -> bool:
    """Whether guidance needs the unconditional branches at all."""
    return not (w_audio == 1.0 and w_controls == 1.0)
