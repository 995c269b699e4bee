import itertools

import numpy as np
import pytest

from talkinghead.models import facemesh as fm


def _edges(chain):
    return {tuple(sorted(e)) for e in itertools.pairwise(chain)}


def test_contours_match_mediapipe_connection_sets():
    from mediapipe.python.solutions import face_mesh_connections as c

    def undirected(s):
        return {tuple(sorted(e)) for e in s}

    lips = (_edges(fm.LIPS_UPPER_OUTER) | _edges(fm.LIPS_LOWER_OUTER)
            | _edges(fm.LIPS_UPPER_INNER) | _edges(fm.LIPS_LOWER_INNER))
    assert lips == undirected(c.FACEMESH_LIPS)
    assert _edges(fm.LEFT_EYE_UPPER) | _edges(fm.LEFT_EYE_LOWER) == undirected(c.FACEMESH_LEFT_EYE)
    assert (_edges(fm.RIGHT_EYE_UPPER) | _edges(fm.RIGHT_EYE_LOWER)
            == undirected(c.FACEMESH_RIGHT_EYE))
    assert _edges((*fm.FACE_OVAL, fm.FACE_OVAL[0])) == undirected(c.FACEMESH_FACE_OVAL)
    assert {i for e in c.FACEMESH_LEFT_IRIS for i in e} == set(fm.LEFT_IRIS[1:])


def test_triangles_cover_the_surface_but_not_the_holes():
    tris = fm.triangles()
    assert tris.shape[1] == 3 and len(tris) > 800
    assert set(np.unique(tris)) == set(range(fm.N_SURFACE))
    for hole in (fm.inner_lip_polygon(), fm.eye_polygon("left"), fm.eye_polygon("right")):
        assert not any(set(t) <= set(hole) for t in tris.tolist())


@pytest.mark.parametrize("angles", [(0, 0, 0), (20, 0, 0), (0, -15, 0), (0, 0, 10), (12, 8, -5)])
def test_euler_angles_invert_rotation_matrix(angles):
    rot = fm.rotation_matrix(*angles)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(fm.euler_angles(rot), angles, atol=1e-9)


def test_sign_conventions():
    nose = np.array([0.0, 0.0, -1.0])  # the face looks toward the camera (-z)
    assert (fm.rotation_matrix(10, 0, 0) @ nose)[0] > 0  # yaw > 0: nose to the image's right
    assert (fm.rotation_matrix(0, 10, 0) @ nose)[1] < 0  # pitch > 0: nose up
    top = np.array([0.0, -1.0, 0.0])
    assert (fm.rotation_matrix(0, 0, 10) @ top)[0] > 0  # roll > 0: clockwise in the image


def test_head_frame_recovers_a_known_rotation(face):
    frame = fm.fit_head_frame(face.landmarks)
    base = np.array(frame.angles)
    turn = fm.rotation_matrix(10.0, -6.0, 4.0)
    centre = face.landmarks.mean(axis=0)
    turned = (face.landmarks - centre) @ (turn @ frame.rotation @ frame.rotation.T).T + centre
    # Rotating the landmarks by `turn` about the head must compose with the head's rotation.
    expected = fm.euler_angles(turn @ frame.rotation)
    got = fm.fit_head_frame(turned.astype(np.float32)).angles
    np.testing.assert_allclose(got, expected, atol=0.05)
    assert abs(base[0] - got[0]) > 5  # and the change is visible in yaw
    back = frame.to_image(frame.to_head(face.landmarks))
    np.testing.assert_allclose(back, face.landmarks, atol=1e-3)
