"""Regenerate the shipped examples: ``python examples/make_examples.py``.

- astronaut.png: scikit-image's copy of NASA's public-domain portrait of astronaut Eileen
  Collins (scikit-image ships it in its wheel).
- speech.wav: English speech made by espeak-ng through espeakng-loader, 16-bit mono.
Both are material the project may ship: no third-party recordings or photos.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from talkinghead.espeak import synthesize

HERE = Path(__file__).resolve().parent
TEXT = ("Hello, and welcome. This short clip was spoken by a speech synthesizer, "
        "and the face you see was animated from one still photo. "
        "Watch the lips, the blinks, and the small movements of the head.")


def main() -> None:
    import skimage

    shutil.copyfile(Path(skimage.__file__).parent / "data" / "astronaut.png", HERE / "astronaut.png")
    speech = synthesize(TEXT, "en-us+f3", rate=150, pitch=55, pitch_range=60)
    pcm = np.clip(speech.samples / max(float(np.abs(speech.samples).max()), 1e-6) * 0.9, -1, 1)
    sf.write(HERE / "speech.wav", pcm, speech.sample_rate, subtype="PCM_16")
    print(f"wrote {HERE / 'speech.wav'} ({len(pcm) / speech.sample_rate:.1f} s) and astronaut.png")


if __name__ == "__main__":
    main()
