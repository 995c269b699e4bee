import numpy as np
import pytest
from PIL import Image

from talkinghead.errors import InputError
from talkinghead.face import find_face
from talkinghead.load import Portrait
from talkinghead.models import facemesh as fm


def test_landmarks_land_on_the_face(portrait, face):
    assert face.landmarks.shape == (478, 3) and face.n_faces == 1
    lm = face.landmarks
    # eyes above the nose tip above the mouth above the chin; subject's right eye on image left
    assert lm[fm.RIGHT_EYE_UPPER[4], 1] < lm[fm.NOSE_TIP, 1] < lm[13, 1] < lm[fm.CHIN, 1]
    assert lm[33, 0] < lm[263, 0]
    for iris, upper, lower in ((fm.LEFT_IRIS, fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                               (fm.RIGHT_IRIS, fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
        eye = lm[list(upper + lower)]
        assert eye[:, 0].min() < lm[iris[0], 0] < eye[:, 0].max()
    h, w = portrait.image.shape[:2]
    assert face.person.shape == (h, w)
    cx, cy = lm[fm.NOSE_TIP, :2].astype(int)
    assert face.person[cy, cx] > 0.5 and face.person[5, 5] < 0.5  # face vs top-left corner


def _with_image(image: np.ndarray) -> Portrait:
    from pathlib import Path

    return Portrait(path=Path("test.png"), image=image)


def test_no_face_is_refused():
    gradient = np.asarray(Image.linear_gradient("L").resize((256, 256)).convert("RGB"))
    with pytest.raises(InputError, match="no face"):
        find_face(_with_image(gradient))


def test_several_faces_pick_the_largest_and_warn(portrait):
    big = portrait.image
    small = np.asarray(Image.fromarray(big).resize((384, 384)))
    canvas = np.full((512, 896, 3), 200, np.uint8)
    canvas[:, :512] = big
    canvas[64:448, 512:] = small
    warnings: list[str] = []
    chosen = find_face(_with_image(canvas), warn=warnings.append)
    assert chosen.n_faces == 2 and chosen.index == 0
    assert warnings and "2 faces" in warnings[0] and "--face" in warnings[0]
    assert chosen.landmarks[:, 0].mean() < 512
    other = find_face(_with_image(canvas), face_index=1)
    assert other.landmarks[:, 0].mean() > 512
    with pytest.raises(InputError, match="--face 2"):
        find_face(_with_image(canvas), face_index=2)


def test_tiny_face_is_refused(portrait):
    tiny = np.asarray(Image.fromarray(portrait.image).resize((160, 160)))
    canvas = np.full((400, 400, 3), 200, np.uint8)
    canvas[120:280, 120:280] = tiny  # detected, but the face is about 35 px wide
    with pytest.raises(InputError, match="too small"):
        find_face(_with_image(canvas), min_face_px=48)


def test_face_cut_by_the_edge_is_refused(portrait, face):
    chin = int(face.landmarks[fm.CHIN, 1])
    nose = int(face.landmarks[fm.NOSE_TIP, 1])
    cut = portrait.image[: (chin + nose) // 2]  # the bottom third of the face is gone
    with pytest.raises(InputError, match="cut off"):
        find_face(_with_image(np.ascontiguousarray(cut)))


def test_a_missing_mediapipe_says_how_to_install_it(monkeypatch):
    import sys

    from talkinghead.errors import TalkingHeadError
    from talkinghead.face import _solutions

    monkeypatch.setitem(sys.modules, "mediapipe.python", None)
    with pytest.raises(TalkingHeadError, match=r"--no-deps mediapipe==0\.10\.21"):
        _solutions()


def test_mediapipe_loads_without_matplotlib_which_stays_importable():
    """mediapipe imports matplotlib.pyplot for drawing helpers (0.34 s of every cold start);
    the face finder defers it, and pyplot stays the real one for whoever wants it."""
    import subprocess
    import sys

    code = ("import sys; from talkinghead.face import _solutions; s = _solutions(); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert s.face_mesh.FaceMesh and s.face_detection.FaceDetection; "
            "import matplotlib.pyplot as plt; assert callable(plt.figure); "
            "from mediapipe.python.solutions import drawing_utils; "
            "assert drawing_utils.plt.figure is plt.figure")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
