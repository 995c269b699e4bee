"""Resampling: bilinear samples and resizes of channels-last tensors, by OpenCV on the CPU
(several times faster there than ``grid_sample`` for a frame's few channels, same values to
1e-5) and by torch elsewhere; and small helpers over pixel grids."""

from __future__ import annotations

import cv2
import torch
import torch.nn.functional as F

OPENCV = True  # resample with OpenCV on the CPU (off: grid_sample, as on other devices)


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Batched 1-D linear interpolation: x (B, N), increasing xp (B, K), fp (B, K) -> (B, N)."""
    idx = torch.searchsorted(xp.contiguous(), x.contiguous()).clamp(1, xp.shape[1] - 1)
    x0, x1 = xp.gather(1, idx - 1), xp.gather(1, idx)
    f0, f1 = fp.gather(1, idx - 1), fp.gather(1, idx)
    t = ((x - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0.0, 1.0)
    return f0 + t * (f1 - f0)


def uses_opencv(tensor: torch.Tensor) -> bool:
    """Whether OpenCV does the resampling of this tensor: on the CPU, unless OPENCV is off."""
    return OPENCV and tensor.device.type == "cpu"


def remap(image: torch.Tensor, maps: torch.Tensor, border: bool,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """(B, h, w, C) bilinear samples of the channels-last (N, H, W, C) ``image`` (N is 1 or B)
    at (B, h, w, 2) positions (x, y) in its pixels, pixel centres at whole numbers. Beyond the
    image its edge carries on (``border``) or it is zero.

    On the CPU OpenCV's remap does it, several times faster there than ``grid_sample`` for
    the few channels of a frame (same values to 1e-5); on other devices ``grid_sample``."""
    b, h, w = maps.shape[:3]
    n, height, width, c = image.shape
    if not uses_opencv(image):
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


def upsample(field: torch.Tensor, h: int, w: int, out: torch.Tensor | None = None
              ) -> torch.Tensor:
    """(B, h, w, C) channels-last bilinear resize of a (B, C, h', w') field (pixel centres
    kept); on the CPU by OpenCV (into ``out`` when given)."""
    if not uses_opencv(field):
        return F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False
                             ).permute(0, 2, 3, 1)
    out = torch.empty(field.shape[0], h, w, field.shape[1]) if out is None else out
    source, target = field.permute(0, 2, 3, 1).contiguous().numpy(), out.numpy()
    for i in range(field.shape[0]):
        cv2.resize(source[i], (w, h), dst=target[i], interpolation=cv2.INTER_LINEAR)
    return out


def centres(h: int, w: int, cell: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(1, 2, h, w) the centres (x, y) of an h x w grid of cells, each ``cell`` (x, y) pixels."""
    gy, gx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + 0.5,
                            torch.arange(w, device=device, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack([gx * cell[0], gy * cell[1]])[None]


