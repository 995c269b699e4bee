"""Stage 6, render: decode motion frames into images by a mesh-driven dense warp.

How a frame is made (all batched in torch, on CPU or GPU):
1. Coefficient changes against the source, times the rig, move the 478 mesh points.
2. The mesh (eye and mouth holes filled with strips, so an eyelid squashes the eyeball
   rather than folding over it) spreads the point motion over every face pixel by its
   barycentric weights; outside the face the motion of the nearest point on the face outline
   carries on, fading with distance.
3. Each pixel, lifted to 3D with the mesh's depth (its slope bounded, so a turn compresses
   rather than folds; toward the face's outline and beyond, receding like the sides of a
   ball), turns and moves with the head's pose change, weighted by a head mask that is 1 on
   and around the head and fades down the neck (below the jaw only the neck's width: the
   body, collar and shoulders stay where they are) and far from the face.
4. That forward motion field is inverted into a backward warp by Newton steps, coarse to
   fine (with the field brought in gradually on the coarsest cells), and the photo is
   resampled with it (OpenCV's remap on the CPU, ``grid_sample`` elsewhere).
   Two layers: the person, warped (premultiplied by its matte), over a still background
   plate (the photo with the person inpainted). Where the head moves away it reveals the
   plate, where it moves on it covers it, so a turning head keeps its hair and ears whole
   instead of squashing them against a pinned background; background the person does not
   cover never changes.
5. Where the lids or the gaze changed, the eyes are redrawn: the eyeball (the photo's
   sclera, its iris moved by the gaze) inside the target opening, closed-lid skin with a
   lash line where the photo's eyeball would show through a closing lid.
6. Where the lips part, a mouth interior is drawn (cavity, upper teeth fixed to the skull,
   lower teeth moving with the jaw, tongue) in colours taken from the portrait.

The ``Decoder`` protocol is what the pipeline needs from a renderer, so a learned decoder
can take this one's place.
"""

from __future__ import annotations

import time
import warnings
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.encode import Appearance
from talkinghead.models import facemesh as fm
from talkinghead.models.rig import smoothstep
from talkinghead.motionspace import MotionSequence, expression_index

EXTEND_SIGMA = 0.35  # fall-off of face motion beyond the face outline, inter-ocular distances
NECK_FADE = (0.10, 0.75)  # head motion fades out this far below the chin, inter-ocular dist.
NECK_WIDTH = (0.8, 0.5, 0.6)  # neck half-width, its fade, and how far above the chin it starts (IOD)
HEAD_EXTENT = (2.5, 3.2, 0.5)  # head half-width, height above its centre, fade (inter-ocular)
EDGE_RECEDE = 0.5  # inside the face outline depth recedes to the pivot's over this (inter-ocular)
EDGE_FADE = 0.4  # motion fades to zero this close to the canvas edge, inter-ocular distances
PLATE_CELL = 0.15  # the background plate is inpainted on cells this big (inter-ocular)
PLATE_PERSON = 0.15  # matte from which the plate guesses the background behind the person
PLATE_GROW = 0.05  # the plate's guess reaches this far beyond the segmenter's person (IOD)
PLATE_MIRROR = 0.6  # how far in the mirrored background fades into the smooth fill (inter-ocular)
INVERSION_STEPS = 6  # Newton steps inverting the forward field, on the cells
INVERSION_RAMP = 6  # steps over which the field is brought in
INVERSION_DAMPING = 0.7  # share of a fixed-point update taken where the field folds
FOLD_DET = 0.2  # Jacobian determinant below which the field counts as folded there
FIELD_STRIDE = 2  # the motion field is computed on cells of this many pixels a side
MAX_DEPTH_SLOPE = 1.2  # steepest depth change per pixel across the image: no fold below ~35 deg
BACKGROUND = 0.02  # person-mask values below this are background and never move
UPPER_TEETH = 0.11  # visible height of the upper incisors, inter-ocular distances
LOWER_TEETH = 0.09
TEETH_TUCK = 0.03  # how far the teeth reach up under the upper lip
OVERBITE = 0.03  # lower incisors behind the upper ones when the jaw is shut
LOWER_TEETH_SHOWN = 0.035  # lower incisors above the lower lip when the jaw is open
SEAM_OPEN = 0.02  # the lips' seam, rasterized this far open each way (inter-ocular distances)
CORNER_REACH = 0.6  # share of the way from the inner lip corners to the outer ones painted
TOOTH_WIDTHS = (0.085, 0.07, 0.06, 0.05, 0.045)  # centre outwards, inter-ocular distances
TEETH_RGB = np.array([0.93, 0.90, 0.83], dtype=np.float32)
EYE_OPEN_MARGIN = 0.004  # visible opening beyond the mesh's lid contours, inter-ocular distances
EYE_LID_MARGIN = 0.02  # how far beyond them the photo's eyeball may still show through
LID_MIX = 0.8  # opacity of the lash line along a closed lid's seam
LUMA = np.array([0.299, 0.587, 0.114])
OPENCV = True  # resample with OpenCV on the CPU (off: grid_sample, as on other devices)


