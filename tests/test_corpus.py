import numpy as np
import pytest

from talkinghead.corpus import (
    FPS,
    Phoneme,
    corpus_statistics,
    lip_motion,
    phoneme_class,
    phoneme_intervals,
)
from talkinghead.motionspace import expression_index


def test_phoneme_classes_across_languages():
    assert phoneme_class("p") == phoneme_class("b") == phoneme_class("m") == "bilabial"
    assert phoneme_class("'u:") == phoneme_class(",o") == phoneme_class("O~") == "rounded"
    assert phoneme_class("'a") == phoneme_class("aI") == phoneme_class("A:") == "open"
    assert phoneme_class("i:") == "spread"
    assert phoneme_class("f") == phoneme_class("v") == "labiodental"
    assert phoneme_class("_:") == phoneme_class("_") == "pause"


def _word(*parts: tuple[str, float]) -> list[Phoneme]:
    events, t = [], 0.0
    for label, length in parts:
        events.append((t, label))
        t += length
    return phoneme_intervals(tuple(events), t)


def test_bilabials_close_the_lips_and_open_vowels_open_the_jaw():
    # "_ a m a p a b u _": every bilabial, however short, closes the mouth on some frame.
    phonemes = _word(("_", 0.3), ("'a", 0.18), ("m", 0.07), ("a", 0.16), ("p", 0.06), ("'a", 0.15),
                     ("b", 0.05), ("u:", 0.2), ("_", 0.4))
    n = int(1.57 * FPS)
    mouth = lip_motion(phonemes, n, FPS)
    jaw = mouth[:, expression_index("jawOpen")]
    centres = (np.arange(n) + 0.5) / FPS
    for ph in phonemes:
        near = np.abs(centres - 0.5 * (ph.start + ph.end)) < 0.06
        if ph.kind == "bilabial":
            assert jaw[near].min() < 0.06, ph
        if ph.kind == "open":
            assert jaw[near].max() > 0.3, ph
    rounded = next(ph for ph in phonemes if ph.kind == "rounded")
    at_u = np.abs(centres - 0.5 * (rounded.start + rounded.end)) < 0.05
    assert mouth[at_u, expression_index("mouthFunnel")].max() > 0.3
    assert jaw[:5].max() < 0.02 and jaw[-5:].max() < 0.02  # the mouth rests in pauses


def test_statistics_of_a_known_motion():
    motion = np.zeros((250, 41), np.float32)
    motion[:, 0] = np.sin(np.arange(250) / 10.0) * 3.0
    motion[100:106, 6 + expression_index("eyeBlinkLeft")] = 1.0
    stats = corpus_statistics([motion], 25.0)
    assert stats["yaw_std"] == pytest.approx(3.0 / np.sqrt(2), rel=0.05)
    assert stats["blinks_per_min"] == pytest.approx(6.0)
    assert stats["blink_ms"] == pytest.approx(240.0)


def test_same_seed_same_clip_other_seed_other_clip():
    pytest.importorskip("espeakng_loader")
    from talkinghead.corpus import make_clip, make_clips

    make_clip(7, 1)  # espeak-ng state left behind in this process must not matter
    a_features, a_motion, a_controls, a_meta = next(make_clips(7, [0]))
    b_features, b_motion, b_controls, _ = next(make_clips(7, [0]))
    np.testing.assert_array_equal(a_motion, b_motion)
    np.testing.assert_array_equal(a_features["mel"], b_features["mel"])
    np.testing.assert_array_equal(a_controls, b_controls)
    _, c_motion, _, c_meta = next(make_clips(8, [0]))
    assert a_meta != c_meta or not np.array_equal(a_motion, c_motion)
    assert a_motion.shape == (len(a_features["mel"]), 41)


def test_head_noise_keeps_its_scale_on_clips_shorter_than_its_timescale():
    from talkinghead.corpus import _noise

    rng = np.random.default_rng(0)
    assert 0.9 < _noise(rng, 20_000, 60.0, 1).std() < 1.1
    starts = np.array([_noise(rng, 30, 60.0, 1)[0, 0] for _ in range(400)])  # 30 frames, 2.4 s scale
    assert 0.85 < starts.std() < 1.15 and np.abs(starts).max() < 4.5


def test_calibration_scales_the_motion_and_the_default_changes_nothing(monkeypatch):
    pytest.importorskip("espeakng_loader")
    from talkinghead import corpus
    from talkinghead.corpus import Calibration, make_clips

    _, plain, _, _ = next(make_clips(5, [0]))
    monkeypatch.setattr(corpus, "CALIBRATION", Calibration())
    _, default, _, _ = next(make_clips(5, [0]))
    np.testing.assert_array_equal(plain, default)  # the corpus the shipped weights learned
    monkeypatch.setattr(corpus, "CALIBRATION", Calibration(head_scale=(2.0, 1.0, 0.5), jaw_scale=0.5))
    _, scaled, _, _ = next(make_clips(5, [0]))
    assert scaled[:, 0].std() == pytest.approx(2.0 * plain[:, 0].std(), rel=1e-4)
    assert scaled[:, 2].std() == pytest.approx(0.5 * plain[:, 2].std(), rel=1e-4)
    jaw = 6 + expression_index("jawOpen")
    assert scaled[:, jaw].max() < 0.6 * plain[:, jaw].max()


def test_calibration_scales_the_quick_head_movements_apart_from_the_slow_ones(monkeypatch):
    pytest.importorskip("espeakng_loader")
    from talkinghead import corpus
    from talkinghead.corpus import Calibration, make_clips
    from talkinghead.motionstats import pose_bands

    _, plain, _, _ = next(make_clips(5, [0]))
    monkeypatch.setattr(corpus, "CALIBRATION", Calibration(fast_scale=(1.0, 1.0, 0.25)))
    _, calmer, _, _ = next(make_clips(5, [0]))
    before, after = pose_bands(plain[:, :3], corpus.FPS), pose_bands(calmer[:, :3], corpus.FPS)
    fast, sway = (after[f"roll_{b}"] / before[f"roll_{b}"] for b in ("fast", "sway"))
    assert fast < 0.4  # roll's quick wiggles cut...
    assert sway > 1.4 * fast  # ...more than its sway (the wiggles' own spectrum reaches into it)
    assert after["yaw_fast"] == pytest.approx(before["yaw_fast"], rel=1e-6)  # other axes untouched
