"""Inverting the forward motion field into a backward warp: u = -forward(y + u), solved by
Newton steps with the field's Jacobian, coarse to fine. Strong stretches (a head sliding away
from the still background) converge, where plain fixed-point steps diverge; where the field
folds, a damped fixed-point step instead."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from talkinghead.renderer.resample import centres

INVERSION_STEPS = 6  # Newton steps inverting the forward field, on the cells
INVERSION_RAMP = 6  # steps over which the field is brought in
INVERSION_DAMPING = 0.7  # share of a fixed-point update taken where the field folds
FOLD_DET = 0.2  # Jacobian determinant below which the field counts as folded there


def with_slopes(forward: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (B, 2, h, w) field over a ``height`` x ``width`` pixel rectangle, with its derivatives
    along x and y (central differences): (B, 6, h, w), and the cell size (x, y) in pixels."""
    cell = torch.tensor([width / forward.shape[3], height / forward.shape[2]], device=forward.device)
    padded = F.pad(forward, (1, 1, 1, 1), mode="replicate")
    d_dx = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / (2.0 * cell[0])
    d_dy = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / (2.0 * cell[1])
    return torch.cat([forward, d_dx, d_dy], dim=1), cell


def newton(u: torch.Tensor, base: torch.Tensor, field: torch.Tensor, cell: torch.Tensor,
            share: float = 1.0) -> torch.Tensor:
    """One step solving u = -share * forward(y + u) for u (B, 2, h, w) pixels at the pixel
    positions ``base`` (1, 2, h, w); ``field`` is ``with_slopes`` of forward, on cells of
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



def invert_on_cells(forward: torch.Tensor, height: int, width: int,
                    lap: Callable[[str], None]) -> torch.Tensor:
    """(B, 2, h, w) backward motion u on the cells of the (B, 2, h, w) ``forward`` field over
    a ``height`` x ``width`` pixel rectangle: six Newton steps on cells of twice the size (the
    field brought in gradually: step k solves for k/K of it, from the solution for (k-1)/K, so
    no step starts far from its root), then one on the field's own cells. ``lap`` marks the
    end of each (the renderer's stage timing)."""
    ch, cw = forward.shape[2:]
    coarse = F.avg_pool2d(forward, 2, ceil_mode=True)
    field, cell = with_slopes(coarse, height, width)
    base = centres(*coarse.shape[2:], cell, forward.device)
    u = torch.zeros_like(coarse)
    for k in range(1, INVERSION_STEPS + 1):
        u = newton(u, base, field, cell, min(k / INVERSION_RAMP, 1.0))
    lap("coarse Newton")
    field, cell = with_slopes(forward, height, width)
    u = F.interpolate(u, size=(ch, cw), mode="bilinear", align_corners=False)
    u = newton(u, centres(ch, cw, cell, forward.device), field, cell)
    lap("fine Newton")
    return u
