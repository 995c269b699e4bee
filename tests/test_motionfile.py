"""Motion files: JSON and Live Link Face CSV written and read back, bad files refused, retiming."""

import json

import numpy as np
import pytest

from talkinghead.errors import InputError
from talkinghead.motionfile import (
    ARKIT_NAMES,
    EXTRA_COLUMNS,
    ROTATION_COLUMNS,
    read_motion,
    relative_to,
    retime,
    write_motion,
)
from talkinghead.motionspace import EXPRESSION_NAMES, MotionSequence, expression_index


def _motion(n: int = 60, fps: float = 30.0) -> MotionSequence:
    rng = np.random.default_rng(1)
    pose = np.column_stack([rng.normal(0, 5, (n, 3)), rng.normal(0, 0.05, (n, 2)),
                            1 + rng.normal(0, 0.02, n)])
    return MotionSequence(fps, pose.astype(np.float32),
                          rng.uniform(0, 1, (n, len(EXPRESSION_NAMES))).astype(np.float32),
                          rng.normal(0, 8, (n, 2)).astype(np.float32))


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_a_motion_file_reads_back_what_was_written(tmp_path, suffix):
    motion = _motion()
    path = tmp_path / f"m{suffix}"
    write_motion(path, motion)
    back = read_motion(path)
    assert back.fps == motion.fps and back.n_frames == motion.n_frames
    np.testing.assert_allclose(back.to_array(), motion.to_array(), atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_the_csv_has_live_link_face_columns(tmp_path):
    motion = _motion(n=70, fps=30.0)
    path = tmp_path / "m.csv"
    write_motion(path, motion)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"]
    assert header[2:54] == [n[0].upper() + n[1:] for n in ARKIT_NAMES] and len(ARKIT_NAMES) == 52
    assert header[54:] == list(ROTATION_COLUMNS + EXTRA_COLUMNS)
    first, second_31 = lines[1].split(","), lines[32].split(",")
    assert first[:2] == ["00:00:00:00.000", "61"] and second_31[0] == "00:00:01:01.000"
    row = dict(zip(header, lines[1].split(","), strict=True))
    assert float(row["JawOpen"]) == pytest.approx(motion.expression[0, expression_index("jawOpen")],
                                                  abs=1e-5)
    assert float(row["TongueOut"]) == 0.0  # not modelled
    assert float(row["HeadYaw"]) == pytest.approx(np.deg2rad(motion.pose[0, 0]), abs=1e-5)
    yaw = motion.gaze[0, 0]
    assert float(row["EyeLookOutLeft"]) == pytest.approx(np.clip(yaw / 30.0, 0, 1), abs=1e-5)


def test_a_live_link_face_export_without_our_columns_reads(tmp_path):
    names = ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "JawOpen", "HeadYaw"]
    rows = [f"10:20:30:{f:02d}.5,61,0.1,{f / 60:.3f},0.1" for f in range(60)]
    rows += [f"10:20:31:{f:02d}.5,61,0.1,0.5,0.1" for f in range(10)]
    path = tmp_path / "take.csv"
    path.write_text("\n".join([",".join(names), *rows]) + "\n")
    motion = read_motion(path)
    assert motion.fps == 60.0 and motion.n_frames == 70
    assert motion.pose[0, 5] == 1.0 and motion.pose[0, 3] == 0.0
    assert motion.pose[0, 0] == pytest.approx(np.rad2deg(0.1), abs=1e-4)
    assert motion.expression[30, expression_index("jawOpen")] == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("case, needle", [
    ("empty.json", "empty"),
    ("broken.json", "not valid JSON"),
    ("other.json", "not a talkinghead motion file"),
    ("nan.json", "NaN"),
    ("short.json", "rows of 6 numbers"),
    ("text.csv", "no Timecode column"),
    ("cell.csv", "line 3: column JawOpen is not a number"),
    ("motion.txt", "must end in .json or .csv"),
    ("missing.json", "not found"),
])
def test_bad_motion_files_give_one_clear_error(tmp_path, case, needle):
    path = tmp_path / case
    good = json.loads(json.dumps({"format": "talkinghead-motion", "version": 1, "fps": 25,
                                  "pose": [[0, 0, 0, 0, 0, 1]], "expression": [[0] * 33],
                                  "gaze": [[0, 0]]}))
    contents = {
        "empty.json": "",
        "broken.json": "{\"format\": ",
        "other.json": json.dumps({"hello": 1}),
        "nan.json": json.dumps({**good, "gaze": [[float("nan"), 0]]}),
        "short.json": json.dumps({**good, "pose": [[0, 0, 0]]}),
        "text.csv": "hello,world\n1,2\n",
        "cell.csv": "Timecode,JawOpen\n00:00:00:00.000,0.1\n00:00:00:01.000,abc\n",
        "motion.txt": "x",
    }
    if case in contents:
        path.write_text(contents[case])
    with pytest.raises(InputError) as info:
        read_motion(path)
    message = str(info.value)
    assert needle in message and case in message and "\n" not in message


def test_retime_resamples_trims_and_holds():
    motion = _motion(n=50, fps=50.0)  # one second
    half = retime(motion, 25.0, 25)
    np.testing.assert_allclose(half.to_array(), motion.to_array()[::2], atol=1e-6)
    longer = retime(motion, 25.0, 40)  # 1.6 s: the last frame is held
    assert longer.n_frames == 40
    np.testing.assert_allclose(longer.to_array()[30:], np.repeat(motion.to_array()[-1:], 10, 0))


def test_motion_is_applied_relative_to_the_source():
    motion = _motion(n=10)
    source = MotionSequence.still(np.array([5.0, -3.0, 1.0, 0.0, 0.0, 1.0]),
                                  np.full(len(EXPRESSION_NAMES), 0.2), np.array([1.0, 2.0]), 1, 30.0)
    applied = relative_to(motion, source)
    np.testing.assert_allclose(applied.to_array()[0], source.to_array()[0], atol=1e-6)
    np.testing.assert_allclose(applied.pose[:, :5] - applied.pose[:1, :5],
                               motion.pose[:, :5] - motion.pose[:1, :5], atol=1e-5)
    np.testing.assert_allclose(applied.pose[:, 5], motion.pose[:, 5] / motion.pose[0, 5], atol=1e-5)
    assert applied.expression.min() >= 0.0 and applied.expression.max() <= 1.0
