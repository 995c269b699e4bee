"""The face mesh as the renderer uses it: closed over the eyes and mouth, rasterized into
triangle ids and barycentric weights, its outline, and head rotations in torch."""

from __future__ import annotations

import numpy as np
import torch

from talkinghead.models import facemesh as fm


def strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Triangles bridging two contours that share their end points."""
    tris = []
    for i in range(len(upper) - 1):
        for tri in ((upper[i], upper[i + 1], lower[i + 1]), (upper[i], lower[i + 1], lower[i])):
            if len(set(tri)) == 3:
                tris.append(tri)
    return tris


def closed_mesh() -> np.ndarray:
    """(F, 3) the surface triangles plus strips over both eyes and the mouth."""
    extra = (strip(fm.LIPS_UPPER_INNER, fm.LIPS_LOWER_INNER)
             + strip(fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)
             + strip(fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER))
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


def project_to_polyline(points: np.ndarray, polygon: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (N, 2) points, the nearest edge (index into the closed polygon), the position t in
    [0, 1] along it, and the distance. One edge at a time over all points (an (N, M, 2) array
    at once was 3 times slower: memory, not arithmetic); the first nearest edge wins a tie."""
    px, py = points[:, 0], points[:, 1]
    best_d = np.full(len(points), np.inf)
    best_e = np.zeros(len(points), dtype=np.int64)
    best_t = np.zeros(len(points))
    for e, (a, b) in enumerate(zip(polygon, np.roll(polygon, -1, axis=0), strict=True)):
        abx, aby = b[0] - a[0], b[1] - a[1]
        t = np.clip(((px - a[0]) * abx + (py - a[1]) * aby) / max(abx * abx + aby * aby, 1e-12), 0.0, 1.0)
        dx, dy = px - (a[0] + t * abx), py - (a[1] + t * aby)
        d = np.sqrt(dx * dx + dy * dy)
        nearer = d < best_d
        best_d[nearer], best_e[nearer], best_t[nearer] = d[nearer], e, t[nearer]
    return best_e, best_t, best_d


def rotations(pose: torch.Tensor) -> torch.Tensor:
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

