"""The expression rig: each ARKit coefficient as a displacement of the 478 mesh points.

Built from the source face's own mesh, in its head frame (inter-ocular units, x from the
subject's right to left, y down, z away from the camera), so it fits every face without a
template. Coefficients act linearly: displacement = sum_k coefficient_k * basis_k. The jaw's
basis is the tangent of a rotation about the jaw hinge, so jawOpen = 1 opens the lower jaw
by JAW_MAX_DEG at the chin.

Regions come from the mesh's semantics (lip, eye and brow contours in ``facemesh``), softened
with Gaussian fall-offs so the deformation is smooth everywhere except at the lip and eyelid
seams, where it must be sharp.

What one unit of each coefficient does (inter-ocular units; "Left" is the subject's left):
- jawOpen: the jaw and lower lip turn JAW_MAX_DEG about a hinge below the ears; upper lip stays.
- mouthClose: the lower lip rises (0.7 of the jaw's lip drop) and the upper lip falls (0.3):
  lips meet over an open jaw.
- mouthFunnel / mouthPucker: lips draw toward the mouth's centre and forward; funnel also
  parts them, pucker narrows more.
- mouthSmile / Frown / Stretch (per side): the corner moves up and out / down / out.
- mouthPress (per side), mouthRollUpper / Lower: lip contours squash toward the lip seam.
- mouthLowerDown / UpperUp (per side), mouthShrugLower / Upper: one lip moves down / up.
- browDown / browOuterUp (per side), browInnerUp: the brow region moves down and inward /
  the outer end up / the inner ends up.
- cheekSquint (per side): the cheek below the eye rises.
- eyeBlink (per side): the upper lid travels to the lower lid (exactly closed from the
  source's state), skin above it following; eyeSquint raises the lower lid, eyeWide lifts
  the upper one, by a quarter of the open gap.
``encode.fit_expression_change`` inverts this map: observed displacement to coefficients.
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path as PolygonPath

from talkinghead.models import facemesh as fm
from talkinghead.motionspace import EXPRESSION_NAMES

JAW_MAX_DEG = 20.0  # jaw rotation at jawOpen = 1
JAW_AT_CORNERS = 0.3  # share of the jaw's motion the mouth corners follow


def _gauss(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """(N,) Gaussian weight of each point's 2D (x, y) distance to ``centre``."""
    d2 = ((points[:, :2] - centre[:2]) ** 2).sum(axis=1)
    return np.exp(-0.5 * d2 / radius**2)