class Decoder(Protocol):
    """Turns motion into frames of the canvas."""

    width: int
    height: int

    def render(self, motion: MotionSequence) -> np.ndarray:
        """(T, H, W, 3) uint8 frames for a batch of T motion frames."""
        ...


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Triangles bridging two contours that share their end points."""
    tris = []
    for i in range(len(upper) - 1):
        for tri in ((upper[i], upper[i + 1], lower[i + 1]), (upper[i], lower[i + 1], lower[i])):
            if len(set(tri)) == 3:
                tris.append(tri)
    return tris


def closed_mesh() -> np.ndarray:
    """(F, 3) the surface triangles plus strips over both eyes and the mouth."""
    extra = (_strip(fm.LIPS_UPPER_INNER, fm.LIPS_LOWER_INNER)
             + _strip(fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)
             + _strip(fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER))
    return np.concatenate([fm.triangles(), np.array(extra, dtype=np.int64)])


def rasterize(vertices: np.ndarray, tris: np.ndarray, width: int, height: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-triangle id per pixel (-1 = none) and its barycentric weights.

    vertices: (V, 3) pixels (z < 0 toward the camera); returns (H, W) int64 and (H, W, 3)
    float32. Pixel (i, j) is sampled at its centre (j + 0.5, i + 0.5). A z-buffer keeps the
    nearest surface where a turned face overlaps itself.
    """
    tri_id = np.full((height, width), -1, dtype=np.int64)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    depth = np.full((height, width), np.inf, dtype=np.float64)
    for f, (a, b, c) in enumerate(tris):
        pa, pb, pc = vertices[a], vertices[b], vertices[c]
        x0 = max(int(np.floor(min(pa[0], pb[0], pc[0]) - 0.5)), 0)
        x1 = min(int(np.ceil(max(pa[0], pb[0], pc[0]) - 0.5)), width - 1)
        y0 = max(int(np.floor(min(pa[1], pb[1], pc[1]) - 0.5)), 0)
        y1 = min(int(np.ceil(max(pa[1], pb[1], pc[1]) - 0.5)), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        det = (pb[1] - pc[1]) * (pa[0] - pc[0]) + (pc[0] - pb[0]) * (pa[1] - pc[1])
        if abs(det) < 1e-9:
            continue
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        px, py = xs + 0.5, ys + 0.5
        wa = ((pb[1] - pc[1]) * (px - pc[0]) + (pc[0] - pb[0]) * (py - pc[1])) / det
        wb = ((pc[1] - pa[1]) * (px - pc[0]) + (pa[0] - pc[0]) * (py - pc[1])) / det
        wc = 1.0 - wa - wb
        inside = (wa >= -1e-6) & (wb >= -1e-6) & (wc >= -1e-6)
        z = wa * pa[2] + wb * pb[2] + wc * pc[2]
        region = depth[y0 : y1 + 1, x0 : x1 + 1]
        win = inside & (z < region)
        region[win] = z[win]
        tri_id[y0 : y1 + 1, x0 : x1 + 1][win] = f
        bary[y0 : y1 + 1, x0 : x1 + 1][win] = np.stack([wa, wb, wc], axis=-1)[win]
    return tri_id, bary


def _project_to_polyline(points: np.ndarray, polygon: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (N, 2) points, the nearest edge (index into the closed polygon), the position t in
    [0, 1] along it, and the distance."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a  # (M, 2)
    best_d = np.full(len(points), np.inf)
    best_e = np.zeros(len(points), dtype=np.int64)
    best_t = np.zeros(len(points))
    for start in range(0, len(points), 65536):
        p = points[start : start + 65536, None, :]  # (n, 1, 2)
        t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
        d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)  # (n, M)
        e = d.argmin(axis=1)
        rows = np.arange(len(e))
        best_d[start : start + 65536] = d[rows, e]
        best_e[start : start + 65536] = e
        best_t[start : start + 65536] = t[rows, e]
    return best_e, best_t, best_d


def _extend_smoothly(values: np.ndarray, known: np.ndarray, near: float, far: float) -> np.ndarray:
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


def _bounded_slope(depth: np.ndarray, step: float) -> np.ndarray:
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


def background_plate(image: np.ndarray, matte: np.ndarray, iod: float) -> np.ndarray:
    """(H, W, 3) float: ``image`` (uint8) with the person replaced by a guess at the
    background behind them. Only where the ``matte`` reaches PLATE_PERSON is the guess used; the
    outer part of the segmenter's soft fringe shows real background, which the plate keeps.

    What a moving head reveals is a sliver along its edge, so near the edge the guess mirrors
    the background across the person's outline, row by row (its texture carries on, with no
    seam); deeper in, it fades into a smooth inpainting on cells of PLATE_CELL. Both are made from
    background clear of the fringe (matte below BACKGROUND), so the person's colours do not
    bleed in."""
    h, w = matte.shape
    # Grown by PLATE_GROW both ways: the finest hair strands at the person's edge are below
    # the segmenter's threshold, and a plate keeping them leaves a ghost of the hair's
    # outline where the head moves away. The strands move with the person layer instead.
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(PLATE_GROW * iod) + 1,) * 2)
    person = cv2.dilate((matte >= PLATE_PERSON).astype(np.uint8), grow).astype(bool)
    clear = cv2.erode((matte < BACKGROUND).astype(np.uint8), grow).astype(bool)
    if not person.any() or not clear.any():
        return image.astype(np.float64)
    cell = max(1, round(PLATE_CELL * iod))
    small = (max(1, w // cell), max(1, h // cell))
    image_small = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    fringe = cv2.resize((~clear).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    hole = cv2.dilate((fringe > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    smooth = cv2.inpaint(image_small, hole, 3, cv2.INPAINT_TELEA)
    smooth = cv2.resize(smooth, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    # Mirror, along each row: a hidden pixel takes the background as far beyond the nearer
    # clear pixel of its row. Rows, because heads mostly turn sideways (the sliver they
    # reveal is at the side) and horizontal structure (blinds, flags, shelves) carries on
    # straight; a mirror across a curved outline would bend it into rings.
    xs = np.broadcast_to(np.arange(w), (h, w))
    left = np.maximum.accumulate(np.where(clear, xs, -1), axis=1)
    right = np.minimum.accumulate(np.where(clear, xs, w)[:, ::-1], axis=1)[:, ::-1]
    has_left, has_right = left >= 0, right < w
    use_left = has_left & (~has_right | (xs - left <= right - xs))
    edge = np.where(use_left, left, right)
    found = has_left | has_right
    mirror = np.clip(np.where(use_left, 2 * left - xs, 2 * right - xs), 0, w - 1)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    mirror = np.where(clear[rows, mirror], mirror, np.clip(edge, 0, w - 1))
    mirrored = image[rows, mirror].astype(np.float64)
    reach = np.where(found, np.abs(xs - edge), np.inf)
    near = np.exp(-((reach / (PLATE_MIRROR * iod)) ** 2))[..., None]
    guess = near * mirrored + (1.0 - near) * smooth
    return np.where(person[..., None], guess, image.astype(np.float64))


def _joined_to(mask: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(H, W) float: 1 on the connected part of ``mask`` that holds ``point`` (x, y), softened
    by a few pixels; all 1 when the point is not on the mask."""
    x, y = (int(np.clip(c, 0, n - 1)) for c, n in zip(point, mask.shape[::-1], strict=True))
    if not mask[y, x]:
        return np.ones(mask.shape)
    _, labels = cv2.connectedComponents(mask.astype(np.uint8))
    joined = cv2.dilate((labels == labels[y, x]).astype(np.uint8), np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(joined.astype(np.float64), (0, 0), 1.5)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Batched 1-D linear interpolation: x (B, N), increasing xp (B, K), fp (B, K) -> (B, N)."""
    idx = torch.searchsorted(xp.contiguous(), x.contiguous()).clamp(1, xp.shape[1] - 1)
    x0, x1 = xp.gather(1, idx - 1), xp.gather(1, idx)
    f0, f1 = fp.gather(1, idx - 1), fp.gather(1, idx)
    t = ((x - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0.0, 1.0)
    return f0 + t * (f1 - f0)


def _opencv(tensor: torch.Tensor) -> bool:
    """Whether OpenCV does the resampling of this tensor: on the CPU, unless OPENCV is off."""
    return OPENCV and tensor.device.type == "cpu"


def _remap(image: torch.Tensor, maps: torch.Tensor, border: bool,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, h, w, C) bilinear samples of the channels-last (N, H, W, C) ``image`` (N is 1 or B)
    at (B, h, w, 2) positions (x, y) in its pixels, pixel centres at whole numbers. Beyond the
    image its edge carries on (``border``) or it is zero.

    On the CPU OpenCV's remap does it, several times faster there than ``grid_sample`` for
    the few channels of a frame (same values to 1e-5); on other devices ``grid_sample``."""
    b, h, w = maps.shape[:3]
    n, height, width, c = image.shape
    if not _opencv(image):
        grid = (maps + 0.5) * torch.tensor([2.0 / width, 2.0 / height], device=maps.device) - 1.0
        return F.grid_sample(image.permute(0, 3, 1, 2).expand(b, -1, -1, -1), grid, mode="bilinear",
                             padding_mode="border" if border else "zeros", align_corners=False
                             ).permute(0, 2, 3, 1)
    out = torch.empty(b, h, w, c) if out is None else out
    source, target, where = image.contiguous().numpy(), out.numpy(), maps.contiguous().numpy()
    mode = cv2.BORDER_REPLICATE if border else cv2.BORDER_CONSTANT
    for i in range(b):
        cv2.remap(source[i if n > 1 else 0], where[i], None, cv2.INTER_LINEAR, dst=target[i],
                  borderMode=mode, borderValue=0)
    return out


def _upsample(field: torch.Tensor, h: int, w: int, out: torch.Tensor | None = None
              ) -> torch.Tensor:
    """(B, h, w, C) channels-last bilinear resize of a (B, C, h', w') field (pixel centres
    kept); on the CPU by OpenCV (into ``out`` when given)."""
    if not _opencv(field):
        return F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False
                             ).permute(0, 2, 3, 1)
    out = torch.empty(field.shape[0], h, w, field.shape[1]) if out is None else out
    source, target = field.permute(0, 2, 3, 1).contiguous().numpy(), out.numpy()
    for i in range(field.shape[0]):
        cv2.resize(source[i], (w, h), dst=target[i], interpolation=cv2.INTER_LINEAR)
    return out


def _centres(h: int, w: int, cell: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(1, 2, h, w) the centres (x, y) of an h x w grid of cells, each ``cell`` (x, y) pixels."""
    gy, gx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + 0.5,
                            torch.arange(w, device=device, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack([gx * cell[0], gy * cell[1]])[None]


def _with_slopes(forward: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (B, 2, h, w) field over a ``height`` x ``width`` pixel rectangle, with its derivatives
    along x and y (central differences): (B, 6, h, w), and the cell size (x, y) in pixels."""
    cell = torch.tensor([width / forward.shape[3], height / forward.shape[2]], device=forward.device)
    padded = F.pad(forward, (1, 1, 1, 1), mode="replicate")
    d_dx = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / (2.0 * cell[0])
    d_dy = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / (2.0 * cell[1])
    return torch.cat([forward, d_dx, d_dy], dim=1), cell


def _newton(u: torch.Tensor, base: torch.Tensor, field: torch.Tensor, cell: torch.Tensor,
            share: float = 1.0) -> torch.Tensor:
    """One step solving u = -share * forward(y + u) for u (B, 2, h, w) pixels at the pixel
    positions ``base`` (1, 2, h, w); ``field`` is ``_with_slopes`` of forward, on cells of
    ``cell`` pixels. Newton's where the Jacobian determinant exceeds FOLD_DET, else a damped
    fixed-point step. (Six channels at a few points each: ``grid_sample`` is the faster.)"""
    cell_scale = 2.0 / (cell * torch.tensor(field.shape[:1:-1], device=cell.device))
    grid = (base + u).permute(0, 2, 3, 1) * cell_scale - 1.0
    f = F.grid_sample(field, grid, mode="bilinear", padding_mode="zeros",
                      align_corners=False)  # (B, 6, h, w)
    if share != 1.0:
        f = f * share
    r = u + f[:, :2]
    a, c, b, d = 1.0 + f[:, 2], f[:, 3], f[:, 4], 1.0 + f[:, 5]
    det = a * d - b * c
    # Where the field folds or nearly does, a damped fixed-point step instead.
    ok = det > FOLD_DET
    inv = 1.0 / det.clamp_min(FOLD_DET)
    step_x = torch.where(ok, (d * r[:, 0] - b * r[:, 1]) * inv, INVERSION_DAMPING * r[:, 0])
    step_y = torch.where(ok, (a * r[:, 1] - c * r[:, 0]) * inv, INVERSION_DAMPING * r[:, 1])
    return u - torch.stack([step_x, step_y], dim=1)


def _rotations(pose: torch.Tensor) -> torch.Tensor:
    """(B, 6) poses -> (B, 3, 3) rotations, as ``facemesh.rotation_matrix``."""
    y, p, r = (torch.deg2rad(pose[:, i]) for i in range(3))
    one, zero = torch.ones_like(y), torch.zeros_like(y)
    ry = torch.stack([torch.cos(y), zero, -torch.sin(y), zero, one, zero,
                      torch.sin(y), zero, torch.cos(y)], 1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, torch.cos(p), torch.sin(p),
                      zero, -torch.sin(p), torch.cos(p)], 1).view(-1, 3, 3)
    rz = torch.stack([torch.cos(r), -torch.sin(r), zero, torch.sin(r), torch.cos(r), zero,
                      zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


class MeshWarpRenderer:
    """The geometric decoder. Build once per portrait, then ``render`` batches of motion."""

    def __init__(self, appearance: Appearance, source: MotionSequence,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.height, self.width = appearance.image.shape[:2]
        h, w = self.height, self.width
        head, v = appearance.head, appearance.vertices.astype(np.float64)
        self.iod = head.iod

        # The motion field is smooth (bar the lip seam, which the mouth painting covers), so it
        # is built and inverted on a grid of FIELD_STRIDE-pixel cells, then refined once at
        # full resolution. Cell (i, j) samples full-resolution point (s j + s/2, s i + s/2).
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
            cells[list(line[1:-1]), :2] += sign * SEAM_OPEN * self.iod * down
        cells[:, :2] /= s
        tri_id, bary = rasterize(cells, tris, ws, hs)
        inside = tri_id >= 0

        # Head weight: 1 on the face, the person's head and hair; fading down the neck.
        yy, xx = np.mgrid[0:hs, 0:ws].astype(np.float64)
        pix = np.stack([xx + 0.5, yy + 0.5], axis=-1) * s  # (hs, ws, 2) full-resolution points
        chin_drop = float(np.dot(v[fm.CHIN, :2] - head.centre[:2], down)) / self.iod
        drop = ((pix - head.centre[:2]) @ down) / self.iod
        neck = 1.0 - smoothstep(chin_drop + NECK_FADE[0], chin_drop + NECK_FADE[1], drop)
        # Below the jaw only the neck goes with the head: collars, shoulders and the hair
        # resting on them beside it stay with the body.
        across = np.array([down[1], -down[0]])
        beside = np.abs((pix - v[fm.CHIN, :2]) @ across) / self.iod
        below = smoothstep(chin_drop - NECK_WIDTH[2], chin_drop, drop)
        neck *= 1.0 - below * smoothstep(NECK_WIDTH[0], NECK_WIDTH[0] + NECK_WIDTH[1], beside)
        # A loose bound on how far from the face the head (with big hair) can reach.
        ex = ((pix - head.centre[:2]) @ across) / (HEAD_EXTENT[0] * self.iod)
        ey = np.minimum(drop, 0.0) / HEAD_EXTENT[1]
        neck *= 1.0 - smoothstep(1.0, 1.0 + HEAD_EXTENT[2], np.hypot(ex, ey))
        # Nothing moves at the canvas edge: there is nothing beyond it to bring into view.
        edge_px = np.minimum(np.minimum(pix[..., 0], w - pix[..., 0]),
                             np.minimum(pix[..., 1], h - pix[..., 1]))
        border = smoothstep(0.0, EDGE_FADE * self.iod, edge_px)
        # Exactly zero on the background, so it never moves; and only the part of the person
        # mask joined to the face moves (the segmenter sometimes marks logos as "person").
        person_full = cv2.resize(appearance.person.astype(np.float64), (ws, hs),
                                 interpolation=cv2.INTER_AREA)
        joined = _joined_to(person_full > 0.5, (v[:fm.N_SURFACE, :2].mean(axis=0) / s))
        person = smoothstep(BACKGROUND, 0.3, person_full) * joined
        # The weight is geometric and smooth, blind to the person mask: a step in it where the
        # face meets thin hair or the background would fold the field there (a turning face
        # would tear from its hair). Background it carries along is swapped back for the
        # still plate (see ``render``), so it never moves.
        head_weight = np.maximum(inside, neck) * border

        # Where anything can move: the head, and face motion's reach beyond the outline.
        oval = v[list(fm.FACE_OVAL), :2]
        edge, t, dist = _project_to_polyline(pix.reshape(-1, 2), oval)
        reach = dist.reshape(hs, ws) < 3.0 * EXTEND_SIGMA * self.iod
        active = (head_weight > 0) | inside | (reach & (person > 0))
        ys, xs = np.nonzero(active)
        margin = int(np.ceil(0.05 * self.iod / s))
        cy0, cy1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, hs)
        cx0, cx1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, ws)
        self.y0, self.y1, self.x0, self.x1 = cy0 * s, cy1 * s, cx0 * s, cx1 * s
        rect = (slice(cy0, cy1), slice(cx0, cx1))

        # Per-cell gather of point motion: 3 points and weights each.
        ring = np.array(fm.FACE_OVAL)
        a_idx = ring[edge].reshape(hs, ws)
        b_idx = ring[(edge + 1) % len(ring)].reshape(hs, ws)
        t = t.reshape(hs, ws)
        fade = np.exp(-0.5 * (dist.reshape(hs, ws) / (EXTEND_SIGMA * self.iod)) ** 2) * border
        idx = np.where(inside[..., None], tris[np.maximum(tri_id, 0)],
                       np.stack([a_idx, b_idx, a_idx], axis=-1))
        wt_motion = np.where(inside[..., None], bary,
                             np.stack([(1 - t) * fade, t * fade, np.zeros_like(t)], axis=-1))
        # The head turns about the top of the neck, behind the ears at mouth level.
        vh = head.to_head(v)
        pivot_head = np.array([[0.5 * (vh[fm.CHEEK_RIGHT, 0] + vh[fm.CHEEK_LEFT, 0]),
                                vh[fm.LIPS_UPPER_INNER[5], 1],
                                0.5 * (vh[fm.CHEEK_RIGHT, 2] + vh[fm.CHEEK_LEFT, 2]) + 0.5]])
        pivot = head.to_image(pivot_head)[0]
        # Depth: the mesh's inside the face, the outline's own carried on beyond it (from a
        # rim of cells just inside it, smoothly). Toward the face's outline and beyond it,
        # depth recedes to the pivot's, over EDGE_RECEDE: the cheeks, jaw line, ears and hair
        # are the sides of a ball, whose outline stays where it is as the ball turns while
        # the features slide across it. (A face tracker reads the turn from just that; with
        # the mesh's own, flatter sides it read 60% of the requested yaw, now about 90%.)
        rim = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        surface = (v[idx, 2] * bary).sum(axis=-1)
        depth = np.where(inside, surface,
                         _extend_smoothly(surface, rim, 0.1 * self.iod / s, 0.3 * self.iod / s))
        recede = np.where(inside, 1.0 - smoothstep(0.0, EDGE_RECEDE, dist.reshape(hs, ws) / self.iod), 1.0)
        depth = depth + recede * np.maximum(pivot[2] - depth, 0.0)
        # A warp cannot fold: where depth falls steeply (the nose's sides, the face's edge
        # against the hair behind it) a head turn would carry near points over far ones.
        # Depth brought forward to a bounded slope makes the far side compress instead.
        depth = _bounded_slope(depth, MAX_DEPTH_SLOPE * s)

        dev = self.device
        f32 = dict(device=dev, dtype=torch.float32)
        self._cells = (cy1 - cy0, cx1 - cx0)
        # Mesh point motion -> cell motion is linear with 3 weights per cell: a sparse matrix.
        n_cells = self._cells[0] * self._cells[1]
        weights = wt_motion[rect].reshape(-1, 3)
        matrix = torch.sparse_coo_tensor(  # (P, V)
            np.stack([np.repeat(np.arange(n_cells), 3), idx[rect].reshape(-1)]),
            weights.reshape(-1), (n_cells, len(v)), dtype=torch.float32, check_invariants=True)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": it is all we use of it
            warnings.simplefilter("ignore")
            self._spread = matrix.coalesce().to_sparse_csr().to(dev)  # (P, V)
        points = np.stack([pix[..., 0], pix[..., 1], depth], axis=-1)[rect].reshape(-1, 3)
        self._points = torch.as_tensor(points.T.copy(), **f32)  # (3, P) cell centres, pixels
        self._head_weight = torch.as_tensor(head_weight[rect].reshape(1, -1), **f32)  # (1, P)
        # Full-resolution pixel centres of the rectangle, channels-last, in remap's convention
        # (centres at whole numbers): in the rectangle and on the canvas.
        pixels = _centres(self.y1 - self.y0, self.x1 - self.x0, torch.ones(2, **f32), dev)
        pixels = pixels.permute(0, 2, 3, 1).contiguous() - 0.5  # (1, h, w, 2)
        self._canvas_pixels = pixels + torch.tensor([self.x0, self.y0], **f32)
        self._pixel_cells = (pixels + 0.5) / s - 0.5  # the same on the field's cells
        self._vertices = torch.as_tensor(v, **f32)
        self._rig = torch.as_tensor(appearance.rig, **f32)  # (E, V, 3)
        # The person's matte: the segmenter's, on the part joined to the face, and the face.
        matte = appearance.person * cv2.resize(joined, (w, h), interpolation=cv2.INTER_LINEAR)
        matte = np.maximum(matte, cv2.resize(inside.astype(np.float64), (w, h),
                                             interpolation=cv2.INTER_NEAREST))
        plate = background_plate(appearance.image, matte, self.iod)
        # Sampled together: the person premultiplied by the matte (the photo less the plate's
        # share, so a warped pixel is ``person + (1 - matte) * plate``) and 1 - matte.
        # Background (matte below BACKGROUND) is exactly zero in both, so where neither a
        # pixel nor its source is person the photo stays exactly as it was.
        photo, plate = appearance.image / 255.0, plate / 255.0
        matte = np.where(matte < BACKGROUND, 0.0, matte)[..., None]
        # The photo is matte * person + (1 - matte) * plate. Where the photo is darker than
        # the plate's share alone (a bright guess behind dark hair at the fringe), the
        # person's premultiplied colour would be negative and, moved over other background,
        # show as dark or coloured blots: there the matte is raised until the plate's share
        # fits (more of the pixel is person, moving with the head). Darkening the guess
        # instead leaves a ghost of the hair's edge where the head moves away.
        darker = 1.0 - (photo / np.maximum(plate, 1e-6)).min(axis=-1, keepdims=True)
        matte = np.clip(np.maximum(matte, darker), 0.0, 1.0)
        person_rgb = photo - (1.0 - matte) * plate
        layers = np.concatenate([person_rgb, 1.0 - matte], axis=-1)
        self._layers = torch.as_tensor(layers, **f32)[None]  # (1, H, W, 4) channels-last
        self._plate_here = torch.as_tensor(plate[self.y0 : self.y1, self.x0 : self.x1], **f32)[None]
        self._canvas = appearance.image  # (H, W, 3) uint8
        self._buffers: dict[str, torch.Tensor] = {}
        # Seconds spent in each stage of ``render``, summed over calls, while this is a dict
        # (set it to {} to start timing; bench/speed.py does).
        self.stage_seconds: dict[str, float] | None = None
        self._lap_start = 0.0

        self._pivot = torch.as_tensor(pivot, **f32)
        self._source_pose = torch.as_tensor(source.pose[0], **f32)
        self._source_expression = torch.as_tensor(source.expression[0], **f32)
        self._jaw = expression_index("jawOpen")
        self._upper_inner = torch.as_tensor(fm.LIPS_UPPER_INNER, device=dev)
        self._lower_inner = torch.as_tensor(fm.LIPS_LOWER_INNER, device=dev)
        self._mouth = _MouthPainter(appearance, self.device)
        self._eyes = _EyePainter(appearance, source, self.device)
        self._eye_contours = torch.as_tensor(
            fm.eye_polygon("left") + fm.eye_polygon("right"), device=dev)

    def _lap(self, stage: str | None) -> None:
        """End ``stage`` (None: start timing) in ``stage_seconds``, when timing is on."""
        if self.stage_seconds is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        if stage is not None:
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + now - self._lap_start
        self._lap_start = now

    def _buffer(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A tensor of this shape kept for reuse under ``name`` (contents undefined)."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape:
            buffer = self._buffers[name] = torch.empty(shape, device=self.device)
        return buffer

    def pose_transform(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotation change (B, 3, 3), scale change (B,) and shift (B, 3) from the source pose."""
        rot = _rotations(pose) @ _rotations(self._source_pose[None]).transpose(1, 2)
        scale = pose[:, 5] / self._source_pose[5]
        shift = torch.zeros(pose.shape[0], 3, device=pose.device)
        shift[:, :2] = (pose[:, 3:5] - self._source_pose[3:5]) * self.iod
        return rot, scale, shift

    def _move(self, points: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor,
              shift: torch.Tensor) -> torch.Tensor:
        """Rigidly move (B, N, 3) points with the head."""
        rel = points - self._pivot
        return self._pivot + scale[:, None, None] * (rel @ rot.transpose(1, 2)) + shift[:, None, :]

    def forward_field(self, point_motion: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor,
                      shift: torch.Tensor) -> torch.Tensor:
        """(B, 2, ch, cw) pixels: where each cell of the active rectangle moves, given the
        mesh points' own motion (B, V, 3) and the head's pose change."""
        b, n_points = point_motion.shape[:2]
        dense = (self._spread @ point_motion.permute(1, 0, 2).reshape(n_points, -1))  # (P, B*3)
        dense = dense.T.reshape(b, 3, -1)  # (B, 3, P)
        # A point p moved by the expression to m goes on to pivot + s R (m - pivot) + shift
        # with the head, weighted by the head weight.
        turn = (scale[:, None, None] * rot - torch.eye(3, device=rot.device))[:, :2]  # (B, 2, 3)
        rigid = turn @ (self._points - self._pivot[:, None] + dense) + shift[:, :2, None]
        forward = torch.addcmul(dense[:, :2], self._head_weight, rigid)  # (B, 2, P)
        return forward.view(b, 2, *self._cells)

    def point_motion(self, expression: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) mesh point motion of (B, E) expressions, against the photo's own."""
        return torch.einsum("be,evc->bvc", expression - self._source_expression, self._rig)

    @torch.no_grad()
    def render(self, motion: MotionSequence) -> np.ndarray:
        """(T, H, W, 3) uint8 frames."""
        dev = self.device
        pose = torch.as_tensor(motion.pose, device=dev)
        expression = torch.as_tensor(motion.expression, device=dev)
        b = pose.shape[0]
        self._lap(None)
        rot, scale, shift = self.pose_transform(pose)
        point_motion = self.point_motion(expression)
        forward = self.forward_field(point_motion, rot, scale, shift)  # (B, 2, ch, cw)
        self._lap("forward field")
        rh, rw = self.y1 - self.y0, self.x1 - self.x0
        ch, cw = self._cells

        # Backward warp: u = -forward(y + u), solved by Newton steps, coarse to fine: on cells
        # of twice FIELD_STRIDE, then on the field's own cells, then once at every pixel. The
        # field's Jacobian travels with it, so strong stretches (a head sliding away from the
        # still background) converge, where plain fixed-point steps diverge; and on the
        # coarse cells the field is brought in gradually (step k solves for k/K of it, from
        # the solution for (k-1)/K), so no step starts far from its root.
        coarse = F.avg_pool2d(forward, 2, ceil_mode=True)
        field, cell = _with_slopes(coarse, rh, rw)
        base = _centres(*coarse.shape[2:], cell, dev)
        u = torch.zeros_like(coarse)
        for k in range(1, INVERSION_STEPS + 1):
            u = _newton(u, base, field, cell, min(k / INVERSION_RAMP, 1.0))
        self._lap("coarse Newton")
        field, cell = _with_slopes(forward, rh, rw)
        u = F.interpolate(u, size=(ch, cw), mode="bilinear", align_corners=False)
        u = _newton(u, _centres(ch, cw, cell, dev), field, cell)
        self._lap("fine Newton")
        # At full resolution (channels-last from here on) one more step, a damped fixed-point
        # one: it keeps the pixel-sharp lid and lip seams, which a Newton step, with its
        # cell-wide Jacobian, would speckle.
        # The frame-sized tensors from here on live in buffers kept from batch to batch: fresh
        # ones would each cost the page faults of new memory, a third of the render's time.
        cpu = _opencv(forward)
        full = lambda name, c: self._buffer(name, (b, rh, rw, c)) if cpu else None  # noqa: E731
        u = _upsample(u, rh, rw, out=full("u", 2))  # (B, h, w, 2)
        cells = F.pad(forward, (0, 0, 0, 0, 0, 2)).permute(0, 2, 3, 1).contiguous()  # 4 channels
        at = torch.add(self._pixel_cells, u, alpha=1.0 / FIELD_STRIDE, out=full("at", 2))
        f = _remap(cells, at, border=False, out=full("f", 4))
        # The canvas pixel each pixel samples (centres at whole numbers): here + u - d (u + f).
        source_xy = torch.add(self._canvas_pixels, u, alpha=1.0 - INVERSION_DAMPING, out=at)
        source_xy.add_(f[..., :2], alpha=-INVERSION_DAMPING)  # (B, h, w, 2)
        self._lap("full-resolution step")
        layers = _remap(self._layers, source_xy, border=True, out=full("layers", 4))
        # The person layer over the still plate: the background the warp carried along with
        # the head is not sampled at all, the plate's own background here shows instead. (Where
        # neither the target nor its source is person, that is the photo exactly.)
        warped = torch.addcmul(layers[..., :3], layers[..., 3:], self._plate_here, out=full("rgb", 3))
        warped = warped.permute(0, 3, 1, 2)  # (B, 3, h, w), channels-last in memory

        self._lap("layers")
        # Eyes: lids closing over the eyeball, irises following the gaze.
        vertices = self._move(self._vertices + point_motion, rot, scale, shift)
        lid_change = point_motion[:, self._eye_contours, :2].norm(dim=-1).amax(dim=1)
        warped = self._eyes.paint(warped, source_xy, vertices, torch.as_tensor(motion.gaze, device=dev),
                                  rot, scale, lid_change, (self.x0, self.y0))

        self._lap("eyes")
        # Teeth: the upper row is fixed to the skull, the lower row rides on the jaw.
        upper_line = self._vertices[self._upper_inner]
        jaw_drop = expression[:, self._jaw, None, None] * self._rig[self._jaw, self._lower_inner]
        upper_teeth = self._move(upper_line.expand(b, -1, -1), rot, scale, shift)
        lower_teeth = self._move(upper_line + jaw_drop, rot, scale, shift)
        photo_jaw = self._move(upper_line + self._source_expression[self._jaw]
                               * self._rig[self._jaw, self._lower_inner], rot, scale, shift)
        jaw_shift = (lower_teeth - photo_jaw)[..., :2].mean(dim=1)
        # The mouth is painted only as far as the lips changed shape from the photo's (head
        # motion alone moves the photo's own mouth rigidly, which needs no painting).
        lip_change = point_motion[:, self._mouth.polygon, :2].norm(dim=-1).amax(dim=1)
        warped = self._mouth.paint(warped, vertices, upper_teeth, lower_teeth, jaw_shift, scale,
                                   (self.x0, self.y0), smoothstep(0.25, 1.5, lip_change))

        self._lap("mouth")
        patch = warped.permute(0, 2, 3, 1)  # (B, h, w, 3)
        if not cpu:
            patch = (patch.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu()
        frames = np.repeat(self._canvas[None], b, axis=0)
        for i, frame in enumerate(patch.contiguous().numpy()):
            # On the CPU OpenCV rounds and saturates to bytes in one pass (colours here are
            # never negative beyond rounding error, so its absolute value changes nothing).
            frames[i, self.y0 : self.y1, self.x0 : self.x1] = (
                frame if frame.dtype == np.uint8 else cv2.convertScaleAbs(frame, alpha=255.0))
        self._lap("to bytes")
        return frames


class _MouthPainter:
    """Draws the inside of the mouth where the target lips part."""

    def __init__(self, appearance: Appearance, device: torch.device) -> None:
        self.device = device
        self.iod = appearance.head.iod
        lip = appearance.lip_rgb.astype(np.float64)
        skin = appearance.skin_rgb.astype(np.float64)
        luma = lambda c: float(c @ np.array([0.299, 0.587, 0.114]))  # noqa: E731
        chroma = float(np.ptp(skin)) + float(np.ptp(lip))
        saturation = float(np.clip(chroma / 0.25, 0.0, 1.0))
        teeth_luma = float(np.clip(0.35 + 0.75 * luma(skin), 0.55, 0.92))
        base = TEETH_RGB / luma(TEETH_RGB)
        cast = (skin / max(luma(skin), 1e-3)) ** 0.5  # teeth take the scene's light colour
        teeth = teeth_luma * (1.0 + saturation * (base * cast - 1.0))
        gray = lambda c: np.full(3, luma(c))  # noqa: E731
        lip_c = gray(lip) + saturation * (lip - gray(lip))
        f32 = dict(device=device, dtype=torch.float32)
        self.teeth = torch.as_tensor(teeth, **f32).view(1, 3, 1)
        self.cavity = torch.as_tensor(0.2 * lip_c + 0.02, **f32).view(1, 3, 1)
        self.tongue = torch.as_tensor(0.55 * lip_c + 0.05, **f32).view(1, 3, 1)
        src = appearance.vertices
        self.half_width = 0.5 * float(np.linalg.norm(src[fm.MOUTH_CORNER_LEFT, :2]
                                                     - src[fm.MOUTH_CORNER_RIGHT, :2]))
        self.polygon = torch.as_tensor(fm.inner_lip_polygon(), device=device)
        self.upper = torch.as_tensor(fm.LIPS_UPPER_INNER, device=device)
        self.lower = torch.as_tensor(fm.LIPS_LOWER_INNER, device=device)
        edges = np.cumsum((0.0, *TOOTH_WIDTHS)) * self.iod
        self.tooth_edges = torch.as_tensor(np.concatenate([-edges[:0:-1], edges]), **f32)

        # The photo's own mouth interior, when it shows one (a smile with teeth, an open
        # mouth), split at the middle of the opening: the upper half is fixed to the skull, the
        # lower half rides on the jaw. Synthesis fills only what the photo never showed.
        h, w = appearance.image.shape[:2]
        upper_px = src[list(fm.LIPS_UPPER_INNER), :2].astype(np.float64)
        lower_px = src[list(fm.LIPS_LOWER_INNER), :2].astype(np.float64)
        self.has_interior = float((lower_px[:, 1] - upper_px[:, 1]).max()) > 1.5
        self.source_upper = torch.as_tensor(upper_px, **f32)
        if self.has_interior:
            layers = np.zeros((2, h, w), dtype=np.float32)
            middle = 0.5 * (upper_px + lower_px)
            for layer, (top, bottom) in enumerate(((upper_px, middle), (middle, lower_px))):
                polygon = np.concatenate([top, bottom[::-1]])
                mask = np.zeros((h * 4, w * 4), dtype=np.uint8)
                cv2.fillPoly(mask, [np.round(polygon * 4).astype(np.int32)], 255)
                layers[layer] = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) / 255.0
            image = torch.as_tensor(appearance.image, **f32).permute(2, 0, 1) / 255.0
            self.interior = torch.cat([image, torch.as_tensor(layers, **f32)])[None]  # (1, 5, H, W)

    def paint(self, patch: torch.Tensor, vertices: torch.Tensor, upper_teeth: torch.Tensor,
              lower_teeth: torch.Tensor, jaw_shift: torch.Tensor, scale: torch.Tensor,
              origin: tuple[int, int], strength: torch.Tensor) -> torch.Tensor:
        """Composite the mouth into (B, 3, h, w) ``patch`` (in place, and returned) whose
        top-left is canvas ``origin``.

        vertices: (B, V, 3) the target mesh. upper_teeth, lower_teeth: (B, 11, 3) the line
        each tooth row hangs from: the closed upper inner lip moved with the head, and the
        same line moved further by the target's jaw opening. jaw_shift: (B, 2) pixels the
        lower jaw moved against the photo's. strength: (B,) in [0, 1], how much to paint.
        """
        if not bool((strength > 0).any()):
            return patch
        b, _, ph, pw = patch.shape
        poly = vertices[:, self.polygon, :2]  # (B, K, 2)
        # The mesh's inner lip corners sit inside the visible commissures, and an opening jaw
        # drags the skin between them into pale wedges: the opening reaches out over them.
        unit = self.iod * scale[:, None]  # (B, 1) pixels per inter-ocular distance
        gap_mid = (vertices[:, 14, :2] - vertices[:, 13, :2]).norm(dim=-1, keepdim=True) / unit
        reach = (CORNER_REACH * smoothstep(0.02, 0.12, gap_mid))[..., None]  # (B, 1, 1)
        corners = vertices[:, [fm.MOUTH_CORNER_RIGHT, fm.MOUTH_CORNER_LEFT], :2]
        ends = [0, len(fm.LIPS_UPPER_INNER) - 1]
        poly = poly.clone()
        poly[:, ends] = poly[:, ends] + reach * (corners - poly[:, ends])
        lo = poly.amin(dim=(0, 1)) - 2.0
        hi = poly.amax(dim=(0, 1)) + 2.0
        x0 = int(max(np.floor(lo[0].item()) - origin[0], 0))
        y0 = int(max(np.floor(lo[1].item()) - origin[1], 0))
        x1 = int(min(np.ceil(hi[0].item()) - origin[0], pw))
        y1 = int(min(np.ceil(hi[1].item()) - origin[1], ph))
        if x1 <= x0 or y1 <= y0:
            return patch
        ys = torch.arange(y0, y1, device=self.device, dtype=torch.float32) + origin[1] + 0.5
        xs = torch.arange(x0, x1, device=self.device, dtype=torch.float32) + origin[0] + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pts = torch.stack([gx, gy], dim=-1).view(1, -1, 2)  # (1, N, 2)

        # Signed distance to the lip opening (negative inside), in pixels.
        a, bb = poly, poly.roll(-1, dims=1)
        ab = (bb - a)[:, None]  # (B, 1, K, 2)
        ap = pts[:, :, None, :] - a[:, None]  # (B, N, K, 2)
        t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0.0, 1.0)
        dist = (ap - t[..., None] * ab).norm(dim=-1).amin(dim=2)  # (B, N)
        crosses = ((a[:, None, :, 1] > pts[..., None, 1]) != (bb[:, None, :, 1] > pts[..., None, 1]))
        x_cross = a[:, None, :, 0] + (pts[..., None, 1] - a[:, None, :, 1]) * (
            (bb - a)[:, None, :, 0] / ((bb - a)[:, None, :, 1] + 1e-9))
        inside = (crosses & (pts[..., None, 0] < x_cross)).sum(-1) % 2 == 1
        signed = torch.where(inside, -dist, dist)
        # One pixel beyond the opening is painted too: the backward warp is unreliable right
        # at the lip seam, where the forward motion jumps.
        alpha = (1.5 - signed).clamp(0.0, 1.0)  # (B, N)
        if not bool((alpha > 0).any()):
            return patch

        # Mouth axes: across (subject's right to left) and down, from the moved head.
        right = upper_teeth[:, -1, :2] - upper_teeth[:, 0, :2]
        across = right / right.norm(dim=-1, keepdim=True)
        down = torch.stack([-across[:, 1], across[:, 0]], dim=-1)
        centre = 0.5 * (upper_teeth[:, -1, :2] + upper_teeth[:, 0, :2])
        rel = pts - centre[:, None]
        u = (rel * across[:, None]).sum(-1)  # (B, N) along the mouth, pixels
        v = (rel * down[:, None]).sum(-1)  # (B, N) downward, pixels

        def line(points: torch.Tensor) -> torch.Tensor:
            """A lip contour as v(u), sampled at every pixel's u."""
            r = points[..., :2] - centre[:, None]
            pu, pv = (r * across[:, None]).sum(-1), (r * down[:, None]).sum(-1)
            order = pu.argsort(dim=1)
            return _interp(u, pu.gather(1, order), pv.gather(1, order))

        upper_top = line(upper_teeth) - TEETH_TUCK * unit
        upper_bottom = line(upper_teeth) + UPPER_TEETH * unit
        # Lower incisors ride on the jaw behind the upper ones; with the jaw open, the lower
        # lip hides all but their tips.
        mid = len(fm.LIPS_LOWER_INNER) // 2
        lip_mid = ((vertices[:, self.lower[mid], :2] - centre) * down).sum(-1, keepdim=True)
        jaw_mid = ((lower_teeth[:, mid, :2] - centre) * down).sum(-1, keepdim=True)
        lower_top = line(lower_teeth) + torch.minimum((UPPER_TEETH - OVERBITE) * unit,
                                                      lip_mid - jaw_mid - LOWER_TEETH_SHOWN * unit)
        lower_bottom = lower_top + LOWER_TEETH * unit
        span = self.half_width * scale[:, None]
        lateral = (u.abs() / span).clamp(0.0, 1.5)

        def band(top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
            """Anti-aliased coverage of the rows between two lines, over the tooth arch."""
            inside_v = smoothstep(-0.7, 0.7, v - top) * (1.0 - smoothstep(-0.7, 0.7, v - bottom))
            return inside_v * (1.0 - smoothstep(0.7, 1.0, lateral))

        # Teeth tips round off near each gap between teeth.
        gaps = (u[..., None] / scale[:, None, None] - self.tooth_edges).abs().amin(-1)
        tip_round = 0.008 * unit * (1.0 - smoothstep(0.0, 0.015 * self.iod, gaps))
        gap_shade = 0.8 + 0.2 * smoothstep(0.0, 0.01 * self.iod, gaps)
        falloff = (1.0 - 0.45 * lateral**2).clamp_min(0.25)

        # Colour, back to front: cavity, tongue, lower teeth, upper teeth.
        colour = self.cavity * (0.75 + 0.35 * lateral[:, None])  # (B, 3, N)
        tongue_top = line(lower_teeth) - 0.05 * unit + 0.12 * unit * lateral**2
        tongue = smoothstep(-0.7, 0.7, v - tongue_top) * (1.0 - smoothstep(0.8, 1.0, lateral))
        shade_t = 0.6 + 0.4 * smoothstep(0.0, 0.06, (v - tongue_top) / unit)
        colour = colour + tongue[:, None] * (self.tongue * shade_t[:, None] - colour)
        lower = band(lower_top + tip_round, lower_bottom) * (1.0 - smoothstep(0.35, 0.65, lateral))
        lower_colour = self.teeth * (0.9 * falloff * gap_shade)[:, None]
        colour = colour + lower[:, None] * (lower_colour - colour)
        upper = band(upper_top, upper_bottom - tip_round)
        upper_shade = falloff * gap_shade * (0.72 + 0.28 * smoothstep(
            0.0, 0.05, (v - upper_top) / unit - TEETH_TUCK))
        colour = colour + upper[:, None] * (self.teeth * upper_shade[:, None] - colour)

        # Shadow from the lips: a narrow opening is darker inside (synthesized parts only;
        # the photo's own interior already has its light), and so is the rim.
        gap = (line(vertices[:, self.lower]) - line(vertices[:, self.upper])).amax(1, keepdim=True)
        alpha = alpha * smoothstep(0.5, 2.0, gap) * strength[:, None]  # touching lips: none
        colour = colour * (0.55 + 0.45 * smoothstep(0.02, 0.2, gap / unit))[:, None]
        if self.has_interior:
            colour = self._photo_interior(colour, pts, upper_teeth, jaw_shift)
        rim = 0.7 + 0.3 * smoothstep(0.0, 0.025, (-signed) / unit)
        colour = colour * rim[:, None]

        h, w = y1 - y0, x1 - x0
        colour = colour.view(b, 3, h, w)
        kernel = torch.tensor([0.25, 0.5, 0.25], device=self.device)
        kernel2 = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        colour = F.conv2d(F.pad(colour, (1, 1, 1, 1), mode="replicate"), kernel2, groups=3)
        alpha = alpha.view(b, 1, h, w)
        region = patch[:, :, y0:y1, x0:x1]
        region.copy_(region * (1 - alpha) + colour * alpha)
        return patch

    def _photo_interior(self, colour: torch.Tensor, pts: torch.Tensor, upper_teeth: torch.Tensor,
                        jaw_shift: torch.Tensor) -> torch.Tensor:
        """Lay the photo's own upper and lower mouth interior over the synthesized one."""
        # Similarity (rotation, scale, shift) taking the moved upper lip line to the photo's,
        # fitted in the complex plane: source = a * (target - mean_t) + mean_s.
        target = torch.complex(upper_teeth[..., 0], upper_teeth[..., 1])  # (B, K)
        source = torch.complex(self.source_upper[:, 0], self.source_upper[:, 1])[None]
        mean_t, mean_s = target.mean(1, keepdim=True), source.mean(1, keepdim=True)
        a = ((target - mean_t).conj() * (source - mean_s)).sum(1, keepdim=True) / (
            (target - mean_t).abs().square().sum(1, keepdim=True).clamp_min(1e-9))
        p = torch.complex(pts[..., 0], pts[..., 1])  # (1, N)
        jaw = torch.complex(jaw_shift[:, 0], jaw_shift[:, 1])[:, None]
        size = torch.tensor([self.interior.shape[3], self.interior.shape[2]], device=self.device)
        for layer, shift in ((1, jaw), (0, torch.zeros_like(jaw))):  # lower first, upper on top
            q = a * (p - shift - mean_t) + mean_s  # (B, N) photo positions
            grid = torch.stack([q.real, q.imag], -1)[:, None] * (2.0 / size) - 1.0
            sampled = F.grid_sample(self.interior.expand(len(q), -1, -1, -1), grid,
                                    mode="bilinear", padding_mode="zeros", align_corners=False)
            rgb, cover = sampled[:, :3, 0], sampled[:, 3 + layer : 4 + layer, 0]
            colour = colour + cover * (rgb - colour)
        return colour


class _EyePainter:
    """Redraws each eye where its lids or its gaze changed: the eyeball (the photo's sclera,
    its iris moved by the gaze change and completed where the photo's lids hid it) inside the
    target opening, and closed-lid skin with a lash line where the photo's eyeball would show
    through a closing lid.

    The mesh's lid contours sit a little inside the visible lid edges, so the photo's eyeball
    can show up to EYE_LID_MARGIN beyond them; a closing lid covers all of that, and at a full
    blink no eyeball is left.
    """

    def __init__(self, appearance: Appearance, source: MotionSequence, device: torch.device) -> None:
        self.device = device
        head, v = appearance.head, appearance.vertices.astype(np.float64)
        self.iod = head.iod
        image = appearance.image.astype(np.float64) / 255.0
        h, w = image.shape[:2]
        self.sides = ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER, fm.RIGHT_IRIS),
                      (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER, fm.LEFT_IRIS))
        contours = sum((up + lo for up, lo, _ in self.sides), ())
        lo_xy = v[list(contours), :2].min(axis=0) - 0.15 * self.iod
        hi_xy = v[list(contours), :2].max(axis=0) + 0.15 * self.iod
        bx0, by0 = (int(max(np.floor(c), 0)) for c in lo_xy)
        bx1, by1 = int(min(np.ceil(hi_xy[0]), w)), int(min(np.ceil(hi_xy[1]), h))
        box = image[by0:by1, bx0:bx1]
        bh, bw = box.shape[:2]
        yy, xx = np.mgrid[0:bh, 0:bw] + 0.5
        pix = np.stack([xx + bx0, yy + by0], axis=-1)  # (bh, bw, 2) canvas pixels
        down = head.rotation[:2, 1] / np.linalg.norm(head.rotation[:2, 1])

        opening_soft, zone_soft = np.zeros((bh, bw)), np.zeros((bh, bw))
        sclera_rgb = np.zeros((bh, bw, 3))
        iris_rgba = np.zeros((bh, bw, 4))
        sclera_known_all = np.zeros((bh, bw), dtype=bool)
        shade = np.ones((bh, bw))
        lid_samples, lash_samples, sclera_samples = [], [], []
        self.eye_radius, self.source_gap = [], []
        for up, lo, iris in self.sides:
            upper, lower = v[list(up), :2], v[list(lo), :2]
            t = np.sin(np.linspace(0.0, np.pi, len(up)))[:, None]  # 0 at the corners
            for margin, mask in ((EYE_OPEN_MARGIN, opening_soft), (EYE_LID_MARGIN, zone_soft)):
                off = margin * self.iod * t * down
                ring = np.concatenate([upper - off, (lower + off)[-2:0:-1]])
                np.maximum(mask, _fill(ring - (bx0, by0), bh, bw), out=mask)
            contour = np.concatenate([upper, lower[-2:0:-1]])
            inner = cv2.erode((_fill(contour - (bx0, by0), bh, bw) > 0.99).astype(np.uint8),
                              np.ones((3, 3), np.uint8)).astype(bool)
            centre = v[iris[0], :2]
            radius = float(np.mean(np.linalg.norm(v[list(iris[1:]), :2] - centre, axis=1)))
            r = np.linalg.norm(pix - centre, axis=-1)
            disc = np.clip(radius + 0.5 - r, 0.0, 1.0)
            sclera_known = inner & (r > 1.15 * radius + 1.0)
            iris_known = inner & (r < radius - 0.5)
            sclera_samples.append(box[sclera_known])
            # Lid skin: the band between the lash line and the crease, over the eye's middle.
            rel = pix - centre
            along = rel @ np.array([down[1], -down[0]])
            width = float(np.linalg.norm(upper[-1] - upper[0]))
            upper_y = np.interp(along, *_sorted_line(upper - centre, down))
            above = (upper_y - rel @ down) / self.iod
            middle = np.abs(along) < 0.3 * width
            lid_samples.append(box[middle & (above > 0.04) & (above < 0.08)])
            lash_samples.append(box[middle & (np.abs(above) < 0.02)])
            # The iris, completed where the lids hid it: mirrored across its horizontal axis,
            # then spread from what is known.
            mirror = centre - rel + 2.0 * (rel @ np.array([down[1], -down[0]]))[..., None] * np.array(
                [down[1], -down[0]])
            mirror_px = np.round(mirror - (bx0, by0) - 0.5).astype(int)
            mx = np.clip(mirror_px[..., 0], 0, bw - 1)
            my = np.clip(mirror_px[..., 1], 0, bh - 1)
            known = iris_known.astype(np.float64)
            rgb = box * known[..., None]
            from_mirror = (~iris_known) & iris_known[my, mx]
            rgb[from_mirror] = box[my, mx][from_mirror]
            known = np.maximum(known, from_mirror)
            rgb = _spread(rgb, known, 0.3 * radius)
            sel = disc > 0
            iris_rgba[sel, :3] = rgb[sel]
            iris_rgba[..., 3] = np.maximum(iris_rgba[..., 3], disc)
            sclera_rgb[sclera_known] = box[sclera_known]
            # An eyeball is darker toward the corners and under the upper lid.
            near = np.abs(along) < 0.6 * width
            shade[near] = ((1.0 - 0.3 * (2.0 * along / width).clip(-1, 1) ** 2)
                           * (1.0 - 0.2 * np.exp(-np.clip(-above, 0, None) / 0.03))
                           )[near]
            sclera_known_all |= sclera_known
            self.eye_radius.append(0.5 * width / self.iod)
            self.source_gap.append(float(np.mean(lower[2:-2] @ down - upper[2:-2] @ down)))

        skin = appearance.skin_rgb.astype(np.float64)
        sclera = np.concatenate(sclera_samples)
        if len(sclera) >= 8:
            luma = sclera @ LUMA
            sclera_colour = np.median(sclera[luma >= np.median(luma)], axis=0)
        else:
            sclera_colour = np.clip(0.35 + 0.6 * float(skin @ LUMA), 0.6, 0.9) * (
                skin / max(float(skin @ LUMA), 1e-3)) ** 0.3
        # The eyeball without its iris: the photo's sclera, inpainted across the iris (so its
        # shading carries on), and plain sclera colour beyond the photo's opening.
        known = sclera_known_all.astype(np.uint8)
        base = np.where(sclera_known_all[..., None], box, sclera_colour * shade[..., None])
        base8 = np.clip(base * 255.0 + 0.5, 0, 255).astype(np.uint8)
        unknown = ((1 - known) * (opening_soft > 0)).astype(np.uint8)
        sclera_fill = cv2.inpaint(base8, unknown, max(2.0, 0.03 * self.iod), cv2.INPAINT_TELEA) / 255.0
        lids = np.concatenate(lid_samples)
        lid_colour = np.median(lids, axis=0) if len(lids) >= 4 else skin
        lashes = np.concatenate(lash_samples)
        if len(lashes) >= 4:
            luma = lashes @ LUMA
            lash_colour = lashes[luma <= np.quantile(luma, 0.2)].mean(axis=0)
        else:
            lash_colour = 0.3 * lid_colour

        f32 = dict(device=device, dtype=torch.float32)
        texture = np.concatenate([sclera_fill, iris_rgba, opening_soft[..., None], zone_soft[..., None]],
                                 axis=-1)
        self.texture = torch.as_tensor(texture, **f32).permute(2, 0, 1)[None]  # (1, 9, bh, bw)
        self.box_origin = torch.tensor([bx0, by0], **f32)
        self.box_scale = torch.tensor([2.0 / bw, 2.0 / bh], **f32)
        self.lid = torch.as_tensor(lid_colour, **f32).view(1, 3, 1)
        self.lash = torch.as_tensor(lash_colour, **f32).view(1, 3, 1)
        self.contours = [(torch.as_tensor(up, device=device), torch.as_tensor(lo, device=device))
                         for up, lo, _ in self.sides]
        self.source_corners = [torch.as_tensor(v[[up[0], up[-1]], :2], **f32) for up, _, _ in self.sides]
        self.head_axes = torch.as_tensor(head.rotation, **f32)  # (3, 3) source head axes, columns
        self.source_gaze = torch.as_tensor(np.sin(np.deg2rad(source.gaze[0])), **f32)

    def paint(self, patch: torch.Tensor, source_xy: torch.Tensor, vertices: torch.Tensor,
              gaze: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor, lid_change: torch.Tensor,
              origin: tuple[int, int]) -> torch.Tensor:
        """Composite both eyes into (B, 3, h, w) ``patch`` (in place, and returned) whose
        top-left is canvas ``origin``.

        source_xy: (B, h, w, 2) the photo position each patch pixel was sampled from, pixel
        centres at whole numbers.
        vertices: (B, V, 3) the target mesh. gaze: (B, 2) degrees. rot, scale: the head's
        pose change. lid_change: (B,) pixels the lid contours moved.
        """
        b, _, ph, pw = patch.shape
        # Iris shift in the photo, as ``encode.estimate_gaze`` reads gaze: eye half-width
        # times the sine of the angle, along the head's x and (upward) y axes.
        sines = torch.sin(torch.deg2rad(gaze)) - self.source_gaze  # (B, 2)
        most_shift = max(self.eye_radius) * self.iod * sines.abs().sum(dim=1)  # bounds the iris shift
        if not bool((torch.maximum(lid_change, most_shift) > 0.2).any()):
            return patch  # nothing changed enough to paint (see ``strength`` below)
        axes_photo = self.head_axes[:2, :2]  # (2, 2): columns are head x, y in the image
        target_axes = (rot @ self.head_axes)[:, :2, :2] * scale[:, None, None]  # (B, 2, 2)
        down = target_axes[:, :, 1] / target_axes[:, :, 1].norm(dim=-1, keepdim=True)
        across = torch.stack([-down[:, 1], down[:, 0]], dim=-1)
        for (up, lo), corners_src, radius, gap_src in zip(
                self.contours, self.source_corners, self.eye_radius, self.source_gap, strict=True):
            upper, lower = vertices[:, up, :2], vertices[:, lo, :2]  # (B, 9, 2)
            pts_all = torch.cat([upper, lower], dim=1)
            lo_xy = pts_all.amin(dim=(0, 1)) - EYE_LID_MARGIN * self.iod * 2.0 - 2.0
            hi_xy = pts_all.amax(dim=(0, 1)) + EYE_LID_MARGIN * self.iod * 2.0 + 2.0
            x0 = int(max(np.floor(lo_xy[0].item()) - origin[0], 0))
            y0 = int(max(np.floor(lo_xy[1].item()) - origin[1], 0))
            x1 = int(min(np.ceil(hi_xy[0].item()) - origin[0], pw))
            y1 = int(min(np.ceil(hi_xy[1].item()) - origin[1], ph))
            if x1 <= x0 or y1 <= y0:
                continue
            ys = torch.arange(y0, y1, device=self.device, dtype=torch.float32) + origin[1] + 0.5
            xs = torch.arange(x0, x1, device=self.device, dtype=torch.float32) + origin[0] + 0.5
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            pts = torch.stack([gx, gy], dim=-1).view(1, -1, 2)  # (1, N, 2)

            centre = 0.5 * (upper[:, 0] + upper[:, -1])  # (B, 2)
            rel = pts - centre[:, None]
            u = (rel * across[:, None]).sum(-1)  # (B, N)
            v = (rel * down[:, None]).sum(-1)

            def line(points: torch.Tensor, u=u, centre=centre) -> torch.Tensor:
                """A lid contour as v(u), sampled at every pixel's u."""
                r = points - centre[:, None]
                pu, pv = (r * across[:, None]).sum(-1), (r * down[:, None]).sum(-1)
                order = pu.argsort(dim=1)
                return _interp(u, pu.gather(1, order), pv.gather(1, order))

            half = 0.5 * (upper[:, -1] - upper[:, 0]).norm(dim=-1)[:, None]  # (B, 1)
            unit = self.iod * scale[:, None]
            gap = ((lower[:, 2:-2] - upper[:, 2:-2]) * down[:, None]).sum(-1).mean(1)  # (B,)
            open_share = (gap / (gap_src * scale)).clamp(0.0, 1.0)[:, None]  # (B, 1)
            profile = (1.0 - (u / half).square()).clamp_min(0.0).sqrt()
            margin = EYE_LID_MARGIN * unit * profile * open_share
            top, bottom = line(upper) - margin, line(lower) + margin
            # Anti-aliased edges, and none at all where the lids meet (two soft edges on one
            # line would leave a faint dotted seam of eyeball).
            opening = (smoothstep(-0.6, 0.6, v - top) * smoothstep(-0.6, 0.6, bottom - v)
                       * smoothstep(-0.5, 0.5, half - u.abs()) * smoothstep(0.0, 1.0, bottom - top))

            # The eyeball, fixed to the head: the similarity taking the target corners to
            # the photo's finds where each pixel lies on the photo's eyeball.
            tc = torch.complex(upper[:, [0, -1], 0], upper[:, [0, -1], 1])  # (B, 2)
            sc = torch.complex(corners_src[:, 0], corners_src[:, 1])[None]
            a = (sc[:, 1] - sc[:, 0]) / (tc[:, 1] - tc[:, 0])  # (B,)
            p = torch.complex(pts[..., 0], pts[..., 1])
            q = a[:, None] * (p - tc[:, :1]) + sc[:, :1]  # (B, N)
            q_xy = torch.stack([q.real, q.imag], dim=-1)
            shift = radius * self.iod * (sines[:, None, 0:1] * axes_photo[:, 0]
                                         - sines[:, None, 1:2] * axes_photo[:, 1])  # (B, 1, 2)
            ball = self._sample(torch.stack([q_xy, q_xy - shift], dim=1).view(b, 2, -1, 2))
            sclera, iris = ball[:, :3, 0], ball[:, 3:6, 1]
            iris_alpha = ball[:, 6:7, 1]
            eye_colour = sclera + iris_alpha * (iris - sclera)
            # The upper lid shades the eyeball below it, more as it closes.
            shadow = 1.0 - 0.35 * (1.0 - open_share) * torch.exp(-(v - top).clamp_min(0.0) / (0.03 * unit))
            eye_colour = eye_colour * shadow[:, None]

            # The photo's own opening, carried by the warp, bounds the target's (so a turned
            # head keeps its lids where the warp put them); where the photo's eyeball would
            # show but the target lid is shut, a closed lid's seam: lashes over lid skin.
            photo = self._sample(source_xy[:, y0:y1, x0:x1].reshape(b, 1, -1, 2) + 0.5)[:, 7:9, 0]
            opening = opening * photo[:, 0]
            closing = 1.0 - open_share
            lid_alpha = (2.0 * photo[:, 1]).clamp(max=1.0) * (1.0 - opening) * smoothstep(0.0, 0.3, closing)
            region = patch[:, :, y0:y1, x0:x1].reshape(b, 3, -1)
            # The lid skin continues the warped lid just above the seam.
            # Averaged over a few nearby points so that thin lashes above do not come down
            # as a dotted line.
            offsets = torch.tensor([[-1.5, 2.0], [1.5, 2.0], [-1.5, 3.0], [1.5, 3.0]], device=self.device)
            along, up = offsets[:, 0].view(1, 4, 1, 1), offsets[:, 1].view(1, 4, 1, 1)
            shifted = (along * across[:, None, None] - up * EYE_LID_MARGIN * unit[:, None, :, None]
                       * down[:, None, None])  # (B, 4, 1, 2) pixels
            above = pts[:, None] + shifted  # (B, 4, N, 2)
            box_size = torch.tensor([x1 - x0, y1 - y0], device=self.device, dtype=torch.float32)
            grid = (above - torch.tensor([x0 + origin[0], y0 + origin[1]], device=self.device)
                    ) * (2.0 / box_size) - 1.0
            skin = F.grid_sample(region.view(b, 3, y1 - y0, x1 - x0), grid, mode="bilinear",
                                 padding_mode="border", align_corners=False).mean(dim=2)  # (B, 3, N)
            lash = LID_MIX * torch.exp(-((v - line(lower)) / (0.007 * unit)).square())
            colour = region + lid_alpha[:, None] * (skin + lash[:, None] * (self.lash - skin) - region)
            colour = colour + opening[:, None] * (eye_colour - colour)
            strength = smoothstep(0.2, 1.0, torch.maximum(lid_change, shift.norm(dim=-1)[:, 0]))
            colour = region + strength[:, None, None] * (colour - region)
            patch[:, :, y0:y1, x0:x1] = colour.view(b, 3, y1 - y0, x1 - x0)
        return patch

    def _sample(self, xy: torch.Tensor) -> torch.Tensor:
        """(B, 9, M, N) texture at (B, M, N, 2) canvas pixel positions."""
        grid = (xy - self.box_origin) * self.box_scale - 1.0
        return F.grid_sample(self.texture.expand(len(xy), -1, -1, -1), grid, mode="bilinear",
                             padding_mode="border", align_corners=False)


def _fill(polygon: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) anti-aliased coverage of a polygon given in pixels."""
    mask = np.zeros((h * 4, w * 4), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 4).astype(np.int32)], 255)
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) / 255.0


def _sorted_line(points: np.ndarray, down: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A contour as (along, downward) samples sorted along the eye, for ``np.interp``."""
    along = points @ np.array([down[1], -down[0]])
    order = np.argsort(along)
    return along[order], (points @ down)[order]


def _spread(rgb: np.ndarray, known: np.ndarray, sigma: float, fallback: np.ndarray | None = None
            ) -> np.ndarray:
    """Fill the unknown pixels of ``rgb`` from the known ones nearby (normalised blur); known
    pixels keep their colour; far from anything known, ``fallback`` (or the known mean)."""
    weight = cv2.GaussianBlur(known, (0, 0), sigma)
    blurred = cv2.GaussianBlur(rgb * known[..., None], (0, 0), sigma)
    if fallback is None:
        fallback = (rgb * known[..., None]).sum((0, 1)) / max(known.sum(), 1e-6)
    confident = smoothstep(0.0, 0.05, weight)[..., None]
    filled = confident * blurred / np.maximum(weight, 1e-6)[..., None] + (1 - confident) * fallback
    return known[..., None] * rgb + (1.0 - known[..., None]) * filled
