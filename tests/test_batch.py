"""Batch jobs: jobs files, job options parsed as render's, failures isolated, resume, Ctrl-C."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talkinghead.batch import BadRow, Job, make_jobs, read_rows, run_jobs
from talkinghead.cli.batch import job_parser
from talkinghead.errors import InputError
from talkinghead.mux import probe
from talkinghead.provenance import settings_of

from .test_cli import run


def jobs_from(text: str, name: str, base: Path, out_dir: Path | None = None,
              force: bool = False) -> list[Job | BadRow]:
    return make_jobs(read_rows(name, text), name, base, out_dir or base, job_parser(force, None))


def test_csv_and_json_lines_give_the_same_jobs(tmp_path):
    csv_text = ("photo,audio,output,seed,full_frame,watermark\n"
                "a.png,s.wav,x.mp4,3,true,\n"
                "\n"
                "b.png, sub/t.wav ,,,no,yes\n")
    jsonl = ('{"photo": "a.png", "audio": "s.wav", "output": "x.mp4", "seed": 3, "full-frame": true}\n'
             "# a comment\n"
             '{"photo": "b.png", "audio": "sub/t.wav", "full_frame": false, "watermark": true}\n')
    from_csv = jobs_from(csv_text, "jobs.csv", tmp_path)
    from_json = jobs_from(jsonl, "jobs.jsonl", tmp_path)
    assert [j.config for j in from_csv] == [j.config for j in from_json]
    first, second = from_csv
    assert isinstance(first, Job) and isinstance(second, Job)
    assert (first.photo, first.output) == (tmp_path / "a.png", tmp_path / "x.mp4")
    assert first.config.seed == 3 and first.config.full_frame and first.config.watermark is None
    assert second.audio == tmp_path / "sub" / "t.wav"
    assert second.output == tmp_path / "b_t.mp4"  # the default name, in the output folder
    assert second.config.seed == 0 and second.config.watermark  # render's defaults
    assert [j.number for j in from_json] == [1, 2]  # jobs are counted, not lines
    assert [j.number for j in from_csv] == [1, 2]


@pytest.mark.parametrize(("line", "problem"), [
    ('{"photo": "a.png", "audio": "s.wav", "colour": "red"}', "'colour' is not a render option"),
    ('{"photo": "a.png", "audio": "s.wav", "fps": 0}', "--fps"),
    ('{"photo": "a.png", "audio": "s.wav", "seed": "x"}', "--seed"),
    ('{"photo": "a.png", "audio": "s.wav", "size": 255}', "even"),
    ('{"photo": "a.png", "audio": "s.wav", "full-frame": "maybe"}', "true or false"),
    ('{"photo": "a.png"}', "no audio"),
    ('{"photo": "a.png", "audio": "s.wav", "seed": 1', "not valid JSON"),
    ('["a.png", "s.wav"]', "JSON object"),
])
def test_a_bad_row_fails_alone_with_a_clear_line(tmp_path, line, problem):
    good = '{"photo": "a.png", "audio": "s.wav", "output": "good.mp4"}'
    jobs = jobs_from(f"{good}\n{line}\n", "jobs.jsonl", tmp_path)
    assert isinstance(jobs[0], Job)
    assert isinstance(jobs[1], BadRow)
    assert jobs[1].error.startswith("jobs.jsonl: job 2: ") and problem in jobs[1].error


def test_two_jobs_writing_one_output_are_refused(tmp_path):
    jobs = jobs_from("photo,audio,output\na.png,s.wav,o.mp4\nb.png,t.wav,./o.mp4\n", "j.csv",
                     tmp_path)
    assert isinstance(jobs[0], Job) and isinstance(jobs[1], BadRow)
    assert "same output as job 1" in jobs[1].error


@pytest.mark.parametrize(("text", "problem"), [
    ("", "no jobs"),
    ("photo;audio\na;b\n", "header"),
    ("\x00\x01binary", "not text"),
])
def test_unusable_jobs_files_are_refused_whole(text, problem):
    with pytest.raises(InputError, match=problem):
        list(read_rows("jobs.csv", text))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400))
def test_any_text_gives_rows_or_one_clear_error(text):
    try:
        rows = list(read_rows("fuzz.csv", text))
    except InputError as exc:
        assert str(exc).startswith("fuzz.csv: ")
        return
    for number, row in rows:
        assert number >= 1 and isinstance(row, dict | str)


def test_missing_jobs_file_is_one_line_exit_2(tmp_path):
    proc = run("batch", str(tmp_path / "none.csv"), "-q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'none.csv'}: jobs file not found"]


@pytest.mark.slow
def test_mixed_jobs_run_resume_and_report(tmp_path, photo, short_speech):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("photo,audio,output,seed\n"
                    f"{photo},{short_speech},a.mp4,1\n"
                    f"missing.png,{short_speech},b.mp4,1\n"
                    f"{photo},{short_speech},c.mp4,2\n")
    proc = run("batch", str(jobs), "--json", "-q")
    assert proc.returncode == 1, proc.stderr  # one job failed, the others went on
    records = {r["number"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert [records[n]["status"] for n in (1, 2, 3)] == ["ok", "failed", "ok"]
    assert records[2]["exit_code"] == 2 and "missing.png: file not found" in records[2]["error"]
    assert not (tmp_path / "b.mp4").exists()
    assert settings_of(probe(tmp_path / "a.mp4").metadata) is not None
    # Only the failure printed a line on stderr (quiet): named, no traceback.
    assert "Traceback" not in proc.stderr and "missing.png" in proc.stderr

    before = (tmp_path / "a.mp4").stat().st_mtime_ns
    jobs.write_text(jobs.read_text().replace("c.mp4,2", "c.mp4,3"))  # job 3 changes its seed
    proc = run("batch", str(jobs), "--json", "-q", "--resume")
    records = {r["number"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert records[1]["status"] == "skipped"
    assert (tmp_path / "a.mp4").stat().st_mtime_ns == before
    assert records[3]["status"] == "failed" and "other inputs or settings" in records[3]["error"]
    proc = run("batch", str(jobs), "--json", "-q", "--resume", "--force")
    records = {r["number"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert (records[1]["status"], records[3]["status"]) == ("skipped", "ok")


def test_jobs_from_stdin(tmp_path, photo):
    proc = subprocess.run([sys.executable, "-m", "talkinghead", "batch", "-", "--json", "-q"],
                          input=f'{{"photo": "{photo}", "audio": "{tmp_path / "no.wav"}"}}\n',
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    record = json.loads(proc.stdout)
    assert proc.returncode == 1 and record["status"] == "failed"
    assert record["error"].endswith("no.wav: file not found")


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_leaves_no_partial_file(tmp_path, photo, speech):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("photo,audio,output\n" + "".join(f"{photo},{speech},o{i}.mp4\n" for i in range(4)))
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "batch", str(jobs), "--workers",
                             "2", "--out-dir", str(tmp_path), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".*.part.mp4")) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait until a worker is writing
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)  # generous: a loaded CI machine tears down slowly
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not list(tmp_path.glob(".*.part.mp4")) and not list(tmp_path.glob("*.mp4"))


@pytest.mark.parametrize("reuse", [True, False])
def test_run_jobs_isolates_an_unexpected_error(tmp_path, monkeypatch, reuse):
    import talkinghead.api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(talkinghead.api, "render", broken)
    monkeypatch.setattr(talkinghead.api.Avatar, "from_photo", broken)
    jobs = jobs_from("photo,audio\na.png,s.wav\nb.png,s.wav\n", "j.csv", tmp_path)
    results = run_jobs(jobs, reuse=reuse)
    assert [r.status for r in results] == ["failed", "failed"]
    assert results[0].error == "internal error: ZeroDivisionError: a bug"


@pytest.mark.slow
def test_unusual_but_valid_inputs_all_render(tmp_path, photo, short_speech):
    """Greyscale, CMYK, 16-bit, transparent and animated photos; mp3, ogg, flac, m4a and
    6-channel audio: each renders (one batch, one job per variant, two workers)."""
    import numpy as np
    import soundfile as sf
    from PIL import Image

    from talkinghead.mux import ffmpeg_exe

    image = Image.open(photo).convert("RGB").resize((384, 384))
    grey = np.asarray(image.convert("L"), np.uint16)
    image.convert("L").save(tmp_path / "grey.png")
    image.convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(grey * 257).save(tmp_path / "deep.tif")  # 16 bits per sample
    rgba = image.convert("RGBA")
    alpha = np.zeros((384, 384), np.uint8)
    alpha[24:-24, 24:-24] = 255  # a transparent border
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "alpha.png")
    image.save(tmp_path / "anim.gif", save_all=True, append_images=[image.rotate(90)])
    speech, rate = sf.read(short_speech)
    sf.write(tmp_path / "a.flac", speech, rate)
    sf.write(tmp_path / "a.ogg", speech, rate)
    sf.write(tmp_path / "a.mp3", speech, rate)
    sf.write(tmp_path / "six.wav", np.stack([speech] * 6, axis=1), rate)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(short_speech), "-c:a", "aac",
                    str(tmp_path / "a.m4a")], check=True)
    pairs = [("grey.png", "a.flac"), ("cmyk.jpg", "a.ogg"), ("deep.tif", "a.mp3"),
             ("alpha.png", "a.m4a"), ("anim.gif", "six.wav")]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"photo": p, "audio": a, "size": 128}) + "\n" for p, a in pairs))
    proc = run("batch", str(jobs), "--workers", "2", "--json", "-q")
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, [r["error"] for r in records]
    assert sorted(r["status"] for r in records) == ["ok"] * 5
    for p, a in pairs:
        info = probe(tmp_path / f"{Path(p).stem}_{Path(a).stem}.mp4")
        assert (info.width, info.audio_codec) == (128, "aac") and info.duration > 1.0
