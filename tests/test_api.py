"""The public Python API: talkinghead.render and Avatar, against the command line."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import talkinghead
from talkinghead.mux import read_frames

from .helpers import EXAMPLES
from .test_cli import run


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two different stretches of the example speech."""
    data, rate = sf.read(EXAMPLES / "speech.wav")
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for name, (start, end) in (("one", (0.0, 1.6)), ("two", (3.0, 4.2))):
        path = folder / f"{name}.wav"
        sf.write(path, data[int(start * rate) : int(end * rate)], rate)
        paths.append(path)
    return paths


def decoded(path, size=128) -> np.ndarray:
    return np.concatenate(list(read_frames(path, size, size)))


def test_importing_the_package_and_its_api_loads_no_heavy_module():
    code = ("import sys, talkinghead; talkinghead.render, talkinghead.Avatar, talkinghead.RenderConfig; "
            "print(sorted(m for m in ('torch', 'mediapipe', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(AttributeError):
        talkinghead.no_such_thing  # noqa: B018


def test_options_are_checked_with_one_line_naming_them(photo, short_speech, tmp_path):
    for options, needle in (({"colour": "red"}, "unknown option 'colour'"), ({"fps": 0}, "--fps"),
                            ({"size": 255}, "even"), ({"gaze": "left"}, "--gaze"),
                            ({"head_distance": 9}, "--head-distance")):
        with pytest.raises(talkinghead.InputError, match=needle):
            talkinghead.render(photo, short_speech, tmp_path / "x.mp4", **options)
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
def test_an_avatar_renders_many_clips_as_the_cli_does(photo, clips, tmp_path, monkeypatch):
    """Two clips from one Avatar: the face is fitted once, and each video is the CLI's
    (same seed, same options), frame for frame and byte for byte; talkinghead.render too."""
    import talkinghead.face

    fits = []
    find_face = talkinghead.face.find_face
    monkeypatch.setattr(talkinghead.face, "find_face", lambda *a, **k: fits.append(1) or find_face(*a, **k))
    avatar = talkinghead.Avatar.from_photo(photo, size=128, device="cpu")
    assert avatar.size == (128, 128) and set(avatar.setup_seconds) >= {"face", "encode"}
    results = [avatar.render(clip, tmp_path / f"avatar_{clip.stem}.mp4", seed=5) for clip in clips]
    assert len(fits) == 1  # the setup was not redone for the second clip
    assert [r.frames for r in results] == [40, 30]
    with pytest.raises(talkinghead.InputError, match="fixed when the Avatar is made"):
        avatar.render(clips[0], tmp_path / "bigger.mp4", size=256)

    for clip in clips:
        cli_out = tmp_path / f"cli_{clip.stem}.mp4"
        proc = run("render", str(photo), str(clip), "-o", str(cli_out), "--size", "128",
                   "--seed", "5", "--device", "cpu", "-q")
        assert proc.returncode == 0, proc.stderr
        ours = tmp_path / f"avatar_{clip.stem}.mp4"
        np.testing.assert_array_equal(decoded(ours), decoded(cli_out))
        assert ours.read_bytes() == cli_out.read_bytes()
    one_call = talkinghead.render(photo, clips[1], tmp_path / "render.mp4", seed=5, size=128,
                                  device="cpu")
    assert one_call.settings == results[1].settings
    np.testing.assert_array_equal(decoded(one_call.output), decoded(results[1].output))
    other_seed = avatar.render(clips[1], tmp_path / "seed6.mp4", seed=6)
    assert not np.array_equal(decoded(other_seed.output), decoded(results[1].output))

    # frames(): the pictures the video holds (to codec noise), without ffmpeg.
    motion = avatar.motion(clips[1], seed=5)
    frames = np.stack(list(avatar.frames(motion)))
    assert frames.shape == (30, 128, 128, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - decoded(results[1].output)).mean() < 3.0
    # Motion passed in memory renders, and is part of the settings hash.
    still = avatar.render(clips[1], tmp_path / "given.mp4", motion=motion, seed=5)
    assert still.frames == 30 and still.settings != results[1].settings
