"""The forward motion field: where each pixel of the portrait moves, given the mesh points'
motion and the head's pose change.

1. The mesh (eye and mouth holes bridged by strips, so an eyelid squashes the eyeball rather
   than folding over it) spreads the point motion over every face pixel by its barycentric
   weights; outside the face the motion of the nearest point on the face outline carries on,
   fading with distance. Mesh-to-cell spreading is one sparse matrix product.
2. Each pixel, lifted to 3D with the mesh's depth (its slope bounded, so a turn compresses
   rather than folds; toward the face's outline and beyond, receding like the sides of a
   ball), turns and moves with the head, weighted by a head weight that is 1 on and around
   the head and fades down the neck (below the jaw only the neck's width: the body, collar
   and shoulders stay where they are) and far from the face.

The field is smooth (bar the lip seam, which the mouth painting covers), so it is built on
cells of FIELD_STRIDE pixels; cell (i, j) samples full-resolution point (s j + s/2, s i + s/2).
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch

from talkinghead.encode import Appearance
from talkinghead.models import facemesh as fm
from talkinghead.models.rig import lid_fold, smoothstep
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.renderer.eyes import BLINKS, drawn_lids, drawn_sines
from talkinghead.renderer.layers import BACKGROUND, joined_to
from talkinghead.renderer.mesh import closed_mesh, project_to_polyline, rasterize, rotations

EXTEND_SIGMA = 0.35  # fall-off of face motion beyond the face outline, inter-ocular distances
NECK_FADE = (0.10, 0.75)  # head motion fades out this far below the chin, inter-ocular dist.
NECK_WIDTH = (0.8, 0.5, 0.6)  # neck half-width, its fade, and how far above the chin it starts (IOD)
HEAD_EXTENT = (2.5, 3.2, 0.5)  # head half-width, height above its centre, fade (inter-ocular)
EDGE_RECEDE = 0.5  # inside the face outline depth recedes to the pivot's over this (inter-ocular)
EDGE_FADE = 0.4  # motion fades to zero this close to the canvas edge, inter-ocular distances
FIELD_STRIDE = 2  # the motion field is computed on cells of this many pixels a side
MAX_DEPTH_SLOPE = 1.5  # steepest depth change per pixel across the image: no fold below ~30 deg
SEAM_OPEN = 0.02  # the lips' seam, rasterized this far open each way (inter-ocular distances)
# The share of the iris's vertical shift the renderer moves the upper lids by. A real upper lid
# follows the eyeball about one for one, but motion read off real faces already carries part of
# it in eyeBlink (lids read 0.025 more closed per degree the gaze reads lower, realdata median;
# about a third of the eyeball's share once both are drawn through their curves).
LID_FOLLOW = 0.7
# The most of an eye's opening a look down closes by itself. Real talkers' looks (within about
# +-3 degrees as the tracker reads them) narrow the eye by a quarter at most; and where the
# tracker reads the photo's eye as narrower than it shows (the far eye of a turned head reads
# 0.9 closed), the lid moved by the iris's shift in pixels would shut it: one eye closed.
LID_FOLLOW_MAX_CLOSING = 0.3


def extend_smoothly(values: np.ndarray, known: np.ndarray, near: float, far: float) -> np.ndarray:
    """``values`` carried beyond the ``known`` cells: the nearest known value close to them
    (continuous there), blending within ``near`` cells into a Gaussian blur of width ``far``
    (smooth further out, with none of the nearest value's jumps behind concave corners)."""
    if not known.any():
        return np.zeros_like(values)
    distance, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    by_label = np.zeros(labels.max() + 1)
    by_label[labels[known]] = values[known]
    nearest = by_label[labels]
    blurred = cv2.GaussianBlur(nearest, (0, 0), far)
    w = np.exp(-((distance / near) ** 2))
    return w * nearest + (1.0 - w) * blurred


def bounded_slope(depth: np.ndarray, step: float) -> np.ndarray:
    """The farthest depth map (z grows away) at or in front of ``depth`` whose change between
    neighbouring cells is at most ``step`` (diagonals ``step * sqrt 2``)."""
    z = depth.astype(np.float32)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    diagonal = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.uint8)
    for _ in range(4 * max(z.shape)):
        nearer = np.minimum(cv2.erode(z, cross) + step, cv2.erode(z, diagonal) + step * np.sqrt(2.0))
        bounded = np.minimum(z, nearer)
        if np.array_equal(bounded, z):
            break
        z = bounded
    return z.astype(depth.dtype)


