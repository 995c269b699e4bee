"""Batch throughput: jobs per minute for 8 jobs (4 photos x 2 clips) on the local pool and on a
local Ray, with and without photo reuse, and what a worker killed mid-job costs.

    python bench/batch.py [--size 256] [--seconds 2] [--workers 2] [--out out/batch.json]

The four photos are the example portrait and three variants of it (mirrored, shifted,
darker): four different files, so four face fits. The clips are two stretches of the example
speech. Every engine gets the same 8 jobs, ``--workers`` workers of one CPU each; a run's
time runs from handing over the jobs to the last result (the local pool's processes and
the Ray actors start, and load their models, inside it; starting Ray itself does not), and
"warm" is the rate once they are up (the jobs' own seconds shared by the workers).
With reuse, a worker keeps the Avatar of the photos it set up and takes its own photo's jobs
first: per job it prints the mean seconds of a job that set its photo up and of one that
reused it. The fault run kills (SIGKILL) one busy worker of each engine mid-job and reports
whether every job still finished, and how many were retried.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import soundfile as sf
from PIL import Image, ImageEnhance, ImageOps

from talkinghead.batch import Job, JobResult, run_jobs
from talkinghead.config import RenderConfig
from talkinghead.rayworkers import RayEngine
from talkinghead.workers import LocalPool

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, seconds: float) -> tuple[list[Path], list[Path]]:
    photo = Image.open(ROOT / "examples" / "astronaut.png").convert("RGB")
    w, h = photo.size
    variants = [photo, ImageOps.mirror(photo),
                photo.crop((w // 16, 0, w, h)).resize((w, h)),
                ImageEnhance.Brightness(photo).enhance(0.8)]
    photos = []
    for k, image in enumerate(variants):
        photos.append(folder / f"photo{k}.png")
        image.save(photos[-1])
    data, rate = sf.read(ROOT / "examples" / "speech.wav")
    step = int(seconds * rate)
    clips = []
    for k in range(2):
        clips.append(folder / f"clip{k}.wav")
        sf.write(clips[-1], data[k * step:(k + 1) * step], rate)
    return photos, clips


def make_jobs(photos: list[Path], clips: list[Path], out: Path, size: int) -> list[Job]:
    out.mkdir(parents=True, exist_ok=True)
    config = RenderConfig(size=size, device="cpu")
    return [Job(number=n, photo=photo, audio=clip, output=out / f"{photo.stem}_{clip.stem}.mp4",
                config=config)
            for n, (photo, clip) in enumerate(((p, c) for p in photos for c in clips), start=1)]


def setup_split(results: list[JobResult]) -> tuple[list[float], list[float]]:
    """Seconds of the jobs that set their photo up in their worker, and of those that reused it
    (a worker's jobs of one photo after its first)."""
    seen: set[tuple[str, str]] = set()
    first, reused = [], []
    for r in sorted(results, key=lambda r: r.number):  # a worker takes a photo's jobs in order
        key = (r.worker, r.photo)
        (reused if key in seen else first).append(r.seconds)
        seen.add(key)
    return first, reused


def kill_busy_worker_soon(root: int, stop: threading.Event) -> threading.Thread:
    """A thread that SIGKILLs the first worker found writing a video (a descendant of ``root``
    with an ffmpeg child)."""

    def descendants() -> tuple[set[int], dict[int, tuple[int, str]]]:
        table = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                table[int(entry.name)] = (parent, cmd)
        ours, grown = {root}, True
        while grown:
            before = len(ours)
            ours |= {pid for pid, (parent, _) in table.items() if parent in ours}
            grown = len(ours) > before
        return ours - {root}, table

    def hunt() -> None:
        while not stop.is_set():
            ours, table = descendants()
            for pid in ours:
                cmd = table[pid][1]
                if ("spawn_main" in cmd or "ray::BatchWorker" in cmd) and any(
                        parent == pid and "ffmpeg" in line for parent, line in table.values()):
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=hunt, daemon=True)
    thread.start()
    return thread


def measure(name: str, jobs: list[Job], engine, reuse: bool, workers: int,
            kill: bool = False) -> dict:
    stop = threading.Event()
    hunter = kill_busy_worker_soon(os.getpid(), stop) if kill else None
    started = time.perf_counter()
    results = run_jobs(jobs, engine=engine, reuse=reuse)
    wall = time.perf_counter() - started
    stop.set()
    if hunter:
        hunter.join()
    first, reused = setup_split(results)
    row = {"engine": name, "reuse": reuse, "jobs": len(results), "wall_s": round(wall, 2),
           "jobs_per_min": round(len(results) / wall * 60, 2),
           # the rate once the workers are up: the jobs' own seconds shared by the workers
           "warm_jobs_per_min": round(len(results) / (sum(r.seconds for r in results) / workers) * 60, 2),
           "ok": sum(r.status == "ok" for r in results),
           "retried": sum(r.attempts > 1 for r in results),
           "setup_job_s": round(sum(first) / max(len(first), 1), 2),
           "reused_job_s": round(sum(reused) / len(reused), 2) if reused else None}
    print(f"{name:<6} reuse={'on ' if reuse else 'off'} {'kill ' if kill else ''}"
          f"{row['jobs_per_min']:6.2f} jobs/min ({wall:.1f} s; warm {row['warm_jobs_per_min']:.2f}), "
          f"ok {row['ok']}/{len(results)}, "
          f"retried {row['retried']}, job s: set up {row['setup_job_s']}, reused {row['reused_job_s']}",
          flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "batch.json")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        photos, clips = make_inputs(Path(tmp), args.seconds)
        ray = RayEngine(None, cpus=1.0, workers=args.workers)
        ray.start()
        try:
            engines = {"local": LocalPool(args.workers), "ray": ray}
            for reuse in (True, False):
                for name, engine in engines.items():
                    jobs = make_jobs(photos, clips, Path(tmp) / f"{name}-{reuse}", args.size)
                    rows.append(measure(name, jobs, engine, reuse, args.workers))
            faults = []
            for name, engine in engines.items():
                jobs = make_jobs(photos, clips, Path(tmp) / f"{name}-kill", args.size)
                faults.append(measure(name, jobs, engine, True, args.workers, kill=True))
                faults[-1]["partial_files_left"] = len(list((Path(tmp) / f"{name}-kill").glob(".*.part.mp4")))
        finally:
            ray.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"size": args.size, "clip_seconds": args.seconds,
                                    "workers": args.workers, "cpus": os.cpu_count(),
                                    "runs": rows, "faults": faults}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
