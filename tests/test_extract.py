"""The encoder's fit of video motion: pose, every ARKit coefficient, gaps; real video frames."""

import numpy as np
import pytest

from talkinghead.encode import estimate_expression, expression_and_rig, fit_expression_change
from talkinghead.extract import motion_from_landmarks
from talkinghead.models import facemesh as fm
from talkinghead.motionspace import EXPRESSION_NAMES, expression_index

from .helpers import devdata

# Coefficient sets a face shows together, to be fitted back from the deformed mesh.
KNOWN = [
    {"jawOpen": 0.5},
    {"eyeBlinkLeft": 0.8, "browInnerUp": 0.5},
    {"mouthSmileLeft": 0.6, "mouthSmileRight": 0.6},
    {"mouthPucker": 0.6, "eyeBlinkRight": 0.5},
    {"jawOpen": 0.3, "mouthFunnel": 0.5},
]
POSES = [(0.0, 0.0, 0.0), (8.0, -4.0, 3.0), (-10.0, 5.0, -2.0), (4.0, 3.0, 6.0), (-5.0, -6.0, 0.0)]


@pytest.fixture(scope="module")
def source(face):
    """The example face's landmarks, its head frame, own coefficients and rig."""
    landmarks = face.landmarks.astype(np.float64)
    head = fm.fit_head_frame(landmarks)
    expression, rig = expression_and_rig(landmarks, head)
    return landmarks, head, expression, rig


def _pose_and_deform(landmarks, head, rig, coeffs, angles, scale=1.0, shift=(0.0, 0.0)):
    """Image landmarks of the face with ``coeffs`` added, its pose angles changed by ``angles``
    (as the renderer turns a head: R(source + angles) R(source)^T, about the face's centre),
    scaled and shifted (pixels)."""
    change = np.zeros(len(EXPRESSION_NAMES))
    for name, value in coeffs.items():
        change[expression_index(name)] = value
    deformed = head.to_image(head.to_head(landmarks) + np.einsum("e,evc->vc", change, rig))
    own = np.array(head.angles)
    turn = fm.rotation_matrix(*(own + angles)) @ fm.rotation_matrix(*own).T
    centre = landmarks[: fm.N_SURFACE].mean(axis=0)
    return centre + scale * (deformed - centre) @ turn.T + np.array([*shift, 0.0])


def test_a_rig_deformed_and_turned_mesh_is_fitted_back(source):
    landmarks, head, expression, rig = source
    frames = [landmarks] + [
        _pose_and_deform(landmarks, head, rig, coeffs, angles, scale=1.0 + 0.02 * i,
                         shift=(3.0 * i, -2.0 * i))
        for i, (coeffs, angles) in enumerate(zip(KNOWN, POSES, strict=True))]
    motion, found = motion_from_landmarks(frames, fps=25.0)
    assert found.all() and motion.n_frames == len(frames)
    np.testing.assert_allclose(motion.expression[0], expression, atol=1e-4)
    for t, (coeffs, angles) in enumerate(zip(KNOWN, POSES, strict=True), start=1):
        turned = motion.pose[t, :3] - motion.pose[0, :3]
        np.testing.assert_allclose(turned, angles, atol=0.5, err_msg=f"frame {t}")
        assert motion.pose[t, 5] == pytest.approx(1.0 + 0.02 * (t - 1), abs=0.01)
        change = motion.expression[t] - motion.expression[0]
        # Shapes the rig makes alike (a smile lifts the upper lip too) may share a little.
        for name in EXPRESSION_NAMES:
            expected, tolerance = coeffs.get(name, 0.0), 0.1 if name in coeffs else 0.15
            assert change[expression_index(name)] == pytest.approx(expected, abs=tolerance), \
                f"frame {t}: {name}"


def test_the_fit_respects_the_coefficient_bounds(source):
    _, _, expression, rig = source
    jaw = expression_index("jawOpen")
    too_far = 3.0 * rig[jaw][None]  # three times a full jaw opening
    change = fit_expression_change(rig, too_far, -expression, 1.0 - expression)
    assert change[0, jaw] == pytest.approx(1.0 - expression[jaw], abs=1e-5)
    assert (change >= -expression - 1e-6).all() and (change <= 1.0 - expression + 1e-6).all()


def test_frames_without_a_face_hold_the_nearest_face(source):
    landmarks, head, _, rig = source
    turned = _pose_and_deform(landmarks, head, rig, {"jawOpen": 0.4}, (6.0, 0.0, 0.0))
    motion, found = motion_from_landmarks([None, landmarks, None, None, turned, None], fps=25.0)
    assert found.tolist() == [False, True, False, False, True, False]
    table = motion.to_array()
    np.testing.assert_allclose(table[0], table[1])
    np.testing.assert_allclose(table[2], table[1])
    np.testing.assert_allclose(table[3], table[4])
    np.testing.assert_allclose(table[5], table[4])
    with pytest.raises(ValueError, match="no face"):
        motion_from_landmarks([None, None], fps=25.0)


