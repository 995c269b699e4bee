"""Semantics of mediapipe's 478-point face mesh, and the head frame fitted to it.

Indices follow mediapipe's canonical face mesh (468 surface points, then 5 + 5 iris points).
"Right"/"Left" are the subject's: the right eye is on the image's left in a frontal photo.
Contours run from the subject's right corner to the left corner.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

N_LANDMARKS = 478
N_SURFACE = 468

LIPS_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNER_RIGHT, MOUTH_CORNER_LEFT = 61, 291

# Eye contours run from the outer corner to the inner corner.
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first, then four rim points
LEFT_IRIS = (473, 474, 475, 476, 477)

# Brows run from the outer end to the inner end, upper edge.
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (300, 293, 334, 296, 336)

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
FOREHEAD_TOP, CHIN, NOSE_TIP = 10, 152, 1
CHEEK_RIGHT, CHEEK_LEFT = 234, 454  # widest points of the face oval, beside the ears

# Symmetric pairs (subject's right, subject's left) used for the head's x axis: points fixed
# to the skull only (eye corners, the face outline beside the eyes and cheeks), so that smiles,
# blinks and brow raises do not read as head turns.
_SYMMETRIC_PAIRS = ((33, 263), (133, 362), (234, 454), (127, 356), (93, 323), (130, 359),
                    (143, 372))
# Midline points from forehead to chin, used for the head's y axis.
_MIDLINE = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 2, 164, 0, 17, 18, 200, 199, 175, 152)


def inner_lip_polygon() -> tuple[int, ...]:
    """Closed polygon of the mouth opening: upper inner lip right to left, lower back."""
    return LIPS_UPPER_INNER + LIPS_LOWER_INNER[-2:0:-1]


def eye_polygon(side: str) -> tuple[int, ...]:
    """Closed polygon of one eye opening ("left" or "right")."""
    upper, lower = (LEFT_EYE_UPPER, LEFT_EYE_LOWER) if side == "left" else (RIGHT_EYE_UPPER,
                                                                               RIGHT_EYE_LOWER)
    return upper + lower[-2:0:-1]


@lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """(F, 3) int64 triangles of the 468-point surface, holes at the mouth and eyes kept open.

    mediapipe publishes the mesh as an edge set; its faces are the edge triangles, less the
    few that span a hole (three points of one lip or eye contour).
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    faces = {tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION
             for c in neighbours[a] & neighbours[b]}
    holes = [set(inner_lip_polygon()), set(eye_polygon("left")), set(eye_polygon("right"))]
    kept = [f for f in sorted(faces) if not any(set(f) <= hole for hole in holes)]
    return np.array(kept, dtype=np.int64)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation for angles in degrees, sign conventions of ``motionspace``.

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch), acting on column vectors in camera axes
    (x right, y down, z away from the camera); the face looks along -z at R = I.
    """
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of ``rotation_matrix``: (yaw, pitch, roll) in degrees."""
    # For R = Rz Ry Rx the bottom row is (sin y, -cos y sin p, cos y cos p) and the first
    # column is (cos r cos y, sin r cos y, sin y).
    yaw = np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0))
    pitch = np.arctan2(-rotation[2, 1], rotation[2, 2])
    roll = np.arctan2(rotation[1, 0], rotation[0, 0])
    return float(np.rad2deg(yaw)), float(np.rad2deg(pitch)), float(np.rad2deg(roll))


@dataclass(frozen=True)
class HeadFrame:
    """Where the head is: points in the head frame map to the image by ``centre + scale * R p``."""

    rotation: np.ndarray  # (3, 3) head axes in camera axes (columns: head x, y, z)
    centre: np.ndarray  # (3,) pixels: mean of the surface landmarks
    iod: float  # pixels: inter-ocular distance (outer eye corners), the unit of face size

    def to_head(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) image-space points -> head frame, in inter-ocular units."""
        return (points - self.centre) @ self.rotation / self.iod

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) head-frame points in inter-ocular units -> image space."""
        return points * self.iod @ self.rotation.T + self.centre

    @property
    def angles(self) -> tuple[float, float, float]:
        return euler_angles(self.rotation)


def fit_head_frame(landmarks: np.ndarray) -> HeadFrame:
    """Head axes from a (478, 3) landmark set in pixels (z in the same units as x).

    x runs from the subject's right to left (mean over symmetric landmark pairs), y from
    forehead to chin (least-squares line through the midline, made orthogonal to x), z = x cross y.
    The frame is the face's own: a frontal, level face gives R close to the identity.
    """
    pts = landmarks.astype(np.float64)
    pairs = np.array(_SYMMETRIC_PAIRS)
    across = pts[pairs[:, 1]] - pts[pairs[:, 0]]  # (P, 3)
    x = (across / np.linalg.norm(across, axis=1, keepdims=True)).mean(axis=0)
    x /= np.linalg.norm(x)
    mid = pts[list(_MIDLINE)]
    mid_centred = mid - mid.mean(axis=0)
    _, _, vt = np.linalg.svd(mid_centred, full_matrices=False)
    y = vt[0] if np.dot(vt[0], pts[CHIN] - pts[FOREHEAD_TOP]) > 0 else -vt[0]
    y = y - np.dot(y, x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    rotation = np.stack([x, y, z], axis=1)
    iod = float(np.linalg.norm(pts[263] - pts[33]))
    return HeadFrame(rotation=rotation, centre=pts[:N_SURFACE].mean(axis=0), iod=iod)


# Points fixed to the skull (eye corners, the nose's ridge, the top of the forehead, the outline
# beside the eyes and ears): what a rigid fit between two expressions of one face may use. The
# skin between and above the brows moves with them, the nose tip with a smile: left out.
SKULL_POINTS = (33, 133, 263, 362, 6, 197, 195, 5, 10, 234, 454, 127, 356)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (scale s, rotation R, shift t) with target ~ s R source + t.

    source, target: (N, 3) corresponding points (Umeyama's method, no reflection).
    """
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / max((a**2).sum(), 1e-12))
    return scale, rotation, mu_t - scale * rotation @ mu_s