def head_weight(pix: np.ndarray, vertices: np.ndarray, head: fm.HeadFrame, down: np.ndarray,
                inside: np.ndarray, border: np.ndarray) -> np.ndarray:
    """(hs, ws) how much each cell (centres ``pix``, pixels) turns with the head: 1 on the
    face, the head and hair, fading down the neck, far from the face and at the canvas edge
    (``border``, ``edge_fade``).

    It is geometric and smooth, blind to the person mask: a step in it where the face meets
    thin hair or the background would fold the field there (a turning face would tear from
    its hair). Background it carries along is swapped back for the still plate, so it never
    moves."""
    iod, v = head.iod, vertices
    chin_drop = float(np.dot(v[fm.CHIN, :2] - head.centre[:2], down)) / iod
    drop = ((pix - head.centre[:2]) @ down) / iod
    neck = 1.0 - smoothstep(chin_drop + NECK_FADE[0], chin_drop + NECK_FADE[1], drop)
    # Below the jaw only the neck goes with the head: collars, shoulders and the hair
    # resting on them beside it stay with the body.
    across = np.array([down[1], -down[0]])
    beside = np.abs((pix - v[fm.CHIN, :2]) @ across) / iod
    below = smoothstep(chin_drop - NECK_WIDTH[2], chin_drop, drop)
    neck *= 1.0 - below * smoothstep(NECK_WIDTH[0], NECK_WIDTH[0] + NECK_WIDTH[1], beside)
    # A loose bound on how far from the face the head (with big hair) can reach.
    ex = ((pix - head.centre[:2]) @ across) / (HEAD_EXTENT[0] * iod)
    ey = np.minimum(drop, 0.0) / HEAD_EXTENT[1]
    neck *= 1.0 - smoothstep(1.0, 1.0 + HEAD_EXTENT[2], np.hypot(ex, ey))
    return np.maximum(inside, neck) * border


def edge_fade(pix: np.ndarray, iod: float, width: int, height: int) -> np.ndarray:
    """0 at the canvas edge rising to 1 inward: nothing moves there, as there is nothing
    beyond it to bring into view."""
    edge_px = np.minimum(np.minimum(pix[..., 0], width - pix[..., 0]),
                         np.minimum(pix[..., 1], height - pix[..., 1]))
    return smoothstep(0.0, EDGE_FADE * iod, edge_px)


def head_pivot(vertices: np.ndarray, head: fm.HeadFrame) -> np.ndarray:
    """(3,) canvas pixels: the head turns about the top of the neck, behind the ears at mouth
    level."""
    vh = head.to_head(vertices)
    pivot_head = np.array([[0.5 * (vh[fm.CHEEK_RIGHT, 0] + vh[fm.CHEEK_LEFT, 0]),
                            vh[fm.LIPS_UPPER_INNER[5], 1],
                            0.5 * (vh[fm.CHEEK_RIGHT, 2] + vh[fm.CHEEK_LEFT, 2]) + 0.5]])
    return head.to_image(pivot_head)[0]


