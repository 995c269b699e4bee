"""Stage 2, face: find the face, its 478 landmarks (irises included) and the person mask.

mediapipe 0.10.21's legacy solutions carry their models inside the wheel: nothing is
downloaded. Detectors are built once per process and reused (batch jobs load them once).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from talkinghead.errors import InputError, TalkingHeadError
from talkinghead.load import Portrait
from talkinghead.models import facemesh as fm

MESH_INPUT_SIDE = 512  # the face is re-cropped to this square before fitting the mesh, pixels
MAX_OUTSIDE = 0.10  # share of landmarks allowed outside the photo (eyes and lips: none)


@dataclass(frozen=True)
class Face:
    landmarks: np.ndarray  # (478, 3) float32: x, y in photo pixels; z in pixels, < 0 toward camera
    box: np.ndarray  # (4,) float32: x0, y0, x1, y1 of the face in photo pixels
    person: np.ndarray  # (H, W) float32 in [0, 1]: probability that a pixel shows the person
    index: int  # which face, by size (0 = largest)
    n_faces: int  # faces found in the photo


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """mediapipe's C++ core prints log lines straight to file descriptor 2: hide them."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _LazyPyplot(types.ModuleType):
    """``matplotlib.pyplot`` imported on first use. mediapipe imports it at its own import, for
    drawing helpers this project never calls (0.34 of mediapipe's 0.6 s, on every cold start)."""

    def __getattr__(self, name: str) -> object:
        import importlib

        if sys.modules.get("matplotlib.pyplot") is self:
            del sys.modules["matplotlib.pyplot"]
        return getattr(importlib.import_module("matplotlib.pyplot"), name)


def _solutions():  # the mediapipe.solutions module, imported quietly
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    stand_in = None
    if "mediapipe" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
        stand_in = sys.modules["matplotlib.pyplot"] = _LazyPyplot("matplotlib.pyplot")
    try:
        with _quiet_native_stderr():
            from mediapipe.python import solutions
    except ImportError:
        raise TalkingHeadError(
            "mediapipe is not installed: run `pip install --no-deps mediapipe==0.10.21` "
            "(README, \"Install\": why --no-deps)"
        ) from None
    finally:  # whoever imports matplotlib.pyplot from now on gets the real one
        if stand_in is not None and sys.modules.get("matplotlib.pyplot") is stand_in:
            del sys.modules["matplotlib.pyplot"]
    return solutions


@cache
def _detector(model: int):
    with _quiet_native_stderr():
        return _solutions().face_detection.FaceDetection(model_selection=model,
                                                         min_detection_confidence=0.5)


@lru_cache(maxsize=1)
def _mesh():
    with _quiet_native_stderr():
        return _solutions().face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                               refine_landmarks=True,
                                               min_detection_confidence=0.3)


@lru_cache(maxsize=1)
def _segmenter():
    with _quiet_native_stderr():
        return _solutions().selfie_segmentation.SelfieSegmentation(model_selection=0)


def warm_up() -> None:
    """Load every model now (a batch worker does this once, before its first job)."""
    _detector(0), _detector(1), _mesh(), _segmenter()


def detect_faces(image: np.ndarray) -> np.ndarray:
    """(N, 4) float32 face boxes x0, y0, x1, y1 in pixels, largest first.

    The full-range detector finds small and distant faces; the short-range one is tried when it
    finds none (it is better on close-ups).
    """
    h, w = image.shape[:2]
    for model in (1, 0):
        with _quiet_native_stderr():
            result = _detector(model).process(image)
        if result.detections:
            boxes = []
            for det in result.detections:
                b = det.location_data.relative_bounding_box
                boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w,
                              (b.ymin + b.height) * h])
            boxes_arr = np.array(boxes, dtype=np.float32)
            area = (boxes_arr[:, 2] - boxes_arr[:, 0]) * (boxes_arr[:, 3] - boxes_arr[:, 1])
            return boxes_arr[np.argsort(-area, kind="stable")]
    return np.zeros((0, 4), dtype=np.float32)


