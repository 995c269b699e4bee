"""``talkinghead train-mouth``: the learned mouth interior (``renderer.mouthnet``) trained on
self-reenactment of real talking videos.

Each video's motion is extracted (``talkinghead.extract``); a few of its frames play the
photo, and each is rendered (full frame, the procedural mouth painter) moving as later frames
of the video moved. A training pair is one such render and the real frame it imitates, both
cut to the canonical mouth crop the render's mesh places, with the source frame's own mouth
as the photo: the network learns to turn the procedural painting into the real mouth, taking
colours, light and teeth from the photo. Pairs are cached per video, keyed by its SHA-256.
Colour gains, brightness, greyscale and mirroring are applied to all images of a pair alike.
The loss is the L1 error of colours and of their gradients over the render's opening grown by
two crop pixels. Optionally (``adversarial_weight`` > 0; the shipped weights use none), after
the first fifth of the steps, an adversarial term too: a patch critic (``MouthCritic``,
training only) learns to tell real mouths from painted ones (each painting pasted into its real
frame through the render's opening, so only the opening differs), and the network is
penalised by how painted its mouths look. A pixel loss alone rewards hedging (where the real
teeth may show or hide, the cheapest answer is their average, a dim blur); on this data and
network the critic did not bring teeth back (README, "The mouth interior"). On 2 CPU cores:
making the pairs about half a minute per video, training about a fifth of a second per step
(a third with the critic).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.generator import file_sha256
from talkinghead.renderer import mouthnet as mn

CACHE_VERSION = 4  # bump when the cached pairs change: old entries are ignored
OPEN_GAP = 0.04  # lips this far apart at the middle (inter-ocular distances) count as open
OPEN_SHARE = 0.9  # share of training pairs drawn from frames with an open mouth
MATCH = 0.5  # pairs whose render's opening and real opening overlap less (IoU) are not used
SOURCES = 3  # frames of each video that play the photo
TARGETS = 120  # frames each source is rendered moving to (spread over the video)


@dataclass(frozen=True)
class MouthTrainConfig:
    steps: int = 3000
    batch_size: int = 24
    lr: float = 2e-3
    width: int = 16
    gradient_weight: float = 1.0  # weight of the colour-gradient L1 against the colour L1
    adversarial_weight: float = 0.0  # weight of the critic's verdict against the colour L1 (0: none)
    adversarial_start: float = 0.2  # share of the steps trained on the pixel loss alone first
    seed: int = 0
    threads: int = 2


@dataclass
class MouthPairs:
    """One video's self-reenactment pairs in the canonical crop: a source frame (the photo)
    rendered moving as a target frame moved (procedural mouth), and the real target frame."""

    rendered: np.ndarray  # (N, H, W, 3) uint8 the renders
    masks: np.ndarray  # (N, H, W) uint8 the render's mouth opening, 0-255
    real: np.ndarray  # (N, H, W, 3) uint8 the real target frames, at the render's crop
    real_masks: np.ndarray  # (N, H, W) uint8 the real frame's mouth opening (tracked), same crop
    photo: np.ndarray  # (N,) int: which of ``photos`` each render started from
    photos: np.ndarray  # (S, H, W, 3) uint8 the source frames' own mouths
    photo_masks: np.ndarray  # (S, H, W) uint8 their openings
    gaps: np.ndarray  # (N,) the real target's lips apart at the middle, inter-ocular distances

    def __len__(self) -> int:
        return len(self.gaps)

    @cached_property
    def usable(self) -> np.ndarray:
        """Indices of the pairs whose render opened the mouth where the real one opened
        (IoU of the openings at least MATCH, or both shut): the network learns what the inside
        of a mouth looks like, not to redraw the renderer's lips. Computed once per clip."""
        render, real = self.masks > 127, self.real_masks > 127
        union = (render | real).sum(axis=(1, 2))
        iou = np.where(union > 0, (render & real).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)
        return np.flatnonzero(iou >= MATCH)

    @cached_property
    def open_usable(self) -> np.ndarray:
        """The ``usable`` pairs whose real mouth is open."""
        return self.usable[self.gaps[self.usable] > OPEN_GAP]


def crops_of(frames: np.ndarray, vertices: torch.Tensor, unit: torch.Tensor,
             placement: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W, 3) uint8 canonical crops of (B, h, w, 3) uint8 ``frames`` placed by their
    (B, V, 3) mesh ``vertices`` (or the ``placement`` already made from them), and (B, H, W)
    uint8 the mesh's mouth opening (``unit``: (B, 1) pixels per inter-ocular distance)."""
    placement = mn.crop_placement(vertices) if placement is None else placement
    return image_crops(frames, placement), mask_bytes(vertices, unit, placement)