def cell_depth(surface: np.ndarray, inside: np.ndarray, dist: np.ndarray, pivot_depth: float,
               iod: float) -> np.ndarray:
    """(hs, ws) depth per cell, pixels: the mesh's ``surface`` inside the face, the outline's
    own carried on beyond it (from a rim of cells just inside it, smoothly). Toward the
    face's outline and beyond it (``dist`` from the outline, pixels), depth recedes to the
    pivot's over EDGE_RECEDE: the cheeks, jaw line, ears and hair are the sides of a ball,
    whose outline stays where it is as the ball turns while the features slide across it. (A
    face tracker reads the turn from just that: with the mesh's own, flatter sides it read 60%
    of the requested yaw.) The slope bound, which keeps a turn from folding, brings the steep
    sides forward again: at 1.2 per pixel the cheek points on the outline moved 1.45 times as
    far as the mesh's, the face turned more like a card, and the extractor read 0.84 of the
    yaw and 0.79 of the pitch asked (median over the devdata portraits, bench/roundtrip.py);
    at MAX_DEPTH_SLOPE 1.5 it reads about 1.0 of both."""
    s = FIELD_STRIDE
    rim = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    depth = np.where(inside, surface, extend_smoothly(surface, rim, 0.1 * iod / s, 0.3 * iod / s))
    recede = np.where(inside, 1.0 - smoothstep(0.0, EDGE_RECEDE, dist / iod), 1.0)
    depth = depth + recede * np.maximum(pivot_depth - depth, 0.0)
    # A warp cannot fold: where depth falls steeply (the nose's sides, the face's edge
    # against the hair behind it) a head turn would carry near points over far ones.
    # Depth brought forward to a bounded slope makes the far side compress instead.
    return bounded_slope(depth, MAX_DEPTH_SLOPE * s)


