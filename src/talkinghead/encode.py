"""Stage 3, encode: split the portrait into appearance and the source's own motion.

Appearance is the output canvas (a face-centred square crop or the full frame), the face
mesh on it, the person mask, the expression rig built from this face, and colours sampled
from it. The source motion is the photo's own head pose, expression and gaze: generated
motion is applied relative to it, so a photo taken mid-word or smiling still animates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkinghead.face import Face
from talkinghead.load import Portrait
from talkinghead.models import facemesh as fm
from talkinghead.models.rig import build_rig
from talkinghead.motionspace import EXPRESSION_NAMES, MotionSequence, expression_index

SOURCE_FPS = 25.0  # the source motion is one frame; its rate is only a label
CROP_IODS = 4.2  # side of the face-centred crop, in inter-ocular distances
CROP_DROP = 0.25  # crop centre below the mesh centre, inter-ocular distances
OPEN_EYE_RATIO = 0.30  # eye opening / eye width of a relaxed open eye
EYE_WIDE_BAND = 0.10  # eyes open by up to this share beyond OPEN_EYE_RATIO read as not widened
# Neutral mouth geometry of a typical face, inter-ocular units (outer eye corners), and how far
# faces differ from it without any expression (dead bands).
NEUTRAL_CORNER_LIFT = -0.005  # mouth corner above the lip seam's centre
CORNER_BAND = 0.025
NEUTRAL_HALF_MOUTH = 0.275  # mouth corner from the nose's midline
WIDTH_BAND = 0.04
NOSE_RIDGE = (6, 197, 195, 5)  # midline points no expression moves sideways
PERSON_SMOOTHING = 0.03  # Gaussian blur of the person mask, inter-ocular distances
FIT_REGULARISATION = 0.003  # ridge weight of the expression fit, relative to the basis' mean energy
FIT_CONTOUR_WEIGHT = 8.0  # weight of the inner-lip and eyelid contours: openings must match
FIT_STEPS = 300  # projected-gradient iterations of the expression fit
# Relative ridge weight per coefficient in the fit (1 when not named): the shapes that can
# mimic jaw, lip and lid motion cost more (see fit_expression_change).
FIT_PRIOR = {"jawOpen": 0.1, "mouthClose": 0.3, "eyeBlinkLeft": 0.1, "eyeBlinkRight": 0.1,
             "mouthRollLower": 10.0, "mouthRollUpper": 10.0, "mouthShrugLower": 10.0,
             "mouthShrugUpper": 10.0, "mouthPressLeft": 5.0, "mouthPressRight": 5.0,
             "cheekSquintLeft": 5.0, "cheekSquintRight": 5.0}


@dataclass(frozen=True)
class Appearance:
    image: np.ndarray  # (H, W, 3) uint8 canvas: the output frame when nothing moves
    vertices: np.ndarray  # (478, 3) float32 canvas pixels; z in pixels, < 0 toward the camera
    person: np.ndarray  # (H, W) float32 in [0, 1] person mask on the canvas
    head: fm.HeadFrame  # the source head's frame on the canvas
    rig: np.ndarray  # (E, 478, 3) float32 canvas pixels per unit of each coefficient
    lip_rgb: np.ndarray  # (3,) float32 in [0, 1]: median lip colour
    skin_rgb: np.ndarray  # (3,) float32 in [0, 1]: median cheek colour
    placement: np.ndarray  # (2, 3) float64 affine: photo pixels -> canvas pixels


def canvas_placement(image_shape: tuple[int, ...], landmarks: np.ndarray, *, size: int,
                     full_frame: bool, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Affine (2, 3) from photo to canvas pixels, and the canvas (width, height): a
    face-centred square of ``size`` pixels, or with ``full_frame`` the photo's own framing
    scaled to fit ``max_side``."""
    h, w = image_shape[:2]
    if full_frame:
        scale = min(1.0, max_side / max(h, w))
        out_w, out_h = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2
        return np.array([[scale, 0, 0], [0, scale, 0]], dtype=np.float64), (out_w, out_h)
    frame = fm.fit_head_frame(landmarks)
    side = min(CROP_IODS * frame.iod, float(h), float(w))
    centre = landmarks[: fm.N_SURFACE, :2].mean(axis=0) + CROP_DROP * frame.iod * frame.rotation[:2, 1]
    x0 = float(np.clip(centre[0] - side / 2, 0, w - side))
    y0 = float(np.clip(centre[1] - side / 2, 0, h - side))
    scale = size / side
    affine = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float64)
    return affine, (size, size)


