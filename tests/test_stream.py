"""The streaming engine: the same features, motion and frames whatever the chunking, the
first frame long before the audio ends, and no seam where windows join."""

import numpy as np
import pytest

import talkinghead
from talkinghead.audio import FeatureStream, audio_features
from talkinghead.config import DEFAULT_WEIGHTS
from talkinghead.controls import Controls
from talkinghead.load import load_audio
from talkinghead.motionspace import MOTION_NAMES, MotionSequence

from .helpers import EXAMPLES


def pieces(samples: np.ndarray, seed: int, largest: int = 4000) -> list[np.ndarray]:
    """``samples`` cut at random places (pieces of 1 to ``largest`` samples)."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, largest, size=len(samples)))
    cuts = cuts[cuts < len(samples)]
    return np.split(samples, cuts)


@pytest.fixture(scope="module")
def clip():
    return load_audio(EXAMPLES / "speech.wav")


@pytest.fixture(scope="module")
def generator():
    from talkinghead.generator import MotionGenerator

    return MotionGenerator.load(DEFAULT_WEIGHTS)


def neutral_source() -> MotionSequence:
    table = np.zeros((1, len(MOTION_NAMES)), np.float32)
    table[0, MOTION_NAMES.index("scale")] = 1.0
    return MotionSequence.from_array(table, 25.0)


def streamed_motion(generator, samples, chunks, fps=25.0, **controls) -> np.ndarray:
    from talkinghead.stream import MotionStream

    stream = MotionStream(generator, neutral_source(), Controls(**controls), fps=fps, seed=3)
    parts = [part for piece in chunks for part in stream.push(piece)] + stream.finish()
    return np.concatenate([part.to_array() for part in parts])


def test_features_as_audio_arrives_equal_the_whole_clips(clip):
    whole = audio_features(clip, 25.0, phones=False)
    stream = FeatureStream(25.0)
    parts = []
    for piece in pieces(clip.samples, seed=0):
        stream.push(piece)
        parts.append(stream.analyse(stream.available()))
    stream.finish()
    parts.append(stream.analyse(stream.available()))
    for name in ("mel", "energy", "speech_energy", "centroid", "pitch", "voicing"):
        got = np.concatenate([part[name] for part in parts])
        assert got.shape == getattr(whole, name).shape
        # the last frame alone differs: the clip's own takes the windows past its end
        np.testing.assert_array_equal(got[:-1], getattr(whole, name)[:-1])


def test_provisional_features_take_the_audio_past_their_limit_as_silence(clip):
    limit = 8 * 640 + 123
    stream = FeatureStream(25.0)
    stream.push(clip.samples[: 16_000])
    stream.analyse(5)
    early = stream.provisional(9, limit)
    assert stream.done == 5  # it does not move on
    silent = FeatureStream(25.0)
    silent.push(np.concatenate([clip.samples[:limit], np.zeros(16_000 - limit, np.float32)]))
    silent.analyse(5)
    for name, values in silent.analyse(9).items():
        np.testing.assert_array_equal(early[name], values)
    # frames whose windows lie inside the limit come out as they will for good
    final = stream.available(limit)
    assert final == 7  # frame 7's last pitch window reaches 5280
    for name, values in stream.analyse(9).items():
        np.testing.assert_array_equal(early[name][: final - 5], values[: final - 5])


def test_motion_does_not_depend_on_how_the_audio_is_cut(clip, generator):
    samples = clip.samples[: 16_000 * 2]
    at_once = streamed_motion(generator, samples, [samples], gaze=(5.0, 0.0))
    assert at_once.shape == (50, len(MOTION_NAMES))
    np.testing.assert_array_equal(streamed_motion(generator, samples, pieces(samples, 1), gaze=(5.0, 0.0)),
                                  at_once)
    # other output rates: the same motion retimed (bar the scale, set against its running
    # mean over the output's frames), with the audio's frame count
    at_30 = streamed_motion(generator, samples, pieces(samples, 5, 900), fps=30.0)
    assert len(at_30) == 60
    same = np.arange(len(MOTION_NAMES)) != MOTION_NAMES.index("scale")
    np.testing.assert_allclose(at_30[::6, same], streamed_motion(generator, samples, [samples])[::5, same],
                               atol=1e-4)


def test_motion_comes_while_the_audio_arrives_and_windows_join_without_seams(clip, generator):
    from talkinghead.stream import MotionStream, StreamTiming

    timing = StreamTiming()
    stream = MotionStream(generator, neutral_source(), Controls(), fps=25.0, seed=0, timing=timing)
    frame = 640  # samples per frame at 25 fps
    heard, made, first = 0, [], None
    for piece in pieces(clip.samples, seed=4, largest=frame):
        heard += len(piece)
        made.extend(part.to_array() for part in stream.push(piece))
        if first is None and sum(map(len, made)):
            first = heard / frame
        # never more than the lookahead and one window behind the audio
        assert heard / frame - sum(map(len, made)) <= timing.window + 1
    made.extend(part.to_array() for part in stream.finish())
    motion = np.concatenate(made)
    assert first is not None and first <= timing.window + 1  # frames of audio, about 0.3 s
    # the first window runs as soon as its last frame's audio is in (its pitch window's last
    # 20 ms are taken as silence until the next window)
    exact = MotionStream(generator, neutral_source(), Controls(), fps=25.0, seed=0, timing=timing)
    assert not exact.push(clip.samples[: timing.window * frame - 1])
    last = clip.samples[timing.window * frame - 1 : timing.window * frame]
    assert sum(part.n_frames for part in exact.push(last))
    # audio that ends on a window's edge leaves the phone decoder nothing more to hear
    assert sum(part.n_frames for part in exact.finish()) == timing.window - timing.stride
    edge = (timing.window + timing.stride) * frame
    assert len(streamed_motion(generator, clip.samples[:edge], [clip.samples[:edge]])) == edge // frame
    # head pose: no larger frame-to-frame jumps where windows join than inside them
    jumps = np.abs(np.diff(motion[:, :3], 2, axis=0)).sum(axis=1)
    at_joins = np.zeros(len(jumps), bool)
    for join in range(timing.stride, len(motion), timing.stride):
        at_joins[join - 2 : join] = True
    assert jumps[at_joins].mean() < 1.6 * jumps[~at_joins].mean()


@pytest.mark.slow
def test_an_avatar_streams_the_frames_it_renders_for_the_clip(photo, short_speech):
    """Any chunking gives the same frames, byte for byte, one per output frame of the clip
    (the engine's motion, not the whole-clip sampler's that ``motion`` and files use)."""
    import soundfile as sf

    avatar = talkinghead.Avatar.from_photo(photo, size=128)
    offline = list(avatar.frames(avatar.motion(short_speech, seed=2)))
    data, rate = sf.read(short_speech, dtype="int16")
    chunks = [piece.tobytes() for piece in pieces(data, seed=6, largest=2000)]
    frames = list(avatar.stream(chunks, sample_rate=rate, seed=2))
    assert [f.index for f in frames] == list(range(len(offline)))
    assert frames[3].time == pytest.approx(3 / 25)
    at_once = list(avatar.stream([data], sample_rate=rate, seed=2))
    for frame, whole, image in zip(frames, at_once, offline, strict=True):
        np.testing.assert_array_equal(frame.image, whole.image)
        assert frame.image.shape == image.shape
    with pytest.raises(talkinghead.InputError, match="diffusion"):
        next(avatar.stream([data], sample_rate=rate, motion="baseline"))


@pytest.mark.slow
def test_the_readmes_streaming_example_runs(tmp_path):
    import re
    import shutil
    import subprocess
    import sys

    readme = (EXAMPLES.parent / "README.md").read_text()
    code = re.search(r"<!-- stream-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    for name in ("astronaut.png", "speech.wav"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["frame 0 at 0.00 s: (256, 256, 3)",
                                            "frame 100 at 4.00 s: (256, 256, 3)"]


@pytest.mark.slow
def test_the_motion_thread_stops_with_the_stream_and_passes_on_errors(photo, clip):
    """The engine makes motion on a thread of its own: closing the stream early stops it
    (fed endlessly, it would read for ever), an error in the audio source reaches the caller,
    and the caller's torch thread count is left as it was."""
    import threading
    import time

    import torch

    avatar = talkinghead.Avatar.from_photo(photo, size=64)
    chunk = clip.samples[:1600]
    taken = []

    def endless():
        while True:
            taken.append(1)
            yield chunk

    def running() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "talkinghead-motion"]

    threads = torch.get_num_threads()
    stream = avatar.stream(endless())
    next(stream)
    assert running()
    stream.close()
    for thread in running():
        thread.join(timeout=5)
    assert not running()
    count = len(taken)
    time.sleep(0.3)
    assert len(taken) == count  # nothing reads the source any more
    assert torch.get_num_threads() == threads

    def failing():
        yield chunk
        raise OSError("the microphone went away")

    with pytest.raises(OSError, match="microphone"):
        list(avatar.stream(failing()))
    assert not running()


