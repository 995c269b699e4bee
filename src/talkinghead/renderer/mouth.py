"""The mouth painter: the inside of the mouth where the target lips part. Procedurally: the
photo's own mouth interior when it shows one (its upper half riding with the skull, its
lower half with the jaw); elsewhere synthesized in the portrait's colours: cavity, upper teeth
fixed to the skull, lower teeth on the jaw, tongue. With a mouth network (``mouthnet``), that
painting is its starting point: the network, trained on such renders against real frames,
repaints the opening."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.encode import Appearance
from talkinghead.models import facemesh as fm
from talkinghead.models.rig import smoothstep
from talkinghead.renderer import mouthnet as mn
from talkinghead.renderer.mouthnet import opening_polygon, signed_distance
from talkinghead.renderer.resample import interp

UPPER_TEETH = 0.11  # visible height of the upper incisors, inter-ocular distances
LOWER_TEETH = 0.09
TEETH_TUCK = 0.03  # how far the teeth reach up under the upper lip
OVERBITE = 0.03  # lower incisors behind the upper ones when the jaw is shut
LOWER_TEETH_SHOWN = 0.035  # lower incisors above the lower lip when the jaw is open
TOOTH_WIDTHS = (0.085, 0.07, 0.06, 0.05, 0.045)  # centre outwards, inter-ocular distances
RIM_SHADE = 0.7  # brightness right at the lips' inner edge (their shadow), rising inward
TEETH_RGB = np.array([0.93, 0.90, 0.83], dtype=np.float32)


class MouthPainter:
    """Draws the inside of the mouth where the target lips part."""

    def __init__(self, appearance: Appearance, device: torch.device, net: mn.MouthNet | None = None) -> None:
        self.device = device
        self.net = net
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

        if net is not None:  # the photo's own mouth, in the network's crop
            vertices = torch.as_tensor(src, **f32)[None]
            placement = mn.crop_placement(vertices)
            image = torch.as_tensor(appearance.image, **f32).permute(2, 0, 1)[None] / 255.0
            self.photo_crop = mn.sample_crop(image, placement)
            self.photo_mask = mn.opening_mask(vertices, torch.tensor([[self.iod]], **f32), placement)

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
        unit = self.iod * scale[:, None]  # (B, 1) pixels per inter-ocular distance
        poly = opening_polygon(vertices, unit)  # (B, K, 2)
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
        signed = signed_distance(poly, pts)
        # One pixel beyond the opening is painted too: the backward warp is unreliable right
        # at the lip seam, where the forward motion jumps.
        alpha = (1.5 - signed).clamp(0.0, 1.0)  # (B, N)
        if not bool((alpha > 0).any()):
            return patch

        axes = _MouthAxes(upper_teeth, pts)
        gap = (axes.line(vertices[:, self.lower]) - axes.line(vertices[:, self.upper])).amax(1, keepdim=True)
        alpha = alpha * smoothstep(0.5, 2.0, gap) * strength[:, None]  # touching lips: none
        h, w = y1 - y0, x1 - x0
        colour = self._procedural(axes, vertices, upper_teeth, lower_teeth, jaw_shift, scale, signed, gap,
                                  pts)
        kernel = torch.tensor([0.25, 0.5, 0.25], device=self.device)
        kernel2 = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        colour = F.conv2d(F.pad(colour.view(b, 3, h, w), (1, 1, 1, 1), mode="replicate"), kernel2, groups=3)
        alpha = alpha.view(b, 1, h, w)
        region = patch[:, :, y0:y1, x0:x1]
        unpainted = region.clone() if self.net is not None else region
        region.copy_(region * (1 - alpha) + colour * alpha)
        if self.net is not None:
            # The network sees the frame as the procedural painter left it and repaints the
            # opening (it was trained on exactly such renders against the real frames).
            colour = self._learned(patch, vertices, unit, pts, origin, strength > 0).view(b, 3, h, w)
            region.copy_(unpainted * (1 - alpha) + colour * alpha)
        return patch

    def _learned(self, patch: torch.Tensor, vertices: torch.Tensor, unit: torch.Tensor, pts: torch.Tensor,
                 origin: tuple[int, int], active: torch.Tensor) -> torch.Tensor:
        """(B, 3, N) colours at ``pts`` from the mouth network (zero on frames not ``active``)."""
        assert self.net is not None
        keep = active.nonzero()[:, 0]
        placement = mn.crop_placement(vertices[keep])
        frame = mn.sample_crop(patch[keep], placement, (float(origin[0]), float(origin[1])))
        mask = mn.opening_mask(vertices[keep], unit[keep], placement)
        crop = self.net(mn.net_input(frame, mask, self.photo_crop, self.photo_mask))
        grid = mn.to_crop(placement, pts) * torch.tensor([2.0 / mn.CROP_W, 2.0 / mn.CROP_H],
                                                         device=self.device) - 1.0
        colour = torch.zeros((len(active), 3, pts.shape[1]), device=self.device)
        colour[keep] = F.grid_sample(crop, grid[:, None], mode="bilinear", padding_mode="border",
                                     align_corners=False)[:, :, 0]
        return colour

    def _procedural(self, axes: _MouthAxes, vertices: torch.Tensor, upper_teeth: torch.Tensor,
                    lower_teeth: torch.Tensor, jaw_shift: torch.Tensor, scale: torch.Tensor,
                    signed: torch.Tensor, gap: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
        """(B, 3, N) colours at ``pts``: cavity, upper teeth fixed to the skull, lower teeth on
        the jaw, tongue, in the portrait's colours, under the photo's own interior if it has one."""
        unit = self.iod * scale[:, None]
        line, u, v, centre, down = axes.line, axes.u, axes.v, axes.centre, axes.down
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
        colour = colour * (0.55 + 0.45 * smoothstep(0.02, 0.2, gap / unit))[:, None]
        if self.has_interior:
            colour = self._photo_interior(colour, pts, upper_teeth, jaw_shift)
        rim = RIM_SHADE + (1.0 - RIM_SHADE) * smoothstep(0.0, 0.025, (-signed) / unit)
        return colour * rim[:, None]

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



class _MouthAxes:
    """The mouth's axes from the moved upper teeth line: across (the subject's right to left)
    and down, and every pixel's position along them (u, v, pixels)."""

    def __init__(self, upper_teeth: torch.Tensor, pts: torch.Tensor) -> None:
        right = upper_teeth[:, -1, :2] - upper_teeth[:, 0, :2]
        self.across = right / right.norm(dim=-1, keepdim=True)
        self.down = torch.stack([-self.across[:, 1], self.across[:, 0]], dim=-1)
        self.centre = 0.5 * (upper_teeth[:, -1, :2] + upper_teeth[:, 0, :2])
        rel = pts - self.centre[:, None]
        self.u = (rel * self.across[:, None]).sum(-1)  # (B, N)
        self.v = (rel * self.down[:, None]).sum(-1)

    def line(self, points: torch.Tensor) -> torch.Tensor:
        """A lip contour as v(u), sampled at every pixel's u."""
        r = points[..., :2] - self.centre[:, None]
        pu, pv = (r * self.across[:, None]).sum(-1), (r * self.down[:, None]).sum(-1)
        order = pu.argsort(dim=1)
        return interp(self.u, pu.gather(1, order), pv.gather(1, order))