def _bytes(x: torch.Tensor) -> np.ndarray:
    return (x * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).numpy()


def image_crops(frames: np.ndarray, placement: torch.Tensor) -> np.ndarray:
    """(B, H, W, 3) uint8 canonical crops of (B, h, w, 3) uint8 ``frames`` at ``placement``."""
    image = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0
    return _bytes(mn.sample_crop(image, placement).permute(0, 2, 3, 1))


def mask_bytes(points: torch.Tensor, unit: torch.Tensor, placement: torch.Tensor) -> np.ndarray:
    """(B, H, W) uint8 the mouth opening of (B, V, 2 or 3) mesh or tracked ``points`` in the
    crop at ``placement``."""
    return _bytes(mn.opening_mask(points, unit, placement)[:, 0])


def video_pairs(video: Path) -> MouthPairs:
    """Self-reenactment pairs of ``video``: SOURCES frames spread over it each rendered (full
    frame, procedural mouth) moving as up to TARGETS frames at least half a second away
    moved (motion from ``talkinghead.extract``), cut to the canonical crop with the real
    frames."""
    from talkinghead.encode import encode
    from talkinghead.errors import InputError
    from talkinghead.extract import extract_motion
    from talkinghead.face import find_face
    from talkinghead.load import Portrait
    from talkinghead.motionfile import relative_to
    from talkinghead.motionspace import MotionSequence
    from talkinghead.mux import probe, read_frames
    from talkinghead.renderer import MeshWarpRenderer

    info = probe(video)
    frames = np.concatenate(list(read_frames(video, info.width, info.height)))
    extracted = extract_motion(video, max_frames=len(frames))
    found = np.flatnonzero(extracted.face_found)
    table = extracted.motion.to_array()
    lm = extracted.landmarks
    keys = ("rendered", "masks", "real", "real_masks", "photo", "gaps")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    photos, photo_masks = [], []
    picks = np.linspace(0, len(found) - 1, SOURCES + 2)[1:-1].round().astype(int) if len(found) else []
    for r in found[picks]:
        try:
            portrait = Portrait(video, frames[r])
            appearance, source = encode(portrait, find_face(portrait), full_frame=True)
        except InputError:
            continue
        h, w = appearance.image.shape[:2]  # odd sides were cropped to even ones
        renderer = MeshWarpRenderer(appearance, source)
        vertices = torch.as_tensor(appearance.vertices, dtype=torch.float32)[None]
        crop, mask = crops_of(appearance.image[None], vertices, torch.tensor([[renderer.iod]]))
        photos.append(crop[0])
        photo_masks.append(mask[0])
        targets = found[np.abs(found - r) >= 0.5 * info.fps]
        targets = np.unique(targets[np.linspace(0, len(targets) - 1, min(TARGETS, len(targets))).astype(int)])
        rows = np.concatenate([[r], targets])  # the source first: motion relative to it
        motion = relative_to(MotionSequence.from_array(table[rows], info.fps), source)
        for start in range(0, len(targets), 8):
            part, ts = motion.frames(1 + start, 1 + start + 8), targets[start : start + 8]
            vertices = renderer.mesh(part)
            unit = renderer.iod * renderer.pose_transform(torch.as_tensor(part.pose))[1][:, None]
            placement = mn.crop_placement(vertices)
            rendered, masks = crops_of(renderer.render(part), vertices, unit, placement)
            real = image_crops(np.ascontiguousarray(frames[ts, :h, :w]), placement)
            real_lm = torch.as_tensor(lm[ts], dtype=torch.float32)
            real_unit = (real_lm[:, 263, :2] - real_lm[:, 33, :2]).norm(dim=-1, keepdim=True)
            real_masks = mask_bytes(real_lm, real_unit, placement)
            gaps = mn.lips_apart(real_lm, real_unit)[:, 0]
            source_index = np.full(len(ts), len(photos) - 1)
            values = (rendered, masks, real, real_masks, source_index, gaps.numpy())
            for key, value in zip(keys, values, strict=True):
                parts[key].append(value)
    if not photos:
        mask = np.zeros((0, mn.CROP_H, mn.CROP_W), np.uint8)
        image = np.zeros((*mask.shape, 3), np.uint8)
        return MouthPairs(image, mask, image, mask, np.zeros(0, int), image, mask, np.zeros(0))
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    return MouthPairs(photos=np.stack(photos), photo_masks=np.stack(photo_masks), **joined)


