"""The geometric decoder: motion frames into images by a mesh-driven dense warp.

Per batch of frames (all in torch, on CPU or GPU): the forward field (``field``), its
inversion into a backward warp (``inversion``), the person layer resampled over the still
plate (``layers``, ``resample``), then the eyes (``eyes``) and the mouth (``mouth``) painted
where they changed. The ``Decoder`` protocol is what the pipeline needs from a decoder, so a
learned one can take this one's place.
"""

from __future__ import annotations

import time
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.encode import Appearance
from talkinghead.models import facemesh as fm
from talkinghead.models.rig import smoothstep
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.renderer.eyes import EyePainter
from talkinghead.renderer.field import FIELD_STRIDE, WarpField
from talkinghead.renderer.inversion import INVERSION_DAMPING, invert_on_cells
from talkinghead.renderer.layers import person_layers
from talkinghead.renderer.mouth import MouthPainter
from talkinghead.renderer.mouthnet import MouthNet
from talkinghead.renderer.resample import centres, remap, upsample, uses_opencv


class Decoder(Protocol):
    """Turns motion into frames of the canvas."""

    width: int
    height: int

    def render(self, motion: MotionSequence) -> np.ndarray:
        """(T, H, W, 3) uint8 frames for a batch of T motion frames."""
        ...


