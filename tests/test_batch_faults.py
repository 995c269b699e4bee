"""Workers killed on purpose (SIGKILL, mid-job) on the local pool and on a local two-CPU Ray;
a batch with bad rows on Ray gives the local pool's results and the same bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_cli import run

pytestmark = pytest.mark.slow


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (parent, cmdline)
    return table


def busy_worker(root: int, marker: str, deadline: float) -> int:
    """The pid of a worker under ``root`` (its command line holds ``marker``) that is writing
    a video right now: it has an ffmpeg child, which exists only mid-job."""
    while time.monotonic() < deadline:
        table = _processes()
        ours, grown = {root}, True
        while grown:  # root's descendants only: never another user's processes
            before = len(ours)
            ours |= {pid for pid, (parent, _) in table.items() if parent in ours}
            grown = len(ours) > before
        for pid in ours:
            if marker in table.get(pid, (0, ""))[1] and any(
                    parent == pid and "ffmpeg" in line for parent, line in table.values()):
                return pid
        time.sleep(0.02)
    raise AssertionError(f"no busy worker ({marker}) found")


def batch_jobs(folder: Path, photo: Path, audio: Path, count: int) -> Path:
    """``count`` identical jobs (so every output must have the same bytes)."""
    jobs = folder / "jobs.csv"
    jobs.write_text("photo,audio,output,size,seed\n"
                    + "".join(f"{photo},{audio},o{i}.mp4,128,4\n" for i in range(count)))
    return jobs


def kill_one_busy_worker(args: list[str], root: int | None, marker: str
                         ) -> tuple[int, list[dict], str, int]:
    """Run a batch, SIGKILL one of its workers mid-job (found under ``root``, default the
    batch's own process), return its exit code, JSON records, stderr and the victim's pid."""
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "batch", *args, "--json", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = busy_worker(root or proc.pid, marker, time.monotonic() + 240)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err, victim


def check_no_job_lost(code: int, records: list[dict], err: str, folder: Path, count: int,
                      victim: int) -> None:
    assert code == 0, err
    assert sorted(r["number"] for r in records) == list(range(1, count + 1))
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    retried = [r for r in records if r["attempts"] > 1]
    assert len(retried) == 1 and retried[0]["attempts"] == 2  # the killed job, run again
    assert retried[0]["worker"].rsplit(":", 1)[1] != str(victim)  # by another process
    assert not list(folder.glob(".*.part.mp4"))
    videos = {(folder / f"o{i}.mp4").read_bytes() for i in range(count)}
    assert len(videos) == 1  # the retried job made the same bytes as the others


def test_local_pool_replaces_a_killed_worker_and_loses_no_job(tmp_path, photo, speech):
    jobs = batch_jobs(tmp_path, photo, speech, 3)
    code, records, err, victim = kill_one_busy_worker([str(jobs), "--workers", "2"], None,
                                                      "spawn_main")
    check_no_job_lost(code, records, err, tmp_path, 3, victim)


def test_ctrl_c_prints_the_summary_of_what_finished(tmp_path, photo, speech, short_speech):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("photo,audio,output,size\n" f"{photo},{short_speech},first.mp4,128\n"
                    + "".join(f"{photo},{speech},o{i}.mp4,256\n" for i in range(3)))
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "batch", str(jobs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / "first.mp4").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    busy_worker(proc.pid, str(jobs), deadline)  # the next job is being written
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "4 jobs: 1 rendered, 0 skipped, 0 failed, 3 not finished" in err
    assert err.rstrip().endswith("talkinghead: interrupted")
    assert not list(tmp_path.glob(".*.part.mp4")) and not list(tmp_path.glob("o*.mp4"))


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray of two CPUs for this module; the address the CLI joins. Skipped without
    the [ray] extra, unless TALKINGHEAD_REQUIRE_RAY is set (CI sets it: never a silent skip)."""
    if os.environ.get("TALKINGHEAD_REQUIRE_RAY"):
        import ray
    else:
        ray = pytest.importorskip("ray")
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_batch_with_bad_rows_matches_the_local_pool(tmp_path, photo, short_speech, ray_cluster):
    from PIL import Image, ImageOps

    mirrored = tmp_path / "mirrored.png"
    ImageOps.mirror(Image.open(photo).convert("RGB")).save(mirrored)
    rows = ("photo,audio,output,size,seed,colour\n"
            f"{photo},{short_speech},a.mp4,128,1,\n"
            f"{tmp_path / 'missing.png'},{short_speech},b.mp4,128,1,\n"  # fails in its worker
            f"{mirrored},{short_speech},c.mp4,128,2,\n"
            f"{photo},{short_speech},d.mp4,128,3,red\n"  # a bad row: fails before any worker
            f"{mirrored},{short_speech},e.mp4,128,4,\n")
    outcomes = {}
    for engine, args in (("local", ["--workers", "2"]), ("ray", ["--ray", ray_cluster])):
        folder = tmp_path / engine
        folder.mkdir()
        (folder / "jobs.csv").write_text(rows)
        proc = run("batch", str(folder / "jobs.csv"), *args, "--json", "-q", timeout=600)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        records = sorted(map(json.loads, proc.stdout.splitlines()), key=lambda r: r["number"])
        outcomes[engine] = [(r["number"], r["status"], r["exit_code"], r["attempts"],
                             (r["error"] or "").replace(str(folder), "")) for r in records]
        assert [r["status"] for r in records] == ["ok", "failed", "ok", "failed", "ok"]
        assert not list(folder.glob(".*.part.mp4")) and not (folder / "b.mp4").exists()
    assert outcomes["ray"] == outcomes["local"]
    assert outcomes["ray"][1][2:4] == (2, 1)  # its own input: exit code 2, run once
    for name in ("a.mp4", "c.mp4", "e.mp4"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_ray_replaces_a_killed_actor_and_loses_no_job(tmp_path, photo, speech, ray_cluster):
    jobs = batch_jobs(tmp_path, photo, speech, 3)
    code, records, err, victim = kill_one_busy_worker([str(jobs), "--ray", ray_cluster],
                                                      os.getpid(), "ray::BatchWorker")
    check_no_job_lost(code, records, err, tmp_path, 3, victim)
