import numpy as np
import pytest

from talkinghead.models import facemesh as fm
from talkinghead.models.rig import build_rig
from talkinghead.motionspace import EXPRESSION_NAMES, expression_index


@pytest.fixture(scope="module")
def head(face):
    frame = fm.fit_head_frame(face.landmarks)
    return frame.to_head(face.landmarks.astype(np.float64))


@pytest.fixture(scope="module")
def rig(head):
    return build_rig(head, np.zeros(len(EXPRESSION_NAMES), np.float32))


def _apply(head, rig, **coeffs):
    out = head.copy()
    for name, value in coeffs.items():
        out = out + value * rig[expression_index(name)]
    return out


def _gap(v, upper, lower):
    return float(np.mean(v[list(lower), 1] - v[list(upper), 1]))


def test_every_coefficient_moves_the_mesh(rig):
    assert rig.shape == (len(EXPRESSION_NAMES), 478, 3) and np.all(np.isfinite(rig))
    for name, basis in zip(EXPRESSION_NAMES, rig, strict=True):
        assert np.abs(basis).max() > 0.01, f"{name} does nothing"


def test_jaw_open_parts_the_inner_lips_and_keeps_the_upper_lip(head, rig):
    before = _gap(head, fm.LIPS_UPPER_INNER[2:-2], fm.LIPS_LOWER_INNER[2:-2])
    opened = _apply(head, rig, jawOpen=0.5)
    after = _gap(opened, fm.LIPS_UPPER_INNER[2:-2], fm.LIPS_LOWER_INNER[2:-2])
    assert after - before > 0.15  # inter-ocular units: a clearly open mouth
    upper_lip = list(fm.LIPS_UPPER_OUTER[1:-1])  # the corners are shared with the jaw
    assert np.abs(opened[upper_lip] - head[upper_lip]).max() < 1e-6
    assert opened[fm.CHIN, 1] - head[fm.CHIN, 1] > 0.1
    forehead = opened[fm.FOREHEAD_TOP] - head[fm.FOREHEAD_TOP]
    assert np.abs(forehead).max() < 1e-3


def test_mouth_close_counters_jaw_open_at_the_lips(head, rig):
    open_gap = _gap(_apply(head, rig, jawOpen=0.5), fm.LIPS_UPPER_INNER, fm.LIPS_LOWER_INNER)
    closed = _gap(_apply(head, rig, jawOpen=0.5, mouthClose=0.5),
                  fm.LIPS_UPPER_INNER, fm.LIPS_LOWER_INNER)
    assert closed < 0.5 * open_gap


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_blink_closes_that_eye_only(head, rig, side):
    upper, lower = {"Left": (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                    "Right": (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)}[side]
    other = {"Left": (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER),
             "Right": (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)}[side]
    closed = _apply(head, rig, **{f"eyeBlink{side}": 1.0})
    # The lids meet, overlapping a little so that no sliver of eye shows between them.
    open_gap = _gap(head, upper[2:-2], lower[2:-2])
    assert -0.25 * open_gap < _gap(closed, upper[2:-2], lower[2:-2]) < 0.05 * open_gap
    assert _gap(closed, *other) == pytest.approx(_gap(head, *other), abs=1e-6)
    wide = _apply(head, rig, **{f"eyeWide{side}": 1.0})
    assert _gap(wide, upper, lower) > _gap(head, upper, lower)


def test_smile_lifts_and_widens_the_named_corner(head, rig):
    left = _apply(head, rig, mouthSmileLeft=1.0)
    corner = fm.MOUTH_CORNER_LEFT
    assert left[corner, 1] < head[corner, 1] - 0.05  # up (y points down)
    assert left[corner, 0] > head[corner, 0] + 0.05  # out: the subject's left is +x
    right_corner = fm.MOUTH_CORNER_RIGHT
    assert abs(left[right_corner, 1] - head[right_corner, 1]) < 0.02


def test_brows_and_pucker_move_the_right_way(head, rig):
    brows = list(fm.LEFT_BROW + fm.RIGHT_BROW)
    assert (_apply(head, rig, browInnerUp=1)[brows, 1] <= head[brows, 1] + 1e-9).all()
    assert (_apply(head, rig, browDownLeft=1)[list(fm.LEFT_BROW), 1] > head[list(fm.LEFT_BROW), 1]).all()
    width = head[fm.MOUTH_CORNER_LEFT, 0] - head[fm.MOUTH_CORNER_RIGHT, 0]
    puckered = _apply(head, rig, mouthPucker=1.0)
    assert puckered[fm.MOUTH_CORNER_LEFT, 0] - puckered[fm.MOUTH_CORNER_RIGHT, 0] < 0.85 * width


def test_blink_basis_closes_from_a_half_closed_source(head):
    half = np.zeros(len(EXPRESSION_NAMES), np.float32)
    half[expression_index("eyeBlinkLeft")] = 0.5
    rig = build_rig(head, half)
    # From the photo's state (0.5) a further 0.5 must reach closed, i.e. double the per-unit move.
    full = build_rig(head, np.zeros_like(half))
    i = expression_index("eyeBlinkLeft")
    np.testing.assert_allclose(rig[i], 2 * full[i], rtol=1e-5, atol=1e-7)