def cached_video_pairs(video: Path, cache: Path | None, sha256: str) -> MouthPairs:
    """``video_pairs`` through a cache folder keyed by the video's SHA-256."""
    if cache is None:
        return video_pairs(video)
    entry = cache / f"{sha256}-m{CACHE_VERSION}.npz"
    if not entry.is_file():
        pairs = video_pairs(video)
        cache.mkdir(parents=True, exist_ok=True)
        partial = entry.with_suffix(".partial.npz")
        np.savez(partial, **{f.name: getattr(pairs, f.name) for f in fields(MouthPairs)})
        partial.replace(entry)
    with np.load(entry) as data:
        return MouthPairs(**{f.name: data[f.name] for f in fields(MouthPairs)})


def sample_pairs(clips: list[MouthPairs], rng: np.random.Generator, batch: int) -> tuple[np.ndarray, ...]:
    """A batch of (render, its opening, real frame, photo, the photo's opening) from random
    videos, mostly with the real mouth open."""
    out: list[list[np.ndarray]] = [[], [], [], [], []]
    for _ in range(batch):
        clip = clips[rng.integers(len(clips))]
        open_pairs = clip.open_usable
        pool = open_pairs if len(open_pairs) and rng.random() < OPEN_SHARE else clip.usable
        i = int(pool[rng.integers(len(pool))])
        k = clip.photo[i]
        pair = (clip.rendered[i], clip.masks[i], clip.real[i], clip.photos[k], clip.photo_masks[k])
        for slot, value in zip(out, pair, strict=True):
            slot.append(value)
    return tuple(np.stack(s) for s in out)


def _augment(images: list[torch.Tensor], rng: np.random.Generator) -> list[torch.Tensor]:
    """The same colour gains, brightness and greyscale for every (B, 3, H, W) image of a pair."""
    b = images[0].shape[0]
    gain = torch.as_tensor(rng.uniform(0.85, 1.15, (b, 3, 1, 1)) * rng.uniform(0.7, 1.25, (b, 1, 1, 1)),
                           dtype=torch.float32)
    grey = torch.as_tensor(rng.random((b, 1, 1, 1)) < 0.1)
    out = []
    for x in images:
        x = (x * gain).clamp(0.0, 1.0)
        luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        out.append(torch.where(grey, luma.expand_as(x), x))
    return out


def _loss_region(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) the render's opening grown by two crop pixels: where the losses look."""
    return F.max_pool2d((mask > 0.02).float(), 5, stride=1, padding=2)


def mouth_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor, gradient_weight: float
               ) -> torch.Tensor:
    """L1 of colours and of their horizontal and vertical differences over the opening grown
    by two crop pixels."""
    region = _loss_region(mask)
    total = region.sum().clamp_min(1.0)
    loss = ((pred - real).abs() * region).sum() / (3 * total)
    for dim in (2, 3):
        dp, dr = pred.diff(dim=dim), real.diff(dim=dim)
        r = region.narrow(dim, 0, region.shape[dim] - 1)
        loss = loss + gradient_weight * ((dp - dr).abs() * r).sum() / (3 * total)
    return loss


class MouthCritic(nn.Module):
    """Training only: a patch critic over the canonical crop, (B, 3, H, W) image and (B, 1, H,
    W) the render's opening -> (B, 1, H/4, W/4) scores, each over about 26 crop pixels (a
    third of the mouth's width). Spectrally normalised for a steady game."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.net = nn.Sequential(sn(nn.Conv2d(4, width, 4, 2, 1)), act(),
                                 sn(nn.Conv2d(width, 2 * width, 4, 2, 1)), act(),
                                 sn(nn.Conv2d(2 * width, 2 * width, 3, 1, 1)), act(),
                                 sn(nn.Conv2d(2 * width, 1, 3, 1, 1)))

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, mask], 1) - 0.5)


def _patch_weights(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H/4, W/4) the share of each critic patch's cell in the opening grown by two crop
    pixels: patches away from the mouth do not count."""
    return F.avg_pool2d(_loss_region(mask), 4)


def _least_squares(scores: torch.Tensor, target: float, weights: torch.Tensor) -> torch.Tensor:
    return (weights * (scores - target).square()).sum() / weights.sum().clamp_min(1e-6)


