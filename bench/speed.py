"""Speed benchmark: end-to-end frames per second at 512x512 and where the time goes.

    python bench/speed.py [--photo P] [--audio A] [--size 512] [--device cpu] [--out out/bench.json]

Prints per-stage seconds for a whole render of the example, the render stage alone in ms per
frame, and the pure-ffmpeg encode rate of the same number of frames (the ceiling for
end-to-end speed). Absolute times are noisy on shared machines: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkinghead.audio import audio_features, frame_count
from talkinghead.config import RenderConfig
from talkinghead.encode import encode
from talkinghead.face import find_face
from talkinghead.load import load_audio, load_portrait
from talkinghead.motion import baseline_motion
from talkinghead.mux import VideoWriter
from talkinghead.pipeline import render, resolve_device
from talkinghead.render import MeshWarpRenderer

ROOT = Path(__file__).resolve().parents[1]


def end_to_end(photo: Path, audio: Path, config: RenderConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = render(photo, audio, Path(tmp) / "bench.mp4", config)
    return {"frames": result.frames, "seconds": result.seconds, "fps": result.render_fps,
            "stage_seconds": result.stage_seconds,
            "stage_ms_per_frame": {k: 1000 * v / result.frames
                                   for k, v in result.stage_seconds.items()}}


def render_only(photo: Path, audio: Path, config: RenderConfig, device: str) -> dict:
    portrait, clip = load_portrait(photo), load_audio(audio)
    appearance, source = encode(portrait, find_face(portrait), config)
    n = frame_count(clip.duration, config.fps)
    motion = baseline_motion(audio_features(clip, config.fps, n), source, config.seed)
    started = time.perf_counter()
    renderer = MeshWarpRenderer(appearance, source, device=device)
    setup = time.perf_counter() - started
    renderer.render(motion.frames(0, config.batch_size))  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    first = None
    for start in range(0, n, config.batch_size):
        renderer.render(motion.frames(start, start + config.batch_size))
        first = first or time.perf_counter() - started
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"setup_seconds": setup, "ms_per_frame": 1000 * seconds / n, "fps": n / seconds,
            "first_batch_seconds": first}


def encode_ceiling(audio: Path, n: int, size: int, fps: float) -> dict:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, i, axis=1) for i in range(8)])
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with VideoWriter(Path(tmp) / "enc.mp4", width=size, height=size, fps=fps, audio=audio,
                         audio_channels=1) as writer:
            for start in range(0, n, 8):
                writer.write(frames[: min(8, n - start)])
        seconds = time.perf_counter() - started
    return {"fps": n / seconds, "ms_per_frame": 1000 * seconds / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "examples" / "astronaut.png")
    parser.add_argument("--audio", type=Path, default=ROOT / "examples" / "speech.wav")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench.json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    config = RenderConfig(size=args.size, device=device)

    e2e = end_to_end(args.photo, args.audio, config)
    alone = render_only(args.photo, args.audio, config, device)
    ceiling = encode_ceiling(args.audio, e2e["frames"], args.size, config.fps)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": device,
                    "gpu": torch.cuda.get_device_name() if device == "cuda" else None},
        "size": args.size, "frames": e2e["frames"],
        "end_to_end": e2e, "render_stage": alone, "encode_only": ceiling,
        "ratios": {"end_to_end_over_encode_only": e2e["fps"] / ceiling["fps"],
                   "end_to_end_over_target_40fps": e2e["fps"] / 40.0},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    print(f"{e2e['frames']} frames at {args.size}x{args.size} on {device} "
          f"({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)")
    print(f"end to end      {e2e['fps']:7.1f} frames/s  ({e2e['seconds']:.2f} s)")
    for stage, ms in e2e["stage_ms_per_frame"].items():
        print(f"  {stage:<13} {ms:7.2f} ms/frame  ({e2e['stage_seconds'][stage]:.2f} s)")
    print(f"render alone    {alone['fps']:7.1f} frames/s  ({alone['ms_per_frame']:.2f} ms/frame, "
          f"setup {alone['setup_seconds']:.2f} s, first batch {alone['first_batch_seconds']:.3f} s)")
    print(f"encode alone    {ceiling['fps']:7.1f} frames/s  (the ceiling)")
    print(f"ratio end-to-end / encode-only {report['ratios']['end_to_end_over_encode_only']:.2f}; "
          f"/ 40 fps target {report['ratios']['end_to_end_over_target_40fps']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
