import numpy as np
import pytest

from talkinghead.motionspace import (
    EXPRESSION_NAMES,
    MOTION_NAMES,
    POSE_NAMES,
    MotionSequence,
    expression_index,
)


def _random(t: int = 5) -> MotionSequence:
    rng = np.random.default_rng(0)
    return MotionSequence(25.0, rng.normal(size=(t, 6)).astype(np.float32),
                          rng.random((t, len(EXPRESSION_NAMES))).astype(np.float32),
                          rng.normal(size=(t, 2)).astype(np.float32))


def test_names_are_unique_and_arkit_sized():
    assert len(set(MOTION_NAMES)) == len(MOTION_NAMES)
    assert len(EXPRESSION_NAMES) >= 30
    assert MOTION_NAMES[: len(POSE_NAMES)] == POSE_NAMES


def test_flat_layout_round_trips_and_columns_are_named():
    motion = _random()
    flat = motion.to_array()
    assert flat.shape == (5, len(MOTION_NAMES))
    again = MotionSequence.from_array(flat, 25.0)
    np.testing.assert_array_equal(again.to_array(), flat)
    np.testing.assert_array_equal(motion.column("jawOpen"),
                                  motion.expression[:, expression_index("jawOpen")])
    np.testing.assert_array_equal(motion.column("yaw"), motion.pose[:, 0])
    np.testing.assert_array_equal(motion.column("gazePitch"), motion.gaze[:, 1])


def test_mismatched_lengths_and_nan_are_refused():
    motion = _random()
    with pytest.raises(ValueError, match="expression"):
        MotionSequence(25.0, motion.pose, motion.expression[:3], motion.gaze)
    bad = motion.pose.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MotionSequence(25.0, bad, motion.expression, motion.gaze)
    with pytest.raises(KeyError, match="jawOpn"):
        expression_index("jawOpn")


def test_frames_slice_and_still():
    motion = _random(10)
    part = motion.frames(2, 6)
    assert part.n_frames == 4
    np.testing.assert_array_equal(part.pose, motion.pose[2:6])
    still = MotionSequence.still(motion.pose[0], motion.expression[0], motion.gaze[0], 7, 25.0)
    assert still.n_frames == 7 and np.all(still.pose == motion.pose[0])
