"""The measuring instrument, checked on videos whose truth is known by construction."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from talkinghead.audio import audio_features
from talkinghead.evaluate import auc, best_over_lags, blink_events, evaluate, pearson, shifted
from talkinghead.load import load_audio
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.mux import VideoWriter

FPS = 25.0


@pytest.fixture(scope="module")
def speech4(tmp_path_factory, speech) -> Path:
    data, rate = sf.read(speech)
    path = tmp_path_factory.mktemp("eval") / "speech4.wav"
    sf.write(path, data[: int(4.0 * rate)], rate)
    return path


def _write(path: Path, renderer, motion: MotionSequence, audio: Path) -> Path:
    with VideoWriter(path, width=renderer.width, height=renderer.height, fps=FPS, audio=audio,
                     audio_channels=1) as writer:
        for start in range(0, motion.n_frames, 16):
            writer.write(renderer.render(motion.frames(start, start + 16)))
    return path


def _driven(source: MotionSequence, n: int, **tracks: np.ndarray) -> MotionSequence:
    """The source held still, with named channels set per frame (pose channels as deltas)."""
    motion = MotionSequence.still(source.pose[0], source.expression[0], source.gaze[0], n, FPS)
    pose, expression = motion.pose.copy(), motion.expression.copy()
    for name, values in tracks.items():
        if name in ("yaw", "pitch", "roll"):
            pose[:, ("yaw", "pitch", "roll").index(name)] += values
        else:
            expression[:, expression_index(name)] = values
    return MotionSequence(FPS, pose, expression, motion.gaze)


def _envelope(audio: Path, n: int) -> np.ndarray:
    level = audio_features(load_audio(audio), FPS, n).speech_energy.astype(np.float64)
    level = np.clip((level - (level.max() - 30.0)) / 30.0, 0.0, 1.0)
    return level


def test_helpers_on_known_numbers():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5
    assert pearson(np.arange(5.0), np.arange(5.0) * 2) == pytest.approx(1.0)
    np.testing.assert_array_equal(shifted(np.arange(5.0), 2)[:3], [2, 3, 4])
    x = np.sin(np.arange(100) / 3.0)
    # mouth[t] = x[t - 3]: the mouth comes 3 frames late, so the best lag is +3 frames
    _, best, lag_ms = best_over_lags(lambda m: pearson(m, x), shifted(x, -3), 25.0)
    assert best == pytest.approx(1.0) and lag_ms == 120.0
    opening = np.full(50, 0.3)
    opening[[10, 11, 30]] = 0.05
    assert blink_events(opening, 25.0) == [(10, 12), (30, 31)]


def test_a_still_video_scores_no_sync_no_motion_no_blinks(tmp_path, encoded, renderer, speech4):
    _appearance, source = encoded
    n = 100
    video = _write(tmp_path / "still.mp4", renderer, _driven(source, n), speech4)
    report = evaluate(video, source=None)
    assert report.frames == n and report.face_frames == 1.0
    assert report.auc_lag0 == 0.5 and report.corr_lag0 is None
    assert report.delta_pose_deg < 0.2 and report.jitter < 0.003
    assert report.blinks_per_min == 0 and report.blinks_left == report.blinks_right == 0
    assert abs(report.av_offset_frames) <= 1.0


def test_mouth_following_the_audio_scores_high_at_the_right_lag(tmp_path, encoded, renderer,
                                                                speech4):
    _, source = encoded
    n = 100
    envelope = _envelope(speech4, n)
    on_time = evaluate(_write(tmp_path / "sync.mp4", renderer,
                              _driven(source, n, jawOpen=0.5 * envelope), speech4))
    assert on_time.corr_lag0 > 0.7 and on_time.corr_best_lag_ms == 0.0
    assert on_time.auc_best > 0.8
    late = np.concatenate([np.zeros(3), envelope[:-3]])  # the mouth 3 frames (120 ms) late
    delayed = evaluate(_write(tmp_path / "late.mp4", renderer,
                              _driven(source, n, jawOpen=0.5 * late), speech4))
    assert delayed.corr_best_lag_ms == 120.0
    assert delayed.corr_lag0 < on_time.corr_lag0


def test_blinks_are_counted_per_eye_and_head_spread_is_measured(tmp_path, encoded, renderer,
                                                               speech4):
    _, source = encoded
    n = 100
    blink = np.zeros(n)
    for start in (15, 50, 80):
        blink[start : start + 4] = 1.0
    yaw = 5.0 * np.sin(2 * np.pi * np.arange(n) / 50.0)  # std 3.5 degrees
    report = evaluate(_write(tmp_path / "blink.mp4", renderer,
                             _driven(source, n, eyeBlinkLeft=blink, yaw=yaw), speech4))
    assert report.blinks_left == 3 and report.blinks_right == 0
    assert report.yaw_std == pytest.approx(5.0 / np.sqrt(2), rel=0.3)
    assert report.pitch_std < 1.0 and report.roll_std < 1.0


def test_identity_is_close_to_its_own_photo_and_far_from_another(tmp_path, encoded, renderer,
                                                                 speech4, photo):
    from PIL import Image

    appearance, source = encoded
    own = tmp_path / "own.png"
    Image.fromarray(appearance.image).save(own)
    video = _write(tmp_path / "id.mp4", renderer, _driven(source, 25), speech4)
    same = evaluate(video, source=own)
    assert same.face_ssim > 0.8 and same.colour_drift < 2.5 and same.shape_distance < 0.03
    other = tmp_path / "other.png"
    Image.fromarray(np.ascontiguousarray(appearance.image[:, ::-1])).save(other)  # mirrored
    mirrored = evaluate(video, source=other)
    assert mirrored.face_ssim < same.face_ssim - 0.1


def test_pose_bands_tell_quick_movements_from_sway():
    from talkinghead.motionstats import pose_bands

    t = np.arange(500) / 25.0
    rot = np.zeros((500, 3))
    rot[:, 0] = 2.0 * np.sin(2 * np.pi * 0.2 * t)  # a slow sway of yaw
    rot[:, 2] = 0.5 * np.sign(np.sin(2 * np.pi * 6.0 * t))  # a quick roll wobble
    bands = pose_bands(rot, 25.0)
    assert bands["yaw_sway"] > 0.5 and bands["yaw_fast"] < 0.05
    assert bands["roll_fast"] > 0.3 and bands["roll_sway"] < 0.05
    assert bands["pitch_fast"] == bands["pitch_sway"] == 0.0
