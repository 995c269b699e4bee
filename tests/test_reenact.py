"""extract, render --motion and reenact from the command line, and the extract/render round trip."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from talkinghead.motionfile import read_motion, write_motion
from talkinghead.motionspace import EXPRESSION_NAMES, MotionSequence, expression_index
from talkinghead.mux import VideoWriter, decode_audio, ffmpeg_exe, probe, read_frames

from .test_cli import assert_clean_failure, run


@pytest.fixture(scope="module")
def driving(tmp_path_factory, encoded, short_speech) -> Path:
    """A 1 s, 256 px video of the example face sliding right and down, with speech."""
    appearance, _ = encoded
    path = tmp_path_factory.mktemp("driving") / "driving.mp4"
    frames = np.stack([np.roll(appearance.image, (t // 3, t // 2), axis=(0, 1)) for t in range(25)])
    with VideoWriter(path, width=256, height=256, fps=25.0, audio=short_speech,
                     audio_channels=1) as writer:
        writer.write(frames)
    return path


@pytest.fixture(scope="module")
def silent_driving(driving) -> Path:
    path = driving.with_name("silent.mp4")
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(driving), "-an",
                    "-c", "copy", str(path)], check=True)
    return path


def test_extract_writes_json_and_csv(tmp_path, driving):
    out = tmp_path / "m.json"
    proc = run("extract", str(driving), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"output": str(out), "frames": 25, "fps": 25.0,
                                       "face_frames": 1.0}
    motion = read_motion(out)
    shift = motion.pose[-1, 3:5] - motion.pose[0, 3:5]  # 12 px right, 8 down; iod about 60 px
    assert shift[0] > 0.1 and shift[1] > 0.05 and shift[0] > shift[1]
    assert np.abs(motion.pose[:, :3] - motion.pose[:1, :3]).max() < 2.0  # it only slides
    csv_out = tmp_path / "m.csv"
    assert run("extract", str(driving), "-o", str(csv_out), "-q").returncode == 0
    np.testing.assert_allclose(read_motion(csv_out).to_array(), motion.to_array(), atol=1e-3)
    assert_clean_failure(run("extract", str(driving), "-o", str(out), "-q"), 2, "already exists")
    assert_clean_failure(run("extract", str(driving), "-o", str(tmp_path / "m.txt"), "-q"), 2,
                         "m.txt", ".json or .csv")


def test_bad_motion_and_driving_inputs_give_one_line(tmp_path, photo, short_speech):
    out = tmp_path / "out.mp4"
    assert_clean_failure(run("render", str(photo), str(short_speech), "-o", str(out),
                             "--motion", "basline", "-q"), 2, "basline", "baseline")
    (tmp_path / "m.json").write_text("{}")
    assert_clean_failure(run("render", str(photo), str(short_speech), "-o", str(out),
                             "--motion", str(tmp_path / "m.json"), "-q"), 2, "m.json")
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    assert_clean_failure(run("reenact", str(photo), str(tmp_path / "clip.mp4"), "-o", str(out),
                             "-q"), 2, "clip.mp4")
    assert_clean_failure(run("extract", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "m2.json"),
                             "-q"), 2, "nope.mp4", "not found")
    assert not out.exists()


@pytest.mark.slow
def test_reenact_uses_the_driving_video_motion_and_sound(tmp_path, photo, driving, silent_driving):
    out = tmp_path / "re.mp4"
    proc = run("reenact", str(photo), str(driving), "-o", str(out), "--size", "128", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["frames"] == 25 and result["fps"] == 25.0
    info = probe(out)
    assert (info.video_codec, info.audio_codec, info.width) == ("h264", "aac", 128)
    assert np.abs(decode_audio(out, 16_000)).max() > 0.01  # the driving video's speech
    frames = np.concatenate(list(read_frames(out, 128, 128)))
    assert len(frames) == 25
    # The face slides right: the last frame's face moved against the first.
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 2.0

    quiet = tmp_path / "quiet.mp4"
    proc = run("reenact", str(photo), str(silent_driving), "-o", str(quiet), "--size", "128", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "no sound" in proc.stderr and probe(quiet).audio_codec == "aac"
    assert np.abs(decode_audio(quiet, 16_000)).max() < 1e-3


@pytest.mark.slow
def test_extract_reads_back_the_motion_render_was_given(tmp_path, photo, short_speech):
    """Round trip: render --motion with known motion, extract it from the video, compare the
    changes from the first frame (motion is applied relative to the photo)."""
    n, fps = 40, 25.0
    t = np.arange(n) / fps
    pose = np.zeros((n, 6), np.float32)
    pose[:, 5] = 1.0
    pose[:, 0] = 8 * np.sin(2 * np.pi * t / 1.6)
    pose[:, 1] = 5 * np.sin(2 * np.pi * t / 1.1)
    pose[:, 2] = 3 * np.sin(2 * np.pi * t / 0.9)
    expression = np.zeros((n, len(EXPRESSION_NAMES)), np.float32)
    jaw = expression_index("jawOpen")
    expression[:, jaw] = 0.6 * np.clip(np.sin(2 * np.pi * t / 0.8), 0, 1)
    blink = [expression_index("eyeBlinkLeft"), expression_index("eyeBlinkRight")]
    expression[15:20, blink] = np.array([0.5, 1.0, 1.0, 1.0, 0.5])[:, None]
    known = MotionSequence(fps, pose, expression, np.zeros((n, 2), np.float32))
    write_motion(tmp_path / "known.json", known)
    video, back_file = tmp_path / "r.mp4", tmp_path / "back.json"
    assert run("render", str(photo), str(short_speech), "--motion", str(tmp_path / "known.json"),
               "-o", str(video), "--size", "256", "-q").returncode == 0
    assert run("extract", str(video), "-o", str(back_file), "-q").returncode == 0
    back = read_motion(back_file)
    assert back.n_frames == n
    change = back.to_array() - back.to_array()[:1]
    truth = known.to_array() - known.to_array()[:1]
    pose_error = np.abs(change[:, :3] - truth[:, :3]).mean(axis=0)
    assert (pose_error < 2.0).all(), pose_error  # degrees, yaw pitch roll
    jaw_column, blink_columns = 6 + jaw, [6 + i for i in blink]
    assert np.abs(change[:, jaw_column] - truth[:, jaw_column]).mean() < 0.12
    assert np.corrcoef(change[:, jaw_column], truth[:, jaw_column])[0, 1] > 0.9
    closed, opened = change[16:19, blink_columns].mean(), change[25:, blink_columns].mean()
    assert closed > opened + 0.25
