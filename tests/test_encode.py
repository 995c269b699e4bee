from pathlib import Path

import numpy as np
import pytest

from talkinghead.encode import encode
from talkinghead.face import find_face
from talkinghead.load import Portrait
from talkinghead.models import facemesh as fm
from talkinghead.motionspace import MotionSequence, expression_index


def test_crop_is_face_centred_and_geometry_follows_it(portrait, face):
    appearance, source = encode(portrait, face, size=256)
    assert appearance.image.shape == (256, 256, 3)
    nose = appearance.vertices[fm.NOSE_TIP, :2]
    assert (nose > 0.3 * 256).all() and (nose < 0.7 * 256).all()
    expected = face.landmarks[:, :2] @ appearance.placement[:, :2].T + appearance.placement[:, 2]
    np.testing.assert_allclose(appearance.vertices[:, :2], expected, atol=1e-3)
    assert source.n_frames == 1 and source.pose[0, 5] == 1.0
    assert appearance.rig.shape[1:] == (478, 3)


def test_full_frame_keeps_the_photo_framing_with_even_sides(portrait):
    odd = Portrait(Path("odd.png"), np.ascontiguousarray(portrait.image[:511, :509]))
    appearance, _ = encode(odd, find_face(odd), full_frame=True)
    assert appearance.image.shape == (510, 508, 3)
    np.testing.assert_array_equal(appearance.image, odd.image[:510, :508])
    small, _ = encode(odd, find_face(odd), full_frame=True, max_side=256)
    assert max(small.image.shape[:2]) <= 256 and small.image.shape[0] % 2 == 0


def test_the_jaw_estimate_reads_back_what_the_renderer_drew(encoded, renderer):
    """Encode a rendered frame: its estimated jawOpen rises with the jawOpen rendered."""
    _appearance, source = encoded
    jaw = expression_index("jawOpen")
    estimates = []
    for target in (source.expression[0, jaw], 0.5, 0.8):
        expression = source.expression.copy()
        expression[0, jaw] = target
        frame = renderer.render(MotionSequence(25.0, source.pose, expression, source.gaze))[0]
        again = Portrait(Path("frame.png"), frame)
        _, measured = encode(again, find_face(again), size=256)
        estimates.append(float(measured.expression[0, jaw]))
    assert estimates[0] == pytest.approx(source.expression[0, jaw], abs=0.08)
    assert estimates[0] < estimates[1] < estimates[2]
