"""Overlapping windows: a fixed-length generator covers any length, and neighbouring windows
cross-fade over their overlap so that no seam shows.

Window i covers frames [starts[i], starts[i] + window); consecutive windows share ``overlap``
frames, over which the earlier window's frames fade out and the later one's fade in (raised
cosine). The later window is also conditioned on the frames before its start, so both agree
closely there already.
"""

from __future__ import annotations

import numpy as np


def window_starts(n_frames: int, window: int, overlap: int) -> list[int]:
    """Start frame of every window needed to cover ``n_frames``."""
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    stride = window - overlap
    return list(range(0, max(n_frames - overlap, 1), stride))


def fade_in(overlap: int) -> np.ndarray:
    """(overlap,) weights of the later window across the overlap, rising from 0 to 1."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)


def join(out: np.ndarray, start: int, chunk: np.ndarray, overlap: int, first: bool) -> None:
    """Write ``chunk`` (frames from ``start``) into ``out`` (T, ...), cross-fading its first
    ``overlap`` frames with what is already there unless it is the ``first`` window."""
    end = min(start + len(chunk), len(out))
    chunk = chunk[: end - start]
    if first or overlap == 0:
        out[start:end] = chunk
        return
    m = min(overlap, end - start)
    w = fade_in(overlap)[:m].reshape((m,) + (1,) * (chunk.ndim - 1))
    out[start : start + m] = (1 - w) * out[start : start + m] + w * chunk[:m]
    out[start + m : end] = chunk[m:]
