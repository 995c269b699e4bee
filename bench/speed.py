"""Speed benchmark: end-to-end frames per second at 512x512 and where the time goes.

    python bench/speed.py [--full] [--photo P] [--audio A] [--size 512] [--out out/bench.json]

Prints per-stage seconds for a whole render of the example, the first frame's latency, the
render stage alone in ms per frame (on the CPU, and on the GPU when there is one) with the
time of each of its own stages (measured in a second, separate pass), and the
pure-ffmpeg encode rate of the same number of frames (the ceiling for end-to-end speed).
Then peak memory and time per audio second for 10 s of speech, or with --full for 10, 60 and
600 s (bench/scaling.py). Absolute times are noisy on shared machines: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkinghead.api import Avatar, render
from talkinghead.config import RenderConfig
from talkinghead.mux import VideoWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaling import measure as measure_scaling

ROOT = Path(__file__).resolve().parents[1]


def end_to_end(photo: Path, audio: Path, config: RenderConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = render(photo, audio, Path(tmp) / "bench.mp4", config=config)
    return {"frames": result.frames, "seconds": result.seconds, "fps": result.render_fps,
            "first_frame_seconds": result.first_frame_seconds, "stage_seconds": result.stage_seconds,
            "stage_ms_per_frame": {k: 1000 * v / result.frames
                                   for k, v in result.stage_seconds.items()}}


def render_only(photo: Path, audio: Path, config: RenderConfig, device: str) -> dict:
    started = time.perf_counter()
    avatar = Avatar.from_photo(photo, config=config, device=device, motion="baseline")
    setup = time.perf_counter() - started
    motion = avatar.motion(audio)
    n, renderer = motion.n_frames, avatar.decoder
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
    # The stages, timed in a second pass (the timing itself waits for the GPU at each stage).
    renderer.stage_seconds = {}
    for start in range(0, n, config.batch_size):
        renderer.render(motion.frames(start, start + config.batch_size))
    stages = {k: 1000 * v / n for k, v in renderer.stage_seconds.items()}
    return {"setup_seconds": setup, "ms_per_frame": 1000 * seconds / n, "fps": n / seconds,
            "first_batch_seconds": first, "stage_ms_per_frame": stages}


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
    parser.add_argument("--full", action="store_true", help="also 60 s and 600 s of audio")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench.json")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    config = RenderConfig(size=args.size, device="cpu")

    e2e = end_to_end(args.photo, args.audio, config)
    alone = {device: render_only(args.photo, args.audio, config, device) for device in devices}
    ceiling = encode_ceiling(args.audio, e2e["frames"], args.size, config.fps)
    print(f"{e2e['frames']} frames at {args.size}x{args.size} "
          f"({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads)")
    print(f"end to end      {e2e['fps']:7.1f} frames/s  ({e2e['seconds']:.2f} s, first frame after "
          f"{e2e['first_frame_seconds']:.2f} s)")
    for stage, ms in e2e["stage_ms_per_frame"].items():
        print(f"  {stage:<13} {ms:7.2f} ms/frame  ({e2e['stage_seconds'][stage]:.2f} s)")
    for device, row in alone.items():
        print(f"render alone    {row['fps']:7.1f} frames/s on {device} ({row['ms_per_frame']:.2f} "
              f"ms/frame, setup {row['setup_seconds']:.2f} s, first batch "
              f"{row['first_batch_seconds']:.3f} s)")
        for stage, ms in row["stage_ms_per_frame"].items():
            print(f"  {stage:<20} {ms:6.2f} ms/frame")
    print(f"encode alone    {ceiling['fps']:7.1f} frames/s  (the ceiling)")
    ratios = {"end_to_end_over_encode_only": e2e["fps"] / ceiling["fps"],
              "end_to_end_over_target_40fps": e2e["fps"] / 40.0}
    print(f"ratio end-to-end / encode-only {ratios['end_to_end_over_encode_only']:.2f}; "
          f"/ 40 fps target {ratios['end_to_end_over_target_40fps']:.2f}", flush=True)

    scaling = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in ([10.0, 60.0, 600.0] if args.full else [10.0]):
            row = measure_scaling(seconds, args.size, Path(tmp))
            scaling.append(row)
            print(f"{seconds:6.0f} s audio  {row['seconds_per_audio_second']:.3f} s per audio s, "
                  f"peak {row['peak_rss_mb']:.0f} MB, A/V drift {row['av_drift_frames']:+.2f} frames",
                  flush=True)

    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if "cuda" in devices else None},
        "size": args.size, "frames": e2e["frames"], "end_to_end": e2e, "render_stage": alone,
        "encode_only": ceiling, "ratios": ratios, "scaling": scaling,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
