"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DEVDATA = ROOT.parent / "shared" / "devdata"


def tone(seconds: float, rate: int = 16_000, freq: float = 200.0, amp: float = 0.3) -> np.ndarray:
    """A harmonic tone (voiced, speech-like spectrum) as float32."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 12))
    return (amp * wave / np.abs(wave).max()).astype(np.float32)


def devdata(*parts: str) -> Path:
    """A file in ../shared/devdata, or skip the test when that folder is absent."""
    path = DEVDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"devdata not available ({path})")
    return path
