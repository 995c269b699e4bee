"""The command line as users and scripts meet it: exit codes, one-line errors, outputs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from talkinghead.mux import decode_audio, probe, read_frames

from .helpers import EXAMPLES


def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkinghead", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, check=False)


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_is_quick_and_imports_no_heavy_module():
    assert run("--help").returncode == 0
    assert "render" in run("render", "--help").stdout
    probe_imports = ("import sys, talkinghead.cli; "
                     "print(sorted(m for m in ('torch', 'mediapipe', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe_imports], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
    assert run("--version").stdout.startswith("talkinghead ")


@pytest.mark.parametrize("case", ["missing photo", "text photo", "no face", "empty audio",
                                  "missing folder", "output is folder"])
def test_bad_inputs_give_one_line_exit_2_and_no_output(tmp_path, photo, short_speech, case):
    out = tmp_path / "out.mp4"
    args = [str(photo), str(short_speech), "-o", str(out)]
    needle = ""
    if case == "missing photo":
        args[0], needle = str(tmp_path / "nope.jpg"), "file not found"
    elif case == "text photo":
        (tmp_path / "t.jpg").write_text("hello")
        args[0], needle = str(tmp_path / "t.jpg"), "not an image"
    elif case == "no face":
        Image.linear_gradient("L").convert("RGB").save(tmp_path / "g.png")
        args[0], needle = str(tmp_path / "g.png"), "no face"
    elif case == "empty audio":
        (tmp_path / "e.wav").write_bytes(b"")
        args[1], needle = str(tmp_path / "e.wav"), "empty"
    elif case == "missing folder":
        out = tmp_path / "no" / "out.mp4"
        args[3], needle = str(out), "does not exist"
    elif case == "output is folder":
        out = tmp_path
        args[3], needle = str(out), "is a folder"
    proc = run("render", *args, "--quiet")
    assert_clean_failure(proc, 2, needle, Path(args[0] if "photo" in case or case == "no face"
                                               else args[1] if "audio" in case else args[3]).name)
    assert not (out.is_file())
    assert not [p for p in tmp_path.rglob(".*.part.mp4")]


def test_existing_output_is_kept_without_force(tmp_path, photo, short_speech):
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"my holiday video")
    proc = run("render", str(photo), str(short_speech), "-o", str(out), "-q")
    assert_clean_failure(proc, 2, "already exists", "--force")
    assert out.read_bytes() == b"my holiday video"


def test_usage_errors_exit_2(photo, short_speech):
    assert run("render", str(photo), str(short_speech), "--size", "255").returncode == 2
    assert run("render", str(photo), str(short_speech), "--fps", "0").returncode == 2
    assert run("render", str(photo)).returncode == 2


def test_motion_controls_are_checked_before_any_work(photo, short_speech, tmp_path):
    for option, value in (("--gaze", "left"), ("--gaze", "90,0"), ("--emotion", "bored"),
                          ("--emotion", "happy:3"), ("--head-distance", "0.1"), ("--steps", "0"),
                          ("--motion", "magic"), ("--mouth", "painted")):
        proc = run("render", str(photo), str(short_speech), option, value)
        assert proc.returncode == 2, (option, value)
        assert "Traceback" not in proc.stderr
    proc = run("render", str(photo), str(short_speech), "--motion", "diffusion", "--weights",
               str(tmp_path), "-o", str(tmp_path / "x.mp4"))
    assert_clean_failure(proc, 2, "MANIFEST.json")
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
def test_render_end_to_end(tmp_path, photo, short_speech):
    out = tmp_path / "talk.mp4"
    proc = run("render", str(photo), str(short_speech), "-o", str(out), "--size", "256",
               "--json", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["output"] == str(out) and result["frames"] == 40
    # The learned mouth: the same video but for the mouth.
    learned = tmp_path / "learned.mp4"
    proc = run("render", str(photo), str(short_speech), "-o", str(learned), "--size", "256",
               "--seed", "7", "--mouth", "learned", "-q")
    assert proc.returncode == 0, proc.stderr
    a, b = (np.concatenate(list(read_frames(p, 256, 256))).astype(float) for p in (out, learned))
    change = np.abs(a - b).mean(axis=(0, 3))  # (256, 256) mean change per pixel over the clip
    from talkinghead.face import track_landmarks

    landmarks = next(track_landmarks(a[:1].astype(np.uint8)))
    iod = np.linalg.norm(landmarks[263, :2] - landmarks[33, :2])
    most = np.stack(np.unravel_index(np.argsort(change.ravel())[-200:], change.shape), axis=1)[:, ::-1]
    mouth = landmarks[[13, 14], :2].mean(axis=0)
    assert change.max() > 10 and np.linalg.norm(most - mouth, axis=1).max() < 0.6 * iod  # the mouth
    assert change[: int(landmarks[6, 1])].mean() < 1  # and not above the nose (encoding noise only)
    info = probe(out)
    assert (info.video_codec, info.audio_codec, info.pixel_format) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height) == (256, 256)
    assert "Synthetic" in info.metadata["comment"] and "talkinghead" in info.metadata["comment"]
    assert info.metadata["description"] == f"talkinghead-settings:{result['settings']}"
    frames = np.concatenate(list(read_frames(out, 256, 256)))
    audio_seconds = sf.info(short_speech).duration
    assert abs(len(frames) / 25.0 - audio_seconds) <= 1 / 25.0
    assert abs(len(decode_audio(out, 16_000)) / 16_000 - audio_seconds) < 0.05
    measured = run("eval", str(out), "--source", str(photo), "--json")
    assert measured.returncode == 0, measured.stderr
    report = json.loads(measured.stdout)
    assert report["frames"] == 40 and abs(report["av_offset_frames"]) <= 1.0
    # The face stays the photo's: SSIM against the photo, aligned by a 2-D similarity (which
    # cannot undo a head turn's foreshortening of the cheeks), above that against the photo
    # mirrored (the same colours and layout, another face).
    assert report["face_frames"] == 1.0
    mirrored = tmp_path / "mirrored.png"
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    other = json.loads(run("eval", str(out), "--source", str(mirrored), "--json").stdout)
    assert report["face_ssim"] > other["face_ssim"] + 0.05
    # The lips follow this audio, leading it by at most two frames as real lips do (the
    # shipped weights, seed 7: best 0.44 at -40 ms, 0.38 at lag 0; seeds 0 and 3 give 0.63
    # and 0.34 over these 1.6 s); against a later stretch of the same voice they do not (its
    # best over the searched lags 0.25, at lag 0 -0.05: what an unrelated mouth reaches).
    data, rate = sf.read(EXAMPLES / "speech.wav")
    wrong = tmp_path / "wrong.wav"
    sf.write(wrong, data[int(3.0 * rate) : int(4.6 * rate)], rate)
    against_wrong = json.loads(run("eval", str(out), "--audio", str(wrong), "--json").stdout)
    assert report["corr_best"] > 0.35 and abs(report["corr_best_lag_ms"]) <= 80
    assert against_wrong["corr_best"] < report["corr_best"] - 0.15
    assert report["corr_lag0"] > against_wrong["corr_lag0"] + 0.3
    # The mouth and eyes move; the top corners (background) do not.
    motion = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(0, 3))
    assert motion[150:200, 90:170].mean() > 4 * motion[:30, :30].mean() + 0.5
    assert motion[:30, :30].mean() < 0.5


@pytest.mark.slow
def test_same_seed_same_video(tmp_path, photo, short_speech):
    outs = []
    for name, seed, *more in (("a", "3"), ("b", "3"), ("c", "4"), ("d", "3", "--watermark")):
        out = tmp_path / f"{name}.mp4"
        assert run("render", str(photo), str(short_speech), "-o", str(out), "--size", "128",
                   "--seed", seed, "-q", *more).returncode == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
    # The watermark changes the bottom-right corner and nothing else.
    plain, marked = (np.concatenate(list(read_frames(tmp_path / f"{n}.mp4", 128, 128))).astype(int)
                     for n in "ad")
    difference = np.abs(plain - marked).mean(axis=(0, 3))  # codec noise aside, only the label
    assert difference[104:124, 40:124].mean() > 20 and difference[:96].mean() < 1.0


@pytest.mark.slow
def test_ctrl_c_removes_the_partial_file(tmp_path, photo, speech):
    out = tmp_path / "long.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "render", str(photo),
                             str(speech), "-o", str(out), "-q"], stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".*.part.mp4")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".*.part.mp4")), "the render never started writing"
    with open(f"/proc/{proc.pid}/status") as status:  # for the failure message: how it takes SIGINT
        signals = [line for line in status if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=180)  # generous: a loaded CI machine tears down slowly
    assert proc.returncode == 130, (signals, err)
    assert "Traceback" not in err and "interrupted" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [None, b"this is not a video"])
def test_eval_refuses_what_it_cannot_measure(tmp_path, content):
    video = tmp_path / "clip.mp4"
    if content is not None:
        video.write_bytes(content)
    assert_clean_failure(run("eval", str(video)), 2, "clip.mp4")


def _can_mount_tmpfs() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k none /mnt"],
                              capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and tmpfs mounts (root)")
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, photo, short_speech):
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f'mount -t tmpfs -o size=16k none "{disk}" && '
              f'"{sys.executable}" -m talkinghead render "{photo}" "{short_speech}" -o "{disk}/o.mp4" '
              f'--size 256 -q; rc=$?; ls -A "{disk}" >&2; exit $rc')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: {disk}/o.mp4: no space left on the output's disk"


def test_file_size_limit_is_one_line_and_leaves_nothing(tmp_path, photo, short_speech):
    import resource

    def limit() -> None:  # ffmpeg is killed by SIGXFSZ when it writes past the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = tmp_path / "o.mp4"
    proc = subprocess.run([sys.executable, "-m", "talkinghead", "render", str(photo),
                           str(short_speech), "-o", str(out), "--size", "256", "-q"],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300, check=False)
    assert_clean_failure(proc, 2, "o.mp4", "file size limit")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and tmpfs mounts (root)")
def test_read_only_output_folder_is_refused_up_front(tmp_path, photo, short_speech):
    disk = tmp_path / "ro"
    disk.mkdir()
    script = (f'mount -t tmpfs -o ro,size=16k none "{disk}" && '
              f'"{sys.executable}" -m talkinghead render "{photo}" "{short_speech}" -o "{disk}/o.mp4" -q')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert_clean_failure(proc, 2, "o.mp4", "not writable")


@pytest.mark.parametrize("how", ["env", "uninstalled"])
def test_missing_ffmpeg_is_one_line_before_any_work(tmp_path, photo, short_speech, how):
    env = dict(os.environ)
    code = "import sys; from talkinghead.cli import main; sys.argv[0] = 'talkinghead'; main()"
    if how == "env":
        env["TALKINGHEAD_FFMPEG"] = str(tmp_path / "ffmpeg")
    else:  # no imageio-ffmpeg and nothing on PATH
        code = "import sys; sys.modules['imageio_ffmpeg'] = None; " + code
        env["PATH"] = str(tmp_path)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, "render", str(photo), str(short_speech),
                           "-o", str(tmp_path / "o.mp4"), "-q"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert_clean_failure(proc, 1, "ffmpeg")
    assert time.monotonic() - started < 30  # refused up front, not after rendering
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.slow
def test_motion_controls_reach_the_video(tmp_path, photo, short_speech):
    """--still, --head-motion, --gaze and --head-distance with valid values, through the CLI,
    measured on the videos by `talkinghead eval` and the face tracker."""
    from talkinghead.face import find_face
    from talkinghead.load import Portrait

    def render_and_measure(name: str, *options: str) -> tuple[dict, float]:
        out = tmp_path / f"{name}.mp4"
        proc = run("render", str(photo), str(short_speech), "-o", str(out), "--size", "256", "-q",
                   *options)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(run("eval", str(out), "--json").stdout)
        frame = np.concatenate(list(read_frames(out, 256, 256)))[20]
        box = find_face(Portrait(out, frame)).box
        return report, float(box[2] - box[0])

    plain, width = render_and_measure("plain")
    still, _ = render_and_measure("still", "--still")
    lively, _ = render_and_measure("lively", "--head-motion", "2")
    aside, _ = render_and_measure("aside", "--gaze", "15,0")
    _, far_width = render_and_measure("far", "--head-distance", "0.7")
    assert still["yaw_std"] < 0.3 < plain["yaw_std"] and still["mouth_std"] > 0.02
    assert lively["yaw_std"] + lively["pitch_std"] > 1.5 * (plain["yaw_std"] + plain["pitch_std"])
    assert abs(aside["gaze_yaw_mean"] - plain["gaze_yaw_mean"]) > 5.0
    assert far_width == pytest.approx(0.7 * width, rel=0.1)