def train_mouth(videos: list[Path], out: Path, config: MouthTrainConfig, *, cache: Path | None,
                command: str, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Train the mouth network on ``videos`` and write it to ``out`` with its manifest."""
    torch.set_num_threads(config.threads)
    clips, records = [], []
    for i, video in enumerate(videos):
        sha = file_sha256(video)
        clip = cached_video_pairs(video, cache, sha)
        if len(clip.usable):
            clips.append(clip)
            records.append({"file": video.name, "sha256": sha, "pairs": len(clip),
                            "usable_pairs": len(clip.usable), "open_usable_pairs": len(clip.open_usable)})
        if progress:
            progress("rendering pairs", i + 1, len(videos))
    if not clips:
        raise ValueError("no video with a tracked face to train the mouth on")
    model, history = fit_mouth_net(clips, config, progress)
    return export_mouth_net(model, out, command=command, config=config, history=history, videos=records)


def fit_mouth_net(clips: list[MouthPairs], config: MouthTrainConfig,
                  progress: Callable[[str, int, int], None] | None = None
                  ) -> tuple[mn.MouthNet, list[dict]]:
    """A mouth network trained on ``clips``, and its loss history (mean per 100 steps)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = mn.MouthNet(mn.MouthNetConfig(width=config.width))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    warmup = max(1, min(100, config.steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: min((i + 1) / warmup, 0.5 * (
        1.0 + np.cos(np.pi * min(i / config.steps, 1.0)))))  # linear warm-up, cosine decay
    adversarial_from = critic = critic_optimiser = None
    if config.adversarial_weight > 0:
        adversarial_from = int(config.adversarial_start * config.steps)
        critic = MouthCritic()
        critic_optimiser = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    history, started = [], time.perf_counter()
    running = np.zeros(3)  # pixel loss, the critic's own loss, its verdict on the paintings
    for step in range(1, config.steps + 1):
        batch = sample_pairs(clips, rng, config.batch_size)
        rendered, mask, real, photo, photo_mask = (torch.as_tensor(x) for x in batch)
        as_image = lambda x: x.permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
        rendered, real, photo = _augment([as_image(rendered), as_image(real), as_image(photo)], rng)
        mask, photo_mask = mask[:, None].float() / 255.0, photo_mask[:, None].float() / 255.0
        if rng.random() < 0.5:  # mirrored (the crop's corners are symmetric about its middle)
            images = (rendered, mask, real, photo, photo_mask)
            rendered, mask, real, photo, photo_mask = (x.flip(3) for x in images)
        pred = model(mn.net_input(rendered, mask, photo, photo_mask))
        loss = pixel = mouth_loss(pred, real, mask, config.gradient_weight)
        if critic is not None and critic_optimiser is not None and step > adversarial_from:
            # The painting pasted into the real frame through the render's opening.
            weights, fake = _patch_weights(mask), real + mask * (pred - real)
            critic_loss = 0.5 * (_least_squares(critic(real, mask), 1.0, weights)
                                 + _least_squares(critic(fake.detach(), mask), 0.0, weights))
            critic_optimiser.zero_grad(set_to_none=True)
            critic_loss.backward()
            critic_optimiser.step()
            verdict = _least_squares(critic(fake, mask), 1.0, weights)
            loss = pixel + config.adversarial_weight * verdict
            running[1:] += (critic_loss.item(), verdict.item())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running[0] += pixel.item()
        if step % 100 == 0 or step == config.steps:
            mean = running / (100 if step % 100 == 0 else step % 100)
            entry = {"step": step, "loss": round(float(mean[0]), 5)}
            if running[1]:
                entry.update(critic=round(float(mean[1]), 4), verdict=round(float(mean[2]), 4))
            history.append({**entry, "seconds": round(time.perf_counter() - started, 1)})
            running[:] = 0.0
        if progress:
            progress("training", step, config.steps)
    return model.eval(), history


def export_mouth_net(model: mn.MouthNet, out: Path, *, command: str, config: MouthTrainConfig,
                     history: list[dict], videos: list[dict]) -> dict:
    """Write ``model`` as safetensors and MANIFEST.json (SHA-256, size, training files, command)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    path = out / mn.WEIGHTS_FILE
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    manifest = {
        "files": {mn.WEIGHTS_FILE: {"sha256": file_sha256(path), "bytes": path.stat().st_size}},
        "config": model.config.to_dict(),
        "crop": {"height": mn.CROP_H, "width": mn.CROP_W, "corners": mn.CORNERS},
        "command": command,
        "videos": videos,
        "train": asdict(config),
        "loss_history": history,
    }
    (out / mn.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