def fit_landmarks(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """(478, 3) landmarks in pixels for the face in ``box``, or None.

    The face is cut out as a square twice the box's size and scaled to MESH_INPUT_SIDE, so the
    mesh sees one face at a useful size whatever the photo's resolution.
    """
    side = 2.0 * float(max(box[2] - box[0], box[3] - box[1]))
    cx, cy = float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0
    scale = MESH_INPUT_SIDE / side
    x0, y0 = cx - side / 2.0, cy - side / 2.0
    affine = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], dtype=np.float64)
    crop = cv2.warpAffine(image, affine, (MESH_INPUT_SIDE, MESH_INPUT_SIDE),
                          flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    with _quiet_native_stderr():
        result = _mesh().process(crop)
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    pts = np.array([[p.x, p.y, p.z] for p in lm], dtype=np.float64) * MESH_INPUT_SIDE
    pts[:, 0] = pts[:, 0] / scale + x0
    pts[:, 1] = pts[:, 1] / scale + y0
    pts[:, 2] = pts[:, 2] / scale
    return pts.astype(np.float32)


def track_landmarks(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
    """(478, 3) landmarks in pixels for each video frame (None where no face), tracking one
    face from frame to frame as mediapipe's video mode does."""
    with _quiet_native_stderr():
        mesh = _solutions().face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                               refine_landmarks=True,
                                               min_detection_confidence=0.5,
                                               min_tracking_confidence=0.5)
    try:
        for frame in frames:
            h, w = frame.shape[:2]
            with _quiet_native_stderr():
                result = mesh.process(np.ascontiguousarray(frame))
            if not result.multi_face_landmarks:
                yield None
                continue
            lm = result.multi_face_landmarks[0].landmark
            pts = np.array([[p.x, p.y, p.z] for p in lm], dtype=np.float32)
            yield pts * np.array([w, h, w], dtype=np.float32)
    finally:
        mesh.close()


def segment_person(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 person probability in [0, 1]."""
    with _quiet_native_stderr():
        mask = _segmenter().process(image).segmentation_mask
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def find_face(portrait: Portrait, *, face_index: int | None = None, min_face_px: int = 48,
              warn: Callable[[str], None] | None = None) -> Face:
    """The face to animate: the largest unless ``face_index`` picks another (0 = largest).

    Raises InputError when there is no face, the requested one does not exist, or the face is
    too small or cut off by the photo's edge. Several faces give a warning, not an error.
    """
    image, path = portrait.image, portrait.path
    boxes = detect_faces(image)
    n = len(boxes)
    if face_index is not None and n and face_index >= n:
        raise InputError(path, f"--face {face_index} asked for, but the photo has "
                               f"{n} face{'s' if n != 1 else ''} (numbered from 0, largest first)")
    index = face_index or 0
    if n > 1 and face_index is None and warn is not None:
        warn(f"{path}: {n} faces found; animating the largest (use --face N to pick another, "
             f"0 = largest)")
    if n == 0:
        raise InputError(path, "no face found")
    landmarks = fit_landmarks(image, boxes[index])
    if landmarks is None:
        raise InputError(path, f"face {index} was detected but its landmarks could not be fitted "
                               "(is it turned away, covered or blurred?)")
    lo, hi = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    box = np.concatenate([lo, hi]).astype(np.float32)
    width = float(hi[0] - lo[0])
    if width < min_face_px:
        raise InputError(path, f"face is too small ({width:.0f} px wide; need at least "
                               f"{min_face_px} px)")
    h, w = image.shape[:2]
    inside = ((landmarks[:, 0] >= 0) & (landmarks[:, 0] < w) & (landmarks[:, 1] >= 0)
              & (landmarks[:, 1] < h))
    features = list(fm.LIPS_UPPER_OUTER + fm.LIPS_LOWER_OUTER + fm.LEFT_EYE_UPPER
                    + fm.LEFT_EYE_LOWER + fm.RIGHT_EYE_UPPER + fm.RIGHT_EYE_LOWER)
    if 1.0 - inside.mean() > MAX_OUTSIDE or not inside[features].all():
        raise InputError(path, "face is cut off by the edge of the photo")
    return Face(landmarks=landmarks, box=box, person=segment_person(image), index=index,
                n_faces=n)