def test_the_streamed_head_moves_like_the_whole_clip_samplers(clip, generator):
    """Short windows redrawn every 0.2 s made the head move in steps (rotation per frame 1.3
    times the whole-clip sampler's on the example speech, 1.7 times on train clips); the
    engine's head filter brings it to the sampler's."""
    from dataclasses import replace

    from talkinghead.stream import MotionStream, StreamTiming

    def rotation_per_frame(timing: StreamTiming) -> float:
        stream = MotionStream(generator, neutral_source(), Controls(), fps=25.0, seed=3, timing=timing)
        samples = clip.samples
        parts = [p for k in range(0, len(samples), 3200) for p in stream.push(samples[k : k + 3200])]
        motion = np.concatenate([p.to_array() for p in parts + stream.finish()])
        return float(np.linalg.norm(np.diff(motion[:, :3], axis=0), axis=1).mean())

    whole = generator.sample(audio_features(clip, 25.0), Controls(), seed=3)
    sampler = float(np.linalg.norm(np.diff(whole[:, :3], axis=0), axis=1).mean())
    assert rotation_per_frame(StreamTiming()) < 1.1 * sampler
    assert rotation_per_frame(replace(StreamTiming(), smooth=1.0)) > 1.2 * sampler


def test_the_streamed_jaw_opens_like_the_whole_clip_samplers(clip, generator):
    """With 120 ms of audio ahead the jaw opened less than the whole-clip sampler's (sd 0.92
    of it on train clips); the mouth's stronger audio guidance brings it back."""
    from dataclasses import replace

    from talkinghead.stream import MotionStream, StreamTiming

    jaw = MOTION_NAMES.index("jawOpen")

    def jaw_sd(timing: StreamTiming) -> float:
        stream = MotionStream(generator, neutral_source(), Controls(), fps=25.0, seed=3, timing=timing)
        samples = clip.samples
        parts = [p for k in range(0, len(samples), 3200) for p in stream.push(samples[k : k + 3200])]
        return float(np.concatenate([p.to_array() for p in parts + stream.finish()])[:, jaw].std())

    sampler = float(generator.sample(audio_features(clip, 25.0), Controls(), seed=3)[:, jaw].std())
    guided, plain = jaw_sd(StreamTiming()), jaw_sd(replace(StreamTiming(), mouth_guidance=1.0))
    assert 0.9 * sampler < guided < 1.15 * sampler  # 0.925 on this speech
    assert guided > 1.03 * plain  # 1.047