def smoothstep(lo: float, hi: float, x):
    """0 below ``lo``, 1 above ``hi``, a smooth cubic between; numpy arrays or torch tensors."""
    t = ((x - lo) / (hi - lo)).clip(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: 2D point strictly inside the closed polygon."""
    return PolygonPath(polygon[:, :2]).contains_points(points[:, :2])


def _lip_weights(v: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft upper-lip and lower-lip weights: 1 on a lip's own points (its contours and the
    mesh rings inside it), 0.5 at the shared corners, 0 on the other lip, and a Gaussian
    fall-off with distance elsewhere."""
    corners = set(fm.LIPS_UPPER_OUTER[::10] + fm.LIPS_UPPER_INNER[::10])
    contours = ((fm.LIPS_UPPER_OUTER, fm.LIPS_UPPER_INNER),
                (fm.LIPS_LOWER_OUTER, fm.LIPS_LOWER_INNER))
    all_contours = list(set(sum((o + i for o, i in contours), ())))
    members = []
    for outer, inner in contours:
        polygon = np.concatenate([v[list(outer)], v[list(inner[::-1])]])
        own = _inside(v, polygon)
        own[all_contours] = False  # a closed mouth puts contour points on both lips' edges
        own[list(outer + inner)] = True
        own[list(corners)] = False
        members.append(own)
    weights = []
    for own, other in (members, members[::-1]):
        dist = np.min(np.linalg.norm(v[:, None, :2] - v[None, own, :2], axis=2), axis=1)
        w = np.exp(-0.5 * (dist / radius) ** 2)
        w[own], w[other] = 1.0, 0.0
        w[list(corners)] = 0.5
        weights.append(w)
    return weights[0], weights[1]


def _contour_y(contour: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y of a left-to-right 2D contour at each x (linear, clamped at the ends)."""
    order = np.argsort(contour[:, 0])
    return np.interp(x, contour[order, 0], contour[order, 1])


def build_rig(head: np.ndarray, source_expression: np.ndarray) -> np.ndarray:
    """(E, 478, 3) displacement per unit of each coefficient, head frame, inter-ocular units.

    head: (478, 3) the source face in its head frame (``HeadFrame.to_head``).
    source_expression: (E,) the source's own coefficients; eyelid bases are scaled so that a
    blink from the source's state reaches a closed eye exactly.
    """
    v = head.astype(np.float64)
    n = len(v)
    bases = {name: np.zeros((n, 3)) for name in EXPRESSION_NAMES}
    src = dict(zip(EXPRESSION_NAMES, source_expression, strict=True))

    upper_inner, lower_inner = v[list(fm.LIPS_UPPER_INNER)], v[list(fm.LIPS_LOWER_INNER)]
    upper_lip, lower_lip = _lip_weights(v, 0.06)
    in_upper, in_lower = upper_lip == 1.0, lower_lip == 1.0
    corner_r, corner_l = v[fm.MOUTH_CORNER_RIGHT], v[fm.MOUTH_CORNER_LEFT]
    mouth_centre = 0.5 * (upper_inner.mean(axis=0) + lower_inner.mean(axis=0))
    mouth_half = 0.5 * abs(corner_l[0] - corner_r[0])
    lip_seam_y = 0.5 * (_contour_y(upper_inner, v[:, 0]) + _contour_y(lower_inner, v[:, 0]))
    left_side = smoothstep(-0.4 * mouth_half, 0.4 * mouth_half, v[:, 0] - mouth_centre[0])
    sides = {"Left": left_side, "Right": 1.0 - left_side}
    corners = {"Left": corner_l, "Right": corner_r}
    outward = {"Left": 1.0, "Right": -1.0}
    lips = np.maximum(upper_lip, lower_lip)

    # Jaw: everything below a line through the mouth corners that rises toward the ears
    # turns about the hinge; the lower lip goes with it, the upper lip stays.
    ear_y = 0.5 * (v[fm.CHEEK_RIGHT, 1] + v[fm.CHEEK_LEFT, 1])
    face_half = 0.5 * abs(v[fm.CHEEK_LEFT, 0] - v[fm.CHEEK_RIGHT, 0])
    lateral = np.clip((np.abs(v[:, 0] - mouth_centre[0]) - 0.9 * mouth_half)
                      / max(face_half - 0.9 * mouth_half, 1e-6), 0.0, 1.0)
    boundary = mouth_centre[1] + (ear_y + 0.15 - mouth_centre[1]) * lateral
    width = 0.03 + 0.25 * lateral
    jaw = smoothstep(-width, width, v[:, 1] - boundary)
    # The lower lip follows the jaw fully in the middle and JAW_AT_CORNERS at the corners,
    # along an elliptic profile, so the opening is lens-shaped rather than angular and the
    # skin at the corners is not dragged down.
    # The taper fades out below the mouth, so the chin still moves as one piece.
    across = np.clip(np.abs(v[:, 0] - mouth_centre[0]) / mouth_half, 0.0, 1.0)
    corner_taper = JAW_AT_CORNERS + (1.0 - JAW_AT_CORNERS) * np.sqrt(1.0 - across**2)
    near_mouth = np.exp(-0.5 * (np.clip(v[:, 1] - mouth_centre[1], 0, None) / 0.12) ** 2)
    jaw = np.where(in_lower, 1.0, np.where(in_upper, 0.0, jaw))
    jaw = jaw * (1.0 - (1.0 - corner_taper) * near_mouth)
    jaw[upper_lip == 0.5] = JAW_AT_CORNERS
    hinge = np.array([0.0, ear_y + 0.1, 0.5 * (v[fm.CHEEK_RIGHT, 2] + v[fm.CHEEK_LEFT, 2]) + 0.3])
    theta = np.deg2rad(JAW_MAX_DEG)
    rel = v - hinge
    bases["jawOpen"] = jaw[:, None] * theta * np.stack([np.zeros(n), -rel[:, 2], rel[:, 1]], 1)

    lower_lip_drop = float(np.abs(bases["jawOpen"][list(fm.LIPS_LOWER_INNER), 1]).mean())
    bases["mouthClose"][:, 1] = -0.7 * lower_lip_drop * lower_lip + 0.3 * lower_lip_drop * upper_lip
    bases["mouthClose"][in_upper, 1] = 0.3 * lower_lip_drop

    centre_x = _gauss(v, mouth_centre, 1.2 * mouth_half)
    toward_centre = np.sign(mouth_centre[0] - v[:, 0]) * np.clip(
        np.abs(v[:, 0] - mouth_centre[0]) / mouth_half, 0, 1)
    bases["mouthFunnel"] = np.stack([
        0.07 * toward_centre * lips,
        (-0.05 * upper_lip + 0.07 * lower_lip) * centre_x,
        -0.06 * lips], 1)
    bases["mouthPucker"] = np.stack([
        0.14 * toward_centre * lips,
        (0.01 * upper_lip - 0.01 * lower_lip) * centre_x,
        -0.10 * lips], 1)
    squash = (lip_seam_y - v[:, 1]) * lips  # moves lip contours toward the seam
    bases["mouthRollUpper"][:, 1] = 0.5 * squash * upper_lip
    bases["mouthRollUpper"][:, 2] = 0.03 * upper_lip
    bases["mouthRollLower"][:, 1] = 0.5 * squash * lower_lip
    bases["mouthRollLower"][:, 2] = 0.03 * lower_lip
    chin = _gauss(v, v[fm.CHIN], 0.35)
    bases["mouthShrugLower"][:, 1] = -0.06 * np.maximum(lower_lip, 0.6 * chin)
    bases["mouthShrugUpper"][:, 1] = -0.04 * upper_lip

    eyes = {"Left": (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER, fm.LEFT_BROW),
            "Right": (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER, fm.RIGHT_BROW)}
    for side, weight in sides.items():
        corner, out = corners[side], outward[side]
        around_corner = _gauss(v, corner, 0.22)
        eye_upper, eye_lower, brow = (v[list(i)] for i in eyes[side])
        eye_centre = np.concatenate([eye_upper, eye_lower]).mean(axis=0)
        cheek = eye_centre + np.array([0.0, 0.45, 0.0])
        bases[f"mouthSmile{side}"] = np.stack([
            0.10 * out * around_corner,
            -0.10 * around_corner - 0.04 * _gauss(v, 0.5 * (corner + cheek), 0.25),
            0.03 * around_corner], 1)
        bases[f"mouthFrown{side}"] = np.stack([0.02 * out * around_corner,
                                               0.08 * around_corner, np.zeros(n)], 1)
        bases[f"mouthStretch{side}"] = np.stack([0.12 * out * around_corner,
                                                 0.03 * around_corner, np.zeros(n)], 1)
        bases[f"mouthPress{side}"][:, 1] = 0.3 * squash * weight
        bases[f"mouthLowerDown{side}"][:, 1] = 0.10 * np.maximum(lower_lip, 0.5 * chin) * weight
        bases[f"mouthUpperUp{side}"][:, 1] = -0.08 * upper_lip * weight
        bases[f"cheekSquint{side}"][:, 1] = -0.05 * _gauss(v, cheek, 0.22)

        brow_centre = brow.mean(axis=0)
        brow_region = _gauss(v, brow_centre, 0.30) * (v[:, 1] < eye_centre[1] - 0.05)
        inward = np.sign(eye_centre[0] - mouth_centre[0]) * -1.0
        bases[f"browDown{side}"] = np.stack([0.03 * inward * brow_region, 0.07 * brow_region,
                                             np.zeros(n)], 1)
        outer_brow = _gauss(v, brow[0], 0.25) * (v[:, 1] < eye_centre[1])
        bases[f"browOuterUp{side}"][:, 1] = -0.09 * outer_brow
        bases["browInnerUp"][:, 1] += -0.09 * _gauss(v, brow[-1], 0.22) * (v[:, 1] < eye_centre[1])

        # Eyelids: the upper lid travels to the lower lid's line; skin above follows, fading.
        gap = np.clip(_contour_y(eye_lower, v[:, 0]) - _contour_y(eye_upper, v[:, 0]), 0, None)
        open_share = max(1.0 - float(src[f"eyeBlink{side}"]), 0.05)
        above = _contour_y(eye_upper, v[:, 0]) - v[:, 1]
        within = (np.abs(v[:, 0] - eye_centre[0]) < 0.45).astype(np.float64)
        lid_skin = np.where(above >= -1e-6, np.exp(-0.5 * (np.clip(above, 0, None) / 0.08) ** 2),
                            0.0) * within
        lower_skin = np.where(above < -1e-6, _gauss(v, eye_lower.mean(axis=0), 0.12), 0.0) * within
        for i in eyes[side][0][1:-1]:
            lid_skin[i] = 1.0
        for i in eyes[side][1][1:-1]:
            lower_skin[i] = 1.0
        bases[f"eyeBlink{side}"][:, 1] = (1.1 * lid_skin - 0.1 * lower_skin) * gap / open_share
        bases[f"eyeSquint{side}"][:, 1] = -0.25 * lower_skin * gap / open_share
        bases[f"eyeWide{side}"][:, 1] = -0.25 * lid_skin * gap / open_share

    return np.stack([bases[name] for name in EXPRESSION_NAMES]).astype(np.float32)


LID_FOLD = 0.06  # how far above the upper lid contour the lash band reaches, inter-ocular units


def lid_fold(head: np.ndarray, source_expression: np.ndarray) -> np.ndarray:
    """(E, 478, 3) extra eyelid motion for drawing (not for reading, see ``build_rig``), head
    frame, inter-ocular units: the eyeBlink rows only.

    A closing lid carries the photo's lashes down with it, but they sit a little above the
    mesh's lid contour, and the skin between them and the crease moves less than the contour,
    so a shut eye kept its lash line a few pixels above the seam: two dark lines round a band
    of lid, a drawn almond. A real upper lid folds its lash band down onto the seam; here the
    band up to LID_FOLD above the contour travels its own height further at a full blink,
    fading above it, so the lashes meet the lower lid."""
    v = head.astype(np.float64)
    src = dict(zip(EXPRESSION_NAMES, source_expression, strict=True))
    out = np.zeros((len(EXPRESSION_NAMES), len(v), 3))
    for side, (upper_ids, lower_ids) in {"Left": (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                                         "Right": (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)}.items():
        upper, lower = v[list(upper_ids)], v[list(lower_ids)]
        centre = np.concatenate([upper, lower]).mean(axis=0)
        above = np.clip(_contour_y(upper, v[:, 0]) - v[:, 1], 0.0, None)
        within = (np.abs(v[:, 0] - centre[0]) < 0.45).astype(np.float64)
        band = np.minimum(above, LID_FOLD) * (1.0 - smoothstep(LID_FOLD, 2.0 * LID_FOLD, above))
        open_share = max(1.0 - float(src[f"eyeBlink{side}"]), 0.05)
        out[EXPRESSION_NAMES.index(f"eyeBlink{side}"), :, 1] = band * within / open_share
    return out
