"""talkinghead: one portrait photo and one speech recording in, a talking-head video out.

The public API (``talkinghead.api``): ``render`` for one video, ``Avatar`` for many clips of
one photo, ``reenact`` for video-driven motion. Importing the package is cheap: the API, and
torch behind it, load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "render": "talkinghead.api",
    "reenact": "talkinghead.api",
    "Avatar": "talkinghead.api",
    "Frame": "talkinghead.stream",
    "RenderResult": "talkinghead.pipeline",
    "RenderConfig": "talkinghead.config",
    "MotionSequence": "talkinghead.motionspace",
    "InputError": "talkinghead.errors",
    "TalkingHeadError": "talkinghead.errors",
}
__all__ = ["Avatar", "Frame", "InputError", "MotionSequence", "RenderConfig", "RenderResult",
           "TalkingHeadError", "__version__", "reenact", "render"]

if TYPE_CHECKING:
    from talkinghead.api import Avatar, reenact, render
    from talkinghead.config import RenderConfig
    from talkinghead.errors import InputError, TalkingHeadError
    from talkinghead.motionspace import MotionSequence
    from talkinghead.pipeline import RenderResult
    from talkinghead.stream import Frame


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'talkinghead' has no attribute {name!r}")
