"""The batch scheduler: photo affinity, retries after a worker death, a job that fails by its
own input failing once, and photo reuse within a worker (same frames as a fresh render)."""

from concurrent.futures import Future
from pathlib import Path

import pytest

from talkinghead.batch import Job, JobResult, remove_partial, result_of, run_jobs
from talkinghead.cli.batch import ray_address_optional
from talkinghead.config import RenderConfig
from talkinghead.workers import schedule

from .test_cli import assert_clean_failure, run


class Died(Exception):
    pass


class FakeWorker:
    """Finishes every job at once; dies under the jobs in ``deaths`` (number -> times)."""

    def __init__(self, name: int, log: list[tuple[int, int]], deaths: dict[int, int]) -> None:
        self.name, self.log, self.deaths, self.replaced = name, log, deaths, 0

    def submit(self, job: Job, reuse: bool) -> Future:
        self.log.append((self.name, job.number))
        future: Future = Future()
        if self.deaths.get(job.number, 0) > 0:
            self.deaths[job.number] -= 1
            future.set_exception(Died())
        else:
            future.set_result(result_of(job, "ok" if "bad" not in job.photo.name else "failed"))
        return future

    def died(self, error: BaseException) -> bool:
        return isinstance(error, Died)

    def replace(self) -> None:
        self.replaced += 1

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def make_jobs(tmp_path: Path, photos: int, clips: int) -> list[Job]:
    jobs = []
    for p in range(photos):
        photo = tmp_path / f"p{p}.png"
        photo.write_bytes(bytes([p]) * 100)  # distinct bytes: distinct SHA-256
        for c in range(clips):
            number = len(jobs) + 1
            jobs.append(Job(number=number, photo=photo, audio=tmp_path / f"c{c}.wav",
                            output=tmp_path / f"o{number}.mp4", config=RenderConfig(size=128)))
    return jobs


def run_fake(jobs: list[Job], workers: int, deaths: dict[int, int], retries: int = 2):
    log: list[tuple[int, int]] = []
    fakes = [FakeWorker(i, log, deaths) for i in range(workers)]
    results: list[JobResult] = []
    schedule(fakes, jobs, results.append, retries=retries, reuse=True)
    return {r.number: r for r in results}, log, fakes


def test_each_photo_stays_on_one_worker(tmp_path):
    jobs = make_jobs(tmp_path, photos=4, clips=2)  # in file order: p0 p0 p1 p1 ...
    results, log, _ = run_fake(jobs, workers=2, deaths={})
    assert sorted(results) == list(range(1, 9)) and {r.status for r in results.values()} == {"ok"}
    photo_of = {j.number: j.photo for j in jobs}
    pairs = {(worker, photo_of[number]) for worker, number in log}
    assert len(pairs) == 4  # every photo set up once: its two jobs went to one worker


def test_a_job_whose_worker_dies_is_retried_and_its_partial_file_removed(tmp_path):
    jobs = make_jobs(tmp_path, photos=2, clips=2)
    partial = tmp_path / ".o2.ab12_xyz.part.mp4"  # what a killed render leaves
    partial.write_bytes(b"half")
    other = tmp_path / ".o22.ab12_xyz.part.mp4"  # another output's: kept
    other.write_bytes(b"half")
    results, log, fakes = run_fake(jobs, workers=2, deaths={2: 1})
    assert results[2].status == "ok" and results[2].attempts == 2
    assert all(results[n].attempts == 1 for n in (1, 3, 4))
    assert [number for _, number in log].count(2) == 2
    assert sum(f.replaced for f in fakes) == 1
    assert not partial.exists() and other.exists()


def test_a_job_that_keeps_killing_its_worker_fails_after_the_retries(tmp_path):
    jobs = make_jobs(tmp_path, photos=1, clips=3)
    results, _, _ = run_fake(jobs, workers=2, deaths={2: 99}, retries=2)
    assert results[2].status == "failed" and results[2].attempts == 3
    assert "worker died under this job 3 times" in results[2].error
    assert (results[1].status, results[3].status) == ("ok", "ok")


def test_a_job_failing_by_its_own_input_runs_once(tmp_path):
    jobs = make_jobs(tmp_path, photos=1, clips=2)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"x")
    jobs[1] = Job(number=2, photo=bad, audio=jobs[1].audio, output=jobs[1].output,
                  config=jobs[1].config)
    results, log, _ = run_fake(jobs, workers=2, deaths={})
    assert results[2].status == "failed" and results[2].attempts == 1
    assert [number for _, number in log].count(2) == 1