class WarpField:
    """The forward field of one portrait. Build once, then ``forward`` batches of motion.
    ``x0, y0, x1, y1`` bound the rectangle where anything can move (canvas pixels)."""

    def __init__(self, appearance: Appearance, source: MotionSequence, device: torch.device) -> None:
        h, w = appearance.image.shape[:2]
        head, v = appearance.head, appearance.vertices.astype(np.float64)
        self.iod = iod = head.iod
        s = FIELD_STRIDE
        hs, ws = h // s, w // s
        tris = closed_mesh()
        cells = v.copy()
        # The lips' seam is rasterized a little open (each inner lip line moved SEAM_OPEN off
        # it): the strip bridging the lips then covers whole cells along the seam, so as the
        # lips part the field opens smoothly across it, instead of in the cells' staircase
        # (whose inversion scatters torn, pale pixels along the lower lip).
        down = head.rotation[:2, 1] / np.linalg.norm(head.rotation[:2, 1])
        for line, sign in ((fm.LIPS_UPPER_INNER, -1.0), (fm.LIPS_LOWER_INNER, 1.0)):
            cells[list(line[1:-1]), :2] += sign * SEAM_OPEN * iod * down
        cells[:, :2] /= s
        tri_id, bary = rasterize(cells, tris, ws, hs)
        self.inside = inside = tri_id >= 0  # (hs, ws) cells on the face

        yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float64)
        pix = np.stack([xx + 0.5, yy + 0.5], axis=-1) * s  # (hs, ws, 2) full-resolution points
        border = edge_fade(pix, iod, w, h)
        # Exactly zero on the background, so it never moves; and only the part of the person
        # mask joined to the face moves (the segmenter sometimes marks logos as "person").
        person_full = cv2.resize(appearance.person.astype(np.float64), (ws, hs),
                                 interpolation=cv2.INTER_AREA)
        self.joined = joined_to(person_full > 0.5, (v[:fm.N_SURFACE, :2].mean(axis=0) / s))
        person = smoothstep(BACKGROUND, 0.3, person_full) * self.joined
        weight = head_weight(pix, v, head, down, inside, border)

        # Where anything can move: the head, and face motion's reach beyond the outline.
        oval = v[list(fm.FACE_OVAL), :2]
        edge, t, dist = project_to_polyline(pix.reshape(-1, 2), oval)
        reach = dist.reshape(hs, ws) < 3.0 * EXTEND_SIGMA * iod
        ys, xs = np.nonzero((weight > 0) | inside | (reach & (person > 0)))
        margin = int(np.ceil(0.05 * iod / s))
        cy0, cy1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, hs)
        cx0, cx1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, ws)
        self.y0, self.y1, self.x0, self.x1 = cy0 * s, cy1 * s, cx0 * s, cx1 * s
        rect = (slice(cy0, cy1), slice(cx0, cx1))
        self.cells = (cy1 - cy0, cx1 - cx0)

        # Per-cell gather of point motion: 3 points and weights each.
        ring = np.array(fm.FACE_OVAL)
        a_idx = ring[edge].reshape(hs, ws)
        b_idx = ring[(edge + 1) % len(ring)].reshape(hs, ws)
        t = t.reshape(hs, ws)
        fade = np.exp(-0.5 * (dist.reshape(hs, ws) / (EXTEND_SIGMA * iod)) ** 2) * border
        idx = np.where(inside[..., None], tris[np.maximum(tri_id, 0)],
                       np.stack([a_idx, b_idx, a_idx], axis=-1))
        wt_motion = np.where(inside[..., None], bary,
                             np.stack([(1 - t) * fade, t * fade, np.zeros_like(t)], axis=-1))
        pivot = head_pivot(v, head)
        depth = cell_depth((v[idx, 2] * bary).sum(axis=-1), inside, dist.reshape(hs, ws), pivot[2], iod)

        f32 = dict(device=device, dtype=torch.float32)
        # Mesh point motion -> cell motion is linear with 3 weights per cell: a sparse matrix.
        n_cells = self.cells[0] * self.cells[1]
        matrix = torch.sparse_coo_tensor(  # (P, V)
            np.stack([np.repeat(np.arange(n_cells), 3), idx[rect].reshape(-1)]),
            wt_motion[rect].reshape(-1), (n_cells, len(v)), dtype=torch.float32,
            check_invariants=True)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": it is all we use of it
            warnings.simplefilter("ignore")
            self.spread = matrix.coalesce().to_sparse_csr().to(device)  # (P, V)
        points = np.stack([pix[..., 0], pix[..., 1], depth], axis=-1)[rect].reshape(-1, 3)
        self.points = torch.as_tensor(points.T.copy(), **f32)  # (3, P) cell centres, pixels
        self.head_weight = torch.as_tensor(weight[rect].reshape(1, -1), **f32)  # (1, P)
        self.pivot = torch.as_tensor(pivot, **f32)
        self.source_pose = torch.as_tensor(source.pose[0], **f32)
        self.source_expression = torch.as_tensor(source.expression[0], **f32)
        self._source_drawn = drawn_lids(self.source_expression)  # the photo's lids, as drawn
        head = appearance.head
        v = head.to_head(appearance.vertices)
        fold = lid_fold(v, source.expression[0]) @ head.rotation.T * head.iod
        self.rig = torch.as_tensor(lids_closing_as_drawn(appearance.rig + fold.astype(np.float32),
                                                         source.expression[0]), **f32)
        # How much of each lid's coefficient moves its lid by the iris's shift: half the eye's
        # width times the sine of the look, against the lid's travel per unit (``build_rig``:
        # 1.1 of the open gap over the drawn remaining travel for eyeBlink, a quarter of it
        # over the remaining travel for eyeWide; a share k of the opening closed: k times the
        # drawn remaining travel over 1.1).
        self._source_gaze = source.gaze[0].astype(np.float64)
        drawn = self._source_drawn.numpy()
        self._lid_follow = []
        for side, (upper, lower) in {"Left": (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                                     "Right": (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)}.items():
            half = 0.5 * float(np.linalg.norm(v[upper[-1], :2] - v[upper[0], :2]))
            gap = max(float(np.mean(v[list(lower[2:-2]), 1] - v[list(upper[2:-2]), 1])), 1e-3)
            blink, wide = expression_index(f"eyeBlink{side}"), expression_index(f"eyeWide{side}")
            drawn_travel = max(1.0 - float(drawn[blink]), 0.05)
            raw_travel = max(1.0 - float(source.expression[0, blink]), 0.05)
            self._lid_follow.append((blink, wide, half * drawn_travel / (1.1 * gap),
                                     half * raw_travel / (0.25 * gap),
                                     LID_FOLLOW_MAX_CLOSING * drawn_travel / 1.1))

    def pose_transform(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotation change (B, 3, 3), scale change (B,) and shift (B, 3) from the source pose."""
        rot = rotations(pose) @ rotations(self.source_pose[None]).transpose(1, 2)
        scale = pose[:, 5] / self.source_pose[5]
        shift = torch.zeros(pose.shape[0], 3, device=pose.device)
        shift[:, :2] = (pose[:, 3:5] - self.source_pose[3:5]) * self.iod
        return rot, scale, shift

    def move(self, points: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor,
             shift: torch.Tensor) -> torch.Tensor:
        """Rigidly move (B, N, 3) points with the head."""
        rel = points - self.pivot
        return self.pivot + scale[:, None, None] * (rel @ rot.transpose(1, 2)) + shift[:, None, :]

    def point_motion(self, expression: torch.Tensor, gaze: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) mesh point motion of (B, E) expressions, against the photo's own (the
        eyelids drawn by the curve that makes them read back as asked, ``eyes.LID_CURVE``),
        with the upper lids following a look up or down when ``gaze`` (B, 2) is given."""
        change = drawn_lids(expression) - self._source_drawn
        if gaze is not None:
            change = change + self._lids_following(gaze)
        return torch.einsum("be,evc->bvc", change, self.rig)

    def _lids_following(self, gaze: torch.Tensor) -> torch.Tensor:
        """(B, E) coefficient changes that move each upper lid with the iris's drawn vertical
        shift (``eyes.drawn_gaze``): a real upper lid rides on the eyeball, so a look down
        lowers it with the iris (eyeBlink) and a look up lifts it (eyeWide), by LID_FOLLOW of
        the iris's shift (a look down closing at most LID_FOLLOW_MAX_CLOSING of the eye's
        opening); still lids over a moving iris read as a stare or rolled-up eyes."""
        shift = LID_FOLLOW * drawn_sines(gaze, self._source_gaze)[:, 1]
        out = np.zeros((len(shift), self.rig.shape[0]))
        for blink, wide, per_sine_down, per_sine_up, most_down in self._lid_follow:
            out[:, blink] = np.minimum(per_sine_down * np.clip(-shift, 0.0, None), most_down)
            out[:, wide] = per_sine_up * np.clip(shift, 0.0, None)
        return torch.as_tensor(out, dtype=self.rig.dtype, device=self.rig.device)

    def forward(self, point_motion: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor,
                shift: torch.Tensor) -> torch.Tensor:
        """(B, 2, ch, cw) pixels: where each cell of the active rectangle moves, given the
        mesh points' own motion (B, V, 3) and the head's pose change."""
        b, n_points = point_motion.shape[:2]
        dense = (self.spread @ point_motion.permute(1, 0, 2).reshape(n_points, -1))  # (P, B*3)
        dense = dense.T.reshape(b, 3, -1)  # (B, 3, P)
        # A point p moved by the expression to m goes on to pivot + s R (m - pivot) + shift
        # with the head, weighted by the head weight.
        turn = (scale[:, None, None] * rot - torch.eye(3, device=rot.device))[:, :2]  # (B, 2, 3)
        rigid = turn @ (self.points - self.pivot[:, None] + dense) + shift[:, :2, None]
        forward = torch.addcmul(dense[:, :2], self.head_weight, rigid)  # (B, 2, P)
        return forward.view(b, 2, *self.cells)


def lids_closing_as_drawn(rig: np.ndarray, source_expression: np.ndarray) -> np.ndarray:
    """(E, V, 3) ``rig`` with each eyeBlink basis rescaled so that a lid drawn shut is shut.

    ``build_rig`` scales a lid's basis to close the photo's opening over the coefficient's
    remaining travel, 1 - eyeBlink; the renderer moves lids by the change of their drawn levels
    (``eyes.drawn_lids``), whose remaining travel from the photo's own is shorter wherever the
    lid curve lifts the photo's level (a photo read at 0.31 is drawn at 0.62): without this
    such an eye would close only to 0.6 of the way."""
    rig = rig.copy()
    drawn = drawn_lids(torch.as_tensor(source_expression[None], dtype=torch.float32))[0].numpy()
    for i in BLINKS:
        rig[i] *= max(1.0 - float(source_expression[i]), 0.05) / max(1.0 - float(drawn[i]), 0.05)
    return rig
