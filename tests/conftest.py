"""Shared fixtures: the shipped examples, short clips made from them, and helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from .helpers import EXAMPLES


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
