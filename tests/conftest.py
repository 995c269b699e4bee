"""Shared fixtures: the shipped examples, short clips made from them, and helpers."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import soundfile as sf

from .helpers import EXAMPLES

# A shell starts a background job (`make test &`, nohup) with SIGINT ignored, and children
# inherit that: the tests that interrupt a render or a batch with SIGINT would then see it
# finish with 0. Handle SIGINT in the test process, so its children get the default.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def photo() -> Path:
    return EXAMPLES / "astronaut.png"


@pytest.fixture(scope="session")
def speech() -> Path:
    return EXAMPLES / "speech.wav"


@pytest.fixture(scope="session")
def short_speech(tmp_path_factory: pytest.TempPathFactory, speech: Path) -> Path:
    """The first 1.6 s of the example speech: enough for a word or two, quick to render."""
    data, rate = sf.read(speech)
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    sf.write(path, data[: int(1.6 * rate)], rate)
    return path


@pytest.fixture(scope="session")
def portrait(photo: Path):
    from talkinghead.load import load_portrait

    return load_portrait(photo)


@pytest.fixture(scope="session")
def face(portrait):
    from talkinghead.face import find_face

    return find_face(portrait)


@pytest.fixture(scope="session")
def encoded(portrait, face):
    """(Appearance, source MotionSequence) of the example photo at 256 px, for speed."""
    from talkinghead.encode import encode

    return encode(portrait, face, size=256)


@pytest.fixture(scope="session")
def renderer(encoded):
    from talkinghead.renderer import MeshWarpRenderer

    appearance, source = encoded
    return MeshWarpRenderer(appearance, source)