class MeshWarpRenderer:
    """The geometric decoder. Build once per portrait, then ``render`` batches of motion."""

    def __init__(self, appearance: Appearance, source: MotionSequence,
                 device: torch.device | str = "cpu", mouth_net: MouthNet | None = None) -> None:
        """``mouth_net``: the learned mouth interior (``mouthnet.load_mouth_net``); without
        one the procedural painter draws it."""
        self.device = dev = torch.device(device)
        self.height, self.width = h, w = appearance.image.shape[:2]
        self.field = field = WarpField(appearance, source, dev)
        self.iod = field.iod
        self.y0, self.y1, self.x0, self.x1 = field.y0, field.y1, field.x0, field.x1
        f32 = dict(device=dev, dtype=torch.float32)
        # Full-resolution pixel centres of the rectangle, channels-last, in remap's convention
        # (centres at whole numbers): in the rectangle and on the canvas.
        pixels = centres(self.y1 - self.y0, self.x1 - self.x0, torch.ones(2, **f32), dev)
        pixels = pixels.permute(0, 2, 3, 1).contiguous() - 0.5  # (1, h, w, 2)
        self._canvas_pixels = pixels + torch.tensor([self.x0, self.y0], **f32)
        self._pixel_cells = (pixels + 0.5) / FIELD_STRIDE - 0.5  # the same on the field's cells
        self._vertices = torch.as_tensor(appearance.vertices.astype(np.float64), **f32)
        # The person's matte: the segmenter's, on the part joined to the face, and the face.
        matte = appearance.person * cv2.resize(field.joined, (w, h), interpolation=cv2.INTER_LINEAR)
        matte = np.maximum(matte, cv2.resize(field.inside.astype(np.float64), (w, h),
                                             interpolation=cv2.INTER_NEAREST))
        layers, plate = person_layers(appearance.image, matte, self.iod)
        self.layers = torch.as_tensor(layers, **f32)[None]  # (1, H, W, 4) channels-last
        self.plate_here = torch.as_tensor(plate[self.y0 : self.y1, self.x0 : self.x1], **f32)[None]
        self._canvas = appearance.image  # (H, W, 3) uint8
        self._buffers: dict[str, torch.Tensor] = {}
        # Seconds spent in each stage of ``render``, summed over calls, while this is a dict
        # (set it to {} to start timing; bench/speed.py does).
        self.stage_seconds: dict[str, float] | None = None
        self._lap_start = 0.0

        self._jaw = expression_index("jawOpen")
        self._upper_inner = torch.as_tensor(fm.LIPS_UPPER_INNER, device=dev)
        self._lower_inner = torch.as_tensor(fm.LIPS_LOWER_INNER, device=dev)
        self._mouth = MouthPainter(appearance, dev, mouth_net)
        self._eyes = EyePainter(appearance, source, dev)
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
        return self.field.pose_transform(pose)

    def point_motion(self, expression: torch.Tensor, gaze: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) mesh point motion of (B, E) expressions, against the photo's own, the
        upper lids following the look when ``gaze`` (B, 2) is given."""
        return self.field.point_motion(expression, gaze)

    def forward_field(self, point_motion: torch.Tensor, rot: torch.Tensor, scale: torch.Tensor,
                      shift: torch.Tensor) -> torch.Tensor:
        """(B, 2, ch, cw) pixels: where each cell of the active rectangle moves."""
        return self.field.forward(point_motion, rot, scale, shift)

    @torch.no_grad()
    def mesh(self, motion: MotionSequence) -> torch.Tensor:
        """(T, V, 3) canvas pixels: the face mesh as each motion frame moves it."""
        pose = torch.as_tensor(motion.pose, device=self.device)
        rot, scale, shift = self.pose_transform(pose)
        point_motion = self.point_motion(torch.as_tensor(motion.expression, device=self.device),
                                         torch.as_tensor(motion.gaze, device=self.device))
        return self.field.move(self._vertices + point_motion, rot, scale, shift)

    @torch.no_grad()
    def render(self, motion: MotionSequence) -> np.ndarray:
        """(T, H, W, 3) uint8 frames."""
        dev = self.device
        pose = torch.as_tensor(motion.pose, device=dev)
        expression = torch.as_tensor(motion.expression, device=dev)
        b = pose.shape[0]
        self._lap(None)
        rot, scale, shift = self.pose_transform(pose)
        point_motion = self.point_motion(expression, torch.as_tensor(motion.gaze, device=dev))
        forward = self.forward_field(point_motion, rot, scale, shift)  # (B, 2, ch, cw)
        self._lap("forward field")
        rh, rw = self.y1 - self.y0, self.x1 - self.x0
        u = invert_on_cells(forward, rh, rw, self._lap)
        # At full resolution (channels-last from here on) one more step, a damped fixed-point
        # one: it keeps the pixel-sharp lid and lip seams, which a Newton step, with its
        # cell-wide Jacobian, would speckle.
        # The frame-sized tensors from here on live in buffers kept from batch to batch: fresh
        # ones would each cost the page faults of new memory, a third of the render's time.
        cpu = uses_opencv(forward)
        full = lambda name, c: self._buffer(name, (b, rh, rw, c)) if cpu else None  # noqa: E731
        u = upsample(u, rh, rw, out=full("u", 2))  # (B, h, w, 2)
        cells = F.pad(forward, (0, 0, 0, 0, 0, 2)).permute(0, 2, 3, 1).contiguous()  # 4 channels
        at = torch.add(self._pixel_cells, u, alpha=1.0 / FIELD_STRIDE, out=full("at", 2))
        f = remap(cells, at, border=False, out=full("f", 4))
        # The canvas pixel each pixel samples (centres at whole numbers): here + u - d (u + f).
        source_xy = torch.add(self._canvas_pixels, u, alpha=1.0 - INVERSION_DAMPING, out=at)
        source_xy.add_(f[..., :2], alpha=-INVERSION_DAMPING)  # (B, h, w, 2)
        self._lap("full-resolution step")
        layers = remap(self.layers, source_xy, border=True, out=full("layers", 4))
        # The person layer over the still plate: the background the warp carried along with
        # the head is not sampled at all, the plate's own background here shows instead. (Where
        # neither the target nor its source is person, that is the photo exactly.)
        warped = torch.addcmul(layers[..., :3], layers[..., 3:], self.plate_here, out=full("rgb", 3))
        warped = warped.permute(0, 3, 1, 2)  # (B, 3, h, w), channels-last in memory
        self._lap("layers")
        warped = self._paint(warped, source_xy, point_motion, expression, motion, rot, scale, shift)
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

    def _paint(self, warped: torch.Tensor, source_xy: torch.Tensor, point_motion: torch.Tensor,
               expression: torch.Tensor, motion: MotionSequence, rot: torch.Tensor,
               scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """The eyes and the mouth painted into the (B, 3, h, w) warped patch."""
        move, b = self.field.move, warped.shape[0]
        # Eyes: lids closing over the eyeball, irises following the gaze.
        vertices = move(self._vertices + point_motion, rot, scale, shift)
        lid_change = point_motion[:, self._eye_contours, :2].norm(dim=-1).amax(dim=1)
        warped = self._eyes.paint(warped, source_xy, vertices,
                                  torch.as_tensor(motion.gaze, device=self.device),
                                  rot, scale, lid_change, (self.x0, self.y0))
        self._lap("eyes")
        # Teeth: the upper row is fixed to the skull, the lower row rides on the jaw.
        rig, source_expression = self.field.rig, self.field.source_expression
        upper_line = self._vertices[self._upper_inner]
        jaw_drop = expression[:, self._jaw, None, None] * rig[self._jaw, self._lower_inner]
        upper_teeth = move(upper_line.expand(b, -1, -1), rot, scale, shift)
        lower_teeth = move(upper_line + jaw_drop, rot, scale, shift)
        photo_jaw = move(upper_line + source_expression[self._jaw] * rig[self._jaw, self._lower_inner],
                         rot, scale, shift)
        jaw_shift = (lower_teeth - photo_jaw)[..., :2].mean(dim=1)
        # The mouth is painted only as far as the lips changed shape from the photo's (head
        # motion alone moves the photo's own mouth rigidly, which needs no painting).
        lip_change = point_motion[:, self._mouth.polygon, :2].norm(dim=-1).amax(dim=1)
        warped = self._mouth.paint(warped, vertices, upper_teeth, lower_teeth, jaw_shift, scale,
                                   (self.x0, self.y0), smoothstep(0.25, 1.5, lip_change))
        self._lap("mouth")
        return warped
