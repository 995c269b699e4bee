"""The learned mouth interior: a small U-Net that paints the inside of an opening mouth.

It works in a canonical crop of CROP_H x CROP_W pixels where the two outer mouth corners land
on fixed points (``CORNERS``), so one network serves every face size and head roll. In: the
rendered frame around the mouth as the procedural painter drew it (the lips, the light on
them, teeth and cavity placed by the skull and the jaw), the opening's mask, and the photo's
own mouth in the same crop with its opening's mask (its colours and light, and its teeth when
it shows them). Out: the crop's colours, of which the painter keeps the opening. Trained on
self-reenactment of real talking videos (``talkinghead train-mouth``,
``talkinghead.mouthtrain``): one frame of a video rendered moving as a later frame moved, the
later frame's real mouth the answer.

Also here, shared by the painter and the training: the mouth opening's polygon and its
signed distance, and the crop's placement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.models import facemesh as fm
from talkinghead.models.rig import smoothstep

CROP_H, CROP_W = 64, 96
CORNERS = ((26.0, 26.0), (70.0, 26.0))  # the subject's right and left mouth corner in the crop
CORNER_REACH = 0.6  # share of the way from the inner lip corners to the outer ones the opening takes
WEIGHTS_FILE = "mouth_net.safetensors"
MANIFEST_FILE = "MANIFEST.json"  # as the motion weights'


def lips_apart(points: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """(B, 1) the lips apart at the middle of (B, V, 2 or 3) mesh or tracked ``points``, in
    inter-ocular distances (``unit``: (B, 1) pixels per inter-ocular distance)."""
    return (points[:, 14, :2] - points[:, 13, :2]).norm(dim=-1, keepdim=True) / unit


def opening_polygon(vertices: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """(B, K, 2) pixels: the mouth opening of (B, V, 3) mesh ``vertices``, ``unit`` (B, 1)
    pixels per inter-ocular distance. The mesh's inner lip corners sit inside the visible
    commissures, and an opening jaw drags the skin between them into pale wedges: as the lips
    part the opening reaches out over them (CORNER_REACH of the way to the outer corners)."""
    poly = vertices[:, list(fm.inner_lip_polygon()), :2].clone()
    reach = (CORNER_REACH * smoothstep(0.02, 0.12, lips_apart(vertices, unit)))[..., None]  # (B, 1, 1)
    corners = vertices[:, [fm.MOUTH_CORNER_RIGHT, fm.MOUTH_CORNER_LEFT], :2]
    ends = [0, len(fm.LIPS_UPPER_INNER) - 1]
    poly[:, ends] = poly[:, ends] + reach * (corners - poly[:, ends])
    return poly


def signed_distance(poly: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """(B, N) distance of (1 or B, N, 2) points to the (B, K, 2) polygon's outline, negative
    inside it."""
    a, bb = poly, poly.roll(-1, dims=1)
    ab = (bb - a)[:, None]  # (B, 1, K, 2)
    ap = pts[:, :, None, :] - a[:, None]  # (B, N, K, 2)
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0.0, 1.0)
    dist = (ap - t[..., None] * ab).norm(dim=-1).amin(dim=2)  # (B, N)
    crosses = ((a[:, None, :, 1] > pts[..., None, 1]) != (bb[:, None, :, 1] > pts[..., None, 1]))
    x_cross = a[:, None, :, 0] + (pts[..., None, 1] - a[:, None, :, 1]) * (
        (bb - a)[:, None, :, 0] / ((bb - a)[:, None, :, 1] + 1e-9))
    inside = (crosses & (pts[..., None, 0] < x_cross)).sum(-1) % 2 == 1
    return torch.where(inside, -dist, dist)


def crop_placement(vertices: torch.Tensor) -> torch.Tensor:
    """(B, 2) complex [a, b]: the similarity ``canvas = a * crop + b`` (points as complex
    numbers) putting the crop's CORNERS on the mouth corners of (B, V, 3) ``vertices``."""
    right = torch.complex(vertices[:, fm.MOUTH_CORNER_RIGHT, 0], vertices[:, fm.MOUTH_CORNER_RIGHT, 1])
    left = torch.complex(vertices[:, fm.MOUTH_CORNER_LEFT, 0], vertices[:, fm.MOUTH_CORNER_LEFT, 1])
    (rx, ry), (lx, ly) = CORNERS
    a = (left - right) / complex(lx - rx, ly - ry)
    return torch.stack([a, right - a * complex(rx, ry)], dim=1)


