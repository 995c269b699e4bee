"""Training the motion generator: MotionDiT on the synthetic corpus and/or real talking
videos (``load_video_clips``), from scratch or fine-tuning existing weights, single process or
torchrun DDP.

Steps of ``train``:
1. clips -> (audio conditioning, motion, controls) per clip; motion mean and std over all frames;
2. each step draws random windows with the frames before them, noises the motion at a random
   level, drops conditions at random (audio, context, each control) and regresses the clean
   motion (plus its frame-to-frame differences, against jitter);
3. an exponential moving average of the weights is what gets exported: safetensors plus a
   manifest with SHA-256, size, the exact command and the corpus seed.

With WORLD_SIZE set (torchrun), each process trains on its own random windows and gradients
are averaged by DistributedDataParallel; only rank 0 writes.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from talkinghead.generator import (
    MANIFEST_FILE,
    REPLACED,
    WEIGHTS_FILE,
    audio_conditioning,
    file_sha256,
    tie_blinks,
)
from talkinghead.motionspace import EXPRESSION_NAMES, MOTION_NAMES, POSE_NAMES

# Channels whose error counts double in the loss: what lip sync and blinks are judged on.
WEIGHTED_CHANNELS = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthPressLeft", "mouthPressRight",
                     "mouthLowerDownLeft", "mouthLowerDownRight", "mouthRollLower", "eyeBlinkLeft",
                     "eyeBlinkRight")


def slow_channels() -> tuple[int, ...]:
    """Indices of the channels MotionDiT band-limits: everything but the fast speech and
    eyelid channels (``controls.SPEECH_CHANNELS``), i.e. head pose, gaze, brows, cheeks, smile."""
    from talkinghead.controls import SPEECH_CHANNELS

    return tuple(i for i, name in enumerate(MOTION_NAMES) if name not in SPEECH_CHANNELS)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 12000  # optimiser steps (the shipped weights)
    batch_size: int = 32  # windows per step (per process)
    lr: float = 1e-3  # peak learning rate (AdamW, warm-up then cosine decay)
    warmup: int = 100  # steps
    ema: float = 0.998  # decay of the exported weight average
    drop_audio: float = 0.1  # probability that a window's audio is dropped
    drop_context: float = 0.2  # ... its previous frames
    drop_controls: float = 0.15  # ... each control (gaze, distance, emotion), independently
    velocity_weight: float = 1.0  # weight of the frame-to-frame difference loss
    pose_weight: float = 1.0  # loss weight of the head's rotation (yaw, pitch, roll)
    seed: int = 0
    threads: int = 1  # CPU threads per process (more only on idle machines)
    checkpoint_every: int = 100  # steps
    width: int = 160  # network width
    depth: int = 4  # transformer blocks
    slow_sigma: float = 1.5  # low-pass of the slow channels, frames (see MotionDiT)
    real_fraction: float = 0.5  # share of windows from real videos when training on both


@dataclass(frozen=True)
class TrainClip:
    audio: np.ndarray  # (T, A) float32 audio conditioning
    motion: np.ndarray  # (T, D) float32 motion around a neutral source
    controls: np.ndarray  # (8,) float32: gaze yaw, pitch (deg), distance, emotion (5)
    gaze_given: bool = True  # False where the clip has no gaze target
    emotion_given: bool = True  # False where the clip's emotion is unknown (real videos)
    real: bool = False  # a real video, not the synthetic corpus


def load_corpus_clips(folder: Path) -> tuple[list[TrainClip], dict]:
    """The synthetic corpus in ``folder`` and its summary (corpus.json)."""
    from talkinghead.corpus import FPS, features_from_arrays, load_corpus

    summary_path = folder / "corpus.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    clips = [TrainClip(audio_conditioning(features_from_arrays(arrays, FPS)), motion, controls)
             for motion, arrays, controls in load_corpus(folder)]
    return clips, summary


TRAIN_FPS = 25.0  # frame rate of all training motion (the corpus's, and real videos resampled)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def video_motion(video: Path, fps: float = TRAIN_FPS) -> tuple[np.ndarray, np.ndarray] | None:
    """(T, D) motion and (T, A) audio conditioning of a real talking video at ``fps``, or None
    without a face in most frames or without sound. Motion comes from the project's own
    encoder (``extract.extract_motion``: pose, all ARKit coefficients, gaze), made relative to
    the video's median frame (so that frame plays the source photo; the mouth channels the
    generator sets outright, ``generator.REPLACED``, stay absolute); features from its own
    audio front end."""
    from talkinghead.audio import audio_features, frame_count
    from talkinghead.errors import InputError
    from talkinghead.extract import extract_motion
    from talkinghead.load import SAMPLE_RATE, AudioClip
    from talkinghead.motionfile import retime
    from talkinghead.mux import decode_audio

    sound = decode_audio(video, SAMPLE_RATE)
    if sound is None:
        return None
    try:
        extracted = extract_motion(video)
    except InputError:
        return None
    if extracted.face_found.mean() < 0.9:
        return None
    source = extracted.motion
    n = frame_count(source.n_frames / source.fps, fps)
    table = retime(source, fps, n).to_array().astype(np.float64)  # pose 6, expression, gaze 2
    relative = [i for i, name in enumerate(MOTION_NAMES) if i < 5 or (i >= len(POSE_NAMES)
                and name not in REPLACED)]
    table[:, relative] -= np.median(table[:, relative], axis=0)
    table[:, 5] /= np.median(table[:, 5])
    clip = AudioClip(video, sound.mean(axis=1).astype(np.float32), SAMPLE_RATE, sound.shape[1])
    return table.astype(np.float32), audio_conditioning(audio_features(clip, fps, n))


EXTRACTION_VERSION = 4  # bump when video_motion's output changes: old cache entries are ignored


def cached_video_motion(video: Path, cache: Path | None, sha256: str | None = None
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """``video_motion`` through a cache folder keyed by the video's SHA-256 (``sha256`` when
    the caller has it; extraction takes about a quarter of the video's length on 2 cores, and
    training runs repeat the same files)."""
    if cache is None:
        return video_motion(video)
    entry = cache / f"{sha256 or file_sha256(video)}-v{EXTRACTION_VERSION}.npz"
    if entry.is_file():
        with np.load(entry) as data:
            return (data["motion"], data["audio"]) if data["usable"] else None
    extracted = video_motion(video)
    cache.mkdir(parents=True, exist_ok=True)
    partial = entry.with_suffix(".partial.npz")
    motion, audio = extracted if extracted is not None else (np.zeros((0, 0)), np.zeros((0, 0)))
    np.savez(partial, motion=motion, audio=audio, usable=extracted is not None)
    partial.replace(entry)
    return extracted


def video_files(paths: list[Path]) -> list[Path]:
    """Every video among ``paths`` (files, or folders whose videos are taken), sorted by name."""
    found = []
    for path in paths:
        if path.is_dir():
            found += [p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES]
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"{path}: no such video file or folder")
    return sorted(set(found), key=lambda p: (p.name, str(p)))


def load_video_clips(paths: list[Path], cache: Path | None = None) -> tuple[list[TrainClip], list[dict]]:
    """Real talking videos (files or folders of them) as training clips (see ``video_motion``),
    and a record of each file used (name, SHA-256, seconds). The gaze target is where the
    speaker looks most, the median frame's gaze (0 in the relative motion): real gaze returns
    to it, and a generator that never saw a target for real gaze lets it wander from window to
    window (twice the real spread, measured). Emotions are unknown, so that condition is
    always dropped for them; the two eyelids are tied (``tie_blinks``)."""
    clips, used = [], []
    for video in video_files(paths):
        digest = file_sha256(video)
        extracted = cached_video_motion(video, cache, digest)
        if extracted is not None:
            motion, audio = extracted
            motion = tie_blinks(motion)
            controls = np.zeros(8, np.float32)
            controls[2] = 1.0
            clips.append(TrainClip(audio, motion, controls, emotion_given=False, real=True))
            used.append({"file": video.name, "sha256": digest,
                         "seconds": round(len(motion) / TRAIN_FPS, 2)})
    if not clips:
        raise ValueError("no usable talking videos (with a face and sound) in "
                         + ", ".join(str(p) for p in paths))
    return clips, used


def clip_probabilities(clips: list[TrainClip], real_fraction: float) -> np.ndarray:
    """How often each clip is drawn: by length, with real videos drawn ``real_fraction`` of
    the time when there are both kinds."""
    lengths = np.array([len(c.motion) for c in clips], np.float64)
    real = np.array([c.real for c in clips])
    if real.all() or not real.any():
        return lengths / lengths.sum()
    return np.where(real, real_fraction * lengths / lengths[real].sum(),
                    (1 - real_fraction) * lengths / lengths[~real].sum())


def corpus_still_channels(clips: list[TrainClip], ratio: float = 0.25) -> np.ndarray:
    """(D,) bool: the channels the synthetic corpus holds still within its clips (median
    within-clip sd under ``ratio`` of the real clips'), when there are both kinds. The corpus
    animates lips, jaw, blinks, brows, gaze and the head; it holds the upper lip, mouthClose,
    smiles and frowns, squints and the like at a per-clip constant. Supervising those on its
    windows teaches the generator that they never move during speech (measured: a fifth of
    the real spread), so corpus windows leave them to the real videos."""
    real = [c for c in clips if c.real]
    made = [c for c in clips if not c.real]
    d = clips[0].motion.shape[1]
    if not real or not made:
        return np.zeros(d, bool)
    spread = [np.median([c.motion.std(axis=0) for c in group], axis=0) for group in (made, real)]
    return spread[0] < ratio * spread[1]


def _windows(clips: list[TrainClip], rng: np.random.Generator, batch: int, window: int, context: int,
             mean: np.ndarray, std: np.ndarray, p: np.ndarray, still: np.ndarray) -> dict[str, np.ndarray]:
    """A batch of random windows (clip ``i`` drawn with probability ``p[i]``), normalised, with
    context frames, a loss mask over frames and one over channels (the ``still`` channels off
    on corpus windows)."""
    chosen = rng.choice(len(clips), size=batch, p=p)
    d, a = clips[0].motion.shape[1], clips[0].audio.shape[1]
    out = {"x0": np.zeros((batch, window, d), np.float32),
           "audio": np.zeros((batch, window, a), np.float32),
           "context": np.zeros((batch, context, d), np.float32),
           "mask": np.zeros((batch, window), np.float32), "channels": np.ones((batch, d), np.float32),
           "has_context": np.zeros(batch, np.float32), "controls": np.zeros((batch, 8), np.float32),
           "gaze_given": np.zeros(batch, np.float32), "emotion_given": np.zeros(batch, np.float32)}
    for b, c in enumerate(chosen):
        clip = clips[c]
        n = len(clip.motion)
        start = int(rng.integers(0, max(n - window, 0) + 1))
        stop = min(start + window, n)
        m = (clip.motion[start:stop] - mean) / std
        out["x0"][b, : stop - start] = m
        out["x0"][b, stop - start :] = m[-1]
        out["audio"][b, : stop - start] = clip.audio[start:stop]
        out["audio"][b, stop - start :] = clip.audio[stop - 1]
        out["mask"][b, : stop - start] = 1.0
        if not clip.real:  # a corpus clip
            out["channels"][b, still] = 0.0
        if start >= context:
            out["context"][b] = (clip.motion[start - context : start] - mean) / std
            out["has_context"][b] = 1.0
        out["controls"][b] = clip.controls
        out["gaze_given"][b] = float(clip.gaze_given)
        out["emotion_given"][b] = float(clip.emotion_given)
    return out


STD_FLOOR = 0.02  # the smallest scale a motion channel is normalised by


def motion_normalisation(clips: list[TrainClip]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (at least STD_FLOOR) of every clip's frames."""
    frames = np.concatenate([c.motion for c in clips])
    return frames.mean(axis=0), np.maximum(frames.std(axis=0), STD_FLOOR)


def train(corpus: Path | None, out: Path, config: TrainConfig, *, videos: list[Path] | None = None,
          video_cache: Path | None = None, init: Path | None = None, command: str = "",
          progress: Callable[[int, float], None] | None = None, resume: bool = False) -> dict:
    """Train and export weights into ``out``; returns the manifest. ``videos`` are real
    talking videos (files or folders), ``init`` a weights folder to start from (fine-tuning:
    the motion is normalised by the new data)."""
    import torch
    import torch.nn.functional as F

    from talkinghead.diffusion.schedule import alpha_sigma
    from talkinghead.models.motion_dit import MotionDiT, MotionDiTConfig

    distributed = "WORLD_SIZE" in os.environ
    rank, world_size = 0, 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed + rank)
    rng = np.random.default_rng([config.seed, rank])

    clips, summary = load_corpus_clips(corpus) if corpus else ([], {})
    used_videos: list[dict] = []
    if videos:
        real_clips, used_videos = load_video_clips(videos, video_cache)
        clips += real_clips
    if not clips:
        raise ValueError("nothing to train on: give a corpus folder or real videos")
    p = clip_probabilities(clips, config.real_fraction)
    still = corpus_still_channels(clips)
    # A fine-tune normalises by its own data too: the corpus never moves the upper lip or
    # mouthClose (their pretraining scale sits at the floor) where real lips move them by 3-6
    # floors (measured on the shipped fine-tune: mouthClose from 0.09 to 0.20 of the real
    # spread; leaving them to the real videos, ``corpus_still_channels``, did the rest).
    mean, std = motion_normalisation(clips)
    if init is not None:
        from talkinghead.generator import MotionGenerator

        model = MotionGenerator.load(init).model.train().to(device)
        model_config = model.config
    else:
        model_config = MotionDiTConfig(motion_dim=len(MOTION_NAMES), audio_dim=clips[0].audio.shape[1],
                                       width=config.width, depth=config.depth, slow=slow_channels(),
                                       slow_sigma=config.slow_sigma)
        model = MotionDiT(model_config).to(device)
    model.motion_mean.copy_(torch.from_numpy(mean))
    model.motion_std.copy_(torch.from_numpy(std))
    net = model
    if distributed:  # broadcasts rank 0's initial weights to every process
        net = torch.nn.parallel.DistributedDataParallel(model)
    ema = copy.deepcopy(model).eval()  # after the broadcast: the same average on every rank
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    start_step, history = 0, []
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimiser.load_state_dict(state["optimiser"])
        start_step, history = state["step"], state["history"]
        rng = np.random.default_rng([config.seed, rank, start_step])

    weights = torch.ones(len(MOTION_NAMES), device=device)
    for name in WEIGHTED_CHANNELS:
        weights[len(POSE_NAMES) + EXPRESSION_NAMES.index(name)] = 2.0
    weights[:3] = config.pose_weight
    w, k = model_config.window, model_config.context
    started, running = time.perf_counter(), None
    for step in range(start_step, config.steps):
        warm = min(1.0, (step + 1) / config.warmup)
        lr = float(config.lr * warm * 0.5 * (1 + np.cos(np.pi * step / config.steps)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        batch = {key: torch.from_numpy(v).to(device) for key, v in
                 _windows(clips, rng, config.batch_size, w, k, mean, std, p, still).items()}
        bsz = config.batch_size
        x0 = batch["x0"]  # (B, W, D)
        t = torch.rand(bsz, device=device)
        a, s = alpha_sigma(t)
        xt = a[:, None, None] * x0 + s[:, None, None] * torch.randn_like(x0)
        keep_audio = (torch.rand(bsz, device=device) >= config.drop_audio).float()
        keep_context = batch["has_context"] * (torch.rand(bsz, device=device) >= config.drop_context).float()
        keep_controls = (torch.rand(bsz, 3, device=device) >= config.drop_controls).float()
        keep_controls[:, 0] *= batch["gaze_given"]
        keep_controls[:, 2] *= batch["emotion_given"]
        context = batch["context"] + 0.05 * torch.randn_like(batch["context"])
        controls = batch["controls"]
        estimate = net(xt, t, batch["audio"], context, controls[:, :2], controls[:, 2], controls[:, 3:],
                       keep_audio=keep_audio, keep_context=keep_context, keep_controls=keep_controls)
        frames = batch["mask"][:, :, None]  # (B, W, 1)
        mask = frames * batch["channels"][:, None, :]  # (B, W, D)
        loss = ((estimate - x0) ** 2 * weights * mask).sum() / (frames.sum() * len(MOTION_NAMES))
        velocity = F.mse_loss(torch.diff(estimate, dim=1) * mask[:, 1:], torch.diff(x0, dim=1) * mask[:, 1:])
        total = loss + config.velocity_weight * velocity
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        with torch.no_grad():
            decay = min(config.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        value = float(total.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step == 0 or (step + 1) % 50 == 0:
            history.append({"step": step + 1, "loss": round(running, 5),
                            "seconds": round(time.perf_counter() - started, 1)})
        if progress and rank == 0:
            progress(step + 1, running)
        if rank == 0 and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(),
                        "optimiser": optimiser.state_dict(), "step": step + 1, "history": history},
                       checkpoint)
    # Every process must end with the same weights (DDP averages gradients): a checksum of
    # each rank's averaged weights goes into the manifest, and a mismatch is an error.
    checksums = [_checksum(ema)]
    if distributed:
        import torch.distributed as dist

        checksums = [None] * world_size
        dist.all_gather_object(checksums, _checksum(ema))
        if len(set(checksums)) > 1:
            raise RuntimeError(f"processes ended with different weights: checksums {checksums}")
    manifest = {}
    if rank == 0:
        manifest = export_weights(ema, out, command=command, corpus_summary=summary,
                                  train_config={**asdict(config), "world_size": world_size,
                                                "corpus_unsupervised": [n for n, off in zip(
                                                    MOTION_NAMES, still, strict=True) if off],
                                                "rank_checksums": checksums},
                                  history=history, videos=used_videos,
                                  init=_init_record(init))
    if distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
    return manifest


def _checksum(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def _init_record(init: Path | None) -> dict | None:
    """What fine-tuning started from: the weights' SHA-256 and how they were made."""
    if init is None:
        return None
    manifest = json.loads((init / MANIFEST_FILE).read_text())
    return {"sha256": manifest["files"][WEIGHTS_FILE]["sha256"], "command": manifest.get("command"),
            "corpus": manifest.get("corpus"), "videos": manifest.get("videos", [])}


def export_weights(model, out: Path, *, command: str, corpus_summary: dict, train_config: dict,
                   history: list[dict], videos: list[dict] | None = None,
                   init: dict | None = None) -> dict:
    """Write ``model`` as safetensors and MANIFEST.json (SHA-256, size, how it was made)."""
    from safetensors.torch import save_file

    path = out / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(model.config.to_dict())})
    manifest = {
        "files": {WEIGHTS_FILE: {"sha256": file_sha256(path), "bytes": path.stat().st_size}},
        "config": model.config.to_dict(),
        "motion_names": list(MOTION_NAMES),
        "fps": TRAIN_FPS,
        "command": command,
        "corpus": {k: corpus_summary.get(k)
                   for k in ("seed", "minutes", "clips", "seconds", "command", "calibration")},
        "videos": videos or [],
        "init": init,
        "train": train_config,
        "loss_history": history,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