def estimate_expression(vertices: np.ndarray, head: fm.HeadFrame, rig: np.ndarray) -> np.ndarray:
    """(E,) a single photo's own coefficients, from geometric ratios in inter-ocular units.

    rig: (E, 478, 3) this face's rig for a neutral source (``build_rig`` with zeros), which
    says how far one unit of each coefficient moves the points measured.

    A photo has no neutral face of its own to compare with, so only what geometry tells
    across faces is read, each against a typical neutral value with a dead band for how faces
    differ: jawOpen (inner lip gap), eyeBlink and eyeWide (lid opening / eye width),
    mouthSmile and mouthFrown (mouth corner height against the lip seam), mouthStretch (half
    mouth width from the nose's midline, less a smile's widening). The rest stay 0: brows, lip
    rolls, a narrow mouth (pucker) and cheeks vary too much between people to be read from
    one photo. Motion is applied relative to the photo, so a coefficient read as 0 only
    limits how far it can go down.
    """
    v = head.to_head(vertices)
    coeffs = np.zeros(len(EXPRESSION_NAMES), dtype=np.float64)

    def put(name: str, value: float) -> None:
        coeffs[expression_index(name)] = float(np.clip(value, 0.0, 1.0))

    def per_unit(name: str, point: int, axis: int) -> float:
        return max(abs(float(rig[expression_index(name), point, axis])), 1e-6)

    put("jawOpen", float(v[14, 1] - v[13, 1]) / per_unit("jawOpen", 14, 1))
    for side, upper, lower in (("Left", fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                               ("Right", fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
        ratio = lid_gap(v, upper, lower) / OPEN_EYE_RATIO
        put(f"eyeBlink{side}", min(1.0 - ratio, 0.9))
        put(f"eyeWide{side}", (ratio - 1.0 - EYE_WIDE_BAND) / 0.25)  # the rig's wide: +25 % per unit

    seam = 0.5 * (v[13, 1] + v[14, 1])
    midline = float(v[list(NOSE_RIDGE), 0].mean())
    for side, corner, out in (("Left", fm.MOUTH_CORNER_LEFT, 1.0), ("Right", fm.MOUTH_CORNER_RIGHT, -1.0)):
        lift = float(seam - v[corner, 1]) - NEUTRAL_CORNER_LIFT
        smile = (lift - CORNER_BAND) / per_unit(f"mouthSmile{side}", corner, 1)
        put(f"mouthSmile{side}", smile)
        put(f"mouthFrown{side}", (-lift - CORNER_BAND) / per_unit(f"mouthFrown{side}", corner, 1))
        half_width = out * float(v[corner, 0] - midline) - NEUTRAL_HALF_MOUTH
        smile_widening = max(smile, 0.0) * per_unit(f"mouthSmile{side}", corner, 0)
        put(f"mouthStretch{side}", (half_width - smile_widening - WIDTH_BAND)
            / per_unit(f"mouthStretch{side}", corner, 0))
    return coeffs.astype(np.float32)


def lid_gap(v_head: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    """Eyelid gap over eye width of head-frame points ``v_head`` (478, 3)."""
    width = float(np.linalg.norm(v_head[upper[0], :2] - v_head[upper[-1], :2]))
    return float(np.mean(v_head[list(lower[2:-2]), 1] - v_head[list(upper[2:-2]), 1])) / max(width, 1e-6)


def expression_and_rig(vertices: np.ndarray, head: fm.HeadFrame) -> tuple[np.ndarray, np.ndarray]:
    """The face's own coefficients (E,) and its rig (E, 478, 3) in head-frame units."""
    v_head = head.to_head(vertices)
    neutral_rig = build_rig(v_head, np.zeros(len(EXPRESSION_NAMES), np.float32))
    expression = estimate_expression(vertices, head, neutral_rig)
    return expression, build_rig(v_head, expression)


def fit_expression_change(rig: np.ndarray, displacement: np.ndarray, lower: np.ndarray,
                          upper: np.ndarray, regularisation: float = FIT_REGULARISATION,
                          steps: int = FIT_STEPS) -> np.ndarray:
    """(T, E) coefficient changes c minimising
    |sum_k c_k rig_k - displacement|^2 + reg sum_k p_k c_k^2, with lower <= c <= upper.

    rig: (E, V, 3) displacement per unit of each coefficient (head frame, inter-ocular units).
    displacement: (T, V, 3) observed displacement of the same points from the face the rig
    was built on. The surface points count, irises do not (they follow gaze, not the rig), and
    only in x and y: the face mesh infers depth from the image, and a jaw that swings toward
    the camera in the rig barely does so in its z, which would make the fit under-read the
    jaw. The inner-lip and eyelid contours weigh more (FIT_CONTOUR_WEIGHT): mouth and eye
    openings are what the eye notices first.
    The prior p_k (FIT_PRIOR) makes the shapes that speech and blinks mostly use (jaw, lip
    closure, rounding, smile, blink) cheaper than those that can mimic them: on an open-mouth
    reference, rolling both lips in also closes the mouth, but a real mouth closes with the jaw.
    The box-constrained least squares is solved by accelerated projected gradient (FISTA),
    all frames at once.
    """
    weight = np.ones((fm.N_SURFACE, 1))
    weight[list(fm.LIPS_UPPER_INNER + fm.LIPS_LOWER_INNER)] = FIT_CONTOUR_WEIGHT
    weight[list(fm.LEFT_EYE_UPPER + fm.LEFT_EYE_LOWER + fm.RIGHT_EYE_UPPER
                + fm.RIGHT_EYE_LOWER)] = FIT_CONTOUR_WEIGHT
    basis = (rig[:, : fm.N_SURFACE, :2].astype(np.float64) * weight).reshape(len(rig), -1).T  # (2V, E)
    target = (displacement[:, : fm.N_SURFACE, :2].astype(np.float64) * weight).reshape(
        len(displacement), -1)  # (T, 2V)
    gram = basis.T @ basis
    prior = np.array([FIT_PRIOR.get(name, 1.0) for name in EXPRESSION_NAMES])
    gram += regularisation * np.trace(gram) / len(gram) * np.diag(prior)
    rhs = target @ basis  # (T, E)
    step = 1.0 / float(np.linalg.eigvalsh(gram)[-1])
    c = np.clip(np.zeros_like(rhs), lower, upper)
    y, momentum = c.copy(), 1.0
    for _ in range(steps):
        c_next = np.clip(y - step * (y @ gram - rhs), lower, upper)
        momentum_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum**2))
        y = c_next + (momentum - 1.0) / momentum_next * (c_next - c)
        c, momentum = c_next, momentum_next
    return c.astype(np.float32)


def estimate_gaze(vertices: np.ndarray, head: fm.HeadFrame) -> np.ndarray:
    """(2,) gaze yaw, pitch in degrees: iris centre offset within the eye, both eyes averaged."""
    v = head.to_head(vertices)
    angles = []
    for iris, upper, lower in ((fm.LEFT_IRIS, fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                               (fm.RIGHT_IRIS, fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
        corners = 0.5 * (v[upper[0]] + v[upper[-1]])
        radius = 0.5 * float(np.linalg.norm(v[upper[0], :2] - v[upper[-1], :2]))
        mid_y = 0.5 * (v[list(upper)].mean(axis=0)[1] + v[list(lower)].mean(axis=0)[1])
        dx = (v[iris[0], 0] - corners[0]) / radius
        dy = (v[iris[0], 1] - mid_y) / radius
        angles.append([np.rad2deg(np.arcsin(np.clip(dx, -1, 1))),
                       -np.rad2deg(np.arcsin(np.clip(dy, -1, 1)))])
    return np.mean(angles, axis=0).astype(np.float32)


def _median_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pixels = image[mask]
    if len(pixels) < 4:
        return image.reshape(-1, 3).mean(axis=0).astype(np.float32) / 255.0
    return np.median(pixels, axis=0).astype(np.float32) / 255.0


def _polygon_mask(shape: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(poly[:, :2] * 4).astype(np.int32)], 1, shift=2)
    return mask.astype(bool)


def encode(portrait: Portrait, face: Face, *, size: int = 512, full_frame: bool = False,
           max_side: int = 1920) -> tuple[Appearance, MotionSequence]:
    """The canvas (see ``canvas_placement``) with its face geometry and rig, and the source's
    motion (one frame)."""
    affine, (out_w, out_h) = canvas_placement(portrait.image.shape, face.landmarks, size=size,
                                              full_frame=full_frame, max_side=max_side)
    scale = float(affine[0, 0])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    image = cv2.warpAffine(portrait.image, affine, (out_w, out_h), flags=interp,
                           borderMode=cv2.BORDER_REPLICATE)
    person = cv2.warpAffine(face.person, affine, (out_w, out_h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    vertices = face.landmarks.astype(np.float64).copy()
    vertices[:, :2] = vertices[:, :2] @ affine[:, :2].T + affine[:, 2]
    vertices[:, 2] *= scale
    head = fm.fit_head_frame(vertices)
    # The segmenter works at 256 px: its edge is a staircase on a bigger canvas. Smoothed, it
    # gives the moving head a soft silhouette instead of a serrated one.
    person = cv2.GaussianBlur(person, (0, 0), PERSON_SMOOTHING * head.iod)

    source_expression, rig_head = expression_and_rig(vertices, head)
    rig = (rig_head @ head.rotation.T * head.iod).astype(np.float32)

    v2 = vertices[:, :2]
    lips = _polygon_mask((out_h, out_w), [v2[list(fm.LIPS_UPPER_OUTER + fm.LIPS_LOWER_OUTER[::-1])]])
    lips &= ~_polygon_mask((out_h, out_w), [v2[list(fm.inner_lip_polygon())]])
    cheeks = np.zeros((out_h, out_w), dtype=bool)
    yy, xx = np.mgrid[0:out_h, 0:out_w]
    for upper, corner in ((fm.LEFT_EYE_LOWER, fm.MOUTH_CORNER_LEFT),
                          (fm.RIGHT_EYE_LOWER, fm.MOUTH_CORNER_RIGHT)):
        centre = 0.5 * (v2[list(upper)].mean(axis=0) + v2[corner])
        cheeks |= (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 < (0.12 * head.iod) ** 2

    yaw, pitch, roll = head.angles
    source = MotionSequence(
        fps=SOURCE_FPS,
        pose=np.array([[yaw, pitch, roll, 0.0, 0.0, 1.0]], dtype=np.float32),
        expression=source_expression[None],
        gaze=estimate_gaze(vertices, head)[None],
    )
    appearance = Appearance(
        image=image, vertices=vertices.astype(np.float32), person=person, head=head, rig=rig,
        lip_rgb=_median_colour(image, lips), skin_rgb=_median_colour(image, cheeks),
        placement=affine,
    )
    return appearance, source