def test_remove_partial_matches_only_its_output(tmp_path):
    mine = tmp_path / ".talk.k3j_9xq2.part.mp4"
    theirs = [tmp_path / ".talk2.k3j_9xq2.part.mp4", tmp_path / ".talk.k3j.part.mp4",
              tmp_path / "talk.mp4"]
    for path in [mine, *theirs]:
        path.write_bytes(b"x")
    remove_partial(tmp_path / "talk.mp4")
    assert not mine.exists() and all(p.exists() for p in theirs)


@pytest.mark.parametrize(("argv", "expected"), [
    (["batch", "j.csv", "--ray"], ["batch", "j.csv", "--ray", "local"]),
    (["batch", "j.csv", "--ray", "--workers", "2"], ["batch", "j.csv", "--ray", "local", "--workers", "2"]),
    (["batch", "--ray", "j.csv"], ["batch", "--ray", "local", "j.csv"]),
    (["batch", "j.csv", "--ray", "auto"], ["batch", "j.csv", "--ray", "auto"]),
    (["batch", "j.csv", "--ray", "10.0.0.5:6379"], ["batch", "j.csv", "--ray", "10.0.0.5:6379"]),
    (["batch", "j.csv", "--ray", "ray://head:10001"], ["batch", "j.csv", "--ray", "ray://head:10001"]),
    (["render", "p.png", "--ray"], ["render", "p.png", "--ray"]),  # only batch has it
])
def test_ray_takes_an_optional_address(argv, expected):
    assert ray_address_optional(argv) == expected


def test_without_ray_installed_ray_says_how_to_install(tmp_path, photo, short_speech):
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"photo,audio\n{photo},{short_speech}\n")
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(tmp_path / "noray")}
    proc = subprocess.run([sys.executable, "-m", "talkinghead", "batch", str(jobs), "--ray", "-q"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert_clean_failure(proc, 2, "pip install 'talkinghead[ray]'")
    assert not list(tmp_path.glob("*.mp4"))


def test_ray_address_where_nothing_listens_is_one_line(tmp_path, photo, short_speech):
    pytest.importorskip("ray")
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"photo,audio\n{photo},{short_speech}\n")
    proc = run("batch", str(jobs), "--ray", "127.0.0.1:9", "-q", timeout=60)
    assert_clean_failure(proc, 2, "--ray 127.0.0.1:9", "no Ray cluster answers there")


def test_worker_options_need_ray(tmp_path):
    proc = run("batch", str(tmp_path / "jobs.csv"), "--gpus-per-worker", "0.5")
    assert_clean_failure(proc, 2, "need --ray")


@pytest.mark.slow
def test_jobs_sharing_a_photo_share_its_setup_and_frames_match(tmp_path, photo, short_speech,
                                                               monkeypatch):
    import talkinghead.batch
    from talkinghead.api import Avatar

    made: list[Path] = []
    original = Avatar.from_photo.__func__

    def counting(cls, path, **kwargs):
        made.append(Path(path))
        return original(cls, path, **kwargs)

    monkeypatch.setattr(Avatar, "from_photo", classmethod(counting))
    monkeypatch.setattr(talkinghead.batch, "_avatars", type(talkinghead.batch._avatars)())
    config = RenderConfig(size=128, seed=1)
    jobs = [Job(number=n, photo=photo, audio=short_speech, output=tmp_path / f"r{n}.mp4",
                config=config if n < 3 else RenderConfig(size=160, seed=1)) for n in (1, 2, 3)]
    results = run_jobs(jobs)
    assert [r.status for r in results] == ["ok"] * 3, [r.error for r in results]
    assert len(made) == 2  # jobs 1 and 2 share one setup; job 3's size needs its own
    fresh = [Job(number=1, photo=photo, audio=short_speech, output=tmp_path / "fresh.mp4",
                 config=config)]
    assert run_jobs(fresh, reuse=False)[0].status == "ok"
    assert len(made) == 2  # no Avatar without reuse
    reused = (tmp_path / "r2.mp4").read_bytes()
    assert reused == (tmp_path / "fresh.mp4").read_bytes() == (tmp_path / "r1.mp4").read_bytes()
