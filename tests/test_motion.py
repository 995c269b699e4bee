from pathlib import Path

import numpy as np

from talkinghead.audio import audio_features
from talkinghead.load import SAMPLE_RATE, AudioClip
from talkinghead.motion import baseline_motion
from talkinghead.motionspace import EXPRESSION_NAMES, MotionSequence, expression_index

from .helpers import tone


def _source() -> MotionSequence:
    return MotionSequence.still(np.array([5.0, -2.0, 1.0, 0.0, 0.0, 1.0]),
                                np.zeros(len(EXPRESSION_NAMES)), np.zeros(2), 1, 25.0)


def _speechlike(seconds: float = 6.0) -> AudioClip:
    """Syllables: 150 ms voiced bursts, 100 ms gaps, with a 1 s pause in the middle."""
    out = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    syllable = tone(0.15, freq=140)
    step = int(0.25 * SAMPLE_RATE)
    for start in range(0, len(out) - len(syllable), step):
        if not 2.5 <= start / SAMPLE_RATE < 3.5:
            out[start : start + len(syllable)] = syllable
    return AudioClip(Path("x.wav"), out + 1e-4, SAMPLE_RATE, 1)


def test_same_seed_same_motion_other_seed_other_head_same_lips():
    features = audio_features(_speechlike(), 25.0)
    a = baseline_motion(features, _source(), seed=1)
    b = baseline_motion(features, _source(), seed=1)
    c = baseline_motion(features, _source(), seed=2)
    np.testing.assert_array_equal(a.to_array(), b.to_array())
    assert np.abs(a.pose[:, :3] - c.pose[:, :3]).mean() > 0.5
    jaw = expression_index("jawOpen")
    np.testing.assert_array_equal(a.expression[:, jaw], c.expression[:, jaw])


def test_jaw_follows_syllables_and_rests_in_the_pause():
    features = audio_features(_speechlike(), 25.0)
    motion = baseline_motion(features, _source(), seed=0)
    jaw = motion.column("jawOpen")
    assert motion.n_frames == features.n_frames
    pause = jaw[int(2.7 * 25) : int(3.3 * 25)]
    speaking = jaw[: int(2.4 * 25)]
    assert pause.max() < 0.03
    assert speaking.max() > 0.2
    # the jaw closes between syllables: open and shut within each 250 ms step
    assert np.percentile(speaking, 20) < 0.5 * np.percentile(speaking, 90)


def test_head_sways_around_the_source_pose_within_real_ranges():
    features = audio_features(_speechlike(30.0), 25.0)
    motion = baseline_motion(features, _source(), seed=3)
    yaw, pitch, roll = motion.pose[:, 0], motion.pose[:, 1], motion.pose[:, 2]
    assert abs(yaw.mean() - 5.0) < 2.0 and abs(pitch.mean() + 2.0) < 2.0
    for values, (lo, hi) in ((yaw, (1.5, 5.5)), (pitch, (1.0, 5.0)), (roll, (0.7, 3.0))):
        assert lo < values.std() < hi
    step = np.abs(np.diff(motion.pose[:, :3], axis=0)).sum(axis=1).mean()
    assert step < 1.0  # degrees per frame: smooth, no jitter


def test_blinks_at_a_human_rate_and_length():
    features = audio_features(_speechlike(60.0), 25.0)
    blink = baseline_motion(features, _source(), seed=4).column("eyeBlinkLeft")
    closed = blink > 0.5
    starts = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 8 <= len(starts) <= 40  # per minute
    lengths = [np.argmax(~closed[s + 1 :]) for s in starts[:-1]]
    assert 2 <= np.median(lengths) <= 8  # frames at 25 fps: about 80-320 ms


def test_phones_close_the_lips_on_bilabials_even_in_loud_speech():
    from dataclasses import replace

    features = audio_features(_speechlike(), 25.0, phones=False)
    loud = np.full(features.n_frames, features.speech_energy.max(), np.float32)
    phones = np.full(features.n_frames, "AA", dtype=object)
    phones[30:35] = "M"
    phones[60:65] = "UW"
    features = replace(features, speech_energy=loud, phones=phones)
    motion = baseline_motion(features, _source(), seed=0)
    jaw, funnel = motion.column("jawOpen"), motion.column("mouthFunnel")
    assert jaw[31:34].max() < 0.2 * jaw[10:20].mean()
    assert funnel[61:64].min() > 0.2 and funnel[10:20].max() < 0.05