def crop_points(placement: torch.Tensor) -> torch.Tensor:
    """(B, CROP_H * CROP_W, 2) canvas positions of the crop's pixel centres."""
    ys, xs = torch.meshgrid(torch.arange(CROP_H, dtype=torch.float32) + 0.5,
                            torch.arange(CROP_W, dtype=torch.float32) + 0.5, indexing="ij")
    grid = torch.complex(xs, ys).reshape(1, -1).to(placement.device)
    canvas = placement[:, :1] * grid + placement[:, 1:]
    return torch.stack([canvas.real, canvas.imag], dim=-1)


def to_crop(placement: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) crop positions of (1 or B, N, 2) canvas points."""
    p = torch.complex(pts[..., 0], pts[..., 1])
    q = (p - placement[:, 1:]) / placement[:, :1]
    return torch.stack([q.real, q.imag], dim=-1)


def sample_crop(image: torch.Tensor, placement: torch.Tensor, origin: tuple[float, float] = (0.0, 0.0)
                ) -> torch.Tensor:
    """(B, C, CROP_H, CROP_W) bilinear samples of (1 or B, C, H, W) ``image``, whose top-left
    pixel sits at canvas ``origin``, over the crop (edges carried on beyond the image)."""
    pts = crop_points(placement) - torch.tensor(origin, device=placement.device)
    h, w = image.shape[2:]
    grid = pts * torch.tensor([2.0 / w, 2.0 / h], device=pts.device) - 1.0
    b = placement.shape[0]
    return F.grid_sample(image.expand(b, -1, -1, -1), grid.view(b, CROP_H, CROP_W, 2), mode="bilinear",
                         padding_mode="border", align_corners=False)


def opening_mask(vertices: torch.Tensor, unit: torch.Tensor, placement: torch.Tensor) -> torch.Tensor:
    """(B, 1, CROP_H, CROP_W) coverage of the mouth opening in the crop (anti-aliased over a
    crop pixel and a half, as the painter's alpha is over canvas pixels)."""
    poly = to_crop(placement, opening_polygon(vertices, unit))
    ys, xs = torch.meshgrid(torch.arange(CROP_H, dtype=torch.float32) + 0.5,
                            torch.arange(CROP_W, dtype=torch.float32) + 0.5, indexing="ij")
    pts = torch.stack([xs, ys], dim=-1).view(1, -1, 2).to(poly.device)
    return (1.5 - signed_distance(poly, pts)).clamp(0.0, 1.0).view(-1, 1, CROP_H, CROP_W)


@dataclass(frozen=True)
class MouthNetConfig:
    width: int = 16  # channels at full crop resolution (doubled at each of two halvings)
    in_channels: int = 8  # frame (3) + its opening (1) + photo (3) + the photo's opening (1)

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class MouthNet(nn.Module):
    """A three-level U-Net over the canonical crop, (B, 8, H, W) in [0, 1] -> (B, 3, H, W),
    lean at full resolution (one convolution in, one out) to cost a few milliseconds a frame
    on a CPU."""

    def __init__(self, config: MouthNetConfig = MouthNetConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.enc1 = _conv(config.in_channels, c)
        self.enc2 = nn.Sequential(_conv(c, 2 * c), _conv(2 * c, 2 * c))
        self.enc3 = nn.Sequential(_conv(2 * c, 4 * c), _conv(4 * c, 4 * c))
        self.dec2 = _conv(6 * c, 2 * c)
        self.dec1 = _conv(3 * c, c)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x - 0.5)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        e3 = self.enc3(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear"), e1], 1))
        return torch.sigmoid(self.out(d1))


def net_input(frame_crop: torch.Tensor, frame_mask: torch.Tensor, photo_crop: torch.Tensor,
              photo_mask: torch.Tensor) -> torch.Tensor:
    """The network's (B, 8, H, W) input: the rendered frame's crop, its opening, the photo's
    crop and the photo's opening (all (B or 1, C, H, W) in [0, 1])."""
    b = frame_crop.shape[0]
    return torch.cat([frame_crop, frame_mask,
                      photo_crop.expand(b, -1, -1, -1), photo_mask.expand(b, -1, -1, -1)], dim=1)


def load_mouth_net(folder: Path, device: torch.device | str = "cpu") -> MouthNet:
    """The mouth network from ``folder`` (MANIFEST.json + safetensors), verified against the
    manifest's size and SHA-256."""
    from safetensors.torch import load_file

    from talkinghead.generator import verified_weights

    manifest, path = verified_weights(folder, WEIGHTS_FILE, "run `make mouth-weights`")
    model = MouthNet(MouthNetConfig(**manifest["config"]))
    model.load_state_dict(load_file(str(path)), strict=True)
    # Channels-last: oneDNN's convolutions on the CPU are several times faster on it for
    # these few channels (about 3 ms a frame on 2 cores against 20).
    return model.to(device, memory_format=torch.channels_last).eval()
