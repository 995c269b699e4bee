"""Online latency: how soon frames come, and how far they trail audio fed at real-time speed.

    python bench/latency.py [--photo P] [--audio A] [--size 512] [--threads N] [--seconds 10 600]
                            [--paced 20] [--chunk-ms 40] [--cold-runs 3] [--out out/latency.json]

For each audio length (the example speech repeated to length):
- cold CLI: ``talkinghead render PHOTO AUDIO -o -`` from a fresh process, seconds until the
  first bytes and until the first fragment with frames (``moof``) reach its stdout: the median
  of ``--cold-runs`` starts per length (and their range), run before anything else, the lengths
  in turn;
- warm Avatar: seconds from the first chunk to the first frame, when the first chunk holds
  0.5 s of audio (compute-bound) and when 40 ms chunks come at real-time speed;
- lag with real-time input: chunks pushed into a queue on the wall clock by a feeder
  thread; each frame's lag is the time it leaves ``Avatar.stream`` less the time the chunk
  that completed its audio arrived (median and 95th percentile after the first second, over
  at most ``--paced`` seconds); a stream slower than real time shows a growing lag;
- steady state: frames per second of ``Avatar.stream`` fed as fast as it takes audio, after
  the first frame, and the process's peak memory;
- per stage: ``Avatar.render``'s seconds per stage for the 10 s clip, per frame.
Figures are wall-clock on whatever else the machine runs: compare them with the load average
printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

import talkinghead

ROOT = Path(__file__).resolve().parents[1]
RATE = 16_000


def clip_of(seconds: float, source: Path, folder: Path) -> Path:
    """The source speech repeated to ``seconds``, as a 16 kHz wav."""
    from talkinghead.load import load_audio

    samples = load_audio(source).samples
    reps = int(np.ceil(seconds * RATE / len(samples)))
    path = folder / f"speech_{seconds:g}s.wav"
    sf.write(path, np.tile(samples, reps)[: round(seconds * RATE)], RATE)
    return path


def cold_cli(photo: Path, audio: Path, size: int, env: dict[str, str]) -> dict:
    """Seconds from start to the first stdout bytes and to the first fragment with frames."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "render", str(photo), str(audio),
                             "-o", "-", "--size", str(size), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    first_bytes = first_moof = None
    seen = b""
    while first_moof is None:
        data = proc.stdout.read1(1 << 16)
        if not data:
            break
        first_bytes = first_bytes or time.perf_counter() - started
        seen = (seen + data)[-(1 << 20):]
        if b"moof" in seen:
            first_moof = time.perf_counter() - started
    proc.kill()
    proc.wait()
    return {"first_bytes_s": first_bytes, "first_fragment_s": first_moof}


def paced(samples: np.ndarray, chunk: int, arrivals: list[float], limit: int) -> queue.Queue:
    """A queue that a feeder thread fills with ``chunk``-sample pieces on the wall clock."""
    pieces: queue.Queue = queue.Queue()

    def feed() -> None:
        start = time.perf_counter()
        for i, at in enumerate(range(0, min(len(samples), limit), chunk)):
            time.sleep(max(0.0, start + i * chunk / RATE - time.perf_counter()))
            arrivals.append(time.perf_counter())
            pieces.put(samples[at : at + chunk])
        pieces.put(None)

    threading.Thread(target=feed, daemon=True).start()
    return pieces


def drain(pieces: queue.Queue):
    while (piece := pieces.get()) is not None:
        yield piece


def warm(avatar, samples: np.ndarray, chunk_ms: float, paced_seconds: float) -> dict:
    fps = avatar.config.fps
    out: dict = {}
    # compute-bound first frame: the first chunk holds 0.5 s of audio
    first_chunk = samples[: RATE // 2]
    started = time.perf_counter()
    stream = avatar.stream(iter([first_chunk]))
    next(stream)
    out["first_frame_0.5s_chunk_s"] = time.perf_counter() - started
    for _ in stream:
        pass
    # real-time input: lag per frame
    chunk = round(chunk_ms / 1000 * RATE)
    arrivals: list[float] = []
    pieces = paced(samples, chunk, arrivals, round(paced_seconds * RATE))
    lags, first = [], None
    for frame in avatar.stream(drain(pieces)):
        now = time.perf_counter()
        needed = min(int(np.ceil((frame.index + 1) / fps * RATE / chunk)) - 1, len(arrivals) - 1)
        lags.append(now - arrivals[needed])
        first = first or now - arrivals[0]
    steady = np.array(lags[int(fps):]) if len(lags) > fps else np.array(lags)
    out.update({"first_frame_realtime_s": first, "lag_median_s": float(np.median(steady)),
                "lag_p95_s": float(np.percentile(steady, 95)), "lag_last_s": float(lags[-1]),
                "paced_seconds": min(paced_seconds, len(samples) / RATE)})
    # steady state: fed as fast as it is taken
    limit = round(min(len(samples) / RATE, 60.0) * RATE)
    stamps = []
    for _ in avatar.stream(samples[i : i + chunk] for i in range(0, limit, chunk)):
        stamps.append(time.perf_counter())
    out["steady_fps"] = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)
    out["steady_seconds_of_audio"] = limit / RATE
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "examples" / "astronaut.png")
    parser.add_argument("--audio", type=Path, default=ROOT / "examples" / "speech.wav")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 600.0])
    parser.add_argument("--paced", type=float, default=20.0, help="seconds fed at real-time speed")
    parser.add_argument("--chunk-ms", type=float, default=40.0)
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts per length (median kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "latency.json")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        env["OMP_NUM_THREADS"] = str(args.threads)
    results: dict = {"load_average": os.getloadavg(), "threads": args.threads, "size": args.size}
    with tempfile.TemporaryDirectory() as scratch:
        clips = {s: clip_of(s, args.audio, Path(scratch)) for s in args.seconds}
        # Cold starts first, the lengths taken in turn, so that no length meets a machine
        # warmed (or loaded) by the others' warm runs.
        colds: dict[float, list[dict]] = {s: [] for s in clips}
        for _ in range(0 if args.skip_cold else args.cold_runs):
            for seconds, path in clips.items():
                colds[seconds].append(cold_cli(args.photo, path, args.size, env))
        started = time.perf_counter()
        avatar = talkinghead.Avatar.from_photo(args.photo, size=args.size)
        results["setup_s"] = time.perf_counter() - started
        short = clips[min(clips)]
        made = avatar.render(short, Path(scratch) / "stages.mp4", force=True)
        results["stages_ms_per_frame"] = {k: round(v / made.frames * 1000, 2)
                                          for k, v in made.stage_seconds.items()}
        results["offline_fps"] = made.render_fps
        for seconds, path in clips.items():
            row = {}
            for key in ("first_bytes", "first_fragment") if colds[seconds] else ():
                values = [run[f"{key}_s"] for run in colds[seconds]]
                row[f"{key}_s"] = float(np.median(values))
                row[f"{key}_range_s"] = [min(values), max(values)]
            samples, _ = sf.read(path, dtype="float32")
            row.update(warm(avatar, samples, args.chunk_ms, args.paced))
            results[f"{seconds:g}s"] = row
            print(f"{seconds:g} s:", json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                 for k, v in row.items()}), flush=True)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=1, default=float))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
