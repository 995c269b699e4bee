"""The eye painter: redraws each eye where its lids or its gaze changed."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.encode import Appearance
from talkinghead.models import facemesh as fm
from talkinghead.models.rig import smoothstep
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.renderer.resample import interp

EYE_OPEN_MARGIN = 0.004  # visible opening beyond the mesh's lid contours, inter-ocular distances
EYE_LID_MARGIN = 0.02  # how far beyond them the photo's eyeball may still show through
LID_MIX = 0.8  # opacity of the lash line along a closed lid's seam
SHUT_FROM = 0.6  # share of a lid's travel from which the seam's lash line starts to show
LUMA = np.array([0.299, 0.587, 0.114])
# Eyelid curve: (reading asked for, level drawn) for each eyeBlink coefficient. The extractor
# reads a real shut eye well short of 1 (the face mesh keeps a gap between closed lids), and
# that is what the motion generator learns; drawn as it comes, such a lid is left half open.
# Measured by bench/lidcurve.py (realdata train videos, devdata portraits): the level that
# reads back as asked, with what a real shut eye reads drawn shut. Linear below 0.
LID_CURVE: tuple[tuple[float, float], ...] = ((0.00, 0.00), (0.19, 0.36), (0.37, 0.67), (0.56, 0.80),
                                             (0.74, 1.00), (1.00, 1.00))
BLINKS = (expression_index("eyeBlinkLeft"), expression_index("eyeBlinkRight"))
# Gaze curves: (change asked for, change drawn), degrees from the photo's own gaze, per axis.
# The face tracker reads an iris moved within still lids as moving less than it did (about
# 0.65 of it in yaw; in pitch 0.2, nothing below 2.5 degrees, and at most 3 degrees: real lids
# follow a vertical look, and the reading is the iris against the lids), and the generator
# learns gaze as the tracker reads real eyes (real talkers' gaze pitch reads within about
# +-3 degrees, sd 1). Measured by bench/gazecurve.py (frames of realdata train videos as
# photos): the change that reads back as asked, clamped where an iris under still lids would
# look rolled up or sunk (15 degrees in pitch).
GAZE_CURVE: dict[str, tuple[tuple[float, float], ...]] = {
    "yaw": ((-20.0, -35.0), (-15.0, -24.4), (-10.0, -15.9), (-5.0, -8.0), (0.0, 0.0), (5.0, 7.9),
            (10.0, 14.3), (15.0, 21.0), (20.0, 29.7)),
    "pitch": ((-3.0, -14.9), (-2.0, -7.8), (-1.0, -4.1), (0.0, 0.0), (1.0, 6.0), (2.0, 12.1), (3.0, 15.0)),
}


def drawn_gaze(change: np.ndarray) -> np.ndarray:
    """(..., 2) gaze changes (yaw, pitch; degrees) mapped through GAZE_CURVE."""
    out = np.empty_like(change, dtype=np.float64)
    for k, axis in enumerate(("yaw", "pitch")):
        asked, drawn = (np.array(column, dtype=np.float64) for column in zip(*GAZE_CURVE[axis], strict=True))
        out[..., k] = np.interp(change[..., k], asked, drawn)
    return out


def drawn_sines(gaze: torch.Tensor, source_gaze: np.ndarray) -> np.ndarray:
    """(B, 2) the change of the sines of yaw and pitch from the photo's ``source_gaze`` (2,)
    (degrees) to (B, 2) ``gaze`` drawn through GAZE_CURVE: times the eye's half-width, the
    iris's shift, as ``encode.estimate_gaze`` reads gaze."""
    change = drawn_gaze(gaze.detach().cpu().numpy().astype(np.float64) - source_gaze)
    return np.sin(np.deg2rad(source_gaze + change)) - np.sin(np.deg2rad(source_gaze))


def drawn_lids(expression: torch.Tensor) -> torch.Tensor:
    """(..., E) expressions with each eyeBlink coefficient mapped through LID_CURVE."""
    asked, level = (np.array(column, dtype=np.float64) for column in zip(*LID_CURVE, strict=True))
    out = expression.clone()
    for i in BLINKS:
        x = expression[..., i].detach().cpu().numpy().astype(np.float64)
        y = np.where(x < 0, x * (level[1] - level[0]) / (asked[1] - asked[0]), np.interp(x, asked, level))
        out[..., i] = torch.as_tensor(y, dtype=expression.dtype, device=expression.device)
    return out


class EyePainter:
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
                np.maximum(mask, fill_polygon(ring - (bx0, by0), bh, bw), out=mask)
            contour = np.concatenate([upper, lower[-2:0:-1]])
            inner = cv2.erode((fill_polygon(contour - (bx0, by0), bh, bw) > 0.99).astype(np.uint8),
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
            upper_y = np.interp(along, *sorted_line(upper - centre, down))
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
            rgb = spread_known(rgb, known, 0.3 * radius)
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
        self.lash = torch.as_tensor(lash_colour, **f32).view(1, 3, 1)
        self.contours = [(torch.as_tensor(up, device=device), torch.as_tensor(lo, device=device))
                         for up, lo, _ in self.sides]
        self.source_corners = [torch.as_tensor(v[[up[0], up[-1]], :2], **f32) for up, _, _ in self.sides]
        self.head_axes = torch.as_tensor(head.rotation, **f32)  # (3, 3) source head axes, columns
        self.source_gaze = source.gaze[0].astype(np.float64)  # (2,) degrees

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
        # times the sine of the angle, along the head's x and (upward) y axes; the change
        # from the photo's gaze drawn through GAZE_CURVE.
        sines = torch.as_tensor(drawn_sines(gaze, self.source_gaze), dtype=torch.float32,
                                device=self.device)  # (B, 2)
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
                return interp(u, pu.gather(1, order), pv.gather(1, order))

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
            # Below the lower lid's line the photo's own lower lid stays until the eye is nearly
            # shut (then the seam's lash line and skin cover the last of the eyeball there):
            # painted earlier, a half-closed eye got a dark outline underneath, an eyeliner.
            near_shut = smoothstep(SHUT_FROM, 0.95, closing)  # (B, 1)
            lower_v = line(lower)
            below = smoothstep(-0.5, 0.5, v - lower_v)
            lid_alpha = lid_alpha * (1.0 - below * (1.0 - near_shut))
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
            # Lashes line the lid's edge: the seam once shut, the upper lid's edge on the way
            # (without it, the skin copied down from above showed as a pale band over the iris).
            lash = LID_MIX * torch.maximum(near_shut * torch.exp(-((v - lower_v) / (0.007 * unit)).square()),
                                           torch.exp(-((v - top) / (0.01 * unit)).square()))
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


def fill_polygon(polygon: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) anti-aliased coverage of a polygon given in pixels."""
    mask = np.zeros((h * 4, w * 4), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 4).astype(np.int32)], 255)
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) / 255.0


def sorted_line(points: np.ndarray, down: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A contour as (along, downward) samples sorted along the eye, for ``np.interp``."""
    along = points @ np.array([down[1], -down[0]])
    order = np.argsort(along)
    return along[order], (points @ down)[order]


def spread_known(rgb: np.ndarray, known: np.ndarray, sigma: float, fallback: np.ndarray | None = None
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