def test_an_open_mouth_photo_reads_as_open_and_its_video_moves_the_jaw():
    """Real talking video (devdata): the first frame is mid-word with an open mouth."""
    from talkinghead.extract import extract_motion
    from talkinghead.face import find_face
    from talkinghead.load import Portrait
    from talkinghead.mux import probe, read_frames

    video = devdata("videos", "v01_en_f_aoc_hdtf_8s.mp4")
    info = probe(video)
    first = next(read_frames(video, info.width, info.height, batch=1))[0]
    landmarks = find_face(Portrait(video, first)).landmarks.astype(np.float64)
    head = fm.fit_head_frame(landmarks)
    jaw = expression_index("jawOpen")
    coeffs, _ = expression_and_rig(landmarks, head)
    assert coeffs[jaw] > 0.3

    extracted = extract_motion(video, max_frames=50)
    motion = extracted.motion
    assert motion.n_frames == 50 and motion.fps == pytest.approx(25.0)
    gap = np.array([np.linalg.norm(lm[14] - lm[13]) / np.linalg.norm(lm[263] - lm[33])
                    for lm in extracted.landmarks])
    assert np.corrcoef(motion.expression[:, jaw], gap)[0, 1] > 0.5
    assert motion.expression[:, jaw].std() > 0.05
    assert 0.5 < motion.pose[:, :3].std(axis=0).max() < 10.0  # degrees: a talking head moves


def test_a_single_photo_reads_its_smile_eyes_and_jaw(source):
    """The example photo smiles with parted lips; the rig's own shapes read back by geometry."""
    from talkinghead.models.rig import build_rig

    landmarks, head, expression, _ = source
    named = dict(zip(EXPRESSION_NAMES, expression, strict=True))
    assert named["mouthSmileLeft"] > 0.2 and named["mouthSmileRight"] > 0.2
    assert named["mouthFrownLeft"] == named["mouthFrownRight"] == 0.0
    assert named["jawOpen"] > 0.1 and named["eyeBlinkLeft"] < 0.2
    v_head = head.to_head(landmarks)
    neutral_rig = build_rig(v_head, np.zeros(len(EXPRESSION_NAMES), np.float32))
    for name, amount in (("mouthSmileLeft", 0.3), ("jawOpen", 0.3), ("eyeBlinkRight", 0.5)):
        moved = head.to_image(v_head + amount * neutral_rig[expression_index(name)])
        again = estimate_expression(moved, fm.fit_head_frame(moved), neutral_rig)
        k = expression_index(name)
        assert again[k] - expression[k] == pytest.approx(amount, abs=0.12), name
    frowning = head.to_image(v_head + 0.8 * neutral_rig[expression_index("mouthFrownLeft")])
    again = estimate_expression(frowning, fm.fit_head_frame(frowning), neutral_rig)
    assert again[expression_index("mouthSmileLeft")] < named["mouthSmileLeft"] - 0.3
    # Eyes open wider than typical read as eyeWide only past a dead band (eyes differ).
    wide = head.to_image(v_head + neutral_rig[expression_index("eyeWideLeft")])
    again = estimate_expression(wide, fm.fit_head_frame(wide), neutral_rig)
    assert again[expression_index("eyeWideLeft")] > 0.1 and again[expression_index("eyeWideRight")] == 0.0


def test_a_rendered_blink_is_read_back_as_one(encoded, renderer):
    """Renderer and encoder agree on the eyelids: a shut eye rendered at eyeBlink 1 reads
    near 1 (the rig fit alone read about 0.6), a half-shut one in between, so that blinks
    learned from real videos play back as whole blinks."""
    from talkinghead.face import track_landmarks
    from talkinghead.motionspace import MotionSequence

    _, source = encoded
    levels = (0.0, 0.5, 1.0)
    expression = np.repeat(source.expression, len(levels), axis=0)
    for side in ("Left", "Right"):
        expression[:, expression_index(f"eyeBlink{side}")] = levels
    frames = [renderer.render(MotionSequence(25.0, source.pose, expression[k : k + 1], source.gaze))[0]
              for k in range(len(levels))]
    motion, _ = motion_from_landmarks(list(track_landmarks(iter(frames))), 25.0)
    read = motion.expression[:, expression_index("eyeBlinkLeft")]
    assert read[0] < 0.15 and 0.2 < read[1] < 0.7 and read[2] > 0.8, read
