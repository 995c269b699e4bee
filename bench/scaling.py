"""Scaling benchmark: peak memory and time against audio length (both must be flat / linear).

    python bench/scaling.py [--seconds 10 60 600] [--size 512] [--out out/scaling.json]

Each length renders in a fresh process (the CLI, as users run it), speech made by repeating
the example clip. Reported: wall seconds, seconds per second of audio, peak resident memory
of the talkinghead process (the encoder's ffmpeg process is small and separate), and the
audio/video duration difference at the end, in frames.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from talkinghead.mux import decode_audio, probe

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import resource, sys, json
from talkinghead.cli import main
sys.argv = ["talkinghead"] + sys.argv[1:]
try:
    main()
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
      file=sys.stderr)
sys.exit(code)
"""


def long_speech(seconds: float, folder: Path) -> Path:
    data, rate = sf.read(ROOT / "examples" / "speech.wav", dtype="float32")
    repeats = int(np.ceil(seconds * rate / len(data)))
    path = folder / f"speech_{seconds:g}s.wav"
    sf.write(path, np.tile(data, repeats)[: int(seconds * rate)], rate)
    return path


def measure(seconds: float, size: int, folder: Path) -> dict:
    audio = long_speech(seconds, folder)
    out = folder / f"out_{seconds:g}s.mp4"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, "render", str(ROOT / "examples" / "astronaut.png"),
         str(audio), "-o", str(out), "--size", str(size), "--json", "-q", "--force"],
        capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    result = json.loads(proc.stdout)
    peak = json.loads(proc.stderr.strip().splitlines()[-1])["peak_rss_mb"]
    info = probe(out)
    audio_out = decode_audio(out, 16_000)
    drift_frames = (result["frames"] / result["fps"] - len(audio_out) / 16_000) * result["fps"]
    return {"audio_seconds": seconds, "wall_seconds": wall, "render_seconds": result["seconds"],
            "seconds_per_audio_second": result["seconds"] / seconds,
            "first_frame_seconds": result["first_frame_seconds"], "peak_rss_mb": peak,
            "frames": result["frames"], "container_seconds": info.duration,
            "av_drift_frames": drift_frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "scaling.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            row = measure(seconds, args.size, Path(tmp))
            rows.append(row)
            print(f"{seconds:7.0f} s audio: {row['render_seconds']:7.1f} s "
                  f"({row['seconds_per_audio_second']:.3f} s/s), peak {row['peak_rss_mb']:6.0f} MB, "
                  f"first frame {row['first_frame_seconds']:.2f} s, "
                  f"A/V drift {row['av_drift_frames']:+.2f} frames", flush=True)
    per_second = [r["seconds_per_audio_second"] for r in rows]
    summary = {"rows": rows,
               "time_per_audio_second_ratio_longest_to_shortest": per_second[-1] / per_second[0],
               "peak_memory_ratio_longest_to_shortest": rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]}
    time_ratio = summary["time_per_audio_second_ratio_longest_to_shortest"]
    memory_ratio = summary["peak_memory_ratio_longest_to_shortest"]
    print(f"linearity: s/s longest / shortest = {time_ratio:.2f}; "
          f"memory longest / shortest = {memory_ratio:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
